/**
 * Byte builders for the LDS parser tests: ISO/IEC 19794-5:2005 facial records, DG2
 * templates (9303-10 §4.7.2), JPEG 2000 headers (ISO/IEC 15444-1 Annex I, A.5.1) and two
 * real JPEGs. Built with encodeTlv so the tests exercise the encoder's length forms too.
 */
import { concat, fromHex } from "../../agent/bytes.ts";
import { encodeTlv } from "../../agent/iso7816/tlv.ts";

/** A real baseline JPEG, 3x2 grey, made with libjpeg-turbo 2.1.5 `cjpeg -quality 50` from a PGM. */
export const REAL_JPEG_3X2 = fromHex(
  "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a181616183123251d283a333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064785c656763ffc0000b080002000301011100ffc4001f0000010501010101010100000000000000000102030405060708090a0bffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100003f00c98618fca5fdda74fee8afffd9",
);

/** A real progressive JPEG (SOF2), 5x3 grey, made with `cjpeg -progressive -quality 40`. */
export const REAL_PROGRESSIVE_JPEG_5X3 = fromHex(
  "ffd8ffe000104a46494600010100000100010000ffdb004300140e0f120f0d14121012171514181e32211e1c1c1e3d2c2e243249404c4b47404645505a736250556d5645466488656d777b8182814e608d978c7d96737e817cffc2000b080003000501011100ffc40014000100000000000000000000000000000002ffda00080101000000013fffc40014100100000000000000000000000000000042ffda00080101000105025fffc400161001010100000000000000000000000000010041ffda0008010100063f024c1bffc40017100101010100000000000000000000000001110071ffda0008010100013f21541b1013aeffda00080101000000107fffc4001810010100030000000000000000000000000111002141ffda0008010100013f107b015520106b80067fffd9",
);

export function u16(n: number): Uint8Array {
  return Uint8Array.of(n >> 8, n & 0xff);
}
export function u32(n: number): Uint8Array {
  return Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}
const ascii = (s: string) => new TextEncoder().encode(s);

/** JPEG 2000 codestream main header: SOC, SIZ (one component), then EOC; no tile data needed for size reading. */
export function jpeg2000Codestream(width: number, height: number, xOffset = 0, yOffset = 0): Uint8Array {
  const siz = concat(
    u16(0x0000), // Rsiz
    u32(width + xOffset), // Xsiz
    u32(height + yOffset), // Ysiz
    u32(xOffset),
    u32(yOffset),
    u32(width + xOffset), // XTsiz
    u32(height + yOffset), // YTsiz
    u32(0),
    u32(0),
    u16(1), // Csiz
    Uint8Array.of(7, 1, 1), // Ssiz, XRsiz, YRsiz
  );
  return concat(Uint8Array.of(0xff, 0x4f, 0xff, 0x51), u16(siz.length + 2), siz, Uint8Array.of(0xff, 0xd9));
}

function box(type: string, ...content: Uint8Array[]): Uint8Array {
  const body = concat(...content);
  return concat(u32(body.length + 8), ascii(type), body);
}

/** JP2 file: signature, ftyp, jp2h { ihdr, colr }, jp2c (ISO/IEC 15444-1 Annex I). `ihdr` may lie to test the cross-check. */
export function jp2File(width: number, height: number, opts: { omitIhdr?: boolean } = {}): Uint8Array {
  const ihdr = box("ihdr", u32(height), u32(width), u16(1), Uint8Array.of(7, 7, 0, 0));
  const colr = box("colr", Uint8Array.of(1, 0, 0), u32(17));
  return concat(
    fromHex("0000000C6A5020200D0A870A"),
    box("ftyp", ascii("jp2 "), u32(0), ascii("jp2 ")),
    box("jp2h", ...(opts.omitIhdr ? [colr] : [ihdr, colr])),
    box("jp2c", jpeg2000Codestream(width, height)),
  );
}

export interface FaceSpec {
  image: Uint8Array;
  width: number;
  height: number;
  /** 0 JPEG, 1 JPEG 2000 */
  imageDataType: number;
  featurePoints?: number;
  /** Overrides the facial record data length (for hostile input). */
  faceLength?: number;
}

/** One facial record data block: facial information (20), feature points (8 each), image information (12), image. */
export function faceBlock(f: FaceSpec): Uint8Array {
  const points = f.featurePoints ?? 0;
  const length = 20 + points * 8 + 12 + f.image.length;
  const info = concat(
    u32(f.faceLength ?? length),
    u16(points),
    Uint8Array.of(0, 0, 0), // gender, eye colour, hair colour: unspecified
    Uint8Array.of(0, 0, 0), // feature mask
    u16(0), // expression
    Uint8Array.of(0, 0, 0, 0, 0, 0), // pose angle and uncertainty
  );
  const featurePoints = new Uint8Array(points * 8);
  for (let i = 0; i < points; i++) featurePoints.set([1, 0x11 + i, 0, 10 + i, 0, 20 + i, 0, 0], i * 8);
  const imageInfo = concat(
    Uint8Array.of(1, f.imageDataType), // face image type: full frontal
    u16(f.width),
    u16(f.height),
    Uint8Array.of(1, 2), // colour space, source type
    u16(0), // device type
    u16(0), // quality
  );
  return concat(info, featurePoints, imageInfo, f.image);
}

/** ISO/IEC 19794-5:2005 record: 'FAC\0' '010\0' length(4) faces(2) + face blocks. */
export function facialRecord(faces: FaceSpec[], opts: { faceCount?: number; recordLength?: number; version?: string } = {}): Uint8Array {
  const blocks = concat(...faces.map(faceBlock));
  return concat(
    ascii("FAC\0"),
    ascii(opts.version ?? "010\0"),
    u32(opts.recordLength ?? 14 + blocks.length),
    u16(opts.faceCount ?? faces.length),
    blocks,
  );
}

/** 9303-10 biometric header template: ICAO header version, type face, format owner/type. */
export const BHT = encodeTlv(
  0xa1,
  encodeTlv(0x80, Uint8Array.of(1, 1)),
  encodeTlv(0x81, Uint8Array.of(2)),
  encodeTlv(0x87, Uint8Array.of(1, 1)),
  encodeTlv(0x88, Uint8Array.of(0, 8)),
);

/** 75 { 7F61 { 02 count, 7F60 { A1, 5F2E record } ... } } */
export function dg2File(records: Uint8Array[], opts: { count?: number; bdbTag?: number } = {}): Uint8Array {
  return encodeTlv(
    0x75,
    encodeTlv(
      0x7f61,
      encodeTlv(0x02, Uint8Array.of(opts.count ?? records.length)),
      ...records.map((r) => encodeTlv(0x7f60, BHT, encodeTlv(opts.bdbTag ?? 0x5f2e, r))),
    ),
  );
}
