/**
 * The browser's end of a remote command, with the agent's own modules (bundled into the page):
 * the access key is checked by the agent's rules (service/access-key.ts) and sealed to the
 * agent's public key by service/sealed-access-key.ts; results are opened by service/envelope.ts,
 * bound to this agent id, this command id and the kind "reply", and accepted only if sealed by
 * the agent's key. Each command gets a fresh X25519 key pair made here: its public half is the
 * command's replyPublicKey, its private half stays in this object's closure (never stored, never
 * sent) and is wiped by forget(). The server relays the command and the sealed replies; it never
 * holds anything that opens them.
 */
import { hex, wipe } from "../../bytes.ts";
import { sha256 } from "../../crypto/hash.ts";
import { parseAccessKey } from "../../service/access-key.ts";
import { b64, EnvelopeError, generateKeyPair, looksSealed, open, parsePublicKey } from "../../service/envelope.ts";
import { sealAccessKey } from "../../service/sealed-access-key.ts";

export type RemoteCommandName = "ping" | "diagnose" | "read";

export interface RemoteCommandRequest {
  name: RemoteCommandName;
  /** Part of a reader name (diagnose, read). */
  reader?: string;
  /** diagnose: exchanges in the stability loop. */
  count?: number;
  /** read: how long the agent waits for a card, seconds. */
  timeoutS?: number;
  /** read: files to read (COM, SOD, DG1..DG16); the agent's default when absent. */
  files?: string[];
  /** read: `{ documentNumber, dateOfBirth, dateOfExpiry }` or `{ can }`; checked here, then sealed. */
  accessKey?: Record<string, string>;
  /** read: ask for the MRZ fields and face (default true: they come back sealed to this page). */
  includePersonalData?: boolean;
}

/** What the page POSTs: the command as the agent receives it, with nothing in clear but names and numbers. */
export interface CommandBody {
  id: string;
  command: RemoteCommandName;
  replyPublicKey: string;
  reader?: string;
  count?: number;
  timeoutS?: number;
  files?: string[];
  includePersonalData?: boolean;
  sealedAccessKey?: unknown;
}

export interface PreparedCommand {
  readonly id: string;
  readonly body: CommandBody;
  /** Opens a result reply's `sealed` envelope; throws RemoteOpenError if it was not sealed by the agent for this command. */
  openResult(reply: Record<string, unknown>): unknown;
  /** Wipes the private key; openResult fails afterwards. */
  forget(): void;
}

export class RemoteOpenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RemoteOpenError";
  }
}

/** How much longer than the card wait a sealed access key stays valid (as `mrtd-agent remote read`). */
export const SEALED_KEY_MARGIN_S = 90;

/**
 * Builds a command for `agentId` whose published key is `agentPublicKey` (base64, from its
 * birth). Throws AccessKeyProblem for an access key the agent would refuse (the message names
 * the field, never the value), EnvelopeError for an unusable agent key.
 */
export function prepareCommand(agentId: string, agentPublicKey: string, req: RemoteCommandRequest, now = Date.now()): PreparedCommand {
  const agentKey = parsePublicKey(agentPublicKey, "the agent's public key");
  const id = `${req.name}-${crypto.randomUUID()}`;
  let pair: { privateKey: Uint8Array; publicKey: Uint8Array } | undefined = generateKeyPair();
  const body: CommandBody = { id, command: req.name, replyPublicKey: b64(pair.publicKey) };
  if (req.reader !== undefined && req.reader !== "") body.reader = req.reader;
  if (req.name === "diagnose") body.count = req.count ?? 10;
  if (req.name === "read") {
    const key = parseAccessKey(req.accessKey ?? {}, "accessKey");
    const clear: Record<string, string> = key.kind === "can" ? { can: key.can } : { documentNumber: key.documentNumber, dateOfBirth: key.dateOfBirth, dateOfExpiry: key.dateOfExpiry };
    const timeoutS = req.timeoutS ?? 30;
    body.timeoutS = timeoutS;
    body.includePersonalData = req.includePersonalData ?? true;
    if (req.files && req.files.length > 0) body.files = req.files;
    body.sealedAccessKey = sealAccessKey({
      agentId,
      commandId: id,
      agentPublicKey: agentKey,
      operatorPrivateKey: pair.privateKey,
      accessKey: clear,
      expiresAt: Math.floor(now / 1000) + timeoutS + SEALED_KEY_MARGIN_S,
    });
    for (const k of Object.keys(clear)) clear[k] = "";
  }
  return {
    id,
    body,
    openResult(reply) {
      if (!pair) throw new RemoteOpenError("this command's reply key is gone (the page was left or the command ended)");
      if (!looksSealed(reply.sealed)) throw new RemoteOpenError(`the result is not sealed: it does not prove it came from ${agentId}`);
      let plain: Uint8Array;
      try {
        plain = open({ key: pair.privateKey, from: agentKey, envelope: reply.sealed, expect: { kind: "reply", agentId, id } });
      } catch (e) {
        if (e instanceof EnvelopeError) throw new RemoteOpenError(`the result does not open with ${agentId}'s key: ${e.message}`);
        throw e;
      }
      try {
        return JSON.parse(new TextDecoder().decode(plain)) as unknown;
      } finally {
        wipe(plain);
      }
    },
    forget() {
      if (pair) wipe(pair.privateKey);
      pair = undefined;
    },
  };
}

/** A short fingerprint of a base64 public key: the first 16 bytes of its SHA-256, hex in pairs. */
export function keyFingerprint(publicKey: string): string {
  const bytes = parsePublicKey(publicKey, "public key");
  return (hex(sha256(bytes)).slice(0, 32).match(/../g) ?? []).join(":");
}
