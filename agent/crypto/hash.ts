/**
 * The module wrapping @noble/hashes: SHA-1 (FIPS 180-4; BAC key seeds, ICAO 9303-11 §9.7.1)
 * and SHA-2 (LDS hashes, ICAO 9303-12). agent/pki/digest.ts names them as EF.SOD and CMS do.
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
