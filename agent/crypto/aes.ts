/**
 * The one module wrapping @noble/ciphers' AES (FIPS 197): single-block encryption, CBC without
 * padding (NIST SP 800-38A) and CMAC (NIST SP 800-38B), as PACE and AES secure messaging need
 * them (ICAO 9303-11 §9.8.6.2, BSI TR-03110-3 §A.2.2 / TR-03111). Keys of 16, 24 or 32 bytes.
 * Padding is the caller's (ISO/IEC 9797-1 method 2, agent/crypto/iso9797.ts).
 */
type NobleAes = typeof import("@noble/ciphers/aes.js");

let noble: NobleAes | undefined;
/**
 * noble's AES module builds 1.3 MB of lookup tables (two 64 Ki-entry round tables and a
 * 64 Ki-entry double S-box, for encryption and for decryption) when it is evaluated, and they
 * stay for the life of the process. It is loaded on the first AES operation instead of at
 * start-up, so an agent reading BAC/3DES passports never builds them.
 */
function nobleAes(): NobleAes {
  return (noble ??= require("@noble/ciphers/aes.js") as NobleAes);
}

function checkKey(fn: string, key: Uint8Array): void {
  if (!(key instanceof Uint8Array)) throw new TypeError(`${fn}: key must be a Uint8Array`);
  if (key.length !== 16 && key.length !== 24 && key.length !== 32) throw new RangeError(`${fn}: key must be 16, 24 or 32 bytes, got ${key.length}`);
}

function checkBlocks(fn: string, name: string, data: Uint8Array): void {
  if (!(data instanceof Uint8Array)) throw new TypeError(`${fn}: ${name} must be a Uint8Array`);
  if (data.length % 16 !== 0) throw new RangeError(`${fn}: ${name} length must be a multiple of 16, got ${data.length}`);
}

/** E(key, block): one 16-byte block in ECB mode. */
export function aesEncryptBlock(key: Uint8Array, block: Uint8Array): Uint8Array {
  checkKey("aesEncryptBlock", key);
  if (!(block instanceof Uint8Array) || block.length !== 16) throw new RangeError(`aesEncryptBlock: block must be 16 bytes, got ${block?.length}`);
  return nobleAes().ecb(key, { disablePadding: true }).encrypt(block);
}

/** AES-CBC over data that is already a multiple of 16 bytes. */
export function aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  checkKey("aesCbcEncrypt", key);
  checkBlocks("aesCbcEncrypt", "data", data);
  if (iv.length !== 16) throw new RangeError(`aesCbcEncrypt: iv must be 16 bytes, got ${iv.length}`);
  return nobleAes().cbc(key, iv, { disablePadding: true }).encrypt(data);
}

export function aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  checkKey("aesCbcDecrypt", key);
  checkBlocks("aesCbcDecrypt", "data", data);
  if (iv.length !== 16) throw new RangeError(`aesCbcDecrypt: iv must be 16 bytes, got ${iv.length}`);
  return nobleAes().cbc(key, iv, { disablePadding: true }).decrypt(data);
}

/** RFC 4493 §2.3: one left shift of a 16-byte block, xor 0x87 into the last byte when the top bit fell off. */
function dbl(block: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 15; i++) out[i] = ((block[i]! << 1) | (block[i + 1]! >> 7)) & 0xff;
  out[15] = (block[15]! << 1) & 0xff;
  if (block[0]! & 0x80) out[15] = out[15]! ^ 0x87;
  return out;
}

/** An AES-CMAC keyed once: the subkeys K1/K2 are derived at creation, not per message (secure messaging MACs every APDU). */
export interface AesCmac {
  /** The full 16-byte tag of `data` (NIST SP 800-38B §6.2). */
  mac(data: Uint8Array): Uint8Array;
  wipe(): void;
}

/**
 * CMAC as CBC-MAC (zero IV) over the message whose last block is xored with K1 (complete) or
 * padded 10* and xored with K2 (incomplete), NIST SP 800-38B §6.2; checked against
 * noble's cmac() and the SP 800-38B examples in the tests.
 */
export function createAesCmac(key: Uint8Array): AesCmac {
  checkKey("createAesCmac", key);
  const k = Uint8Array.from(key);
  const l = aesEncryptBlock(k, new Uint8Array(16));
  const k1 = dbl(l);
  const k2 = dbl(k1);
  l.fill(0);
  const zero = new Uint8Array(16);
  return {
    mac(data) {
      if (!(data instanceof Uint8Array)) throw new TypeError("AesCmac.mac: data must be a Uint8Array");
      const complete = data.length > 0 && data.length % 16 === 0;
      const n = complete ? data.length : (Math.floor(data.length / 16) + 1) * 16;
      const m = new Uint8Array(n);
      m.set(data, 0);
      if (!complete) m[data.length] = 0x80;
      const sub = complete ? k1 : k2;
      for (let i = 0; i < 16; i++) m[n - 16 + i] = m[n - 16 + i]! ^ sub[i]!;
      const c = nobleAes().cbc(k, zero, { disablePadding: true }).encrypt(m);
      const tag = c.slice(n - 16);
      c.fill(0);
      m.fill(0);
      return tag;
    },
    wipe() {
      k.fill(0);
      k1.fill(0);
      k2.fill(0);
    },
  };
}

/** AES-CMAC (NIST SP 800-38B, RFC 4493): the full 16-byte tag; ICAO uses its first 8 bytes. */
export function aesCmac(key: Uint8Array, data: Uint8Array): Uint8Array {
  checkKey("aesCmac", key);
  if (!(data instanceof Uint8Array)) throw new TypeError("aesCmac: data must be a Uint8Array");
  return nobleAes().cmac(data, key);
}
