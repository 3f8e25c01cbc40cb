import { describe, expect, test } from "bun:test";
import { hex } from "../../agent/bytes.ts";
import { UsageError } from "../../agent/errors.ts";
import { byDataGroupNumber, byDgNumber, byKey, byTag, EMRTD_AID, LDS_FILES, parseFileList } from "../../agent/lds/lds-files.ts";

describe("9303-10 §3.11 / §4.6 file table", () => {
  test("eMRTD AID", () => expect(hex(EMRTD_AID)).toBe("A0000002471001"));

  test("EF.COM and EF.SOD", () => {
    expect(byKey("COM")).toMatchObject({ fid: 0x011e, sfi: 0x1e, tag: 0x60 });
    expect(byKey("SOD")).toMatchObject({ fid: 0x011d, sfi: 0x1d, tag: 0x77 });
  });

  test("DG1..DG16: FID 0101..0110, SFI = number, tags from table", () => {
    const tags = [0x61, 0x75, 0x63, 0x76, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70];
    for (let n = 1; n <= 16; n++) {
      const f = byDgNumber(n)!;
      expect(f.key).toBe(`DG${n}`);
      expect(f.fid).toBe(0x0100 + n);
      expect(f.sfi).toBe(n);
      expect(f.tag).toBe(tags[n - 1]!);
      expect(byTag(f.tag)).toBe(f);
    }
    expect(LDS_FILES.length).toBe(18);
    expect(new Set(LDS_FILES.map((f) => f.tag)).size).toBe(18);
  });

  test("lookups miss cleanly", () => {
    expect(byDgNumber(0)).toBeUndefined();
    expect(byDgNumber(17)).toBeUndefined();
    expect(byDgNumber(1.5)).toBeUndefined();
    expect(byTag(0x71)).toBeUndefined();
    expect(byKey("DG17")).toBeUndefined();
  });

  test("byDataGroupNumber keeps the data groups, keyed by number, and leaves COM and SOD out", () => {
    const m = byDataGroupNumber(new Map([["COM", "c"], ["DG1", "one"], ["SOD", "s"], ["DG11", "eleven"]]));
    expect([...m]).toEqual([[1, "one"], [11, "eleven"]]);
  });
});

describe("parseFileList", () => {
  test("keeps order; case, spaces, EF. prefix and leading zeros allowed", () => {
    expect(parseFileList("DG1,DG2,COM,SOD").map((f) => f.key)).toEqual(["DG1", "DG2", "COM", "SOD"]);
    expect(parseFileList(" com , ef.sod,Dg14 ,DG02").map((f) => f.key)).toEqual(["COM", "SOD", "DG14", "DG2"]);
  });

  const bad: [string, string][] = [
    ["", "empty"],
    ["DG1,,DG2", "entry 2 is empty"],
    ["DG1,DG17", 'unknown file "DG17"'],
    ["DG0", 'unknown file "DG0"'],
    ["DG1,CARDACCESS", 'unknown file "CARDACCESS"'],
    ["DG1,dg1", "DG1 is listed twice"],
  ];
  for (const [input, message] of bad) {
    test(`rejects ${JSON.stringify(input)}`, () => {
      try {
        parseFileList(input);
        throw new Error("no error");
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError);
        expect((e as Error).message).toContain(message);
        expect((e as UsageError).field).toBe("files");
      }
    });
  }
});
