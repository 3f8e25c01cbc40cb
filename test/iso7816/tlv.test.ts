/** BER-TLV (ISO 7816-4 §5.2): tags of 1–3 bytes, 1–4 byte lengths, padding, hostile lengths. */
import { describe, expect, test } from "bun:test";
import { fromHex, hex } from "../../agent/bytes.ts";
import { ParseError } from "../../agent/errors.ts";
import { encodeLength, encodeTag, encodeTlv, findTlv, parseTlv, parseTlvList, readTlvHeader } from "../../agent/iso7816/tlv.ts";

describe("BER-TLV", () => {
  test("EF.COM header from 9303-11 D.4 (60 14 5F01 ...)", () => {
    const h = readTlvHeader(fromHex("60145F01"));
    expect(h).toEqual({ tag: 0x60, constructed: true, length: 0x14, headerLength: 2 });
  });
  test("two- and three-byte tags", () => {
    expect(parseTlv(fromHex("5F1F03414243")).tag).toBe(0x5f1f);
    expect(parseTlv(fromHex("7F610100")).tag).toBe(0x7f61);
    expect(parseTlv(fromHex("5F8F0101AA")).tag).toBe(0x5f8f01);
  });
  test("length forms round trip", () => {
    for (const n of [0, 1, 127, 128, 255, 256, 65535, 65536, 70000]) {
      const v = new Uint8Array(n);
      const t = parseTlv(encodeTlv(0x53, v));
      expect(t.value.length).toBe(n);
      expect(t.headerLength).toBe(1 + encodeLength(n).length);
    }
    expect(hex(encodeLength(0x80))).toBe("8180");
    expect(hex(encodeLength(0x1234))).toBe("821234");
    expect(hex(encodeTag(0x5f1f))).toBe("5F1F");
  });
  test("lists skip 00/FF padding and find by tag", () => {
    const list = fromHex("00" + "8701AA" + "FF" + "990290008E08" + "1122334455667788");
    expect(parseTlvList(list).map((t) => t.tag)).toEqual([0x87, 0x99, 0x8e]);
    expect(hex(findTlv(list, 0x99)!.value)).toBe("9000");
    expect(findTlv(list, 0x85)).toBeUndefined();
  });
  test("hostile input: truncated values, absurd lengths, endless tags, indefinite length", () => {
    for (const bad of ["53", "5302AA", "5F", "5F1F", "5384FFFFFFFF00", "5385010000000000", "5FFFFFFFFF0100", "5380"]) {
      expect(() => parseTlv(fromHex(bad))).toThrow(ParseError);
    }
  });
  test("encoders reject out-of-range input", () => {
    expect(() => encodeLength(-1)).toThrow(RangeError);
    expect(() => encodeTag(-1)).toThrow(RangeError);
  });
});
