/** Big-endian unsigned integers as BigInt (RFC 8017 §4.1 OS2IP / I2OSP) and modular exponentiation. */

/** OS2IP: bytes (big-endian) to a non-negative integer. */
export function toBig(b: Uint8Array): bigint {
  let x = 0n;
  for (const v of b) x = (x << 8n) | BigInt(v);
  return x;
}

/** I2OSP: a non-negative integer to exactly `len` big-endian bytes (high bytes beyond `len` are dropped). */
export function fromBig(x: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let v = x;
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** base^exp mod `mod` by square-and-multiply (public-key operations only: not constant time). */
export function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let r = 1n;
  let b = base % mod;
  let e = exp;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % mod;
    b = (b * b) % mod;
    e >>= 1n;
  }
  return r;
}
