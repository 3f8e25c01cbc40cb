import { describe, expect, test } from "bun:test";
import { concat } from "../../agent/bytes.ts";
import { ParseError } from "../../agent/errors.ts";
import { encodeTlv } from "../../agent/iso7816/tlv.ts";
import { parseEfCom } from "../../agent/lds/ef-com.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

function efCom(tags: number[], opts: { lds?: string; unicode?: string } = {}): Uint8Array {
  return encodeTlv(
    0x60,
    encodeTlv(0x5f01, ascii(opts.lds ?? "0107")),
    encodeTlv(0x5f36, ascii(opts.unicode ?? "040000")),
    encodeTlv(0x5c, Uint8Array.from(tags)),
  );
}

describe("EF.COM (9303-10 §4.6.1)", () => {
  test("versions and data groups from the tag list", () => {
    const r = parseEfCom(efCom([0x61, 0x75, 0x6b, 0x6f, 0x6e]));
    expect(r).toEqual({ ldsVersion: "1.7", unicodeVersion: "4.0.0", dataGroups: [1, 2, 11, 15, 14], unknownTags: [] });
  });

  test("other versions are read, not assumed", () => {
    const r = parseEfCom(efCom([0x61], { lds: "0108", unicode: "050200" }));
    expect(r.ldsVersion).toBe("1.8");
    expect(r.unicodeVersion).toBe("5.2.0");
  });

  test("tags naming no data group are kept apart", () => {
    const r = parseEfCom(efCom([0x61, 0x77, 0x71]));
    expect(r.dataGroups).toEqual([1]);
    expect(r.unknownTags).toEqual([0x77, 0x71]);
  });

  test("trailing padding after the file is ignored", () => {
    expect(parseEfCom(concat(efCom([0x61]), Uint8Array.of(0, 0, 0))).dataGroups).toEqual([1]);
  });

  test("malformed", () => {
    expect(() => parseEfCom(new Uint8Array(0))).toThrow(ParseError);
    expect(() => parseEfCom(encodeTlv(0x61, encodeTlv(0x5c, Uint8Array.of(0x61))))).toThrow(ParseError); // wrong outer tag
    expect(() => parseEfCom(encodeTlv(0x60, encodeTlv(0x5f01, ascii("0107")), encodeTlv(0x5f36, ascii("040000"))))).toThrow(ParseError);
    expect(() => parseEfCom(efCom([0x61], { lds: "01x7" }))).toThrow(ParseError);
    expect(() => parseEfCom(efCom([0x61], { unicode: "0400" }))).toThrow(ParseError);
    const good = efCom([0x61, 0x75]);
    expect(() => parseEfCom(good.subarray(0, good.length - 1))).toThrow(ParseError);
    // 5C with a multi-byte tag cut short
    expect(() => parseEfCom(efCom([0x61, 0x5f]))).toThrow(ParseError);
  });

  test("errors carry offset and tag", () => {
    try {
      parseEfCom(efCom([0x61], { lds: "01x7" }));
      throw new Error("no error");
    } catch (e) {
      expect((e as ParseError).tag).toBe(0x5f01);
      expect((e as ParseError).offset).toBe(2);
    }
  });
});
