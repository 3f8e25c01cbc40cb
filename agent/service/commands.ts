/**
 * Remote commands by MQTT 5 request/response (OASIS MQTT 5.0 §4.10): validation, an
 * idempotency cache by command id, and a dispatcher that routes commands to handlers the
 * service registers (read and diagnose are plugged in by the service; ping is built in).
 *
 * Requests arrive on `<prefix>/<agent>/cmd/<command>` with a JSON body
 *   { "id": "...", "command": "read" | "diagnose" | "ping", ...fields }
 * and every reply goes to the request's Response Topic with its Correlation Data:
 *   progress  { id, command, kind: "progress", step, at, detail? }
 *   result    { id, command, kind: "result", ok: true, result }
 *   error     { id?, command?, kind: "result", ok: false, error: { code, message } }
 * Messages name fields and problems, never values (an access key is the document's secret).
 * The dispatcher never throws: a bad command costs an error reply, not the agent.
 */
import type { FileKey } from "../reading/read-result.ts";
import { MrtdError } from "../errors.ts";
import type { AccessKey } from "./access-key.ts";
import { AccessKeyProblem, parseAccessKey } from "./access-key.ts";
import { didYouMean } from "./config.ts";
import type { IncomingMessage, PublishOptions } from "./mqtt-link.ts";
import type { AgentTopics } from "./topics.ts";
import { isPublishableTopic } from "./topics.ts";

export const COMMAND_NAMES = ["read", "diagnose", "ping"] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

export const MAX_COMMAND_BYTES = 16 * 1024;
export const DEFAULT_READ_TIMEOUT_S = 30;
export const MAX_READ_TIMEOUT_S = 600;
export const DEFAULT_DIAGNOSE_COUNT = 10;

export type ErrorCode =
  | "BAD_JSON"
  | "TOO_LARGE"
  | "UNKNOWN_COMMAND"
  | "MISSING_FIELD"
  | "BAD_FIELD"
  | "BAD_CHECK_DIGIT"
  | "BUSY"
  | "DUPLICATE"
  | "EXPIRED"
  | "NOT_SUPPORTED"
  | "TIMEOUT"
  | "NO_READER"
  | "ACCESS_DENIED"
  | "CARD_ERROR"
  | "TRANSPORT"
  | "INTERNAL";

interface CommandBase {
  id: string;
}
export interface PingCommand extends CommandBase {
  command: "ping";
}
export interface ReadCommand extends CommandBase {
  command: "read";
  accessKey: AccessKey;
  /** Data groups to read; absent: every data group the signed EF.SOD lists (DG3/DG4 aside). */
  files?: FileKey[];
  /** Part of a reader name (case-insensitive); any selected reader when absent. */
  reader?: string;
  timeoutS: number;
  includePersonalData: boolean;
  /** X25519 public key the personal data is sealed to; present when includePersonalData. */
  replyPublicKey?: Uint8Array;
}
export interface DiagnoseCommand extends CommandBase {
  command: "diagnose";
  reader?: string;
  count: number;
}
export type AgentCommand = PingCommand | ReadCommand | DiagnoseCommand;

export interface CommandErrorBody {
  code: ErrorCode;
  message: string;
}

/** Thrown by validation and by handlers to answer with a specific code. */
export class CommandError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = "CommandError";
    this.code = code;
  }
}

export type ParseResult =
  | { ok: true; command: AgentCommand }
  | { ok: false; id?: string; command?: string; error: CommandErrorBody };

const ID = /^[\x21-\x7e]{1,128}$/;
const FILE = /^(COM|SOD|DG([1-9]|1[0-6]))$/;
const FIELDS: Record<CommandName, readonly string[]> = {
  ping: ["id", "command"],
  read: ["id", "command", "accessKey", "files", "reader", "timeoutS", "includePersonalData", "replyPublicKey"],
  diagnose: ["id", "command", "reader", "count"],
};

/**
 * Validates a command payload. `topicCommand` is the last level of the cmd topic; when the body
 * also names a command the two must agree.
 */
