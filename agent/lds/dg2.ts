/**
 * DG2 (encoded face), ICAO 9303-10 §4.7.2: 75 { 7F61 { 02 count, 7F60 { A1 header,
 * 5F2E|7F2E biometric data block } ... } }, each block an ISO/IEC 19794-5:2005 §5 facial
 * record: general header, then per face a facial information block, feature points and
 * an image information block followed by the image. The image is biometric data: it is
 * returned as a subarray (no copy) and never placed in an error.
 */
import { ParseError } from "../errors.ts";
import type { Tlv } from "../iso7816/tlv.ts";
import { children, decodeCount, offsetIn, outerTemplate } from "./data-object.ts";
import { detectImageFormat, imageSize, type ImageFormat } from "./image-info.ts";

export interface FaceImage {
  /** From the image's magic bytes (not the header's image data type). */
  format: ImageFormat;
  /** From the image itself when readable, else from the 19794-5 header. */
  width: number;
  height: number;
  /** Header values, present only when they differ from the image's own size. */
  headerWidth?: number;
  headerHeight?: number;
  /** 19794-5 §5.7: face image type, image data type (0 JPEG, 1 JPEG 2000), colour space, source type, device type, quality. */
  imageInfo: {
    faceImageType: number;
    imageDataType: number;
    colourSpace: number;
    sourceType: number;
    deviceType: number;
    quality: number;
  };
  featurePointCount: number;
  imageBytes: Uint8Array;
  /** Offset of the image's first byte in the DG2 file. */
  offsetInFile: number;
}

export interface Dg2 {
  faces: FaceImage[];
}

const GENERAL_HEADER = 14; // 'FAC\0', version, record length (4), number of faces (2)
const FACIAL_INFO = 20; // record data length (4), feature points (2), gender, eyes, hair, mask (3), expression (2), pose (3), uncertainty (3)
const FEATURE_POINT = 8;
const IMAGE_INFO = 12;

export function parseDg2(bytes: Uint8Array): Dg2 {
  const outer = outerTemplate(bytes, 0x75, "DG2");
  const group = children(bytes, outer.value).find((t) => t.tag === 0x7f61);
  if (!group) throw new ParseError("DG2: no biometric information group template (7F61)", { offset: outer.headerLength, tag: 0x7f61 });
  const items = children(bytes, group.value);
  const countTlv = items.find((t) => t.tag === 0x02);
  if (!countTlv) throw new ParseError("DG2: no biometric template count (02)", { offset: group.offset, tag: 0x02 });
  const count = decodeCount(countTlv);
  const templates = items.filter((t) => t.tag === 0x7f60);
  if (count === 0) throw new ParseError("DG2: template count is 0", { offset: countTlv.offset, tag: 0x02 });
  if (count !== templates.length) {
    throw new ParseError(`DG2: template count ${count} but ${templates.length} templates (7F60)`, { offset: countTlv.offset, tag: 0x02 });
  }
  const faces: FaceImage[] = [];
  for (const template of templates) {
    const bdb = children(bytes, template.value).find((t) => t.tag === 0x5f2e || t.tag === 0x7f2e);
    if (!bdb) throw new ParseError("DG2: biometric information template without data block (5F2E/7F2E)", { offset: template.offset, tag: 0x7f60 });
    faces.push(...parseFacialRecord(bytes, bdb));
  }
  return { faces };
}

/** ISO/IEC 19794-5:2005 facial record inside one biometric data block. */
function parseFacialRecord(file: Uint8Array, bdb: Tlv): FaceImage[] {
  const b = bdb.value;
  const base = offsetIn(file, b);
  const fail = (msg: string, at: number): never => {
    throw new ParseError(`DG2 facial record: ${msg}`, { offset: base + at, tag: bdb.tag });
  };
  if (b.length < GENERAL_HEADER) fail(`${b.length} bytes, shorter than the general header`, 0);
  if (!(b[0] === 0x46 && b[1] === 0x41 && b[2] === 0x43 && b[3] === 0x00)) fail("format identifier is not 'FAC'", 0);
  // 19794-5:2005 is '010'; 9303-10 requires it (the 2011 edition has another layout).
  if (!(b[4] === 0x30 && b[5] === 0x31 && b[6] === 0x30 && b[7] === 0x00)) fail("version is not '010'", 4);
  const recordLength = u32(b, 8);
  if (recordLength < GENERAL_HEADER || recordLength > b.length) fail(`record length ${recordLength} outside 14..${b.length}`, 8);
  const faceCount = u16(b, 12);
  if (faceCount === 0) fail("number of faces is 0", 12);
  const minFace = FACIAL_INFO + IMAGE_INFO + 1;
  if (faceCount * minFace > recordLength - GENERAL_HEADER) fail(`${faceCount} faces cannot fit in ${recordLength} bytes`, 12);

  const faces: FaceImage[] = [];
  let p = GENERAL_HEADER;
  for (let i = 0; i < faceCount; i++) {
    if (p + FACIAL_INFO > recordLength) fail(`face ${i + 1}: facial information block past the record end`, p);
    const faceLength = u32(b, p);
    const points = u16(b, p + 4);
    const fixed = FACIAL_INFO + points * FEATURE_POINT + IMAGE_INFO;
    if (faceLength <= fixed || p + faceLength > recordLength) {
      fail(`face ${i + 1}: facial record data length ${faceLength} inconsistent with ${points} feature points and the record length`, p);
    }
    const info = p + FACIAL_INFO + points * FEATURE_POINT; // feature points skipped
    const imageInfo = {
      faceImageType: b[info]!,
      imageDataType: b[info + 1]!,
      colourSpace: b[info + 6]!,
      sourceType: b[info + 7]!,
      deviceType: u16(b, info + 8),
      quality: u16(b, info + 10),
    };
    const headerWidth = u16(b, info + 2);
    const headerHeight = u16(b, info + 4);
    const imageBytes = b.subarray(info + IMAGE_INFO, p + faceLength);
    const format = detectImageFormat(imageBytes);
    const own = imageSize(imageBytes);
    const face: FaceImage = {
      format,
      width: own?.width ?? headerWidth,
      height: own?.height ?? headerHeight,
      imageInfo,
      featurePointCount: points,
      imageBytes,
      offsetInFile: offsetIn(file, imageBytes),
    };
    if (own && (own.width !== headerWidth || own.height !== headerHeight)) {
      face.headerWidth = headerWidth;
      face.headerHeight = headerHeight;
    }
    faces.push(face);
    p += faceLength;
  }
  return faces;
}

const u16 = (b: Uint8Array, p: number) => b[p]! * 256 + b[p + 1]!;
const u32 = (b: Uint8Array, p: number) => b[p]! * 0x1000000 + b[p + 1]! * 0x10000 + b[p + 2]! * 0x100 + b[p + 3]!;
