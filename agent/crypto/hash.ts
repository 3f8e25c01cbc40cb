/**
 * The one module wrapping @noble/hashes: SHA-1 (FIPS 180-4; BAC key seeds, ICAO 9303-11 §9.7.1)
 * and SHA-2 (LDS hashes, ICAO 9303-12), looked up by name or by the OID an EF.SOD names.
 * Also randomness (WebCrypto getRandomValues) for RND.IFD and K.IFD.
 */
import { sha1 as nobleSha1 } from "@noble/hashes/legacy.js";
import { sha224 as nobleSha224, sha256 as nobleSha256, sha384 as nobleSha384, sha512 as nobleSha512 } from "@noble/hashes/sha2.js";
import { forEachSlice } from "../bytes.ts";

export type HashFunction = (data: Uint8Array) => Uint8Array;

export const sha1: HashFunction = (data) => nobleSha1(data);
export const sha224: HashFunction = (data) => nobleSha224(data);
export const sha256: HashFunction = (data) => nobleSha256(data);
export const sha384: HashFunction = (data) => nobleSha384(data);
export const sha512: HashFunction = (data) => nobleSha512(data);

/** OIDs of the digest algorithms (RFC 3279 for SHA-1, NIST CSOR 2.16.840.1.101.3.4.2.x for SHA-2). */
const BY_OID: Record<string, HashFunction> = {
  "1.3.14.3.2.26": sha1,
  "2.16.840.1.101.3.4.2.4": sha224,
  "2.16.840.1.101.3.4.2.1": sha256,
  "2.16.840.1.101.3.4.2.2": sha384,
  "2.16.840.1.101.3.4.2.3": sha512,
};

const BY_NAME: Record<string, HashFunction> = { sha1, sha224, sha256, sha384, sha512 };

/** The hash for a digest-algorithm OID (dotted form), or undefined if unsupported. */
export function hashByOid(oid: string): HashFunction | undefined {
  return Object.hasOwn(BY_OID, oid) ? BY_OID[oid] : undefined;
}

/** The hash for a name such as "SHA-256", "sha256" or "SHA1" (case and '-' ignored), or undefined. */
export function hashByName(name: string): HashFunction | undefined {
  const key = name.toLowerCase().replace(/-/g, "");
  return Object.hasOwn(BY_NAME, key) ? BY_NAME[key] : undefined;
}

/**
 * SHA-256 of `data`, `sliceBytes` at a time with a macrotask between slices: the same digest
 * as sha256(data), without holding the event loop for a whole face image (a 60 KB data group
 * is ~17 ms of SHA-256 in JavaScriptCore's interpreter here, several times that on a board).
 */
export async function sha256InSlices(data: Uint8Array, sliceBytes = 4096): Promise<Uint8Array> {
  if (!(data instanceof Uint8Array)) throw new TypeError("sha256InSlices: data must be a Uint8Array");
  if (!Number.isInteger(sliceBytes) || sliceBytes < 64) throw new RangeError(`sha256InSlices: sliceBytes must be an integer of at least 64, got ${sliceBytes}`);
  const h = nobleSha256.create();
  await forEachSlice(data.length, sliceBytes, (start, end) => h.update(data.subarray(start, end)));
  return h.digest();
}

/** n cryptographically random bytes (crypto.getRandomValues, in 65536-byte slices as WebCrypto requires). */
export function randomBytes(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`randomBytes: n must be a non-negative integer, got ${n}`);
  const out = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) crypto.getRandomValues(out.subarray(o, Math.min(n, o + 65536)));
  return out;
}
