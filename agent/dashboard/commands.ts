/**
 * Operator commands from the page, server side. The browser builds the command (the access key
 * sealed there to the agent's public key, a reply key of its own); this module checks it holds
 * nothing in clear that it must not (no access key, no MRZ-looking text) and stays within bounds,
 * publishes it to `<prefix>/<agent>/cmd/<name>` with the MQTT 5 response topic
 * `<prefix>/<agent>/reply/<requester>` (the dashboard's own identity), correlation data and a
 * message expiry, and relays every reply for it, as received (sealed results stay sealed), to
 * the page that sent it, until the final one or the timeout.
 *
 * The MQTT side is one narrow interface (CommandLink: publish, subscribe to replies), so
 * another transport can carry the same wire format.
 */
import { fromBase64 } from "../bytes.ts";
import { MAX_COMMAND_BYTES, MAX_READ_TIMEOUT_S } from "../service/command-validation.ts";
import { buildCommandPublish, type MqttProtocol } from "../service/command-wire.ts";
import { EnvelopeError, parseEnvelope, parsePublicKey } from "../service/envelope.ts";
import { SEALED_KEY_PLAINTEXT_BYTES } from "../service/sealed-access-key.ts";
import { MAX_TOPIC_BYTES } from "../service/topics.ts";

export const DASHBOARD_COMMANDS = ["ping", "diagnose", "read"] as const;
export type DashboardCommandName = (typeof DASHBOARD_COMMANDS)[number];

/** The publish/subscribe a relay needs (fleet-subscriber.ts's FleetSubscriber has both). */
export interface CommandLink {
  /** The broker's protocol (default "5"): in 3.1.1 the reply routing travels in the payload (command-wire.ts). */
  readonly protocol?: MqttProtocol;
  publish(topic: string, payload: string, opts: { responseTopic?: string; correlationData?: Uint8Array; messageExpiryIntervalS?: number }): Promise<void>;
  subscribeReplies(filter: string, onMessage: (topic: string, payload: Uint8Array, correlationData: Uint8Array | undefined) => void): Promise<void>;
}

/** A command refused before it is sent: HTTP status and a message for the page (never a field's value). */
export class CommandRefused extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "CommandRefused";
    this.status = status;
    this.code = code;
  }
}

export interface CheckedCommand {
  id: string;
  name: DashboardCommandName;
  reader: string | null;
  /** The command's JSON body as published (only the known fields; command-wire.ts adds the 3.1.1 `reply`). */
  body: Record<string, unknown>;
  /** How long the relay waits for the final reply, and the command's message expiry. */
  timeoutS: number;
}

const ID = /^(ping|diagnose|read)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const FILE = /^(COM|SOD|DG([1-9]|1[0-6]))$/;
const FIELDS: Record<DashboardCommandName, readonly string[]> = {
  ping: ["id", "command", "replyPublicKey"],
  diagnose: ["id", "command", "replyPublicKey", "reader", "count"],
  read: ["id", "command", "replyPublicKey", "reader", "timeoutS", "files", "includePersonalData", "sealedAccessKey"],
};
/** Field names that would carry an access key or personal data in clear. */
const CLEAR_KEY_FIELDS = /^(accesskey|mrz|can|documentnumber|dateofbirth|dateofexpiry|doc|dob|expiry|birthdate|expirydate|key|password|pin|puk)$/i;
/** MRZ-looking text: filler runs, or a document number + check digit + nationality + birth date (TD3 line 2). */
const MRZ_LIKE = /<<|[A-Z0-9<]{9}[0-9][A-Z<]{3}[0-9]{7}/;
/** Extra time the relay waits beyond the card wait (as `mrtd-agent remote read`). */
export const READ_MARGIN_S = 90;
export const PING_TIMEOUT_S = 15;
export const DIAGNOSE_TIMEOUT_S = 180;
/** Base64 length of one sealed access-key message (256 bytes + the 16-byte tag). */
const SEALED_KEY_CT_CHARS = 4 * Math.ceil((SEALED_KEY_PLAINTEXT_BYTES + 16) / 3);

