/** ATR historical bytes (ISO 7816-4 §8.1.1) and the PC/SC Part 3 contactless ATR. */
import { describe, expect, test } from "bun:test";
import { fromHex, hex } from "../../agent/bytes.ts";
import { parseAtr } from "../../agent/iso7816/atr.ts";

describe("ATR", () => {
  test("contactless ATR with card capabilities announcing extended Lc/Le", () => {
    const a = parseAtr(fromHex("3B85800180739401C0A2"));
    expect(a.contactless).toBe(true);
    expect(hex(a.historical)).toBe("80739401C0");
    expect(a.extendedLength).toBe(true);
    expect(a.commandChaining).toBe(true);
  });
  test("the same without extended length", () => {
    const a = parseAtr(fromHex("3B8580018073940180" + "22"));
    expect(a.extendedLength).toBe(false);
  });
  test("historical bytes that say nothing about capabilities (typical passport ATS)", () => {
    // 3B 88 80 01 + 8 vendor historical bytes + TCK
    const a = parseAtr(fromHex("3B8880010000000000000000" + "09"));
    expect(a.contactless).toBe(true);
    expect(a.extendedLength).toBeUndefined();
  });
  test("a contact ATR with TA1/TB1/TC1 and TD1 chains", () => {
    // 3B F8 13 00 00 81 31 FE 45 + 8 historical bytes (4A 43 4F 50 76 32 34 31) + TCK
    const a = parseAtr(fromHex("3BF81300008131FE454A434F5076323431B7"));
    expect(hex(a.historical)).toBe("4A434F5076323431");
    expect(a.contactless).toBe(false);
  });
  test("garbage does not throw", () => {
    for (const bad of ["", "00", "3B", "3B8F80", "3BFF"]) expect(parseAtr(fromHex(bad)).extendedLength).toBeUndefined();
  });
});
