/**
 * The one module wrapping @noble/ciphers' AES (FIPS 197): single-block encryption, CBC without
 * padding (NIST SP 800-38A) and CMAC (NIST SP 800-38B), as PACE and AES secure messaging need
 * them (ICAO 9303-11 §9.8.6.2, BSI TR-03110-3 §A.2.2 / TR-03111). Keys of 16, 24 or 32 bytes.
 * Padding is the caller's (ISO/IEC 9797-1 method 2, agent/crypto/iso9797.ts).
 */
import { cbc, cmac as nobleCmac, ecb } from "@noble/ciphers/aes.js";

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
  return ecb(key, { disablePadding: true }).encrypt(block);
}

/** AES-CBC over data that is already a multiple of 16 bytes. */
export function aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  checkKey("aesCbcEncrypt", key);
  checkBlocks("aesCbcEncrypt", "data", data);
  if (iv.length !== 16) throw new RangeError(`aesCbcEncrypt: iv must be 16 bytes, got ${iv.length}`);
  return cbc(key, iv, { disablePadding: true }).encrypt(data);
}

export function aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  checkKey("aesCbcDecrypt", key);
  checkBlocks("aesCbcDecrypt", "data", data);
  if (iv.length !== 16) throw new RangeError(`aesCbcDecrypt: iv must be 16 bytes, got ${iv.length}`);
  return cbc(key, iv, { disablePadding: true }).decrypt(data);
}

/** AES-CMAC (NIST SP 800-38B, RFC 4493): the full 16-byte tag; ICAO uses its first 8 bytes. */
export function aesCmac(key: Uint8Array, data: Uint8Array): Uint8Array {
  checkKey("aesCmac", key);
  if (!(data instanceof Uint8Array)) throw new TypeError("aesCmac: data must be a Uint8Array");
  return nobleCmac(data, key);
}
