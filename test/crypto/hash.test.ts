import { describe, expect, test } from "bun:test";
import { sha1, sha224, sha256, sha256InSlices, sha384, sha512 } from "../../agent/crypto/hash.ts";
import { hex } from "../../agent/bytes.ts";

const abc = new TextEncoder().encode("abc");

// FIPS 180-2 Appendix B/C/D one-block "abc" examples.
const ABC = {
  sha1: "A9993E364706816ABA3E25717850C26C9CD0D89D",
  sha224: "23097D223405D8228642A477BDA255B32AADBCE4BDA0B3F7E36C9DA7",
  sha256: "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
  sha384: "CB00753F45A35E8BB5A03D699AC65007272C32AB0EDED1631A8B605A43FF5BED8086072BA1E7CC2358BAECA134C825A7",
  sha512: "DDAF35A193617ABACC417349AE20413112E6FA4E89A97EA20A9EEEE64B55D39A2192992A274FC1A836BA3C23A3FEEBBD454D4423643CE80E2A9AC94FA54CA49F",
};

describe("FIPS 180-2 'abc' examples", () => {
  test("each function", () => {
    expect(hex(sha1(abc))).toBe(ABC.sha1);
    expect(hex(sha224(abc))).toBe(ABC.sha224);
    expect(hex(sha256(abc))).toBe(ABC.sha256);
    expect(hex(sha384(abc))).toBe(ABC.sha384);
    expect(hex(sha512(abc))).toBe(ABC.sha512);
  });
});

describe("sha256InSlices", () => {
  test("the same digest as the one-shot SHA-256 at every slice boundary, with the event loop running between slices", async () => {
    for (const n of [0, 1, 63, 64, 65, 4095, 4096, 4097, 60_001]) {
      const data = Uint8Array.from({ length: n }, (_, i) => (i * 31 + n) & 0xff);
      for (const slice of [64, 100, 4096]) expect(await sha256InSlices(data, slice)).toEqual(sha256(data));
    }
    expect(hex(await sha256InSlices(abc))).toBe(ABC.sha256);
    // Other work runs before it finishes (a one-shot hash would resolve before any macrotask).
    let ranBetween = false;
    const hashing = sha256InSlices(new Uint8Array(64 * 1024), 1024);
    setImmediate(() => (ranBetween = true));
    await hashing;
    expect(ranBetween).toBe(true);
    await expect(sha256InSlices(new Uint8Array(1), 10)).rejects.toThrow("sliceBytes must be an integer of at least 64, got 10");
  });
});
