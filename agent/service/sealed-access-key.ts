/**
 * Access keys sealed to the agent: a remote `read` carries `sealedAccessKey`, an
 * envelope (envelope.ts, kind "access-key") sealed to the agent's long-term public key from the
 * operator's key, whose public half is the command's `replyPublicKey`. Opening it proves the
 * access key and the reply key come from the same operator: a replayed envelope with another
 * replyPublicKey does not open, so no one but its sender can have the reply sealed to them.
 *
 * Plaintext (UTF-8 JSON, padded with spaces to 256 bytes so the length does not tell an MRZ
 * key from a CAN):
 *   { "v": 1, "exp": <unix seconds>, "accessKey": { documentNumber, dateOfBirth, dateOfExpiry } }
 *   accessKey may also be { "mrz": "..." } or, once PACE exists, { "can": "123456" }.
 * Bound to agent id and command id by the HPKE info; `exp` is inside. After opening, the
 * access key goes through the same validator as every other (access-key.ts parseAccessKey).
 */
import { AccessKeyProblem, parseAccessKey, type AccessKey } from "./access-key.ts";
import { EnvelopeError, open, seal, type SealedEnvelope } from "./envelope.ts";

export const SEALED_KEY_PLAINTEXT_BYTES = 256;
/** How far ahead an operator may set a sealed key's expiry: longer would widen a replay window. */
export const MAX_SEALED_KEY_LIFETIME_S = 24 * 3600;
/** Clock skew tolerated between operator and agent when checking a sealed key's expiry. */
export const SEALED_KEY_SKEW_S = 300;

export type SealedKeyProblemCode = "BAD_FIELD" | "MISSING_FIELD" | "BAD_CHECK_DIGIT" | "EXPIRED";

/** Why a sealed access key was refused; the message never holds the key. */
export class SealedKeyProblem extends Error {
  readonly code: SealedKeyProblemCode;
  constructor(code: SealedKeyProblemCode, message: string) {
    super(message);
    this.name = "SealedKeyProblem";
    this.code = code;
  }
}

export interface SealAccessKeyOptions {
  agentId: string;
  commandId: string;
  /** The agent's long-term public key (from its birth message). */
  agentPublicKey: Uint8Array;
  /** The operator's private key; its public key goes into the command as replyPublicKey. */
  operatorPrivateKey: Uint8Array;
  /** `{ documentNumber, dateOfBirth, dateOfExpiry }`, `{ mrz }` or `{ can }`, as in parseAccessKey. */
  accessKey: Record<string, string>;
  /** Unix seconds after which the agent refuses it. */
  expiresAt: number;
}

export function sealAccessKey(o: SealAccessKeyOptions): SealedEnvelope {
  const json = JSON.stringify({ v: 1, exp: Math.floor(o.expiresAt), accessKey: o.accessKey });
  const bytes = new TextEncoder().encode(json);
  if (bytes.length > SEALED_KEY_PLAINTEXT_BYTES) throw new RangeError("sealAccessKey: the access key is too long");
  const plaintext = new Uint8Array(SEALED_KEY_PLAINTEXT_BYTES).fill(0x20);
  plaintext.set(bytes);
  try {
    return seal({ to: o.agentPublicKey, from: o.operatorPrivateKey, ctx: { kind: "access-key", agentId: o.agentId, id: o.commandId }, plaintext });
  } finally {
    plaintext.fill(0);
    bytes.fill(0);
  }
}

export interface OpenAccessKeyOptions {
  agentId: string;
  commandId: string;
  agentPrivateKey: Uint8Array;
  /** The agent's public key, when held (one scalar multiplication less). */
  agentPublicKey?: Uint8Array;
  /** X25519(agent key, operator key), when held (one scalar multiplication less). */
  staticDh?: Uint8Array;
  /** The command's replyPublicKey: the sealed key must come from its holder. */
  operatorPublicKey: Uint8Array;
  envelope: unknown;
  /** Unix seconds (default: now). */
  now?: number;
}

/** Opens and validates a sealed access key; throws SealedKeyProblem or AccessKeyProblem. */
export function openAccessKey(o: OpenAccessKeyOptions): AccessKey {
  let plaintext: Uint8Array;
  try {
    plaintext = open({
      key: o.agentPrivateKey,
      ...(o.agentPublicKey ? { keyPublic: o.agentPublicKey } : {}),
      ...(o.staticDh ? { staticDh: o.staticDh } : {}),
      from: o.operatorPublicKey,
      envelope: o.envelope,
      expect: { kind: "access-key", agentId: o.agentId, id: o.commandId },
    });
  } catch (e) {
    if (e instanceof EnvelopeError) throw new SealedKeyProblem("BAD_FIELD", `sealedAccessKey: ${e.message.replace(/^envelope: /, "")}`);
    throw e;
  }
  let body: { v?: unknown; exp?: unknown; accessKey?: unknown };
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(plaintext)) as typeof body;
  } catch {
    throw new SealedKeyProblem("BAD_FIELD", "sealedAccessKey: the opened plaintext is not JSON");
  } finally {
    plaintext.fill(0);
  }
  if (typeof body !== "object" || body === null || body.v !== 1) throw new SealedKeyProblem("BAD_FIELD", "sealedAccessKey: unknown plaintext version (expected v 1)");
  if (typeof body.exp !== "number" || !Number.isInteger(body.exp)) throw new SealedKeyProblem("MISSING_FIELD", "sealedAccessKey: exp (unix seconds) is missing");
  const now = o.now ?? Math.floor(Date.now() / 1000);
  if (body.exp + SEALED_KEY_SKEW_S < now) throw new SealedKeyProblem("EXPIRED", "sealedAccessKey: expired; seal the access key again");
  if (body.exp > now + MAX_SEALED_KEY_LIFETIME_S + SEALED_KEY_SKEW_S) {
    throw new SealedKeyProblem("BAD_FIELD", `sealedAccessKey: exp is more than ${MAX_SEALED_KEY_LIFETIME_S / 3600} h ahead`);
  }
  if (body.accessKey === undefined) throw new SealedKeyProblem("MISSING_FIELD", "sealedAccessKey: holds no accessKey");
  try {
    return parseAccessKey(body.accessKey, "sealedAccessKey.accessKey");
  } catch (e) {
    if (e instanceof AccessKeyProblem) throw new SealedKeyProblem(e.code, e.message);
    throw e;
  }
}
