/**
 * Active Authentication's verification (ICAO 9303-11 §6.1): the chip signed a fresh 8-byte
 * challenge with the private key whose public key is DG15. RSA signatures use ISO/IEC 9796-2
 * digital signature scheme 1 with partial message recovery (M = M1 || challenge, trailer BC =
 * SHA-1 implicit or hashID||CC explicit); ECDSA signatures (BSI TR-03111: plain r||s, or DER)
 * use the hash DG14's ActiveAuthenticationInfo names. Proves the chip holds the key: a copied
 * chip cannot. The checks are pure; activeAuthenticate() runs the exchange of
 * agent/icao/active-authentication.ts over the caller's send function.
 */
import { concat, equalBytes } from "../bytes.ts";
import { MrtdError, ParseError } from "../errors.ts";
import { AA_CHALLENGE_LENGTH, type AaSend, internalAuthenticate } from "../icao/active-authentication.ts";
import { type ActiveAuthenticationInfo, type Dg14, parseDg14 } from "../lds/dg14.ts";
import { type Dg15, parseDg15 } from "../lds/dg15.ts";
import { fromBig, modPow, toBig } from "../pki/bigint.ts";
import { digest, digestLength } from "../pki/digest.ts";
import { type EcPublicKey, verifyEcdsa } from "../pki/ecdsa.ts";
import { HASH_LABEL, type HashName } from "../pki/oids.ts";
import type { RsaPublicKey } from "../pki/rsa.ts";

export type { AaSend } from "../icao/active-authentication.ts";

export type AaStatus = "ok" | "failed" | "not-supported" | "error";

export interface AaResult {
  status: AaStatus;
  /** e.g. "RSA-1024 ISO/IEC 9796-2 SHA-1", "ECDSA P-256 SHA-256 (plain)". */
  algorithm?: string;
  /** Why it failed, errored or is not supported: structure and algorithm names only, never data. */
  detail?: string;
  /** The chip's status word when it refused INTERNAL AUTHENTICATE. */
  sw?: number;
}

/** ISO/IEC 10118-3 hash identifiers of the explicit 9796-2 trailer (hashID || CC). */
export const ISO9796_HASH_ID: Record<number, HashName> = { 0x33: "sha1", 0x34: "sha256", 0x35: "sha512", 0x36: "sha384", 0x38: "sha224" };

/**
 * Verifies an ISO/IEC 9796-2 scheme 1 signature with partial recovery over M1 || challenge
 * (9303-11 §6.1.2, 9796-2 §8): the recovered block must be exactly header 6A, M1 filling the
 * space left, the hash, and the trailer BC (SHA-1 implicit) or hashID CC; nothing else passes.
 * Returns the hash the trailer named, or why it does not verify.
 */
export function verifyIso9796Scheme1(key: RsaPublicKey, challenge: Uint8Array, signature: Uint8Array): { ok: true; hash: HashName } | { ok: false; detail: string; hash?: HashName } {
  const k = Math.ceil(key.bits / 8);
  if (signature.length === 0 || signature.length > k) return { ok: false, detail: `signature of ${signature.length} bytes for a ${k}-byte modulus` };
  const s = toBig(signature);
  if (s >= key.n) return { ok: false, detail: "signature not smaller than the modulus" };
  let x = modPow(s, key.e, key.n);
  // 9796-2 §B.6: the signer may have sent n - J^d; the representative always ends in nibble C
  if ((x & 0xfn) !== 0xcn) x = key.n - x;
  if ((x & 0xfn) !== 0xcn) return { ok: false, detail: "no 9796-2 trailer in the recovered block" };
  // The representative has the modulus' bit length minus one (9796-2 §8.1.2): a modulus of
  // 8m+1 bits leaves a zero first byte before the header.
  let f = fromBig(x, k);
  if (key.bits % 8 === 1) {
    if (f[0] !== 0) return { ok: false, detail: "no 9796-2 header in the recovered block" };
    f = f.subarray(1);
  }
  const len = f.length;
  // header: bits 01 (start), 1 (partial recovery), 0 (no padding: M1 fills the block), nibble A
  if ((f[0]! & 0xc0) !== 0x40) return { ok: false, detail: "no 9796-2 header in the recovered block" };
  if ((f[0]! & 0x20) === 0) return { ok: false, detail: "9796-2 total recovery: the challenge is not part of the signature" };
  if (f[0] !== 0x6a) return { ok: false, detail: `9796-2 header ${f[0]!.toString(16).toUpperCase()} instead of 6A (padding in a partial-recovery block)` };
  let hash: HashName;
  let t: number;
  if (f[len - 1] === 0xbc) {
    hash = "sha1";
    t = 1;
  } else if (f[len - 1] === 0xcc) {
    const h = ISO9796_HASH_ID[f[len - 2]!];
    if (!h) return { ok: false, detail: `unknown 9796-2 hash identifier ${f[len - 2]!.toString(16)}` };
    hash = h;
    t = 2;
  } else {
    return { ok: false, detail: "unknown 9796-2 trailer" };
  }
  const hLen = digestLength(hash);
  const hStart = len - t - hLen;
  if (hStart < 1) return { ok: false, detail: "recovered block too short for the hash", hash };
  const m1 = f.subarray(1, hStart);
  const recovered = f.subarray(hStart, len - t);
  return equalBytes(digest(hash, concat(m1, challenge)), recovered) ? { ok: true, hash } : { ok: false, detail: "hash of M1 || challenge differs", hash };
}

