/**
 * Sealed messages: what travels over the broker encrypted and authenticated. HPKE
 * (RFC 9180, agent/crypto/hpke.ts) in auth mode, one suite: DHKEM(X25519, HKDF-SHA256),
 * HKDF-SHA256, ChaCha20-Poly1305.
 *
 *   access-key  operator -> agent   sealed to the agent's long-term key, from the operator's
 *                                   key (the command's replyPublicKey): only that agent opens
 *                                   it, and only for that command id, until its expiry
 *   reply       agent -> operator   a command's result, sealed to replyPublicKey from the
 *                                   agent's key: the operator knows the agent sent it
 *   event       agent -> fleet      a read event's personal data (telemetry.include_personal_data)
 *
 * The HPKE `info` names the kind, the agent id and the command (or event) id, so an envelope
 * moved to another context, agent or kind does not open. A large plaintext (a face image) is
 * sealed as a sequence of messages from one HPKE context, `sliceBytes` each, with the event
 * loop running between them; message i of n has AAD "i/n", so truncation, reordering and
 * splicing fail to open.
 *
 * JSON form (deploy/asyncapi.yaml SealedEnvelope):
 *   { "alg": "HPKE-v1 X25519-SHA256-ChaCha20Poly1305", "mode": "auth", "kind": "reply",
 *     "agent": "<agent id>", "id": "<command or event id>", "enc": "<base64, 32 bytes>",
 *     "ct": ["<base64>", ...] }
 * kind, agent and id are in clear (they are not secret) so an opener knows what to expect; it
 * checks them against what it expected, and the key schedule checks them again.
 *
 * No Node or Bun API: the dashboard's page bundles this module to seal access keys and open
 * replies in the browser.
 */
import { concat, forEachSlice, fromBase64, toBase64, wipe } from "../bytes.ts";
import { checkPublicKey, generateKeyPair, HpkeError, publicKeyOf, setupRecipient, setupSender, type KeyPair } from "../crypto/hpke.ts";

export const SEALED_ALG = "HPKE-v1 X25519-SHA256-ChaCha20Poly1305";
export const SEALED_KINDS = ["access-key", "reply", "event"] as const;
export type SealedKind = (typeof SEALED_KINDS)[number];
/** Largest sealed plaintext an opener accepts (a reply with a face image is ~100 KB). */
export const MAX_SEALED_BYTES = 4 * 1024 * 1024;
const DEFAULT_SLICE = 4096;

export interface SealedEnvelope {
  alg: typeof SEALED_ALG;
  mode: "auth";
  kind: SealedKind;
  agent: string;
  id: string;
  enc: string;
  ct: string[];
}

/** What an envelope is bound to. */
export interface SealContext {
  kind: SealedKind;
  agentId: string;
  id: string;
}

/** Raised when an envelope is malformed, for another context or key, or does not authenticate. Carries no key material. */
export class EnvelopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EnvelopeError";
  }
}

export { generateKeyPair, publicKeyOf, type KeyPair };

/** HPKE info of a context. Agent ids and command ids hold no newline (topics.ts, commands.ts). */
export function infoOf(ctx: SealContext): Uint8Array {
  return new TextEncoder().encode(`mrtd-agent sealed v2\nkind=${ctx.kind}\nagent=${ctx.agentId}\nid=${ctx.id}`);
}

function aadOf(i: number, n: number): Uint8Array {
  return new TextEncoder().encode(`${i}/${n}`);
}

export interface SealOptions {
  /** The recipient's X25519 public key. */
  to: Uint8Array;
  /** The sender's long-term X25519 private key (auth mode). */
  from: Uint8Array;
  /** Its public key, when the caller holds it (one scalar multiplication less). */
  fromPublic?: Uint8Array;
  /** X25519(from, to), when the caller holds it (one scalar multiplication less). */
  staticDh?: Uint8Array;
  ctx: SealContext;
  plaintext: Uint8Array;
  /** Plaintext bytes per HPKE message (default 4096). */
  sliceBytes?: number;
}

