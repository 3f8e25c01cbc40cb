/**
 * Remote commands by request/response: the dispatcher routes commands to the handlers the
 * service registers (read and diagnose are plugged in by the service; ping is built in),
 * through validation (command-validation.ts) and the idempotency cache (idempotency-cache.ts).
 *
 * Requests arrive on `<prefix>/<agent>/cmd/<command>` with a JSON body
 *   { "id": "...", "command": "read" | "diagnose" | "ping", ...fields }
 * and every reply goes to the request's reply topic with its correlation, in the wire form of
 * the configured protocol (command-wire.ts: MQTT 5 properties, or the 3.1.1 payload's `reply`):
 *   progress  { id, command, kind: "progress", step, at, detail? }
 *   result    { id, command, kind: "result", ok: true, result }
 *   error     { id?, command?, kind: "result", ok: false, error: { code, message } }
 * The dispatcher never throws: a bad command costs an error reply, not the agent.
 *
 * Bounds: retained commands never run (the link subscribes with Retain As Published, so a
 * retained command keeps its flag on live delivery too); a Message Expiry Interval counts for
 * at most MAX_COMMAND_EXPIRY_S; the idempotency cache never forgets a running command and
 * bounds the duplicates waiting on one; stop() returns within its grace period.
 */
import { MrtdError } from "../errors.ts";
import {
  COMMAND_NAMES,
  CommandError,
  type AgentCommand,
  type CommandErrorBody,
  type CommandName,
  type DiagnoseCommand,
  type ErrorCode,
  type ErrorReply,
  type FinalReply,
  type PingCommand,
  type ProgressReply,
  type ReadCommand,
} from "./command-types.ts";
import { MAX_INCOMING_PACKET_BYTES, parseCommand, type ParseOptions } from "./command-validation.ts";
import { readCommandRouting, stampReply, type MqttProtocol, type ReplyRoute } from "./command-wire.ts";
import type { SealedEnvelope } from "./envelope.ts";
import { IdempotencyCache } from "./idempotency-cache.ts";
import type { IncomingMessage, PublishOptions } from "./mqtt-link.ts";
import type { AgentTopics } from "./topics.ts";

/** The longest expiry a command is honoured with (24 h), in either wire form (command-wire.ts). */
export { MAX_COMMAND_EXPIRY_S } from "./command-wire.ts";
/** How long stop() waits for running commands to answer after aborting them (ms). */
export const STOP_GRACE_MS = 5000;

export interface HandlerContext {
  /** Sends a progress reply (best effort; never throws). */
  progress(step: string, detail?: Record<string, unknown>): Promise<void>;
  /** Aborted when the request's MQTT message expiry passes or the dispatcher stops. */
  signal: AbortSignal;
  /** Epoch ms after which the requester no longer wants the reply (MQTT 5 message expiry, 3.1.1 reply.expiresAt), if any. */
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
  /** Commands with nowhere to reply: no or a bad response topic (MQTT 5) or reply object (3.1.1). */
  noResponseTopic: number;
  replyFailures: number;
}

/** Seals results to a command's replyPublicKey (the agent's key, agent-key.ts). */
export interface ReplySealer {
  sealReply(commandId: string, to: Uint8Array, result: unknown): Promise<SealedEnvelope>;
}

export interface DispatcherOptions {
  link: ReplyPublisher;
  topics: AgentTopics;
  /** The wire form of commands and replies (command-wire.ts); default "5". */
  protocol?: MqttProtocol;
  /** How access keys are accepted (ParseOptions). */
  parse?: ParseOptions;
  /** Seals results of commands that carry replyPublicKey; without it they go in clear. */
  sealer?: ReplySealer;
  /** Called once a command that ran has sent its final reply (the service collects a read's garbage then). */
  afterReply?: (command: AgentCommand) => void;
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
  readonly #protocol: MqttProtocol;
  readonly #parse: ParseOptions;
  readonly #sealer: ReplySealer | undefined;
  readonly #afterReply: ((command: AgentCommand) => void) | undefined;
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
    this.#protocol = opts.protocol ?? "5";
    this.#parse = opts.parse ?? {};
    this.#sealer = opts.sealer;
    this.#afterReply = opts.afterReply;
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

