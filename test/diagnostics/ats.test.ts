/** ATS (ISO/IEC 14443-4 §5.2) and historical-byte descriptions used by `diagnose`. */
import { describe, expect, test } from "bun:test";
import { fromHex } from "../../agent/bytes.ts";
import { describeHistorical, parseAts } from "../../agent/iso7816/atr.ts";

describe("ATS", () => {
  test("TL T0 TA TB TC + historical: FSCI 8 → 256-byte frames, FWI 7, bit rates", () => {
    // 0D 78 77 71 02 ‖ 80 73 C8 21 10 ... : T0=78 → TA,TB,TC present, FSCI 8
    const a = parseAts(fromHex("0B787771028073C821100F90"))!;
    expect(a.fsci).toBe(8);
    expect(a.maxFrameBytes).toBe(256);
    expect(a.fwi).toBe(7);
    expect(a.fwtMs).toBeCloseTo(38.66, 1);
    expect(a.bitRates).toEqual({ toCard: [2, 4, 8], toReader: [2, 4, 8], sameBothWays: false });
    expect(Array.from(a.historical)).toEqual([0x80, 0x73, 0xc8, 0x21, 0x10, 0x0f]);
  });

  test("small frames (FSCI 5 = 64 bytes, as reported for ACR122U-class readers) and malformed input", () => {
    expect(parseAts(fromHex("0575008100"))!.maxFrameBytes).toBe(64);
    expect(parseAts(fromHex("00"))).toBeUndefined();
    expect(parseAts(fromHex("09780000"))).toBeUndefined();
  });

  test("historical bytes described", () => {
    const d = describeHistorical(fromHex("80739401C0"));
    expect(d.join("; ")).toContain("selection by full DF name, by file identifier");
    expect(d.join("; ")).toContain("extended Lc/Le yes");
    expect(describeHistorical(fromHex("80739401 80".replace(/ /g, ""))).join(";")).toContain("extended Lc/Le no");
    expect(describeHistorical(new Uint8Array(0))).toEqual(["no historical bytes"]);
  });
});
