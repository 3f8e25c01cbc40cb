/**
 * Key derivation function, ICAO 9303-11 §9.7.1: keydata = H(K ‖ c) with c a 32-bit big-endian
 * counter (1 = encryption, 2 = MAC, 3 = PACE password key K_π). SHA-1 for 3DES and AES-128,
 * SHA-256 for AES-192/256. 3DES keys are 16 bytes (keying option 2) with DES parity adjusted,
 * the form ICAO prints in Appendix D.
 */
import { adjustParity } from "../crypto/des.ts";
import { sha1, sha256 } from "../crypto/hash.ts";

export type KdfAlgorithm = "3DES" | "AES-128" | "AES-192" | "AES-256";

export function deriveKey(seed: Uint8Array, counter: 1 | 2 | 3, alg: KdfAlgorithm): Uint8Array {
  if (!(seed instanceof Uint8Array)) throw new TypeError("deriveKey: seed must be a Uint8Array");
  if (counter !== 1 && counter !== 2 && counter !== 3) throw new RangeError(`deriveKey: counter must be 1, 2 or 3, got ${String(counter)}`);
  const input = new Uint8Array(seed.length + 4);
  input.set(seed, 0);
  input[seed.length + 3] = counter;
  let digest: Uint8Array;
  let out: Uint8Array;
  switch (alg) {
    case "3DES":
      digest = sha1(input);
      out = adjustParity(digest.subarray(0, 16));
      break;
    case "AES-128":
      digest = sha1(input);
      out = digest.slice(0, 16);
      break;
    case "AES-192":
      digest = sha256(input);
      out = digest.slice(0, 24);
      break;
    case "AES-256":
      digest = sha256(input);
      out = digest.slice(0, 32);
      break;
    default:
      throw new RangeError(`deriveKey: unknown algorithm ${String(alg)}`);
  }
  input.fill(0);
  digest.fill(0);
  return out;
}
