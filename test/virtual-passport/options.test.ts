/** Card options: defaults and the checks that keep a chip configuration self-consistent. */
import { describe, expect, test } from "bun:test";
import { hex } from "../../agent/bytes.ts";
import { atrAnnouncesExtendedLength, resolveCardOptions } from "./options.ts";

const mrzKey = { documentNumber: "L898902C3", dateOfBirth: "740812", dateOfExpiry: "120415" };

describe("resolveCardOptions", () => {
  test("defaults: extended length with maxLe 65536, 6700, fast link, extended-capable ATR", () => {
    const o = resolveCardOptions({ mrzKey });
    expect(o.extendedLength).toBe(true);
    expect(o.maxLe).toBe(65536);
    expect(o.leTooLargeSw).toBe("6700");
    expect(o.latency).toEqual({ kind: "fast" });
    expect(hex(o.atr)).toBe("3B85800180739401C0A2");
    expect(atrAnnouncesExtendedLength(o.atr)).toBe(true);
    const r1 = o.random(8);
    const r2 = o.random(8);
    expect(r1.length).toBe(8);
    expect(hex(r1)).not.toBe(hex(r2));
  });

  test("without extended length: maxLe 256 and an ATR that does not announce it", () => {
    const o = resolveCardOptions({ mrzKey, extendedLength: false });
    expect(o.maxLe).toBe(256);
    expect(atrAnnouncesExtendedLength(o.atr)).toBe(false);
  });

  test("rejects inconsistent limits and latencies", () => {
    expect(() => resolveCardOptions({ mrzKey, extendedLength: false, maxLe: 1024 })).toThrow(RangeError);
    expect(() => resolveCardOptions({ mrzKey, maxLe: 0 })).toThrow(RangeError);
    expect(() => resolveCardOptions({ mrzKey, maxLe: 65537 })).toThrow(RangeError);
    expect(() => resolveCardOptions({ mrzKey, latency: { kind: "realistic", bitRate: 0, turnaroundMs: 3 } })).toThrow(RangeError);
  });
});
