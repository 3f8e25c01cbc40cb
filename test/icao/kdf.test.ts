import { describe, expect, test } from "bun:test";
import { deriveKey } from "../../agent/icao/kdf.ts";
import { sha256 } from "../../agent/crypto/hash.ts";
import { concat, fromHex, hex } from "../../agent/bytes.ts";
import d2 from "../vectors/icao-9303-11-d2-bac-keys.json";
import d3 from "../vectors/icao-9303-11-d3-bac-authentication.json";
import g1 from "../vectors/icao-9303-11-g1-pace-ecdh-gm.json";
import gDh from "../vectors/icao-9303-11-g-pace-dh-kdf-partial.json";

const row = (rows: Array<{ what: string; hex: string }>, prefix: string) => rows.find((r) => r.what.startsWith(prefix))!.hex;

describe("ICAO 9303-11 §9.7.1 KDF", () => {
  test("Appendix D.2: Kenc/Kmac from Kseed, parity-adjusted (raw SHA-1 bytes differ only in parity)", () => {
    const e = d2.examples[0] as { kSeed: string; kEnc: string; kMac: string; kEncRaw: string; kEncHalves: string[]; kMacHalves: string[] };
    const kEnc = deriveKey(fromHex(e.kSeed), 1, "3DES");
    const kMac = deriveKey(fromHex(e.kSeed), 2, "3DES");
    expect(hex(kEnc)).toBe(e.kEnc);
    expect(hex(kMac)).toBe(e.kMac);
    expect(hex(kEnc.subarray(0, 8))).toBe(e.kEncHalves[0]!);
    expect(hex(kMac.subarray(8))).toBe(e.kMacHalves[1]!);
    const raw = fromHex(e.kEncRaw);
    for (let i = 0; i < 16; i++) expect(kEnc[i]! & 0xfe).toBe(raw[i]! & 0xfe);
  });
  test("Appendix D.3: KSenc/KSmac from KSseed = K.IFD xor K.IC", () => {
    const kIfd = fromHex(d3.kIfd), kIc = fromHex(d3.kIc);
    const seed = kIfd.map((b, i) => b ^ kIc[i]!);
    expect(hex(seed)).toBe(d3.ksSeed);
    expect(hex(deriveKey(seed, 1, "3DES"))).toBe(d3.ksEnc);
    expect(hex(deriveKey(seed, 2, "3DES"))).toBe(d3.ksMac);
  });
  test("Appendix G.1 (AES-128): K_pi from the 20-byte password, KSenc/KSmac from the ECDH secret", () => {
    expect(hex(deriveKey(fromHex(row(g1.rows, "Password")), 3, "AES-128"))).toBe(row(g1.rows, "K_π"));
    const k = fromHex(row(g1.rows, "Shared secret K"));
    expect(hex(deriveKey(k, 1, "AES-128"))).toBe(row(g1.rows, "KSenc"));
    expect(hex(deriveKey(k, 2, "AES-128"))).toBe(row(g1.rows, "KSmac"));
  });
  test("DH example (dmrtd 'Appendix G'): AES-128 session keys from a 128-byte secret", () => {
    const k = fromHex(row(gDh.rows, "DH shared secret"));
    expect(hex(deriveKey(k, 1, "AES-128"))).toBe(row(gDh.rows, "→ KSenc"));
    expect(hex(deriveKey(k, 2, "AES-128"))).toBe(row(gDh.rows, "→ KSmac"));
  });
  test("AES-192/256 use SHA-256, truncated to the key length", () => {
    const seed = fromHex("0011223344556677");
    const full = sha256(concat(seed, fromHex("00000001")));
    expect(hex(deriveKey(seed, 1, "AES-256"))).toBe(hex(full));
    expect(hex(deriveKey(seed, 1, "AES-192"))).toBe(hex(full.subarray(0, 24)));
    expect(hex(deriveKey(seed, 2, "AES-256"))).not.toBe(hex(full));
  });
  test("bad counter or algorithm is a RangeError", () => {
    expect(() => deriveKey(new Uint8Array(16), 4 as 1, "3DES")).toThrow(/counter must be 1, 2 or 3, got 4/);
    expect(() => deriveKey(new Uint8Array(16), 1, "AES-512" as "AES-256")).toThrow(RangeError);
  });
});
