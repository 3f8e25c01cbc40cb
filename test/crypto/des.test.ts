import { describe, expect, test } from "bun:test";
import {
  adjustParity,
  createDes,
  createTdes,
  desEcbDecrypt,
  desEcbEncrypt,
  tdesCbcDecrypt,
  tdesCbcEncrypt,
  tdesEcbDecrypt,
  tdesEcbEncrypt,
} from "../../agent/crypto/des.ts";
import { fromHex, hex } from "../../agent/bytes.ts";
import desKat from "../vectors/nist-sp800-17-des-kat.json";
import tdesVectors from "../vectors/nist-sp800-67-tdes.json";

interface Kat {
  key: string;
  plaintext: string;
  ciphertext: string;
}

function katSuite(title: string, rows: Kat[]) {
  describe(title, () => {
    test.each(rows.map((r, i) => [i, r] as const))("#%d encrypt and decrypt", (_i, r) => {
      expect(hex(desEcbEncrypt(fromHex(r.key), fromHex(r.plaintext)))).toBe(r.ciphertext);
      expect(hex(desEcbDecrypt(fromHex(r.key), fromHex(r.ciphertext)))).toBe(r.plaintext);
    });
  });
}

katSuite("NIST SP 800-17 Appendix A: sample round outputs", desKat.sampleRoundOutputs);
katSuite("NIST SP 800-17 Table B.1: variable plaintext KAT", desKat.variablePlaintext);
katSuite("NIST SP 800-17 Table B.2: variable key KAT", desKat.variableKey);

describe("Rivest's DES test (single-fault coverage)", () => {
  test("X16 after 16 alternating E(X,X)/D(X,X) steps is 1B1A2DDB4C642438", () => {
    let x = fromHex("9474B8E8C73BCA7D");
    for (let i = 0; i < 16; i++) x = i % 2 === 0 ? desEcbEncrypt(x, x) : desEcbDecrypt(x, x);
    expect(hex(x)).toBe("1B1A2DDB4C642438");
  });
});

describe("NIST SP 800-67 Appendix B.1: 3-key TDEA ECB", () => {
  for (const r of tdesVectors.ecb) {
    test("three blocks, both directions", () => {
      expect(hex(tdesEcbEncrypt(fromHex(r.key), fromHex(r.plaintext)))).toBe(r.ciphertext);
      expect(hex(tdesEcbDecrypt(fromHex(r.key), fromHex(r.ciphertext)))).toBe(r.plaintext);
    });
  }
});

describe("NIST CAVP TDES MMT: 3-key TDEA CBC with IV", () => {
  test.each(tdesVectors.cbc.map((r, i) => [i, r] as const))("#%d both directions", (_i, r) => {
    expect(hex(tdesCbcEncrypt(fromHex(r.key), fromHex(r.plaintext), fromHex(r.iv)))).toBe(r.ciphertext);
    expect(hex(tdesCbcDecrypt(fromHex(r.key), fromHex(r.ciphertext), fromHex(r.iv)))).toBe(r.plaintext);
  });
});

describe("keying option 2 (16-byte keys, K3 = K1)", () => {
  const k16 = fromHex("AB94FDECF2674FDFB9B391F85D7F76F2");
  const k24 = fromHex("AB94FDECF2674FDFB9B391F85D7F76F2AB94FDECF2674FDF");
  const data = fromHex("781723860C06C2264608F919887022120B795240CB7049B01C19B33E32804F0B");
  test("equals the 24-byte key K1‖K2‖K1, CBC round-trips", () => {
    const c = tdesCbcEncrypt(k16, data);
    expect(hex(c)).toBe(hex(tdesCbcEncrypt(k24, data)));
    expect(hex(tdesCbcDecrypt(k16, c))).toBe(hex(data));
  });
  test("EDE with K1 = K2 reduces to single DES (SP 800-17 B.1 #0)", () => {
    const r = desKat.variablePlaintext[0]!;
    const k = fromHex(r.key + r.key);
    expect(hex(tdesEcbEncrypt(k, fromHex(r.plaintext)))).toBe(r.ciphertext);
  });
  test("CBC chains blocks (identical plaintext blocks give different ciphertext blocks)", () => {
    const c = tdesCbcEncrypt(k16, new Uint8Array(16));
    expect(hex(c.subarray(0, 8))).not.toBe(hex(c.subarray(8, 16)));
    expect(hex(c.subarray(0, 8))).toBe(hex(tdesEcbEncrypt(k16, new Uint8Array(8))));
  });
});

