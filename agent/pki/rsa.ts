/**
 * RSA signature verification in pure JS with BigInt (RFC 8017): RSASSA-PKCS1-v1_5 (§8.2.2,
 * EMSA-PKCS1-v1_5 §9.2) and RSASSA-PSS (§8.1.2, EMSA-PSS-VERIFY §9.1.2 with MGF1 §B.2.1).
 * Public-key operations only: nothing here is secret, so plain comparisons are fine.
 */
import { ParseError } from "../errors.ts";
import { der, expectSequence, parseAsn1, readBigInt } from "./asn1.ts";
import { digest, digestLength } from "./digest.ts";
import { HASH_OID, type HashName } from "./oids.ts";
import { fromBig, modPow, toBig } from "./bigint.ts";

export interface RsaPublicKey {
  n: bigint;
  e: bigint;
  /** Modulus length in bits. */
  bits: number;
}

/** Bounds that keep a hostile key from costing more than a few milliseconds. */
const MAX_MODULUS_BITS = 8192;
const MIN_MODULUS_BITS = 1024;
const MAX_EXPONENT_BITS = 512;

/** RSAPublicKey (RFC 8017 §A.1.1) from a SubjectPublicKeyInfo's key bits. */
export function parseRsaPublicKey(keyBits: Uint8Array): RsaPublicKey {
  const seq = expectSequence(parseAsn1(keyBits), "RSAPublicKey");
  const n = readBigInt(seq.children[0], "modulus");
  const e = readBigInt(seq.children[1], "publicExponent");
  const bits = n > 0n ? n.toString(2).length : 0;
  if (bits < MIN_MODULUS_BITS || bits > MAX_MODULUS_BITS) throw new ParseError(`RSA: modulus of ${bits} bits`);
  if (e < 3n || e % 2n === 0n || e.toString(2).length > MAX_EXPONENT_BITS || e >= n) throw new ParseError("RSA: unusable public exponent");
  return { n, e, bits };
}

export interface PssParams {
  hash: HashName;
  mgfHash: HashName;
  saltLength: number;
}

/** RSASSA-PKCS1-v1_5 verification; `message` is hashed here with `hash`. */
export function verifyPkcs1v15(key: RsaPublicKey, hash: HashName, message: Uint8Array, signature: Uint8Array): boolean {
  const k = Math.ceil(key.bits / 8);
  const em = rsavp1(key, signature, k);
  if (!em) return false;
  const h = digest(hash, message);
  // RFC 8017 §9.2 note 2: the NULL parameters are sometimes omitted; accept both encodings.
  for (const algId of [der.seq(der.oid(HASH_OID[hash]), der.null()), der.seq(der.oid(HASH_OID[hash]))]) {
    const t = der.seq(algId, der.octets(h));
    if (k < t.length + 11) continue;
    let ok = em[0] === 0x00 && em[1] === 0x01 && em[k - t.length - 1] === 0x00;
    for (let i = 2; ok && i < k - t.length - 1; i++) ok = em[i] === 0xff;
    for (let i = 0; ok && i < t.length; i++) ok = em[k - t.length + i] === t[i];
    if (ok) return true;
  }
  return false;
}

/** RSASSA-PSS verification; `message` is hashed here with `params.hash`. */
export function verifyPss(key: RsaPublicKey, params: PssParams, message: Uint8Array, signature: Uint8Array): boolean {
  const modBits = key.bits;
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const k = Math.ceil(modBits / 8);
  const m = rsavp1(key, signature, k);
  if (!m) return false;
  // I2OSP(m, emLen): when emLen < k the leading byte must be zero
  if (emLen < k && m[0] !== 0) return false;
  const em = m.subarray(k - emLen);
  const hLen = digestLength(params.hash);
  const sLen = params.saltLength;
  if (sLen < 0 || emLen < hLen + sLen + 2) return false;
  if (em[emLen - 1] !== 0xbc) return false;
  const maskedDb = em.subarray(0, emLen - hLen - 1);
  const hPrime = em.subarray(emLen - hLen - 1, emLen - 1);
  const topMask = 0xff >> (8 * emLen - emBits);
  if ((maskedDb[0]! & ~topMask & 0xff) !== 0) return false;
  const dbMask = mgf1(params.mgfHash, hPrime, maskedDb.length);
  const db = new Uint8Array(maskedDb.length);
  for (let i = 0; i < db.length; i++) db[i] = maskedDb[i]! ^ dbMask[i]!;
  db[0]! &= topMask;
  const psLen = emLen - hLen - sLen - 2;
  for (let i = 0; i < psLen; i++) if (db[i] !== 0) return false;
  if (db[psLen] !== 0x01) return false;
  const salt = db.subarray(db.length - sLen);
  const mPrime = new Uint8Array(8 + hLen + sLen);
  mPrime.set(digest(params.hash, message), 8);
  mPrime.set(salt, 8 + hLen);
  const h2 = digest(params.hash, mPrime);
  for (let i = 0; i < hLen; i++) if (h2[i] !== hPrime[i]) return false;
  return true;
}

/** MGF1 (RFC 8017 §B.2.1). */
export function mgf1(hash: HashName, seed: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const hLen = digestLength(hash);
  const buf = new Uint8Array(seed.length + 4);
  buf.set(seed);
  for (let counter = 0, o = 0; o < length; counter++, o += hLen) {
    buf[seed.length] = counter >>> 24;
    buf[seed.length + 1] = (counter >>> 16) & 0xff;
    buf[seed.length + 2] = (counter >>> 8) & 0xff;
    buf[seed.length + 3] = counter & 0xff;
    out.set(digest(hash, buf).subarray(0, Math.min(hLen, length - o)), o);
  }
  return out;
}

/** RSAVP1 (§5.2.2) with the length checks of §8.x.2 step 1: the representative as k bytes, or undefined. */
function rsavp1(key: RsaPublicKey, signature: Uint8Array, k: number): Uint8Array | undefined {
  if (signature.length !== k) return undefined;
  const s = toBig(signature);
  if (s >= key.n) return undefined;
  return fromBig(modPow(s, key.e, key.n), k);
}