/** Checks a command the page built for `agentId`; throws CommandRefused. */
export function checkCommand(agentId: string, raw: unknown): CheckedCommand {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new CommandRefused(400, "BAD_JSON", "the command must be a JSON object");
  refuseClear(raw, "");
  const b = raw as Record<string, unknown>;
  const name = b.command;
  if (typeof name !== "string" || !(DASHBOARD_COMMANDS as readonly string[]).includes(name)) throw new CommandRefused(400, "UNKNOWN_COMMAND", `command must be one of ${DASHBOARD_COMMANDS.join(", ")}`);
  const cmd = name as DashboardCommandName;
  for (const k of Object.keys(b)) if (!FIELDS[cmd].includes(k)) throw new CommandRefused(400, "BAD_FIELD", `${k.slice(0, 64)} is not a field of ${cmd} (known: ${FIELDS[cmd].join(", ")})`);
  if (typeof b.id !== "string" || !ID.test(b.id) || !b.id.startsWith(`${cmd}-`)) throw new CommandRefused(400, "BAD_FIELD", `id must be "${cmd}-" and a UUID`);
  const id = b.id;
  try {
    parsePublicKey(b.replyPublicKey, "replyPublicKey");
  } catch (e) {
    if (e instanceof EnvelopeError) throw new CommandRefused(400, "BAD_FIELD", `${e.message}; the page makes one per command`);
    throw e;
  }
  const out: Record<string, unknown> = { id, command: cmd, replyPublicKey: b.replyPublicKey };
  let reader: string | null = null;
  if (b.reader !== undefined) {
    if (typeof b.reader !== "string" || b.reader.length === 0 || b.reader.length > 128) throw new CommandRefused(400, "BAD_FIELD", "reader must be 1-128 characters");
    reader = b.reader;
    out.reader = reader;
  }
  let timeoutS = PING_TIMEOUT_S;
  if (cmd === "diagnose") {
    out.count = intField(b, "count", 1, 1000, 10);
    timeoutS = DIAGNOSE_TIMEOUT_S;
  }
  if (cmd === "read") {
    const wait = intField(b, "timeoutS", 1, MAX_READ_TIMEOUT_S, 30);
    out.timeoutS = wait;
    timeoutS = wait + READ_MARGIN_S;
    if (b.includePersonalData !== undefined && typeof b.includePersonalData !== "boolean") throw new CommandRefused(400, "BAD_FIELD", "includePersonalData must be true or false");
    out.includePersonalData = b.includePersonalData ?? false;
    if (b.files !== undefined) {
      if (!Array.isArray(b.files) || b.files.length === 0 || b.files.length > 18) throw new CommandRefused(400, "BAD_FIELD", "files must be 1-18 file names (COM, SOD, DG1..DG16)");
      const seen = new Set<string>();
      for (const f of b.files) {
        if (typeof f !== "string" || !FILE.test(f) || seen.has(f)) throw new CommandRefused(400, "BAD_FIELD", "files must be distinct names among COM, SOD, DG1..DG16");
        seen.add(f);
      }
      out.files = b.files;
    }
    out.sealedAccessKey = checkSealedKey(b.sealedAccessKey, agentId, id);
  }
  if (JSON.stringify(out).length > MAX_COMMAND_BYTES) throw new CommandRefused(400, "TOO_LARGE", `the command is larger than ${MAX_COMMAND_BYTES} bytes`);
  return { id, name: cmd, reader, body: out, timeoutS };
}

/** The sealed access key's envelope: kind access-key, bound to this agent and command, one message of the padded size. */
function checkSealedKey(v: unknown, agentId: string, id: string): unknown {
  if (v === undefined) throw new CommandRefused(400, "MISSING_FIELD", "sealedAccessKey is missing: the page seals the access key to the agent's public key");
  try {
    const env = parseEnvelope(v);
    if (env.kind !== "access-key" || env.agent !== agentId || env.id !== id) throw new CommandRefused(400, "BAD_FIELD", "sealedAccessKey is not sealed for this agent and command");
    if (typeof env.enc !== "string" || fromBase64Strict(env.enc) !== 32) throw new CommandRefused(400, "BAD_FIELD", "sealedAccessKey.enc must be 32 bytes in base64");
    if (env.ct.length !== 1 || typeof env.ct[0] !== "string" || env.ct[0].length !== SEALED_KEY_CT_CHARS || fromBase64Strict(env.ct[0]) !== SEALED_KEY_PLAINTEXT_BYTES + 16) {
      throw new CommandRefused(400, "BAD_FIELD", `sealedAccessKey.ct must be one sealed message of ${SEALED_KEY_PLAINTEXT_BYTES} bytes`);
    }
    return { alg: env.alg, mode: env.mode, kind: env.kind, agent: env.agent, id: env.id, enc: env.enc, ct: [env.ct[0]] };
  } catch (e) {
    if (e instanceof EnvelopeError) throw new CommandRefused(400, "BAD_FIELD", `sealedAccessKey: ${e.message.replace(/^envelope: /, "")}`);
    throw e;
  }
}

function fromBase64Strict(s: string): number {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return -1;
  return fromBase64(s).length;
}

function intField(b: Record<string, unknown>, k: string, min: number, max: number, dflt: number): number {
  const v = b[k];
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new CommandRefused(400, "BAD_FIELD", `${k} must be an integer ${min}..${max}`);
  return v;
}

/**
 * Refuses a body that carries an access key or MRZ-looking text in clear, at any depth outside
 * the sealed envelope's base64: such a request already crossed the network in clear, and
 * must go no further (not to the broker, not to the log; the message names the field only).
 */
