/**
 * The chip's side of Active Authentication (ICAO 9303-11 §6.1), written apart from the reader's
 * agent/verification/active-authentication.ts so the two check each other: ISO/IEC 9796-2 digital signature
 * scheme 1 with partial message recovery in pure JS with BigInt (RSA), or ECDSA with
 * @noble/curves (plain r||s per BSI TR-03111, or DER).
 */
import { p256 } from "@noble/curves/nist.js";
import { brainpoolP256r1 } from "@noble/curves/misc.js";
import { sha1 } from "@noble/hashes/legacy.js";
import { sha224, sha256, sha384, sha512 } from "@noble/hashes/sha2.js";

export type AaHash = "sha1" | "sha224" | "sha256" | "sha384" | "sha512";

/** The chip's AA private key and how it signs. */
export type AaPrivateKey =
  | {
      kind: "rsa";
      n: bigint;
      d: bigint;
      /** sha1 uses the implicit trailer BC, others hashID || CC (ISO/IEC 10118-3 ids). */
      hash: AaHash;
      /** Send min(s, n - s) as 9796-2 allows (verifiers must accept both). */
      minimal?: boolean;
    }
  | { kind: "ec"; curve: "P-256" | "brainpoolP256r1"; secret: Uint8Array; hash: AaHash; format: "plain" | "der" };

const HASH: Record<AaHash, (m: Uint8Array) => Uint8Array> = { sha1, sha224, sha256, sha384, sha512 };
const HASH_ID: Record<AaHash, number> = { sha1: 0x33, sha256: 0x34, sha512: 0x35, sha384: 0x36, sha224: 0x38 };

function toBig(b: Uint8Array): bigint {
  let x = 0n;
  for (const v of b) x = (x << 8n) | BigInt(v);
  return x;
}

function toBytes(x: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = len - 1, v = x; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  let r = 1n;
  for (let b = base % m, e = exp; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
  return r;
}

/** Signs the 8-byte challenge (M2) as the chip does; `random` fills M1. */
export function aaSign(key: AaPrivateKey, challenge: Uint8Array, random: (n: number) => Uint8Array): Uint8Array {
  if (key.kind === "ec") {
    const curve = key.curve === "P-256" ? p256 : brainpoolP256r1;
    return curve.sign(HASH[key.hash](challenge), key.secret, { prehash: false, lowS: false, format: key.format === "plain" ? "compact" : "der" });
  }
  const k = Math.ceil(key.n.toString(2).length / 8);
  const h = HASH[key.hash];
  const trailer = key.hash === "sha1" ? Uint8Array.of(0xbc) : Uint8Array.of(HASH_ID[key.hash], 0xcc);
  const hLen = h(new Uint8Array(0)).length;
  // F = 6A || M1 || H(M1 || M2) || trailer fills the modulus length (9796-2 §8.1.1, partial recovery)
  const m1 = random(k - 1 - hLen - trailer.length);
  const f = new Uint8Array(k);
  f[0] = 0x6a;
  f.set(m1, 1);
  f.set(h(Uint8Array.from([...m1, ...challenge])), 1 + m1.length);
  f.set(trailer, k - trailer.length);
  let s = modPow(toBig(f), key.d, key.n);
  if (key.minimal && key.n - s < s) s = key.n - s;
  return toBytes(s, k);
}
