/**
 * Message digests for Passive Authentication (FIPS 180-4: SHA-1, SHA-224/256/384/512) by the
 * names the LDS and CMS use, on top of agent/crypto/hash.ts (which wraps @noble/hashes).
 */
import { sha1, sha224, sha256, sha384, sha512 } from "../crypto/hash.ts";
import type { HashName } from "./oids.ts";

const HASHES = { sha1, sha224, sha256, sha384, sha512 } as const;
const LENGTHS: Record<HashName, number> = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 };

export function digest(name: HashName, data: Uint8Array): Uint8Array {
  return HASHES[name](data);
}

/** Output length in bytes. */
export function digestLength(name: HashName): number {
  return LENGTHS[name];
}
