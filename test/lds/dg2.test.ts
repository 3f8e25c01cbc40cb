import { describe, expect, test } from "bun:test";
import { concat, equalBytes } from "../../agent/bytes.ts";
import { ParseError } from "../../agent/errors.ts";
import { encodeTlv } from "../../agent/iso7816/tlv.ts";
import { parseDg2 } from "../../agent/lds/dg2.ts";
import { BHT, dg2File, facialRecord, jp2File, REAL_JPEG_3X2, REAL_PROGRESSIVE_JPEG_5X3, u32 } from "./builders.ts";

const jpegFace = { image: REAL_JPEG_3X2, width: 3, height: 2, imageDataType: 0 };

describe("DG2 (9303-10 §4.7.2, ISO/IEC 19794-5:2005)", () => {
  test("one JPEG face: format, size, image bytes and their offset in the file", () => {
    const file = dg2File([facialRecord([jpegFace])]);
    const { faces } = parseDg2(file);
    expect(faces.length).toBe(1);
    const f = faces[0]!;
    expect(f.format).toBe("jpeg");
    expect([f.width, f.height]).toEqual([3, 2]);
    expect(f.headerWidth).toBeUndefined();
    expect(f.imageInfo).toEqual({ faceImageType: 1, imageDataType: 0, colourSpace: 1, sourceType: 2, deviceType: 0, quality: 0 });
    expect(equalBytes(f.imageBytes, REAL_JPEG_3X2)).toBe(true);
    expect(equalBytes(file.subarray(f.offsetInFile, f.offsetInFile + f.imageBytes.length), REAL_JPEG_3X2)).toBe(true);
    expect(f.offsetInFile + f.imageBytes.length).toBe(file.length);
    expect(f.imageBytes.buffer).toBe(file.buffer); // a view, not a copy
  });

  test("feature points are skipped (8 bytes each)", () => {
    const { faces } = parseDg2(dg2File([facialRecord([{ ...jpegFace, featurePoints: 5 }])]));
    expect(faces[0]!.featurePointCount).toBe(5);
    expect(equalBytes(faces[0]!.imageBytes, REAL_JPEG_3X2)).toBe(true);
    expect(faces[0]!.width).toBe(3);
  });

  test("JPEG 2000 face; header size that disagrees with the image is reported beside it", () => {
    const jp2 = jp2File(420, 525);
    const { faces } = parseDg2(dg2File([facialRecord([{ image: jp2, width: 400, height: 500, imageDataType: 1 }])]));
    const f = faces[0]!;
    expect(f.format).toBe("jpeg2000");
    expect([f.width, f.height, f.headerWidth, f.headerHeight]).toEqual([420, 525, 400, 500]);
    expect(f.imageInfo.imageDataType).toBe(1);
  });

  test("format comes from the magic bytes: header says JPEG 2000, bytes are JPEG", () => {
    const { faces } = parseDg2(dg2File([facialRecord([{ ...jpegFace, imageDataType: 1 }])]));
    expect(faces[0]!.format).toBe("jpeg");
  });

  test("unknown image bytes: header size used", () => {
    const { faces } = parseDg2(dg2File([facialRecord([{ image: Uint8Array.of(1, 2, 3, 4), width: 480, height: 640, imageDataType: 0 }])]));
    expect(faces[0]).toMatchObject({ format: "unknown", width: 480, height: 640 });
    expect(faces[0]!.headerWidth).toBeUndefined();
  });

  test("two faces in one record and two templates; 7F2E data block; large DG2 (3-byte lengths)", () => {
    const big = concat(REAL_PROGRESSIVE_JPEG_5X3, new Uint8Array(70_000));
    const file = dg2File(
      [facialRecord([jpegFace, { image: big, width: 5, height: 3, imageDataType: 0 }]), facialRecord([jpegFace])],
      { bdbTag: 0x7f2e },
    );
    const { faces } = parseDg2(file);
    expect(faces.map((f) => [f.width, f.height, f.imageBytes.length])).toEqual([
      [3, 2, REAL_JPEG_3X2.length],
      [5, 3, big.length],
      [3, 2, REAL_JPEG_3X2.length],
    ]);
    for (const f of faces) expect(equalBytes(file.subarray(f.offsetInFile, f.offsetInFile + f.imageBytes.length), f.imageBytes)).toBe(true);
  });

  describe("hostile input throws ParseError", () => {
    const record = facialRecord([jpegFace]);
    const cases: [string, Uint8Array][] = [
      ["empty", new Uint8Array(0)],
      ["wrong outer tag", encodeTlv(0x61, dg2File([record]).subarray(2))],
      ["no 7F61", encodeTlv(0x75, encodeTlv(0x02, Uint8Array.of(1)))],
      ["no count", encodeTlv(0x75, encodeTlv(0x7f61, encodeTlv(0x7f60, BHT, encodeTlv(0x5f2e, record))))],
      ["count 0", dg2File([], { count: 0 })],
      ["count larger than templates", dg2File([record], { count: 200 })],
      ["template without data block", encodeTlv(0x75, encodeTlv(0x7f61, encodeTlv(0x02, Uint8Array.of(1)), encodeTlv(0x7f60, BHT)))],
      ["not FAC", dg2File([concat(new TextEncoder().encode("FIR\0"), record.subarray(4))])],
      ["19794-5:2011 version", dg2File([facialRecord([jpegFace], { version: "030\0" })])],
      ["0 faces", dg2File([facialRecord([jpegFace], { faceCount: 0 })])],
      ["65535 faces", dg2File([facialRecord([jpegFace], { faceCount: 0xffff })])],
      ["2 faces, 1 present", dg2File([facialRecord([jpegFace], { faceCount: 2 })])],
      ["record length 0xFFFFFFFF", dg2File([facialRecord([jpegFace], { recordLength: 0xffffffff })])],
      ["record length below header", dg2File([facialRecord([jpegFace], { recordLength: 3 })])],
      ["face length 0xFFFFFFFF", dg2File([facialRecord([{ ...jpegFace, faceLength: 0xffffffff }])])],
      ["face length with no image", dg2File([facialRecord([{ ...jpegFace, faceLength: 32 }])])],
      ["65535 feature points", patchRecord(dg2File([record]), record, 14 + 4, [0xff, 0xff])],
      ["record shorter than the general header", dg2File([record.subarray(0, 10)])],
      ["outer length 0xFFFFFFFF", concat(Uint8Array.of(0x75, 0x84, 0xff, 0xff, 0xff, 0xff), dg2File([record]).subarray(3))],
      ["truncated file", dg2File([record]).subarray(0, 100)],
      ["count of 5 bytes", encodeTlv(0x75, encodeTlv(0x7f61, encodeTlv(0x02, new Uint8Array(5))))],
    ];
    for (const [name, bytes] of cases) {
      test(name, () => {
        try {
          parseDg2(bytes);
          throw new Error("no error");
        } catch (e) {
          expect(e).toBeInstanceOf(ParseError);
        }
      });
    }

    test("every truncation of a valid DG2 throws ParseError or parses, never anything else", () => {
      const file = dg2File([facialRecord([jpegFace, { ...jpegFace, featurePoints: 2 }])]);
      for (let n = 0; n < file.length; n++) {
        try {
          parseDg2(file.subarray(0, n));
        } catch (e) {
          expect(e).toBeInstanceOf(ParseError);
        }
      }
    });

    test("deeply nested constructed objects do not recurse", () => {
      let nested = encodeTlv(0x7f60, BHT);
      for (let i = 0; i < 2000; i++) nested = concat(Uint8Array.of(0x7f, 0x60), u32len(nested.length), nested);
      const file = encodeTlv(0x75, encodeTlv(0x7f61, encodeTlv(0x02, Uint8Array.of(1)), nested));
      expect(() => parseDg2(file)).toThrow(ParseError);
    });

    test("errors carry an absolute offset and the tag", () => {
      const file = dg2File([facialRecord([jpegFace], { faceCount: 0 })]);
      try {
        parseDg2(file);
        throw new Error("no error");
      } catch (e) {
        const pe = e as ParseError;
        expect(pe.tag).toBe(0x5f2e);
        // the face count sits 12 bytes into the 19794-5 record
        const recordStart = file.length - facialRecord([jpegFace]).length;
        expect(pe.offset).toBe(recordStart + 12);
      }
    });
  });
});

/** Overwrites bytes of the 19794-5 record, which ends the file, at `at` from its start. */
function patchRecord(file: Uint8Array, record: Uint8Array, at: number, values: number[]): Uint8Array {
  const out = file.slice();
  out.set(values, file.length - record.length + at);
  return out;
}

function u32len(n: number): Uint8Array {
  return concat(Uint8Array.of(0x84), u32(n));
}