/**
 * Verifies an ECDSA AA signature over the challenge. DG14 names the hash; without it every
 * standard hash is tried (still unforgeable: each candidate needs the private key). Plain and
 * DER signatures are both accepted, as chips differ from what their DG14 says.
 */
export function verifyEcdsaAa(key: EcPublicKey, info: ActiveAuthenticationInfo | undefined, challenge: Uint8Array, signature: Uint8Array): { ok: boolean; algorithm: string } {
  // r||s of the field length twice is plain; anything else can only be DER
  const formats: ("plain" | "der")[] = signature.length === key.curve.lengths.signature! ? ["plain", "der"] : ["der"];
  const hashes: HashName[] = info?.hash ? [info.hash] : ["sha1", "sha224", "sha256", "sha384", "sha512"];
  for (const h of hashes) {
    for (const f of formats) {
      if (verifyEcdsa(key, digest(h, challenge), signature, f)) return { ok: true, algorithm: `ECDSA ${key.curveName} ${HASH_LABEL[h]} (${f})` };
    }
  }
  const named = info?.hash ? HASH_LABEL[info.hash] : "hash not named in DG14";
  return { ok: false, algorithm: `ECDSA ${key.curveName} ${named}` };
}

/** Verifies the chip's answer to `challenge` with DG15's key (and DG14's algorithm for ECDSA). */
export function verifyActiveAuthentication(dg15: Dg15, dg14: Dg14 | undefined, challenge: Uint8Array, signature: Uint8Array): AaResult {
  const key = dg15.key;
  if (key.kind === "rsa") {
    const r = verifyIso9796Scheme1(key.rsa, challenge, signature);
    const algorithm = `${dg15.label} ISO/IEC 9796-2${r.hash ? ` ${HASH_LABEL[r.hash]}` : ""}`;
    return r.ok ? { status: "ok", algorithm } : { status: "failed", algorithm, detail: r.detail };
  }
  if (key.kind === "ec") {
    const r = verifyEcdsaAa(key.ec, dg14?.activeAuthentication, challenge, signature);
    return r.ok ? { status: "ok", algorithm: r.algorithm } : { status: "failed", algorithm: r.algorithm, detail: "ECDSA signature over the challenge does not verify" };
  }
  return { status: "error", algorithm: dg15.label, detail: `unsupported Active Authentication key: ${key.algorithm}` };
}

export interface AaInput {
  /** DG15 as read (tag 6F). */
  dg15: Uint8Array;
  /** DG14 as read (tag 6E), when the chip has one. */
  dg14?: Uint8Array;
  random: (n: number) => Uint8Array;
}

/**
 * Runs Active Authentication over `send` (the secure channel after BAC/PACE). Never throws for
 * what the chip or the files do: a refusal or lost link is "error", a wrong signature "failed".
 */
export async function activeAuthenticate(send: AaSend, input: AaInput): Promise<AaResult> {
  let dg15: Dg15;
  let dg14: Dg14 | undefined;
  try {
    dg15 = parseDg15(input.dg15);
  } catch (e) {
    if (e instanceof ParseError) return { status: "error", detail: `DG15 is malformed: ${e.message}` };
    throw e;
  }
  if (input.dg14) {
    try {
      dg14 = parseDg14(input.dg14);
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      // DG14 only matters for ECDSA: an RSA chip's AA still works without it
      if (dg15.key.kind === "ec") return { status: "error", algorithm: dg15.label, detail: `DG14 is malformed: ${e.message}` };
    }
  }
  if (dg15.key.kind === "unsupported") return { status: "error", algorithm: dg15.label, detail: `unsupported Active Authentication key: ${dg15.key.algorithm}` };
  const challenge = input.random(AA_CHALLENGE_LENGTH);
  if (challenge.length !== AA_CHALLENGE_LENGTH) throw new RangeError("activeAuthenticate: random(8) must return 8 bytes");
  // an ECDSA signature may come DER-encoded: up to 8 bytes longer than r || s
  const expected = dg15.key.kind === "rsa" ? Math.ceil(dg15.key.rsa.bits / 8) : dg15.key.ec.curve.lengths.signature! + 8;
  let response: { data: Uint8Array; sw: number };
  try {
    response = await internalAuthenticate(send, challenge, expected);
  } catch (e) {
    if (e instanceof MrtdError) return { status: "error", algorithm: dg15.label, detail: `INTERNAL AUTHENTICATE: ${e.message}` };
    throw e;
  }
  if (response.sw !== 0x9000) {
    return { status: "error", algorithm: dg15.label, sw: response.sw, detail: `INTERNAL AUTHENTICATE answered ${response.sw.toString(16).toUpperCase().padStart(4, "0")}` };
  }
  return verifyActiveAuthentication(dg15, dg14, challenge, response.data);
}