export function parseCommand(payload: Uint8Array, topicCommand?: string): ParseResult {
  if (payload.length > MAX_COMMAND_BYTES) {
    return { ok: false, error: { code: "TOO_LARGE", message: `command payload is ${payload.length} bytes; the limit is ${MAX_COMMAND_BYTES}` } };
  }
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch {
    // The parser's message quotes the input: not repeated.
    return { ok: false, error: { code: "BAD_JSON", message: "command payload is not valid UTF-8 JSON" } };
  }
  const rawId = typeof body === "object" && body !== null ? (body as Record<string, unknown>).id : undefined;
  const id = typeof rawId === "string" && ID.test(rawId) ? rawId : undefined;
  let name: string | undefined = topicCommand;
  try {
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw new CommandError("BAD_JSON", "command payload must be a JSON object");
    const b = body as Record<string, unknown>;
    if (topicCommand !== undefined && !isCommandName(topicCommand)) {
      throw new CommandError("UNKNOWN_COMMAND", `unknown command ${JSON.stringify(topicCommand)}${didYouMean(topicCommand, COMMAND_NAMES)}; known: ${COMMAND_NAMES.join(", ")}`);
    }
    if (b.command !== undefined) {
      if (typeof b.command !== "string") throw new CommandError("BAD_FIELD", "command must be a string");
      if (!isCommandName(b.command)) {
        throw new CommandError("UNKNOWN_COMMAND", `unknown command ${JSON.stringify(b.command.slice(0, 32))}${didYouMean(b.command, COMMAND_NAMES)}; known: ${COMMAND_NAMES.join(", ")}`);
      }
      if (topicCommand !== undefined && b.command !== topicCommand) throw new CommandError("BAD_FIELD", `command "${b.command}" does not match the topic's command "${topicCommand}"`);
      name = b.command;
    }
    if (name === undefined) throw new CommandError("MISSING_FIELD", "command is missing");
    if (b.id === undefined) throw new CommandError("MISSING_FIELD", "id is missing (a command id makes retries idempotent)");
    if (id === undefined) throw new CommandError("BAD_FIELD", "id must be a string of 1-128 printable ASCII characters without spaces");
    const cmdName = name as CommandName;
    for (const k of Object.keys(b)) {
      if (!FIELDS[cmdName].includes(k)) throw new CommandError("BAD_FIELD", `${k.slice(0, 64)} is not a field of ${cmdName}${didYouMean(k, FIELDS[cmdName])}`);
    }
    switch (cmdName) {
      case "ping":
        return { ok: true, command: { id, command: "ping" } };
      case "diagnose": {
        const cmd: DiagnoseCommand = { id, command: "diagnose", count: intField(b, "count", 1, 1000, DEFAULT_DIAGNOSE_COUNT) };
        const reader = readerField(b);
        if (reader !== undefined) cmd.reader = reader;
        return { ok: true, command: cmd };
      }
      case "read":
        return { ok: true, command: parseRead(b, id) };
    }
  } catch (e) {
    const error: CommandErrorBody =
      e instanceof CommandError || e instanceof AccessKeyProblem
        ? { code: e.code, message: e.message }
        : { code: "INTERNAL", message: "command validation failed unexpectedly" };
    const out: ParseResult = { ok: false, error };
    if (id !== undefined) out.id = id;
    if (name !== undefined && isCommandName(name)) out.command = name;
    return out;
  }
}

