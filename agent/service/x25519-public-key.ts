/**
 * Checks an X25519 public key from outside (a command's replyPublicKey, a configured key)
 * before anything is done for it: 32 bytes (RFC 7748 §5), and not a point of small order,
 * whose shared secret is all zeros whatever the agent's key (RFC 7748 §6.1, "check that the
 * resulting value is not the all-zero value"). Checked once, up front, so a bad key is a
 * BAD_FIELD answer before any card access instead of a failure after a whole read.
 */
import { x25519 } from "@noble/curves/ed25519.js";

export const X25519_PUBLIC_KEY_BYTES = 32;

/**
 * A fixed scalar: X25519 clamps every scalar to a multiple of the cofactor 8, so its product
 * with any point of order 1, 2, 4 or 8 (on the curve or its twist, canonical or not) is zero,
 * and the product with any other point is not.
 */
const PROBE = new Uint8Array(32).fill(0x5a);

/** Why `key` is not a usable X25519 public key, or undefined when it is. The message names no bytes. */
export function x25519PublicKeyProblem(key: Uint8Array): string | undefined {
  if (key.length !== X25519_PUBLIC_KEY_BYTES) return `must be ${X25519_PUBLIC_KEY_BYTES} bytes, not ${key.length}`;
  if (key.every((b) => b === 0)) return "is all zeros";
  try {
    // noble throws when the result is the all-zero value
    x25519.scalarMult(PROBE, key);
  } catch {
    return "is a point of small order (every shared secret with it would be all zeros)";
  }
  return undefined;
}