describe("createDes / createTdes block API", () => {
  test("in-place block encryption matches the one-shot function; wipe clears the schedule", () => {
    const r = desKat.variableKey[3]!;
    const c = createDes(fromHex(r.key));
    const buf = fromHex(r.plaintext);
    c.encryptBlock(buf, 0, buf, 0);
    expect(hex(buf)).toBe(r.ciphertext);
    c.decryptBlock(buf, 0, buf, 0);
    expect(hex(buf)).toBe(r.plaintext);
    c.wipe();
    c.encryptBlock(buf, 0, buf, 0);
    expect(hex(buf)).not.toBe(r.ciphertext);
  });
  test("cbcLastBlock is the last block of cbcEncrypt", () => {
    const t = createTdes(fromHex("0123456789ABCDEF23456789ABCDEF01"));
    const data = Uint8Array.from({ length: 40 }, (_, i) => i * 7);
    expect(hex(t.cbcLastBlock(data))).toBe(hex(t.cbcEncrypt(data).subarray(32)));
  });
  test("cbcLastBlock chains: a slice's last block as the next slice's iv gives the whole data's", () => {
    const t = createTdes(fromHex("0123456789ABCDEF23456789ABCDEF01"));
    const data = Uint8Array.from({ length: 40 }, (_, i) => i * 7);
    const iv = fromHex("0011223344556677");
    expect(hex(t.cbcLastBlock(data.subarray(16), t.cbcLastBlock(data.subarray(0, 16))))).toBe(hex(t.cbcLastBlock(data)));
    expect(hex(t.cbcLastBlock(data, iv))).toBe(hex(t.cbcEncrypt(data, iv).subarray(32)));
    expect(() => t.cbcLastBlock(data, new Uint8Array(7))).toThrow("iv must be 8 bytes");
  });
});

describe("adjustParity", () => {
  test("ICAO 9303-11 D.2: raw SHA-1 bytes become the printed Kenc", () => {
    expect(hex(adjustParity(fromHex("AB94FCEDF2664EDFB9B291F85D7F77F2")))).toBe("AB94FDECF2674FDFB9B391F85D7F76F2");
  });
  test("every output byte has odd parity and differs from the input only in bit 0; input untouched", () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const out = adjustParity(all);
    for (let i = 0; i < 256; i++) {
      let ones = 0;
      for (let b = out[i]!; b; b >>= 1) ones += b & 1;
      expect(ones % 2).toBe(1);
      expect(out[i]! & 0xfe).toBe(i & 0xfe);
      expect(all[i]).toBe(i);
    }
  });
});

describe("input checks", () => {
  test("RangeError names the argument and the length", () => {
    expect(() => desEcbEncrypt(new Uint8Array(7), new Uint8Array(8))).toThrow(/key8 must be 8 bytes, got 7/);
    expect(() => desEcbEncrypt(new Uint8Array(8), new Uint8Array(9))).toThrow(/data length must be a multiple of 8, got 9/);
    expect(() => tdesCbcEncrypt(new Uint8Array(8), new Uint8Array(8))).toThrow(/key must be 16 or 24 bytes, got 8/);
    expect(() => tdesCbcEncrypt(new Uint8Array(16), new Uint8Array(8), new Uint8Array(4))).toThrow(/iv must be 8 bytes, got 4/);
    expect(() => tdesCbcDecrypt(new Uint8Array(16), new Uint8Array(12))).toThrow(RangeError);
  });
  test("TypeError for a non-Uint8Array", () => {
    expect(() => desEcbEncrypt("0101010101010101" as unknown as Uint8Array, new Uint8Array(8))).toThrow(TypeError);
  });
});
