/** Status words (ISO 7816-4 §5.6) and the reader-stack pseudo status words of the field notes. */
import { describe, expect, test } from "bun:test";
import { describeSw, isMoreData, isReaderStackSw, isWrongLe } from "../../agent/iso7816/status-words.ts";

describe("status words", () => {
  test("ICAO-relevant words have their categories", () => {
    expect(describeSw(0x9000).category).toBe("ok");
    expect(describeSw(0x6282).category).toBe("warning");
    expect(describeSw(0x6982).category).toBe("security");
    expect(describeSw(0x6988).category).toBe("secure-messaging");
    expect(describeSw(0x6a82).category).toBe("not-found");
    expect(describeSw(0x6b00).category).toBe("length");
    expect(describeSw(0x6700).category).toBe("length");
  });
  test("6Cxx carries the exact length, 61xx the remaining bytes, 63Cx the tries left", () => {
    expect(isWrongLe(0x6ce7)).toBe(true);
    expect(describeSw(0x6ce7).meaning).toContain("231");
    expect(isMoreData(0x6110)).toBe(true);
    expect(describeSw(0x6100).meaning).toContain("256");
    expect(describeSw(0x63c2).meaning).toContain("2 tries");
  });
  test("6F00, 6F01 and 6600 come from the reader stack, not the chip", () => {
    for (const sw of [0x6f00, 0x6f01, 0x6600, 0x6f42]) {
      expect(isReaderStackSw(sw)).toBe(true);
      expect(describeSw(sw).category).toBe("reader-stack");
    }
    for (const sw of [0x9000, 0x6982, 0x6700, 0x6a82]) expect(isReaderStackSw(sw)).toBe(false);
  });
  test("unknown words are reported as such", () => {
    expect(describeSw(0x6123 + 0x0a00)).toEqual({ sw: 0x6b23, category: "other", meaning: "status 6B23" });
  });
});