  /**
   * Aborts running handlers and waits for their replies, at most `graceMs`: a handler that
   * ignores its abort signal leaves its command unanswered rather than stop() hanging.
   */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    this.#stop.abort();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((r) => (timer = setTimeout(r, graceMs)));
    await Promise.race([Promise.allSettled([...this.#running]), late]);
    clearTimeout(timer);
  }

  async #handle(msg: IncomingMessage): Promise<void> {
    const topicCommand = this.#topics.commandOf(msg.topic);
    if (topicCommand === undefined) return; // not a command topic of ours
    this.#stats.received++;
    this.#log("debug", "command received", { command: topicCommand, bytes: msg.payload.length, qos: msg.qos, retained: msg.retain, expiryS: msg.messageExpiryIntervalS });
    if (msg.retain) {
      // A retained command would run again at every reconnect: never executed.
      this.#stats.ignoredRetained++;
      this.#log("warn", "ignored a retained command", { topic: msg.topic });
      return;
    }
    const routing = readCommandRouting(this.#protocol, msg, this.#topics, this.#now(), MAX_INCOMING_PACKET_BYTES);
    if (routing.kind === "drop") {
      // The sender's topic and payload are not logged: only why there is nowhere to reply.
      this.#stats.noResponseTopic++;
      this.#log("warn", "ignored a command: nowhere to reply", { topic: msg.topic, protocol: this.#protocol, why: routing.reason });
      return;
    }
    const to = routing.route;
    if (routing.kind === "refuse") {
      if (routing.error.code === "EXPIRED") this.#stats.expired++;
      else this.#count(routing.error.code);
      this.#log("info", "refused a command", { code: routing.error.code, command: topicCommand });
      const reply: ErrorReply = { kind: "result", ok: false, error: routing.error };
      if (routing.id !== undefined) reply.id = routing.id;
      if ((COMMAND_NAMES as readonly string[]).includes(topicCommand)) reply.command = topicCommand as CommandName;
      await this.#send(to, reply);
      return;
    }
    if (to.deadline !== undefined && this.#now() >= to.deadline) {
      this.#stats.expired++;
      this.#log("info", "dropped an expired command", { topic: msg.topic });
      return;
    }
    const deadline = to.deadline;

    const parsed = parseCommand(msg.payload, topicCommand, this.#parse);
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
      } else {
        let waiter!: (reply: string) => void;
        const answered = new Promise<void>((resolve) => (waiter = (r) => void this.#send(to, r).then(resolve)));
        if (this.#cache.wait(cmd.id, waiter)) await answered;
        else {
          this.#count("BUSY");
          await this.#send(to, errorReply(cmd, "BUSY", `command ${cmd.id} is running and enough repeats of it are waiting for its reply; retry later with the same id`));
        }
      }
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

    if (!this.#cache.begin(cmd.id)) {
      this.#count("BUSY");
      await this.#send(to, errorReply(cmd, "BUSY", "the agent is running as many commands as it keeps track of; retry later with the same id"));
      return;
    }
    this.#stats.accepted++;
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
        this.#log("debug", "command progress", { id: cmd.id, command: cmd.command, step });
        const p: ProgressReply = { id: cmd.id, command: cmd.command, kind: "progress", step, at: new Date(this.#now()).toISOString() };
        if (detail !== undefined) p.detail = detail;
        await this.#send(to, p);
      },
    };
    this.#log("info", "command started", { id: cmd.id, command: cmd.command });
    let reply: FinalReply;
    let sealMs: number | undefined;
    try {
      const result = await handler(cmd, ctx);
      if (cmd.replyPublicKey && this.#sealer) {
        const t0 = performance.now();
        reply = { id: cmd.id, command: cmd.command, kind: "result", ok: true, sealed: await this.#sealer.sealReply(cmd.id, cmd.replyPublicKey, result ?? null) };
        sealMs = Math.round((performance.now() - t0) * 100) / 100;
      } else reply = { id: cmd.id, command: cmd.command, kind: "result", ok: true, result: result ?? null };
    } catch (e) {
      const { code, message } = errorOf(e);
      this.#count(code);
      reply = errorReply(cmd, code, message);
    } finally {
      if (usesCard) this.#cardCommands--;
      if (expiryTimer) clearTimeout(expiryTimer);
      this.#stop.signal.removeEventListener("abort", onStop);
    }
    this.#log("info", "command finished", { id: cmd.id, command: cmd.command, ok: reply.ok, code: reply.ok ? undefined : reply.error.code, sealMs });
    const json = JSON.stringify(reply);
    const waiters = this.#cache.finish(cmd.id, json, reply.ok ? { ok: true } : { ok: false, code: reply.error.code });
    await this.#send(to, json);
    for (const w of waiters) w(json);
    this.#afterReply?.(cmd);
  }

  #count(code: ErrorCode): void {
    this.#stats.rejected[code] = (this.#stats.rejected[code] ?? 0) + 1;
  }

  async #send(to: ReplyRoute, reply: ProgressReply | FinalReply | string): Promise<void> {
    const wire = stampReply(to, typeof reply === "string" ? reply : JSON.stringify(reply), this.#now());
    if (!wire) {
      // The requester stopped waiting: a late reply would only clutter the broker.
      this.#stats.expired++;
      return;
    }
    const opts: PublishOptions = { qos: 1 };
    const p = wire.properties;
    if (p?.contentType) opts.contentType = p.contentType;
    if (p?.correlationData) opts.correlationData = p.correlationData;
    if (p?.messageExpiryInterval !== undefined) opts.messageExpiryIntervalS = p.messageExpiryInterval;
    try {
      await this.#link.publish(wire.topic, wire.payload, opts);
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
