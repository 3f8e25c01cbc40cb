import { describe, expect, test } from "bun:test";
import { concat } from "../../agent/bytes.ts";
import { ParseError } from "../../agent/errors.ts";
import { encodeTlv } from "../../agent/iso7816/tlv.ts";
import { fileLengthFromHeader, MAX_LDS_FILE_LENGTH } from "../../agent/lds/file-header.ts";

describe("fileLengthFromHeader (9303-10 §4.6, ISO/IEC 8825-1 §8.1.3)", () => {
  // Round trip through the encoder: every length form, read from a 4- and 6-byte header.
  for (const n of [0, 1, 0x7f, 0x80, 0xff, 0x100, 17_181, 0xffff, 0x10000, 0x123456]) {
    test(`length ${n}`, () => {
      const file = encodeTlv(0x75, new Uint8Array(n));
      const headerLength = file.length - n;
      for (const read of [4, 6]) {
        const r = fileLengthFromHeader(file.subarray(0, Math.min(read, file.length)), 0x1000000);
        if (read < headerLength) expect(r).toEqual({ needMore: headerLength - read });
        else expect(r).toEqual({ tag: 0x75, totalLength: file.length, headerLength });
      }
    });
  }

  test("4-byte length form", () => {
    expect(fileLengthFromHeader(Uint8Array.of(0x77, 0x84, 0, 0, 0x12, 0x34))).toEqual({ tag: 0x77, totalLength: 6 + 0x1234, headerLength: 6 });
  });

  test("multi-byte tag", () => {
    expect(fileLengthFromHeader(Uint8Array.of(0x7f, 0x61, 0x82, 0x01, 0x00))).toEqual({ tag: 0x7f61, totalLength: 5 + 256, headerLength: 5 });
  });

  test("asks for more when the header is cut", () => {
    expect(fileLengthFromHeader(new Uint8Array(0))).toEqual({ needMore: 2 });
    expect(fileLengthFromHeader(Uint8Array.of(0x75))).toEqual({ needMore: 1 });
    expect(fileLengthFromHeader(Uint8Array.of(0x75, 0x82, 0x43))).toEqual({ needMore: 1 });
    expect(fileLengthFromHeader(Uint8Array.of(0x77, 0x84))).toEqual({ needMore: 4 });
    expect(fileLengthFromHeader(Uint8Array.of(0x7f))).toEqual({ needMore: 2 });
    // after asking, the completed header answers
    const file = encodeTlv(0x75, new Uint8Array(300));
    const first = fileLengthFromHeader(file.subarray(0, 2));
    expect(first).toEqual({ needMore: 2 });
    expect(fileLengthFromHeader(file.subarray(0, 2 + (first as { needMore: number }).needMore))).toEqual({
      tag: 0x75,
      totalLength: 304,
      headerLength: 4,
    });
  });

  test("hostile headers", () => {
    const cases = [
      Uint8Array.of(0x77, 0x84, 0xff, 0xff, 0xff, 0xff), // 4 GiB
      Uint8Array.of(0x77, 0x85, 0, 0, 0, 0, 1), // 5-byte length field
      Uint8Array.of(0x77, 0x80), // indefinite
      Uint8Array.of(0x00, 0x01),
      Uint8Array.of(0xff, 0x01),
      Uint8Array.of(0x7f, 0x81, 0x81, 0x81, 0x01, 0x01), // 5-byte tag
    ];
    for (const c of cases) expect(() => fileLengthFromHeader(c)).toThrow(ParseError);
  });

  test("the default limit rejects lengths above MAX_LDS_FILE_LENGTH, a caller may lower it", () => {
    const over = concat(Uint8Array.of(0x75, 0x83), Uint8Array.of(0x40, 0x00, 0x00));
    expect(() => fileLengthFromHeader(over)).toThrow(ParseError);
    expect(fileLengthFromHeader(Uint8Array.of(0x75, 0x83, 0x3f, 0xff, 0xfb))).toEqual({ tag: 0x75, totalLength: MAX_LDS_FILE_LENGTH, headerLength: 5 });
    expect(() => fileLengthFromHeader(Uint8Array.of(0x75, 0x82, 0x10, 0x00), 4096)).toThrow(ParseError);
    expect(fileLengthFromHeader(Uint8Array.of(0x75, 0x82, 0x0f, 0xfc), 4096)).toEqual({ tag: 0x75, totalLength: 4096, headerLength: 4 });
  });
});