function parseRead(b: Record<string, unknown>, id: string): ReadCommand {
  if (b.accessKey === undefined) throw new CommandError("MISSING_FIELD", "accessKey is missing");
  const accessKey = parseAccessKey(b.accessKey, "accessKey");
  let files: FileKey[] | undefined;
  if (b.files !== undefined) {
    if (!Array.isArray(b.files) || b.files.length === 0 || b.files.length > 18) throw new CommandError("BAD_FIELD", "files must be a non-empty array of file names (COM, SOD, DG1..DG16)");
    const seen = new Set<string>();
    for (const [i, f] of b.files.entries()) {
      if (typeof f !== "string" || !FILE.test(f)) throw new CommandError("BAD_FIELD", `files[${i}] must be one of COM, SOD, DG1..DG16`);
      if (seen.has(f)) throw new CommandError("BAD_FIELD", `files[${i}] repeats ${f}`);
      seen.add(f);
    }
    files = b.files as FileKey[];
  }
  const includePersonalData = boolField(b, "includePersonalData", false);
  const cmd: ReadCommand = { id, command: "read", accessKey, timeoutS: intField(b, "timeoutS", 1, MAX_READ_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S), includePersonalData };
  if (files) cmd.files = files;
  const reader = readerField(b);
  if (reader !== undefined) cmd.reader = reader;
  if (b.replyPublicKey !== undefined) {
    const k = b.replyPublicKey;
    const bytes = typeof k === "string" && /^[A-Za-z0-9+/]{43}=$/.test(k) ? new Uint8Array(Buffer.from(k, "base64")) : undefined;
    if (!bytes || bytes.length !== 32) throw new CommandError("BAD_FIELD", "replyPublicKey must be a base64 X25519 public key (32 bytes)");
    cmd.replyPublicKey = bytes;
  }
  if (includePersonalData && !cmd.replyPublicKey) {
    throw new CommandError("MISSING_FIELD", "replyPublicKey is required when includePersonalData is true (personal data is only sent encrypted)");
  }
  return cmd;
}

function intField(b: Record<string, unknown>, key: string, min: number, max: number, dflt: number): number {
  const v = b[key];
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v)) throw new CommandError("BAD_FIELD", `${key} must be an integer`);
  if (v < min || v > max) throw new CommandError("BAD_FIELD", `${key} must be between ${min} and ${max}`);
  return v;
}

function boolField(b: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = b[key];
  if (v === undefined) return dflt;
  if (typeof v !== "boolean") throw new CommandError("BAD_FIELD", `${key} must be true or false`);
  return v;
}

function readerField(b: Record<string, unknown>): string | undefined {
  const v = b.reader;
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v.length === 0 || v.length > 128) throw new CommandError("BAD_FIELD", "reader must be a non-empty string of at most 128 characters");
  return v;
}

function isCommandName(name: string): name is CommandName {
  return (COMMAND_NAMES as readonly string[]).includes(name);
}

// ---------------------------------------------------------------------------------------------
// Replies

export interface ProgressReply {
  id: string;
  command: CommandName;
  kind: "progress";
  step: string;
  at: string;
  detail?: Record<string, unknown>;
}
export interface ResultReply {
  id: string;
  command: CommandName;
  kind: "result";
  ok: true;
  result: unknown;
}
export interface ErrorReply {
  id?: string;
  command?: CommandName;
  kind: "result";
  ok: false;
  error: CommandErrorBody;
}
export type FinalReply = ResultReply | ErrorReply;

// ---------------------------------------------------------------------------------------------
// Idempotency

interface CacheEntry {
  at: number;
  /** The final reply as sent (JSON), while it is held. */
  reply?: string;
  /** How the command ended (kept when the reply is dropped). */
  outcome?: { ok: boolean; code?: ErrorCode };
  waiters: Array<(reply: string) => void>;
}

/**
 * Remembers command ids (running or answered) for `ttlMs`, at most `maxEntries` (oldest
 * evicted), so a repeated id never runs twice. The replies themselves are held within
 * `maxReplyBytes` in all: a read reply with a sealed face image is tens of kilobytes, and
 * 512 of them would be a board's memory. Past the budget the oldest replies are dropped and
 * only their id and outcome remain; a repeat of such an id is answered DUPLICATE, not run.
 */