function refuseClear(v: unknown, path: string, depth = 0): void {
  if (depth > 6) throw new CommandRefused(400, "BAD_FIELD", "the command is nested too deeply");
  if (typeof v === "string") {
    if (path !== "replyPublicKey" && !/^sealedAccessKey\.(enc|ct\.\d+)$/.test(path) && MRZ_LIKE.test(v)) {
      throw new CommandRefused(400, "PLAINTEXT_ACCESS_KEY", `${path || "the body"} looks like MRZ text: access keys and MRZ data are only accepted sealed to the agent (the page seals them)`);
    }
    return;
  }
  if (typeof v !== "object" || v === null) return;
  for (const [k, x] of Object.entries(v)) {
    const p = path ? `${path}.${k}` : k;
    if (CLEAR_KEY_FIELDS.test(k)) throw new CommandRefused(400, "PLAINTEXT_ACCESS_KEY", `${p.slice(0, 64)}: an access key in clear is refused; the page seals it to the agent's public key`);
    refuseClear(x, p, depth + 1);
  }
}

// ---------------------------------------------------------------------------------------------

export type RelayEnd = { kind: "final"; ok: boolean; code: string | null } | { kind: "timeout" } | { kind: "stopped" };

interface Pending {
  agentId: string;
  id: string;
  onReply: (text: string) => void;
  done: (end: RelayEnd) => void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Sends commands and routes their replies: one subscription to `<prefix>/+/reply/<requester>`,
 * replies matched by correlation data (16 random bytes per command), their agent (the reply
 * topic's) and command id. Replies are passed on as received text.
 */
export class CommandRelay {
  readonly #link: CommandLink;
  readonly #prefix: string;
  readonly #requester: string;
  readonly #pending = new Map<string, Pending>();
  #subscribed: Promise<void> | undefined;

  constructor(link: CommandLink, prefix: string, requester: string) {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(requester)) throw new RangeError("the requester id must be 1-64 of A-Z a-z 0-9 . _ - (the dashboard's MQTT client id)");
    this.#link = link;
    this.#prefix = prefix;
    this.#requester = requester;
  }

  get running(): number {
    return this.#pending.size;
  }

  replyTopic(agentId: string): string {
    return `${this.#prefix}/${agentId}/reply/${this.#requester}`;
  }

  /**
   * Publishes `c` to `agentId` and calls onReply with each reply's text until the final reply,
   * or until `c.timeoutS` passes. Resolves when it was published (the PUBACK) with a promise of
   * how it ended; rejects if the broker refused it.
   */
  async send(agentId: string, c: CheckedCommand, onReply: (text: string) => void): Promise<{ ended: Promise<RelayEnd>; cancel(): void }> {
    const responseTopic = this.replyTopic(agentId);
    if (new TextEncoder().encode(responseTopic).length > MAX_TOPIC_BYTES) throw new CommandRefused(400, "BAD_FIELD", "the reply topic would be too long");
    this.#subscribed ??= this.#link.subscribeReplies(`${this.#prefix}/+/reply/${this.#requester}`, (t, p, cd) => this.#onReply(t, p, cd)).catch((e) => {
      this.#subscribed = undefined;
      throw e;
    });
    await this.#subscribed;
    const corr = crypto.getRandomValues(new Uint8Array(16));
    const key = hexOf(corr);
    let done!: (e: RelayEnd) => void;
    const ended = new Promise<RelayEnd>((r) => (done = r));
    const finish = (e: RelayEnd) => {
      const p = this.#pending.get(key);
      if (!p) return;
      clearTimeout(p.timer);
      this.#pending.delete(key);
      done(e);
    };
    this.#pending.set(key, { agentId, id: c.id, onReply, done: finish, timer: setTimeout(() => finish({ kind: "timeout" }), c.timeoutS * 1000) });
    try {
      // The same wire form as the operator CLI's: MQTT 5 properties, or the 3.1.1 payload's `reply`.
      const wire = buildCommandPublish(this.#link.protocol ?? "5", {
        prefix: this.#prefix,
        agentId,
        command: c.name,
        requester: this.#requester,
        body: c.body,
        correlation: corr,
        expirySeconds: c.timeoutS,
      });
      await this.#link.publish(wire.topic, wire.payload, { responseTopic, correlationData: corr, messageExpiryIntervalS: c.timeoutS });
    } catch (e) {
      const p = this.#pending.get(key);
      if (p) clearTimeout(p.timer);
      this.#pending.delete(key);
      throw e;
    }
    return { ended, cancel: () => finish({ kind: "stopped" }) };
  }

  /** Ends every running command (the dashboard stops). */
  stop(): void {
    for (const p of [...this.#pending.values()]) p.done({ kind: "stopped" });
  }

  #onReply(topic: string, payload: Uint8Array, cd: Uint8Array | undefined): void {
    if (!cd) return;
    const p = this.#pending.get(hexOf(cd));
    if (!p || topic !== this.replyTopic(p.agentId)) return;
    let text: string;
    let j: { id?: unknown; kind?: unknown; ok?: unknown; error?: { code?: unknown } };
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(payload);
      j = JSON.parse(text) as typeof j;
    } catch {
      return;
    }
    if (typeof j !== "object" || j === null || (j.id !== undefined && j.id !== p.id)) return;
    p.onReply(text);
    if (j.kind === "result") p.done({ kind: "final", ok: j.ok === true, code: j.ok === true ? null : typeof j.error?.code === "string" ? j.error.code.slice(0, 32) : "UNKNOWN" });
  }
}

function hexOf(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}