/** Seals in one go (small plaintexts: an access key, an event's MRZ fields). Throws EnvelopeError for an unusable key. */
export function seal(o: SealOptions): SealedEnvelope {
  const { sender, n, slice } = begin(o);
  const ct: string[] = [];
  for (let i = 0; i < n; i++) ct.push(b64(sender.seal(aadOf(i, n), o.plaintext.subarray(i * slice, (i + 1) * slice))));
  return finish(o.ctx, sender, ct);
}

/** seal() with the event loop running between messages: a face image is milliseconds of cipher work per slice on a board. */
export async function sealInSlices(o: SealOptions): Promise<SealedEnvelope> {
  const { sender, n, slice } = begin(o);
  const ct: string[] = [];
  let i = 0;
  if (o.plaintext.length === 0) ct.push(b64(sender.seal(aadOf(0, 1), o.plaintext)));
  await forEachSlice(o.plaintext.length, slice, (start, end) => {
    ct.push(b64(sender.seal(aadOf(i++, n), o.plaintext.subarray(start, end))));
  });
  return finish(o.ctx, sender, ct);
}

function begin(o: SealOptions) {
  const slice = o.sliceBytes ?? DEFAULT_SLICE;
  if (!Number.isInteger(slice) || slice < 1) throw new RangeError(`sliceBytes must be a positive integer, got ${slice}`);
  if (!(o.plaintext instanceof Uint8Array)) throw new TypeError("seal: plaintext must be a Uint8Array");
  checkContext(o.ctx);
  try {
    const sender = setupSender({ pkR: o.to, skS: o.from, info: infoOf(o.ctx), ...(o.fromPublic ? { pkSOwn: o.fromPublic } : {}), ...(o.staticDh ? { staticDh: o.staticDh } : {}) });
    return { sender, n: Math.max(1, Math.ceil(o.plaintext.length / slice)), slice };
  } catch (e) {
    if (e instanceof HpkeError) throw new EnvelopeError(`seal: ${e.message}`);
    throw e;
  }
}

function finish(c: SealContext, sender: ReturnType<typeof setupSender>, ct: string[]): SealedEnvelope {
  const env: SealedEnvelope = { alg: SEALED_ALG, mode: "auth", kind: c.kind, agent: c.agentId, id: c.id, enc: b64(sender.enc), ct };
  sender.destroy();
  return env;
}

export interface OpenOptions {
  /** The recipient's X25519 private key. */
  key: Uint8Array;
  /** Its public key, when the caller holds it (one scalar multiplication less). */
  keyPublic?: Uint8Array;
  /** X25519(key, from), when the caller holds it (one scalar multiplication less). */
  staticDh?: Uint8Array;
  /** The sender's X25519 public key the envelope must come from (pinned or configured). */
  from: Uint8Array;
  envelope: unknown;
  /** The context the opener expects; every field is compared before any cryptography. */
  expect: SealContext;
}

/** Opens an envelope; throws EnvelopeError if it is malformed, for another context, from another sender or modified. */
export function open(o: OpenOptions): Uint8Array {
  const env = parseEnvelope(o.envelope);
  if (env.kind !== o.expect.kind) throw new EnvelopeError(`envelope: sealed as ${env.kind}, expected ${o.expect.kind}`);
  if (env.agent !== o.expect.agentId) throw new EnvelopeError("envelope: sealed for another agent");
  if (env.id !== o.expect.id) throw new EnvelopeError(`envelope: sealed for another ${env.kind === "event" ? "event" : "command"} id`);
  const enc = unb64("enc", env.enc, 32);
  const parts = env.ct.map((c, i) => unb64(`ct[${i}]`, c));
  const total = parts.reduce((n, p) => n + p.length, 0);
  if (total > MAX_SEALED_BYTES + 16 * parts.length) throw new EnvelopeError(`envelope: larger than ${MAX_SEALED_BYTES} bytes`);
  let recipient;
  try {
    recipient = setupRecipient({ enc, skR: o.key, pkS: o.from, info: infoOf(o.expect), ...(o.keyPublic ? { pkROwn: o.keyPublic } : {}), ...(o.staticDh ? { staticDh: o.staticDh } : {}) });
  } catch (e) {
    if (e instanceof HpkeError) throw new EnvelopeError(`envelope: ${e.message}`);
    throw e;
  }
  const out: Uint8Array[] = [];
  try {
    for (let i = 0; i < parts.length; i++) out.push(recipient.open(aadOf(i, parts.length), parts[i]!));
  } catch (e) {
    for (const p of out) wipe(p);
    if (e instanceof HpkeError) throw new EnvelopeError("envelope: authentication failed (not sealed by the expected sender, for this key and context, or modified)");
    throw e;
  } finally {
    recipient.destroy();
  }
  const plain = concat(...out);
  for (const p of out) wipe(p);
  return plain;
}

