/**
 * Sealed replies: personal data leaves the agent only encrypted to a public key the requester
 * put in its command, so the broker never sees it in clear (remote commands).
 *
 * Construction (ECIES-style, like HPKE's base mode with X25519 / HKDF-SHA256 / ChaCha20Poly1305
 * in RFC 9180 but without its exact framing):
 *   epk, esk   = fresh X25519 key pair (RFC 7748)
 *   shared     = X25519(esk, recipientPublicKey)
 *   key        = HKDF-SHA256(ikm = shared, salt = epk || recipientPublicKey, info, 32)  (RFC 5869)
 *   ct         = ChaCha20-Poly1305(key, nonce (12 random bytes), plaintext, aad = alg || info)  (RFC 8439)
 * The `info` string names the context (e.g. "mrtd-agent reply v1 <agent> <command id>") and is
 * bound into both the key and the AAD: an envelope moved to another context does not open.
 */
import { poly1305 } from "@noble/ciphers/_poly1305.js";
import { chacha20, chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concat, forEachSlice, wipe } from "../bytes.ts";

export const ENVELOPE_ALG = "X25519-HKDF-SHA256-ChaCha20Poly1305";

export interface SealedEnvelope {
  alg: typeof ENVELOPE_ALG;
  /** The ephemeral public key, base64. */
  epk: string;
  nonce: string;
  /** Ciphertext with the 16-byte Poly1305 tag appended, base64. */
  ct: string;
  /** The context string the key was derived for (not secret). */
  info: string;
}

/** Raised when an envelope is malformed or does not authenticate. Carries no key material. */
export class EnvelopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EnvelopeError";
  }
}

/** The X25519 base point u = 9 (RFC 7748 section 4.1), little-endian. */
const BASE_U = Uint8Array.of(9, ...new Uint8Array(31));

/**
 * The public key of `privateKey`, X25519(k, 9), by the Montgomery ladder. noble's getPublicKey
 * takes a faster path through Ed25519 base-point tables that it builds on first use and keeps:
 * some 6,000 BigInts and 9 MB of heap growth in the agent, for one key per sealed reply.
 */
function ladderPublicKey(privateKey: Uint8Array): Uint8Array {
  return x25519.scalarMult(privateKey, BASE_U);
}

export interface X25519KeyPair {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

export function generateKeyPair(): X25519KeyPair {
  const privateKey = x25519.utils.randomSecretKey();
  return { privateKey, publicKey: ladderPublicKey(privateKey) };
}

export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  checkKey("privateKey", privateKey);
  return ladderPublicKey(privateKey);
}

export function sealForRecipient(
  recipientPublicKey: Uint8Array,
  plaintext: Uint8Array,
  info: string,
  random: (n: number) => Uint8Array = (n) => crypto.getRandomValues(new Uint8Array(n)),
): SealedEnvelope {
  const { key, nonce, epk } = ephemeralKey(recipientPublicKey, plaintext, info, random);
  const ct = chacha20poly1305(key, nonce, aad(info)).encrypt(plaintext);
  wipe(key);
  return { alg: ENVELOPE_ALG, epk: b64(epk), nonce: b64(nonce), ct: b64(ct), info };
}

/**
 * sealForRecipient that encrypts `sliceBytes` at a time and lets the event loop run between
 * slices: a 60 KB face image is tens of milliseconds of ChaCha20-Poly1305 on a board, too long
 * to hold the agent's loop. Same envelope, byte for byte, given the same randomness.
 */
export async function sealForRecipientInSlices(
  recipientPublicKey: Uint8Array,
  plaintext: Uint8Array,
  info: string,
  sliceBytes = 4096,
  random: (n: number) => Uint8Array = (n) => crypto.getRandomValues(new Uint8Array(n)),
): Promise<SealedEnvelope> {
  const { key, nonce, epk } = ephemeralKey(recipientPublicKey, plaintext, info, random);
  try {
    const ct = await chacha20Poly1305InSlices(key, nonce, aad(info), plaintext, sliceBytes);
    return { alg: ENVELOPE_ALG, epk: b64(epk), nonce: b64(nonce), ct: b64(ct), info };
  } finally {
    wipe(key);
  }
}

/** The ephemeral key pair, the derived AEAD key and a fresh nonce for one envelope. */
function ephemeralKey(recipientPublicKey: Uint8Array, plaintext: Uint8Array, info: string, random: (n: number) => Uint8Array): { key: Uint8Array; nonce: Uint8Array; epk: Uint8Array } {
  checkKey("recipientPublicKey", recipientPublicKey);
  if (!(plaintext instanceof Uint8Array)) throw new TypeError("sealForRecipient: plaintext must be a Uint8Array");
  const esk = random(32);
  const epk = ladderPublicKey(esk);
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(esk, recipientPublicKey);
  } catch {
    wipe(esk);
    // An all-zero shared secret (low-order point): the key is not a usable public key.
    throw new RangeError("sealForRecipient: recipientPublicKey is not a valid X25519 public key");
  }
  const key = deriveKey(shared, epk, recipientPublicKey, info);
  const nonce = random(12);
  wipe(esk, shared);
  return { key, nonce, epk };
}

