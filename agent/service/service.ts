/**
 * The edge agent's run loop: watches readers and cards, speaks MQTT 5, answers
 * remote commands and keeps events in the disk outbox until the broker has them. This file
 * holds the lifecycle (start, stop) and the wiring; each concern has its own module:
 *
 *   PC/SC (ReaderWatcher) ──> reader/card events ──> Outbox ──drain on connect──> events topic
 *                         └─> ReaderHealthTracker ──retained, on change + interval──> health topics
 *   reads (remote `read`, or on card arrival with the test bench key) ──> read event, metrics, health
 *   MqttLink <── cmd topics ── CommandDispatcher (read, diagnose, ping) ──> replies (personal data sealed)
 *
 *   card-lock.ts          one card operation at a time
 *   card-reads.ts         one read and its event, metrics and health
 *   remote-commands.ts    the read and diagnose commands
 *   command-dispatcher.ts validation, idempotency and replies of remote commands
 *   personal-data.ts      what a read may send, and only sealed
 *   memory-trim.ts        GC and page trim after card work
 *
 * One card operation runs at a time: a remote read waits for a read-on-insert in progress
 * (within its timeout); a card arriving while a remote read waits for it is read by that
 * command only. Personal data stays in this process: events, health, metrics and logs carry
 * sizes, timings, codes and verdicts; a remote read may return the MRZ and face only sealed
 * to the requester's X25519 key.
 *
 * stop(): STOPPING=1 to systemd, lets a read in progress finish (up to a deadline, then aborts
 * it at its next APDU), answers waiting commands, publishes the retained `offline`, closes the
 * link, the PC/SC client and the outbox.
 */
import { ConfigError, TransportError } from "../errors.ts";
import type { TrustStore } from "../pki/trust-store.ts";
import { loadTrust } from "../verification/trust.ts";
import { loadTestAccessKey } from "./test-access-key.ts";
import { CardLock } from "./card-lock.ts";
import { CardReads } from "./card-reads.ts";
import { CommandDispatcher } from "./command-dispatcher.ts";
import { readerSelected, type AgentConfig } from "./config.ts";
import { ReaderHealthTracker } from "./health.ts";
import { errorFields, type LogFields, type Logger } from "./logger.ts";
import { MemoryTrimmer, residentMemory } from "./memory-trim.ts";
import { APDU_BUCKETS_S, MetricsRegistry, sampleEventLoopLag } from "./metrics.ts";
import { linkOptionsFromConfig, MqttLink } from "./mqtt-link.ts";
import { Outbox } from "./outbox.ts";
import { cardEvent, readerEvent } from "./payloads.ts";
import { loadEventSealer } from "./personal-data.ts";
import { AgentKey } from "./agent-key.ts";
import { readKeysOf, RemoteCommands, type DiagnoseFn, type ReadKeys } from "./remote-commands.ts";
import { SystemdNotifier } from "./systemd-notify.ts";
import { agentTopics, type AgentTopics } from "./topics.ts";
import { ReaderWatcher, type WatcherEvent } from "./reader-watcher.ts";

export type { DiagnoseFn, ReadReplyResult } from "./remote-commands.ts";

export interface AgentServiceOptions {
  config: AgentConfig;
  version: string;
  log: Logger;
  notifier?: SystemdNotifier;
  /** How long stop() lets a read in progress finish before aborting it (default 10 s). */
  shutdownReadDeadlineMs?: number;
  /** The `diagnose` implementation; resolved from agent/diagnostics when absent. */
  diagnose?: DiagnoseFn;
}

/** How long a read-on-insert waits for the card to come back after a link loss (ms). */
const INSERT_READ_CARD_WAIT_MS = 10_000;

export class AgentService {
  readonly config: AgentConfig;
  readonly topics: AgentTopics;
  readonly link: MqttLink;
  readonly outbox: Outbox;
  readonly watcher: ReaderWatcher;
  readonly dispatcher: CommandDispatcher;
  readonly metrics = new MetricsRegistry();
  readonly #log: Logger;
  readonly #notifier: SystemdNotifier;
  readonly #health = new Map<string, ReaderHealthTracker>();
  readonly #testKey: ReadKeys | undefined;
  readonly #shutdownDeadlineMs: number;
  readonly #timers: Array<ReturnType<typeof setInterval>> = [];
  readonly #cardLock: CardLock;
  /** Stops the event-loop lag sampler that runs from a card operation's start to the end of its clean-up. */
  #stopLagSampler: (() => void) | undefined;
  readonly #reads: CardReads;
  readonly #memory: MemoryTrimmer;
  /** The agent's long-term HPKE key (agent.key_file). */
  readonly #agentKey: AgentKey;
  #stopping = false;
  #started = false;
  #readsInFlight = new Set<Promise<unknown>>();