export class IdempotencyCache {
  readonly #entries = new Map<string, CacheEntry>();
  readonly #maxEntries: number;
  readonly #maxReplyBytes: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  #replyBytes = 0;
  constructor(opts: { maxEntries?: number; maxReplyBytes?: number; ttlMs?: number; now?: () => number } = {}) {
    this.#maxEntries = opts.maxEntries ?? 512;
    this.#maxReplyBytes = opts.maxReplyBytes ?? 256 * 1024;
    this.#ttlMs = opts.ttlMs ?? 10 * 60_000;
    this.#now = opts.now ?? Date.now;
  }
  get size(): number {
    return this.#entries.size;
  }
  /** Bytes of the replies held (UTF-16 code units of their JSON, which is ASCII). */
  get replyBytes(): number {
    return this.#replyBytes;
  }
  /** The live entry for `id`, or undefined (expired entries are forgotten). */
  get(id: string): CacheEntry | undefined {
    const e = this.#entries.get(id);
    if (e?.outcome && this.#now() - e.at > this.#ttlMs) {
      this.#delete(id);
      return undefined;
    }
    return e;
  }
  /** Marks `id` as running. */
  begin(id: string): void {
    this.#delete(id);
    this.#entries.set(id, { at: this.#now(), waiters: [] });
    while (this.#entries.size > this.#maxEntries) this.#delete(this.#entries.keys().next().value as string);
  }
  /** Records the final reply (its JSON) and returns the callers that waited on the running command. */
  finish(id: string, reply: string, outcome: { ok: boolean; code?: ErrorCode }): Array<(reply: string) => void> {
    const waiters = this.#entries.get(id)?.waiters ?? [];
    this.#delete(id); // re-insert at the end: eviction order follows completion
    const entry: CacheEntry = { at: this.#now(), outcome, waiters: [] };
    if (reply.length <= this.#maxReplyBytes) {
      entry.reply = reply;
      this.#replyBytes += reply.length;
    }
    this.#entries.set(id, entry);
    // Over budget: drop the oldest held replies (never the one just added, which fits).
    for (const [oldId, e] of this.#entries) {
      if (this.#replyBytes <= this.#maxReplyBytes) break;
      if (oldId === id || e.reply === undefined) continue;
      this.#replyBytes -= e.reply.length;
      delete e.reply;
    }
    return waiters;
  }
  /** Forgets `id` (for answers that must not be replayed, e.g. BUSY). */
  forget(id: string): void {
    this.#delete(id);
  }
  #delete(id: string): void {
    const e = this.#entries.get(id);
    if (e?.reply !== undefined) this.#replyBytes -= e.reply.length;
    this.#entries.delete(id);
  }
}

// ---------------------------------------------------------------------------------------------
// Dispatcher

export interface HandlerContext {
  /** Sends a progress reply (best effort; never throws). */
  progress(step: string, detail?: Record<string, unknown>): Promise<void>;
  /** Aborted when the request's MQTT message expiry passes or the dispatcher stops. */
  signal: AbortSignal;
  /** Epoch ms after which the requester no longer wants the reply (MQTT 5 message expiry), if any. */
  deadline: number | undefined;
  receivedAt: number;
}

export type CommandHandler<C extends AgentCommand> = (command: C, ctx: HandlerContext) => Promise<unknown>;

export interface CommandHandlers {
  read?: CommandHandler<ReadCommand>;
  diagnose?: CommandHandler<DiagnoseCommand>;
  ping?: CommandHandler<PingCommand>;
}

/** What the dispatcher needs from the MQTT link. */
export interface ReplyPublisher {
  publish(topic: string, payload: string, opts: PublishOptions): Promise<void>;
}

export interface DispatcherLog {
  (level: "debug" | "info" | "warn" | "error", message: string, fields?: Record<string, unknown>): void;
}

export interface DispatcherStats {
  received: number;
  accepted: number;
  rejected: Partial<Record<ErrorCode, number>>;
  duplicates: number;
  expired: number;
  ignoredRetained: number;
  noResponseTopic: number;
  replyFailures: number;
}

export interface DispatcherOptions {
  link: ReplyPublisher;
  topics: AgentTopics;
  handlers?: CommandHandlers;
  /** Commands that use a card (read, diagnose) allowed at once; more are refused BUSY. Default 1. */
  maxCardCommands?: number;
  cache?: IdempotencyCache;
  log?: DispatcherLog;
  now?: () => number;
}

export class CommandDispatcher {
  readonly #link: ReplyPublisher;
  readonly #topics: AgentTopics;
  readonly #handlers: CommandHandlers;
  readonly #maxCardCommands: number;
  readonly #cache: IdempotencyCache;
  readonly #log: DispatcherLog;
  readonly #now: () => number;
  readonly #running = new Set<Promise<void>>();
  readonly #stop = new AbortController();
  #cardCommands = 0;
  readonly #stats: DispatcherStats = { received: 0, accepted: 0, rejected: {}, duplicates: 0, expired: 0, ignoredRetained: 0, noResponseTopic: 0, replyFailures: 0 };

  constructor(opts: DispatcherOptions) {
    this.#link = opts.link;
    this.#topics = opts.topics;
    this.#handlers = { ping: async () => ({ pong: true, agentId: opts.topics.agentId }), ...opts.handlers };
    this.#maxCardCommands = opts.maxCardCommands ?? 1;
    this.#cache = opts.cache ?? new IdempotencyCache();
    this.#log = opts.log ?? (() => {});
    this.#now = opts.now ?? Date.now;
  }

  register<K extends CommandName>(name: K, handler: NonNullable<CommandHandlers[K]>): void {
    (this.#handlers as Record<string, unknown>)[name] = handler;
  }

  stats(): DispatcherStats {
    return { ...this.#stats, rejected: { ...this.#stats.rejected } };
  }

  /** Handles one incoming message; resolves when its final reply is sent. Never rejects. */
  handle(msg: IncomingMessage): Promise<void> {
    const p = this.#handle(msg).catch((e) => {
      this.#log("error", "command dispatch failed", { error: e instanceof Error ? e.name : "unknown" });
    });
    this.#running.add(p);
    void p.finally(() => this.#running.delete(p));
    return p;
  }

  /** Aborts running handlers and waits for their replies. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await Promise.allSettled([...this.#running]);
  }

  async #handle(msg: IncomingMessage): Promise<void> {
    const topicCommand = this.#topics.commandOf(msg.topic);
    if (topicCommand === undefined) return; // not a command topic of ours
    this.#stats.received++;
    if (msg.retain) {
      // A retained command would run again at every reconnect: never executed.
      this.#stats.ignoredRetained++;
      this.#log("warn", "ignored a retained command", { topic: msg.topic });
      return;
    }
    if (!msg.responseTopic || !isPublishableTopic(msg.responseTopic)) {
      this.#stats.noResponseTopic++;
      this.#log("warn", "ignored a command without a usable response topic", { topic: msg.topic });
      return;
    }
    const deadline = msg.messageExpiryIntervalS !== undefined ? msg.receivedAt + msg.messageExpiryIntervalS * 1000 : undefined;
    const to = { topic: msg.responseTopic, correlationData: msg.correlationData, deadline };
    if (deadline !== undefined && this.#now() >= deadline) {
      this.#stats.expired++;
      this.#log("info", "dropped an expired command", { topic: msg.topic });
      return;
    }

    const parsed = parseCommand(msg.payload, topicCommand);
    if (!parsed.ok) {
      this.#count(parsed.error.code);
      this.#log("info", "refused a command", { code: parsed.error.code, command: parsed.command, id: parsed.id });
      const reply: ErrorReply = { kind: "result", ok: false, error: parsed.error };
      if (parsed.id !== undefined) reply.id = parsed.id;
      if (parsed.command !== undefined) reply.command = parsed.command as CommandName;
      await this.#send(to, reply);
      return;
    }
    const cmd = parsed.command;

    const cached = this.#cache.get(cmd.id);
    if (cached) {
      this.#stats.duplicates++;
      this.#log("info", "duplicate command id", { id: cmd.id, command: cmd.command, answered: cached.outcome !== undefined, replyHeld: cached.reply !== undefined });
      if (cached.reply !== undefined) await this.#send(to, cached.reply);
      else if (cached.outcome) {
        // Answered, but the reply was dropped to bound memory: say so rather than run it again.
        const how = cached.outcome.ok ? "succeeded" : `failed ${cached.outcome.code}`;
        this.#count("DUPLICATE");
        await this.#send(to, errorReply(cmd, "DUPLICATE", `command ${cmd.id} already ran (${how}) at ${new Date(cached.at).toISOString()}; its reply is no longer held`));
      } else await new Promise<void>((resolve) => cached.waiters.push((r) => void this.#send(to, r).then(resolve)));
      return;
    }

    const handler = this.#handlers[cmd.command] as CommandHandler<AgentCommand> | undefined;
    if (!handler) {
      this.#count("NOT_SUPPORTED");
      await this.#send(to, errorReply(cmd, "NOT_SUPPORTED", `${cmd.command} is not available on this agent yet`));
      return;
    }
    const usesCard = cmd.command === "read" || cmd.command === "diagnose";
    if (usesCard && this.#cardCommands >= this.#maxCardCommands) {
      this.#count("BUSY");
      await this.#send(to, errorReply(cmd, "BUSY", "the agent is busy with another card command; retry later with the same id"));
      return;
    }

    this.#stats.accepted++;
    this.#cache.begin(cmd.id);
    if (usesCard) this.#cardCommands++;
    const abort = new AbortController();
    const onStop = () => abort.abort(new CommandError("INTERNAL", "the agent is shutting down"));
    this.#stop.signal.addEventListener("abort", onStop);
    const expiryTimer = deadline !== undefined ? setTimeout(() => abort.abort(new CommandError("EXPIRED", "the request expired")), Math.max(0, deadline - this.#now())) : undefined;
    const ctx: HandlerContext = {
      signal: abort.signal,
      deadline,
      receivedAt: msg.receivedAt,
      progress: async (step, detail) => {
        const p: ProgressReply = { id: cmd.id, command: cmd.command, kind: "progress", step, at: new Date(this.#now()).toISOString() };
        if (detail !== undefined) p.detail = detail;
        await this.#send(to, p);
      },
    };
    this.#log("info", "command started", { id: cmd.id, command: cmd.command });
    let reply: FinalReply;
    try {
      const result = await handler(cmd, ctx);
      reply = { id: cmd.id, command: cmd.command, kind: "result", ok: true, result: result ?? null };
    } catch (e) {
      const { code, message } = errorOf(e);
      this.#count(code);
      reply = errorReply(cmd, code, message);
    } finally {
      if (usesCard) this.#cardCommands--;
      if (expiryTimer) clearTimeout(expiryTimer);
      this.#stop.signal.removeEventListener("abort", onStop);
    }
    this.#log("info", "command finished", { id: cmd.id, command: cmd.command, ok: reply.ok, code: reply.ok ? undefined : reply.error.code });
    const json = JSON.stringify(reply);
    const waiters = this.#cache.finish(cmd.id, json, reply.ok ? { ok: true } : { ok: false, code: reply.error.code });
    await this.#send(to, json);
    for (const w of waiters) w(json);
  }

  #count(code: ErrorCode): void {
    this.#stats.rejected[code] = (this.#stats.rejected[code] ?? 0) + 1;
  }

  async #send(to: { topic: string; correlationData: Uint8Array | undefined; deadline: number | undefined }, reply: ProgressReply | FinalReply | string): Promise<void> {
    const opts: PublishOptions = { qos: 1, contentType: "application/json" };
    if (to.correlationData) opts.correlationData = to.correlationData;
    if (to.deadline !== undefined) {
      const left = (to.deadline - this.#now()) / 1000;
      if (left <= 0) {
        // The requester stopped waiting: a late reply would only clutter the broker.
        this.#stats.expired++;
        return;
      }
      opts.messageExpiryIntervalS = left;
    }
    try {
      await this.#link.publish(to.topic, typeof reply === "string" ? reply : JSON.stringify(reply), opts);
    } catch (e) {
      this.#stats.replyFailures++;
      this.#log("warn", "could not send a command reply", { error: e instanceof Error ? e.message : "unknown" });
    }
  }
}

function errorReply(cmd: AgentCommand, code: ErrorCode, message: string): ErrorReply {
  return { id: cmd.id, command: cmd.command, kind: "result", ok: false, error: { code, message } };
}

/** Maps a handler failure to a reply code. The agent's typed errors carry no secrets by contract. */
function errorOf(e: unknown): CommandErrorBody {
  if (e instanceof CommandError) return { code: e.code, message: e.message };
  if (e instanceof MrtdError) {
    const code: ErrorCode =
      e.kind === "access-denied" ? "ACCESS_DENIED" : e.kind === "transport" ? "TRANSPORT" : e.kind === "card-status" || e.kind === "secure-messaging" || e.kind === "parse" ? "CARD_ERROR" : "INTERNAL";
    return { code, message: e.message };
  }
  if (e instanceof DOMException && e.name === "AbortError") return { code: "EXPIRED", message: "the request expired" };
  return { code: "INTERNAL", message: `internal error (${e instanceof Error ? e.name : typeof e})` };
}