/**
 * The ChaCha20-Poly1305 AEAD of RFC 8439 section 2.8, computed in slices of `sliceBytes`
 * (a multiple of the 64-byte ChaCha20 block) with a macrotask between them:
 *   one-time Poly1305 key = ChaCha20(key, nonce, counter 0) first 32 bytes
 *   ciphertext            = ChaCha20(key, nonce, counter 1 + offset / 64) per slice
 *   tag = Poly1305(aad | pad16 | ciphertext | pad16 | le64(aad length) | le64(ciphertext length))
 * Returns ciphertext || tag, as noble's one-shot chacha20poly1305 does.
 */
export async function chacha20Poly1305InSlices(key: Uint8Array, nonce: Uint8Array, aadBytes: Uint8Array, plaintext: Uint8Array, sliceBytes: number): Promise<Uint8Array> {
  if (!Number.isInteger(sliceBytes) || sliceBytes < 64 || sliceBytes % 64 !== 0) throw new RangeError(`sliceBytes must be a positive multiple of 64, got ${sliceBytes}`);
  const polyKey = chacha20(key, nonce, new Uint8Array(32), undefined, 0);
  const mac = poly1305.create(polyKey);
  const pad16 = (n: number) => new Uint8Array((16 - (n % 16)) % 16);
  mac.update(aadBytes).update(pad16(aadBytes.length));
  const out = new Uint8Array(plaintext.length + 16);
  await forEachSlice(plaintext.length, sliceBytes, (start, end) => {
    mac.update(chacha20(key, nonce, plaintext.subarray(start, end), out.subarray(start, end), 1 + start / 64));
  });
  const lengths = new DataView(new ArrayBuffer(16));
  lengths.setBigUint64(0, BigInt(aadBytes.length), true);
  lengths.setBigUint64(8, BigInt(plaintext.length), true);
  mac.update(pad16(plaintext.length)).update(new Uint8Array(lengths.buffer));
  out.set(mac.digest(), plaintext.length);
  wipe(polyKey);
  return out;
}

/** Decrypts an envelope; throws EnvelopeError if it is malformed, for another key or tampered with. */
export function openSealed(recipientPrivateKey: Uint8Array, envelope: unknown, expectedInfo?: string): Uint8Array {
  checkKey("recipientPrivateKey", recipientPrivateKey);
  const env = envelope as Partial<SealedEnvelope> | null;
  if (typeof env !== "object" || env === null) throw new EnvelopeError("envelope: not an object");
  if (env.alg !== ENVELOPE_ALG) throw new EnvelopeError(`envelope: alg must be ${ENVELOPE_ALG}`);
  if (typeof env.info !== "string") throw new EnvelopeError("envelope: info missing");
  if (expectedInfo !== undefined && env.info !== expectedInfo) throw new EnvelopeError("envelope: sealed for another context");
  const epk = unb64("epk", env.epk, 32);
  const nonce = unb64("nonce", env.nonce, 12);
  const ct = unb64("ct", env.ct);
  if (ct.length < 16) throw new EnvelopeError("envelope: ct shorter than the authentication tag");
  const recipientPublicKey = x25519.getPublicKey(recipientPrivateKey);
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(recipientPrivateKey, epk);
  } catch {
    throw new EnvelopeError("envelope: epk is not a valid X25519 public key");
  }
  const key = deriveKey(shared, epk, recipientPublicKey, env.info);
  try {
    return chacha20poly1305(key, nonce, aad(env.info)).decrypt(ct);
  } catch {
    throw new EnvelopeError("envelope: authentication failed (wrong key or modified envelope)");
  } finally {
    wipe(shared, key);
  }
}

function deriveKey(shared: Uint8Array, epk: Uint8Array, recipientPublicKey: Uint8Array, info: string): Uint8Array {
  return hkdf(sha256, shared, concat(epk, recipientPublicKey), new TextEncoder().encode(info), 32);
}

function aad(info: string): Uint8Array {
  return new TextEncoder().encode(`${ENVELOPE_ALG}\n${info}`);
}

function checkKey(name: string, key: Uint8Array): void {
  if (!(key instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
  if (key.length !== 32) throw new RangeError(`${name} must be 32 bytes, got ${key.length}`);
}

export function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64");
}

/** Strict base64 decode (standard alphabet, padding required); throws EnvelopeError naming the field. */
export function unb64(field: string, value: unknown, length?: number): Uint8Array {
  if (typeof value !== "string" || value.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
    throw new EnvelopeError(`envelope: ${field} is not base64`);
  }
  const out = new Uint8Array(Buffer.from(value, "base64"));
  if (length !== undefined && out.length !== length) throw new EnvelopeError(`envelope: ${field} must be ${length} bytes, got ${out.length}`);
  return out;
}

/** The `info` context for a command reply: binds the envelope to the agent and command id. */
export function replyInfo(agentId: string, commandId: string): string {
  return `mrtd-agent reply v1 ${agentId} ${commandId}`;
}

/** The context of the personal data in a read event (telemetry.include_personal_data). */
export function eventInfo(agentId: string, eventId: string): string {
  return `mrtd-agent event v1 ${agentId} ${eventId}`;
}
