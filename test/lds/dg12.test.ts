import { describe, expect, test } from "bun:test";
import { concat, hex } from "../../agent/bytes.ts";
import { ParseError } from "../../agent/errors.ts";
import { encodeTlv } from "../../agent/iso7816/tlv.ts";
import { parseDg12 } from "../../agent/lds/dg12.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);
const tagList = (...tags: number[]) => encodeTlv(0x5c, concat(...tags.map((t) => (t > 0xff ? Uint8Array.of(t >> 8, t & 0xff) : Uint8Array.of(t)))));
const front = concat(Uint8Array.of(0xff, 0xd8, 0xff), new Uint8Array(300)); // long enough for a 2-byte length

const FULL = encodeTlv(
  0x6c,
  tagList(0x5f19, 0x5f26, 0xa0, 0x5f1b, 0x5f1c, 0x5f1d, 0x5f1e, 0x5f55, 0x5f56),
  encodeTlv(0x5f19, utf8("UTOPIA PASSPORT OFFICE")),
  encodeTlv(0x5f26, utf8("20020531")),
  encodeTlv(0xa0, encodeTlv(0x02, Uint8Array.of(1)), encodeTlv(0x5f1a, utf8("ERIKSSON<<JOHN"))),
  encodeTlv(0x5f1b, utf8("BEARER IS A DIPLOMAT")),
  encodeTlv(0x5f1c, utf8("EXIT PERMITTED")),
  encodeTlv(0x5f1d, front),
  encodeTlv(0x5f1e, Uint8Array.of(0xff, 0xd8, 0xff, 0xd9)),
  encodeTlv(0x5f55, utf8("20020531120000")),
  encodeTlv(0x5f56, utf8("SN-4711")),
);

describe("DG12 (9303-10 §4.7.12)", () => {
  test("all data elements", () => {
    const d = parseDg12(FULL);
    expect(d.tagList).toEqual([0x5f19, 0x5f26, 0xa0, 0x5f1b, 0x5f1c, 0x5f1d, 0x5f1e, 0x5f55, 0x5f56]);
    expect(d.issuingAuthority).toBe("UTOPIA PASSPORT OFFICE");
    expect(d.dateOfIssue).toBe("20020531");
    expect(d.otherPersons).toEqual(["ERIKSSON<<JOHN"]);
    expect(d.endorsements).toBe("BEARER IS A DIPLOMAT");
    expect(d.taxOrExitRequirements).toBe("EXIT PERMITTED");
    expect(d.imageOfFront!.length).toBe(front.length);
    expect(d.imageOfFront!.buffer).toBe(FULL.buffer);
    expect(hex(d.imageOfRear!)).toBe("FFD8FFD9");
    expect(d.personalizationDateTime).toBe("20020531120000");
    expect(d.personalizationSystemSerialNumber).toBe("SN-4711");
    expect(d.other).toEqual({});
  });

  test("BCD dates (seen on some documents) and unknown tags", () => {
    const d = parseDg12(
      encodeTlv(
        0x6c,
        tagList(0x5f26, 0x5f55),
        encodeTlv(0x5f26, Uint8Array.of(0x20, 0x02, 0x05, 0x31)),
        encodeTlv(0x5f55, Uint8Array.of(0x20, 0x02, 0x05, 0x31, 0x12, 0x00, 0x00)),
        encodeTlv(0x5f57, utf8("X")),
      ),
    );
    expect(d.dateOfIssue).toBe("20020531");
    expect(d.personalizationDateTime).toBe("20020531120000");
    expect(Object.keys(d.other)).toEqual(["5F57"]);
  });

  test("a date in neither form is kept as text rather than failing the group", () => {
    const d = parseDg12(encodeTlv(0x6c, tagList(0x5f26), encodeTlv(0x5f26, utf8("2002"))));
    expect(d.dateOfIssue).toBe("2002");
  });

  const bad: [string, Uint8Array][] = [
    ["wrong outer tag", encodeTlv(0x6b, tagList(0x5f19))],
    ["no tag list", encodeTlv(0x6c, encodeTlv(0x5f19, utf8("A")))],
    ["A0 count mismatch", encodeTlv(0x6c, tagList(0xa0), encodeTlv(0xa0, encodeTlv(0x02, Uint8Array.of(0)), encodeTlv(0x5f1a, utf8("A"))))],
    ["truncated", FULL.subarray(0, 40)],
    ["bad tag in tag list", encodeTlv(0x6c, encodeTlv(0x5c, Uint8Array.of(0x5f)))],
  ];
  for (const [name, bytes] of bad) test(`malformed: ${name}`, () => expect(() => parseDg12(bytes)).toThrow(ParseError));
});
