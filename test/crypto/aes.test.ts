import { describe, expect, test } from "bun:test";
import { aesCbcDecrypt, aesCbcEncrypt, aesCmac, aesEncryptBlock, createAesCmac } from "../../agent/crypto/aes.ts";
import { fromHex, hex } from "../../agent/bytes.ts";
import nist from "../vectors/nist-sp800-38b-cmac-sp800-38a-cbc.json";
import g1 from "../vectors/icao-9303-11-g1-pace-ecdh-gm.json";

const row = (prefix: string) => g1.rows.find((r) => r.what.startsWith(prefix))!.hex;

describe("NIST SP 800-38B Appendix D: AES-CMAC", () => {
  const msg = fromHex(nist.message);
  for (const k of nist.cmac) {
    for (const [len, tag] of Object.entries(k.tags)) {
      test(`AES-${k.keyBits}, ${len}-byte message`, () => {
        const t = aesCmac(fromHex(k.key), msg.subarray(0, Number(len)));
        expect(hex(t)).toBe(tag);
        // the keyed-once CMAC of secure messaging gives the same tag, twice in a row
        const keyed = createAesCmac(fromHex(k.key));
        expect(hex(keyed.mac(msg.subarray(0, Number(len))))).toBe(tag);
        expect(hex(keyed.mac(msg.subarray(0, Number(len))))).toBe(tag);
        // one flipped message bit changes the tag
        if (Number(len) > 0) {
          const m = msg.slice(0, Number(len));
          m[0] = m[0]! ^ 1;
          expect(hex(aesCmac(fromHex(k.key), m))).not.toBe(tag);
        }
      });
    }
  }
});

describe("NIST SP 800-38A Appendix F.2: AES-CBC, both directions", () => {
  for (const c of nist.cbc) {
    test(c.section, () => {
      const key = fromHex(c.key), iv = fromHex(c.iv);
      expect(hex(aesCbcEncrypt(key, iv, fromHex(nist.message)))).toBe(c.ciphertext);
      expect(hex(aesCbcDecrypt(key, iv, fromHex(c.ciphertext)))).toBe(nist.message);
    });
  }
  test("first block of CBC with a zero IV is the ECB block encryption", () => {
    const c = nist.cbc[0]!;
    const key = fromHex(c.key);
    expect(hex(aesEncryptBlock(key, fromHex(nist.message).subarray(0, 16)))).toBe(hex(aesCbcEncrypt(key, new Uint8Array(16), fromHex(nist.message).subarray(0, 16))));
  });
});

describe("ICAO 9303-11 Appendix G.1: AES-CMAC with PACE-derived keys (authentication tokens)", () => {
  test("T_PCD and T_PICC are the first 8 bytes of CMAC(KSmac, public-key data object)", () => {
    const ksMac = fromHex(row("KSmac"));
    expect(hex(aesCmac(ksMac, fromHex(row("Token input for T_PCD"))).subarray(0, 8))).toBe(row("T_PCD"));
    expect(hex(aesCmac(ksMac, fromHex(row("Token input for T_PICC"))).subarray(0, 8))).toBe(row("T_PICC"));
  });
  test("decrypting z with K_pi (AES-128-CBC, zero IV) gives the nonce s", () => {
    expect(hex(aesCbcDecrypt(fromHex(row("K_π")), new Uint8Array(16), fromHex(row("Encrypted nonce z"))))).toBe(row("Decrypted nonce s"));
  });
});

describe("keyed-once CMAC agrees with noble's cmac() on every length 0..80", () => {
  test("AES-128 and AES-256 keys", () => {
    for (const key of [fromHex(nist.cmac[0]!.key), fromHex(nist.cmac[2]!.key)]) {
      const keyed = createAesCmac(key);
      const m = new Uint8Array(80).map((_, i) => i * 13 + 5);
      for (let n = 0; n <= 80; n++) expect(hex(keyed.mac(m.subarray(0, n)))).toBe(hex(aesCmac(key, m.subarray(0, n))));
    }
  });
});

describe("input checks", () => {
  test("wrong key, block and IV lengths are RangeErrors naming the argument", () => {
    expect(() => aesCmac(new Uint8Array(15), new Uint8Array(0))).toThrow(/aesCmac: key must be 16, 24 or 32 bytes, got 15/);
    expect(() => aesCbcEncrypt(new Uint8Array(16), new Uint8Array(16), new Uint8Array(17))).toThrow(/data length must be a multiple of 16, got 17/);
    expect(() => aesCbcDecrypt(new Uint8Array(16), new Uint8Array(8), new Uint8Array(16))).toThrow(/iv must be 16 bytes, got 8/);
    expect(() => aesEncryptBlock(new Uint8Array(32), new Uint8Array(8))).toThrow(RangeError);
  });
});