/** Structural check of an envelope's JSON form. */
export function parseEnvelope(value: unknown): SealedEnvelope {
  const env = value as Partial<SealedEnvelope> | null;
  if (typeof env !== "object" || env === null || Array.isArray(env)) throw new EnvelopeError("envelope: not an object");
  if (env.alg !== SEALED_ALG) throw new EnvelopeError(`envelope: alg must be "${SEALED_ALG}"`);
  if (env.mode !== "auth") throw new EnvelopeError('envelope: mode must be "auth"');
  if (typeof env.kind !== "string" || !(SEALED_KINDS as readonly string[]).includes(env.kind)) throw new EnvelopeError(`envelope: kind must be one of ${SEALED_KINDS.join(", ")}`);
  if (typeof env.agent !== "string" || typeof env.id !== "string") throw new EnvelopeError("envelope: agent and id must be strings");
  if (!Array.isArray(env.ct) || env.ct.length === 0 || env.ct.length > 4096) throw new EnvelopeError("envelope: ct must be a list of 1-4096 messages");
  const known = ["alg", "mode", "kind", "agent", "id", "enc", "ct"];
  const extra = Object.keys(env).find((k) => !known.includes(k));
  if (extra !== undefined) throw new EnvelopeError(`envelope: unknown field ${extra.slice(0, 32)}`);
  return env as SealedEnvelope;
}

/** True when `value` has the shape of an envelope (for walkers that open every envelope in a reply). */
export function looksSealed(value: unknown): value is SealedEnvelope {
  return typeof value === "object" && value !== null && (value as { alg?: unknown }).alg === SEALED_ALG;
}

function checkContext(c: SealContext): void {
  if (!(SEALED_KINDS as readonly string[]).includes(c.kind)) throw new RangeError(`seal: unknown kind ${c.kind}`);
  for (const v of [c.agentId, c.id]) if (typeof v !== "string" || v.length === 0 || /[\n\r]/.test(v)) throw new RangeError("seal: agent id and id must be non-empty single-line strings");
}

/** A public key as it arrives from outside (base64 text): 32 bytes, not a low-order point. */
export function parsePublicKey(text: unknown, name: string): Uint8Array {
  if (typeof text !== "string" || !/^[A-Za-z0-9+/]{43}=$/.test(text)) throw new EnvelopeError(`${name} must be a base64 X25519 public key (32 bytes, 44 characters)`);
  const bytes = fromBase64(text);
  try {
    checkPublicKey(bytes);
  } catch {
    throw new EnvelopeError(`${name} is not a usable X25519 public key (low-order point)`);
  }
  return bytes;
}

export function b64(bytes: Uint8Array): string {
  return toBase64(bytes);
}

/** Strict base64 decode (standard alphabet, padding required); throws EnvelopeError naming the field. */
export function unb64(field: string, value: unknown, length?: number): Uint8Array {
  if (typeof value !== "string" || value.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
    throw new EnvelopeError(`envelope: ${field} is not base64`);
  }
  const out = fromBase64(value);
  if (length !== undefined && out.length !== length) throw new EnvelopeError(`envelope: ${field} must be ${length} bytes, got ${out.length}`);
  return out;
}