  constructor(opts: AgentServiceOptions) {
    this.config = opts.config;
    this.#log = opts.log;
    this.#notifier = opts.notifier ?? new SystemdNotifier();
    this.#shutdownDeadlineMs = opts.shutdownReadDeadlineMs ?? 10_000;
    const c = opts.config;
    this.topics = agentTopics(c.mqtt.prefix, c.agent.id);
    if (c.readers.readOnInsert && c.readers.testKeyFile !== undefined) this.#testKey = readKeysOf(loadTestAccessKey(c.readers.testKeyFile));
    // Loaded once at start: a path that does not exist is a ConfigError before anything runs.
    let trust: TrustStore | undefined;
    try {
      trust = loadTrust(c.verification.trust, c.verification.masterListAnchors);
    } catch (e) {
      if (e instanceof ConfigError) throw new ConfigError(`${c.file}: verification.trust: ${e.message}`, { file: c.file, key: "verification.trust" });
      throw e;
    }
    try {
      this.outbox = new Outbox(c.outbox.path, { maxEvents: c.outbox.maxEvents });
    } catch (e) {
      // run checks the path first (config-files.ts); this is for what changed since, or what only SQLite sees.
      const why = (e as { code?: unknown }).code ?? (e instanceof Error ? e.message : "error");
      throw new ConfigError(`${c.file}: outbox.path: cannot open ${c.outbox.path} as the outbox database (${String(why)})`, { file: c.file, key: "outbox.path" });
    }
    this.#agentKey = AgentKey.load(c.agent.id, c.agent.keyFile, c.file, { strict: c.agent.strictKeyPermissions });
    this.watcher = new ReaderWatcher({ select: (name) => readerSelected(c.readers, name), log: this.#log });
    this.link = new MqttLink(linkOptionsFromConfig(c, { version: opts.version, readers: () => this.watcher.readers, hpke: this.#agentKey.birth }));
    this.#memory = new MemoryTrimmer({ enabled: c.memory.trimExecutablePages, log: this.#log });
    // Event-loop lag (mrtd_event_loop_lag_seconds) is sampled from a card operation's start (a
    // remote read: waiting for the card, the read, verification, sealing the reply) to the end
    // of its clean-up (GC, page trim); only then, so the idle agent keeps no timer spinning.
    this.#cardLock = new CardLock({
      onAcquire: (waitedMs) => {
        this.#log.debug("card lock taken", { waitedMs });
        this.#stopLagSampler ??= sampleEventLoopLag(this.metrics);
      },
      onRelease: (deferred) => {
        if (!deferred) this.#afterCardWork();
      },
    });
    this.#reads = new CardReads({
      config: c,
      watcher: this.watcher,
      metrics: this.metrics,
      log: this.#log,
      trust,
      health: (reader) => this.health(reader),
      appendEvent: (body, eventId) => this.#appendEvent(body, eventId),
      publishHealth: (reader) => this.#publishHealth(reader),
    });
    const remote = new RemoteCommands({
      agentId: c.agent.id,
      watcher: this.watcher,
      lock: this.#cardLock,
      reads: this.#reads,
      diagnose: opts.diagnose,
      disconnect: c.readers.disconnect,
    });
    const agentKey = this.#agentKey;
    this.dispatcher = new CommandDispatcher({
      link: this.link,
      topics: this.topics,
      protocol: c.mqtt.protocol,
      parse: { openAccessKey: (id, from, envelope) => agentKey.openAccessKey(id, from, envelope), allowPlaintextAccessKey: c.commands.allowPlaintextAccessKey },
      sealer: agentKey,
      // A read's GC and page trim once its sealed reply is on its way, not between the sealing's slices.
      afterReply: (cmd) => {
        if (cmd.command === "read") this.#afterCardWork();
      },
      log: (level, message, fields) => this.#log.log(level, message, fields as LogFields),
    });
    this.dispatcher.register("read", (cmd, ctx) => remote.read(cmd, ctx));
    this.dispatcher.register("diagnose", (cmd, ctx) => remote.diagnose(cmd, ctx));

    this.metrics.counterFrom("mrtd_outbox_dropped_total", () => this.#outboxStat("dropped"));
    this.metrics.counterFrom("mrtd_outbox_delivered_total", () => this.#outboxStat("delivered"));
    this.metrics.counterFrom("mrtd_commands_received_total", () => this.dispatcher.stats().received);
    this.metrics.counterFrom("mrtd_pcscd_reconnects_total", () => this.watcher.reopens);
    this.metrics.counterFrom("mrtd_memory_trimmed_bytes_total", () => this.#memory.releasedBytes);
    this.metrics.gauge("mrtd_outbox_pending", () => this.#outboxStat("pending"));
    this.metrics.gauge("mrtd_process_resident_bytes", () => residentMemory()?.residentBytes ?? NaN);
    this.metrics.gauge("mrtd_process_resident_anon_bytes", () => residentMemory()?.anonBytes ?? NaN);
    // HPKE per operation: sealing a reply (the whole result, a face image included), an event, opening an access key.
    agentKey.onTiming = (kind, ms) => this.metrics.histogram("mrtd_hpke_duration_seconds", { op: kind }, APDU_BUCKETS_S).observe(ms / 1000);
  }

  async start(): Promise<void> {
    if (this.#started) throw new Error("AgentService: already started");
    this.#started = true;
    const c = this.config;
    // Before anything runs hot: the optimising JITs' code and working memory are most of what
    // a read adds to the agent's RSS (test/bench/agent.bench.ts measures both settings).
    Bun.unsafe.setJITPolicy(c.memory.jitThresholdScale);
    this.#reads.eventSealer = loadEventSealer(c, this.#agentKey);
    this.watcher.on((e) => this.#onWatcher(e));
    this.link.on("connected", ({ attempt, url, sessionPresent, subscribed }) => {
      this.#log.info("broker connected", { url, protocol: c.mqtt.protocol, attempt, sessionPresent, subscribed, pendingEvents: this.#outboxStat("pending") });
      void this.outbox.drain(this.link);
      for (const reader of this.#health.keys()) this.#publishHealth(reader, true);
      this.#publishMetrics();
    });
    this.link.on("disconnected", ({ reason }) => this.#log.warn("broker connection lost", { reason }));
    this.link.on("reconnecting", ({ attempt, delayMs, url }) => this.#log[attempt <= 1 ? "info" : "debug"]("reconnecting to the broker", { attempt, delayMs, url }));
    this.link.on("error", (e) => this.#log.warn("mqtt error", { error: e.name, message: mqttErrorText(e) }));
    this.link.on("message", (m) => void this.dispatcher.handle(m));

    this.watcher.start();
    await Promise.race([this.watcher.firstScan(), sleep(5000)]);
    this.link.start();
    this.#timers.push(setInterval(() => this.#publishAllHealth(), c.telemetry.healthIntervalS * 1000));
    this.#timers.push(setInterval(() => this.#publishMetrics(), c.telemetry.metricsIntervalS * 1000));
    this.#log.info("agent started", {
      agentId: c.agent.id,
      publicKey: this.#agentKey.birth.publicKey,
      keyCreated: this.#agentKey.created,
      config: c.file,
      readers: this.watcher.readers,
      pcscd: this.watcher.serviceUp,
      readOnInsert: c.readers.readOnInsert,
      outboxPending: this.#outboxStat("pending"),
    });
    // Once start-up is over (broker connected, outbox drained, first telemetry sent).
    const trimTimer = setTimeout(() => this.#memory.afterStartUp(), 5000);
    trimTimer.unref();
    this.#timers.push(trimTimer);
    this.#notifier.ready(`watching ${this.watcher.readers.length} reader(s)`);
  }

  /** GC and page trim after a card operation, then the lag sampler stops unless another one runs. */
  #afterCardWork(): void {
    this.#memory.afterCardWork(() => {
      if (this.#cardLock.busy) return; // the next card operation keeps sampling
      this.#stopLagSampler?.();
      this.#stopLagSampler = undefined;
    });
  }

  /** Stops everything; safe to call twice. Every wait in it is bounded, so it always returns. */
  async stop(reason = "stop"): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#notifier.stopping();
    this.#log.info("agent stopping", { reason, readInProgress: this.#reads.current !== undefined });
    this.#memory.stop();
    for (const t of this.#timers) clearInterval(t);
    this.#stopLagSampler?.();
    this.#stopLagSampler = undefined;
    const current = this.#reads.current;
    if (current) {
      const finished = await Promise.race([current.done.then(() => true, () => true), sleep(this.#shutdownDeadlineMs).then(() => false)]);
      if (!finished) {
        this.#log.warn("aborting the read in progress (shutdown deadline)", { deadlineMs: this.#shutdownDeadlineMs });
        current.abort.abort(new TransportError("ABORTED", "the read was aborted: the agent is shutting down", { retryable: false }));
        await Promise.race([current.done.catch(() => undefined), sleep(3000)]);
      }
    }
    await this.dispatcher.stop();
    await Promise.race([Promise.allSettled([...this.#readsInFlight]), sleep(3000)]);
    if (this.link.connected) await Promise.race([this.outbox.drain(this.link), sleep(2000)]);
    await this.link.stop({ publishOffline: true });
    await Promise.race([this.watcher.stop(), sleep(3000)]);
    this.outbox.close();
    this.#log.info("agent stopped", { reason });
  }

  health(reader: string): ReaderHealthTracker {
    let h = this.#health.get(reader);
    if (!h) {
      h = new ReaderHealthTracker(reader);
      this.#health.set(reader, h);
    }
    return h;
  }

  // ------------------------------------------------------------------------------------------
  // Readers and cards

  #onWatcher(e: WatcherEvent): void {
    const id = this.config.agent.id;
    switch (e.type) {
      case "attached":
      case "detached": {
        const h = this.health(e.reader);
        h.connected = e.type === "attached";
        if (!h.connected) h.cardPresent = false;
        this.#log.info(e.type === "attached" ? "reader attached" : "reader detached", { reader: e.reader });
        this.#appendEvent(readerEvent(id, e.reader, e.type));
        this.#publishHealth(e.reader);
        return;
      }
      case "inserted":
      case "removed": {
        const h = this.health(e.reader);
        h.cardPresent = e.type === "inserted";
        this.#log.info(e.type === "inserted" ? "card inserted" : "card removed", { reader: e.reader, ...(e.type === "inserted" ? { mute: e.mute } : {}) });
        this.#appendEvent(cardEvent(id, e.reader, e.type, e.type === "inserted" && e.atr ? e.atr : undefined));
        this.#publishHealth(e.reader);
        if (e.type === "inserted" && !e.mute) this.#maybeReadOnInsert(e.reader);
        return;
      }
      case "state":
        if (!e.mute) this.#maybeReadOnInsert(e.reader);
        return;
      case "service-lost":
        this.#log.warn("pcscd lost", { code: e.code });
        return;
      case "service-restored":
        this.#log.info("pcscd connected");
        return;
    }
  }

  #maybeReadOnInsert(reader: string): void {
    if (!this.#testKey || this.#stopping || this.#cardLock.busy) return;
    const key = this.#testKey;
    const p = this.#cardLock.run(async () => {
      await this.#reads.read({ reader, ...key, trigger: "insert", cardWaitMs: INSERT_READ_CARD_WAIT_MS });
    }).catch((err) => this.#log.debug("read on insert ended with an error", errorFields(err)));
    this.#readsInFlight.add(p);
    void p.finally(() => this.#readsInFlight.delete(p));
  }

  // ------------------------------------------------------------------------------------------
  // Publishing

  #appendEvent(body: object, eventId?: string): string {
    eventId = this.outbox.append(this.topics.events, body as Record<string, unknown>, eventId);
    if (this.link.connected) void this.outbox.drain(this.link);
    return eventId;
  }

  #publishHealth(reader: string, force = false): void {
    const h = this.health(reader);
    const id = this.config.agent.id;
    if (!this.link.connected || (!force && !h.changedSincePublished(id))) return;
    h.markPublished(id);
    this.link.publish(this.topics.health(reader), JSON.stringify(h.snapshot(id)), { qos: 1, retain: true, contentType: "application/json" }).catch((e) => {
      this.#log.debug("health not published", errorFields(e));
    });
  }

  #publishAllHealth(): void {
    for (const reader of this.#health.keys()) this.#publishHealth(reader, true);
  }

  #publishMetrics(): void {
    if (!this.link.connected) return;
    const payload = this.metrics.snapshot(this.config.agent.id, this.config.telemetry.metricsIntervalS, this.link.startedAt);
    this.link.publish(this.topics.metrics, JSON.stringify(payload), { qos: 0, contentType: "application/json" }).catch((e) => {
      this.#log.debug("metrics not published", errorFields(e));
    });
  }

  #outboxStat(k: "pending" | "dropped" | "delivered"): number {
    try {
      return this.outbox.stats()[k];
    } catch {
      return 0; // closed
    }
  }
}

/** mqtt.js error text is about the connection (ECONNREFUSED, not authorized), never payloads. */
function mqttErrorText(e: Error): string {
  const code = (e as { code?: unknown }).code;
  return typeof code === "string" ? code : e.message.slice(0, 200);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
