import { describe, expect, test } from "bun:test";
import { concat, hex } from "../../agent/bytes.ts";
import { ParseError } from "../../agent/errors.ts";
import { encodeTlv } from "../../agent/iso7816/tlv.ts";
import { parseDg11 } from "../../agent/lds/dg11.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);
const tagList = (...tags: number[]) => encodeTlv(0x5c, concat(...tags.map((t) => (t > 0xff ? Uint8Array.of(t >> 8, t & 0xff) : Uint8Array.of(t)))));

// ICAO 9303-10 §4.7.11 style example, specimen person only.
const FULL = encodeTlv(
  0x6b,
  tagList(0x5f0e, 0xa0, 0x5f10, 0x5f2b, 0x5f11, 0x5f42, 0x5f12, 0x5f13, 0x5f14, 0x5f15, 0x5f16, 0x5f17, 0x5f18),
  encodeTlv(0x5f0e, utf8("ERIKSSON<<ANNA<MARIA")),
  encodeTlv(0xa0, encodeTlv(0x02, Uint8Array.of(2)), encodeTlv(0x5f0f, utf8("ERIKSSON<<ANNA")), encodeTlv(0x5f0f, utf8("SMITH<<ANNA"))),
  encodeTlv(0x5f10, utf8("123456789")),
  encodeTlv(0x5f2b, utf8("19740812")),
  encodeTlv(0x5f11, utf8("ZENITH,UTOPIA")),
  encodeTlv(0x5f42, utf8("123 MAPLE RD<ANYTOWN<UTOPIA")),
  encodeTlv(0x5f12, utf8("1-555-555-1212")),
  encodeTlv(0x5f13, utf8("TRAVEL AGENT")),
  encodeTlv(0x5f14, utf8("DR")),
  encodeTlv(0x5f15, utf8("ÅSA ÖRN, BORN IN ZÜRICH")),
  encodeTlv(0x5f16, Uint8Array.of(0xff, 0xd8, 0xff, 0xd9)),
  encodeTlv(0x5f17, utf8("Z7654321")),
  encodeTlv(0x5f18, utf8("CUSTODY NOTE")),
);

describe("DG11 (9303-10 §4.7.11)", () => {
  test("all data elements", () => {
    const d = parseDg11(FULL);
    expect(d.tagList).toEqual([0x5f0e, 0xa0, 0x5f10, 0x5f2b, 0x5f11, 0x5f42, 0x5f12, 0x5f13, 0x5f14, 0x5f15, 0x5f16, 0x5f17, 0x5f18]);
    expect(d.fullName).toBe("ERIKSSON<<ANNA<MARIA");
    expect(d.otherNames).toEqual(["ERIKSSON<<ANNA", "SMITH<<ANNA"]);
    expect(d.personalNumber).toBe("123456789");
    expect(d.fullDateOfBirth).toBe("19740812");
    expect(d.placeOfBirth).toBe("ZENITH,UTOPIA");
    expect(d.address).toBe("123 MAPLE RD<ANYTOWN<UTOPIA");
    expect(d.telephone).toBe("1-555-555-1212");
    expect(d.profession).toBe("TRAVEL AGENT");
    expect(d.title).toBe("DR");
    expect(d.personalSummary).toBe("ÅSA ÖRN, BORN IN ZÜRICH");
    expect(hex(d.proofOfCitizenship!)).toBe("FFD8FFD9");
    expect(d.otherTravelDocumentNumbers).toBe("Z7654321");
    expect(d.custodyInformation).toBe("CUSTODY NOTE");
    expect(d.other).toEqual({});
  });

  test("absent elements are absent keys; unknown tags kept by hex tag", () => {
    const d = parseDg11(encodeTlv(0x6b, tagList(0x5f0e, 0x5f7a), encodeTlv(0x5f0e, utf8("A<<B")), encodeTlv(0x5f7a, Uint8Array.of(1, 2))));
    expect(Object.keys(d).sort()).toEqual(["fullName", "other", "otherNames", "tagList"]);
    expect(hex(d.other["5F7A"]!)).toBe("0102");
    expect(d.otherNames).toEqual([]);
  });

  test("quirks: BCD date of birth; Latin-1 text; 5F0F without A0 (pre-1.7)", () => {
    const d = parseDg11(
      encodeTlv(
        0x6b,
        tagList(0x5f2b, 0x5f11, 0x5f0f),
        encodeTlv(0x5f2b, Uint8Array.of(0x19, 0x74, 0x08, 0x12)),
        encodeTlv(0x5f11, Uint8Array.of(0x5a, 0xfc, 0x52, 0x49, 0x43, 0x48)), // "ZüRICH" in ISO 8859-1
        encodeTlv(0x5f0f, utf8("OTHER<<NAME")),
      ),
    );
    expect(d.fullDateOfBirth).toBe("19740812");
    expect(d.placeOfBirth).toBe("ZüRICH");
    expect(d.otherNames).toEqual(["OTHER<<NAME"]);
  });

  const bad: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["wrong outer tag", encodeTlv(0x6c, tagList(0x5f0e))],
    ["no tag list", encodeTlv(0x6b, encodeTlv(0x5f0e, utf8("A")))],
    ["A0 without count", encodeTlv(0x6b, tagList(0xa0), encodeTlv(0xa0, encodeTlv(0x5f0f, utf8("A"))))],
    ["A0 count mismatch", encodeTlv(0x6b, tagList(0xa0), encodeTlv(0xa0, encodeTlv(0x02, Uint8Array.of(3)), encodeTlv(0x5f0f, utf8("A"))))],
    ["A0 count 0xFFFFFFFF", encodeTlv(0x6b, tagList(0xa0), encodeTlv(0xa0, encodeTlv(0x02, Uint8Array.of(0xff, 0xff, 0xff, 0xff))))],
    ["element repeated", encodeTlv(0x6b, tagList(0x5f10), encodeTlv(0x5f10, utf8("1")), encodeTlv(0x5f10, utf8("2")))],
    ["two A0", encodeTlv(0x6b, tagList(0xa0), encodeTlv(0xa0, encodeTlv(0x02, Uint8Array.of(0))), encodeTlv(0xa0, encodeTlv(0x02, Uint8Array.of(0))))],
    ["inner length past the end", concat(Uint8Array.of(0x6b, 0x07), tagList(0x5f0e), Uint8Array.of(0x5f, 0x0e, 0x84, 0xff))],
    ["truncated", FULL.subarray(0, FULL.length - 3)],
    ["outer length 0xFFFFFFFF", concat(Uint8Array.of(0x6b, 0x84, 0xff, 0xff, 0xff, 0xff), FULL.subarray(3))],
  ];
  for (const [name, bytes] of bad) test(`malformed: ${name}`, () => expect(() => parseDg11(bytes)).toThrow(ParseError));

  test("error messages never carry values", () => {
    const file = encodeTlv(0x6b, tagList(0x5f10), encodeTlv(0x5f10, utf8("SECRET123")), encodeTlv(0x5f10, utf8("SECRET123")));
    try {
      parseDg11(file);
      throw new Error("no error");
    } catch (e) {
      expect((e as ParseError).tag).toBe(0x5f10);
      expect((e as Error).message).not.toContain("SECRET");
    }
  });

  test("every truncation throws ParseError only", () => {
    for (let n = 0; n < FULL.length; n++) expect(() => parseDg11(FULL.subarray(0, n))).toThrow(ParseError);
  });
});
