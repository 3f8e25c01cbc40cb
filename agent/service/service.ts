/**
 * The edge agent's run loop (issue 5): watches readers and cards, speaks MQTT 5, answers
 * remote commands and keeps events in the disk outbox until the broker has them.
 *
 *   PC/SC (ReaderWatcher) ──> reader/card events ──> Outbox ──drain on connect──> events topic
 *                         └─> ReaderHealthTracker ──retained, on change + interval──> health topics
 *   reads (remote `read`, or on card arrival with the test bench key) ──> read event, metrics, health
 *   MqttLink <── cmd topics ── CommandDispatcher (read, diagnose, ping) ──> replies (personal data sealed)
 *
 * One card operation runs at a time (a lock): a remote read waits for a read-on-insert in
 * progress (within its timeout); a card arriving while a remote read waits for it is read by
 * that command only. Personal data stays in this process: events, health, metrics and logs
 * carry sizes, timings, codes and verdicts; a remote read may return the MRZ and face only
 * sealed to the requester's X25519 key (envelope.ts).
 *
 * stop(): STOPPING=1 to systemd, lets a read in progress finish (up to a deadline, then aborts
 * it at its next APDU), answers waiting commands, publishes the retained `offline`, closes the
 * link, the PC/SC client and the outbox.
 */
import { ConfigError, MrtdError, TransportError } from "../errors.ts";
import type { BacAccessKey } from "../icao/mrz-key.ts";
import { commandName } from "../iso7816/apdu.ts";
import { byKey, type LdsFileInfo } from "../lds/lds-files.ts";
import type { TrustStore } from "../pki/trust-store.ts";
import { loadTrust } from "../verification/trust.ts";
import { verifyRead } from "../reading/verify-read.ts";
import { classifyFailure } from "../reading/failure-classes.ts";
import { readDocument, readFailureReport, type DocumentRead, type ReadProgress } from "../reading/read-document.ts";
import type { ReadSummary } from "../reading/read-result.ts";
import type { CardConnection } from "../transport/transport.ts";
import { loadTestAccessKey, type AccessKey } from "./access-key.ts";
import { CommandDispatcher, CommandError, type DiagnoseCommand, type HandlerContext, type ReadCommand } from "./commands.ts";
import { readerSelected, type AgentConfig } from "./config.ts";
import { b64, type SealedEnvelope } from "./envelope.ts";
import { ReaderHealthTracker } from "./health.ts";
import { errorFields, type LogFields, type Logger } from "./logger.ts";
import { residentMemory, trimExecutablePages } from "./memory-trim.ts";
import { APDU_BUCKETS_S, commandLabel, LAG_BUCKETS_S, MetricsRegistry, READ_BUCKETS_S, statusWordLabel } from "./metrics.ts";
import { linkOptionsFromConfig, MqttLink } from "./mqtt-link.ts";
import { Outbox } from "./outbox.ts";
import { cardEvent, readEvent, readerEvent, type ReadEvent } from "./payloads.ts";
import { SystemdNotifier } from "./systemd-notify.ts";
import { agentTopics, type AgentTopics } from "./topics.ts";
import { ReaderWatcher, type WatcherEvent } from "./reader-watcher.ts";

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

export type DiagnoseFn = (opts: { reader?: string; count: number; waitMs: number; onProgress?: (done: number, total: number) => void }) => Promise<unknown>;

/** What a read returns to a remote requester (no personal data outside `personalData`). */
export interface ReadReplyResult extends Omit<ReadEvent, "agentId" | "at" | "type"> {
  eventId: string;
  /** Sealed to the command's replyPublicKey (envelope.ts), only when includePersonalData. */
  personalData?: ReturnType<typeof import("./envelope.ts").sealForRecipient>;
}

interface ReadOutcome {
  event: ReadEvent;
  eventId: string;
  doc?: DocumentRead;
  error?: unknown;
}

/** How long a read-on-insert waits for the card to come back after a link loss (ms). */
const INSERT_READ_CARD_WAIT_MS = 10_000;

export class AgentService {
  readonly config: AgentConfig;
  /** CSCA certificates, master lists and CRLs from [verification] trust; undefined when none. */
  readonly #trust: TrustStore | undefined;
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
  readonly #diagnose: DiagnoseFn | undefined;
  readonly #timers: Array<ReturnType<typeof setInterval>> = [];
  /** The card lock: one card operation at a time. */
  #cardBusy: Promise<void> | undefined;
  #currentRead: { done: Promise<unknown>; abort: AbortController } | undefined;
  #stopping = false;
  #started = false;
  #readsInFlight = new Set<Promise<unknown>>();
  #trimmedBytes = 0;
  /** Seals an event's personal data (telemetry.include_personal_data), loaded at start. */
  #eventSealer: ((plain: Uint8Array, eventId: string) => SealedEnvelope) | undefined;

  constructor(opts: AgentServiceOptions) {
    this.config = opts.config;
    this.#log = opts.log;
    this.#notifier = opts.notifier ?? new SystemdNotifier();
    this.#shutdownDeadlineMs = opts.shutdownReadDeadlineMs ?? 10_000;
    this.#diagnose = opts.diagnose;
    const c = opts.config;
    this.topics = agentTopics(c.mqtt.prefix, c.agent.id);
    if (c.readers.readOnInsert && c.readers.testKeyFile !== undefined) this.#testKey = readKeysOf(loadTestAccessKey(c.readers.testKeyFile));
    // Loaded once at start: a path that does not exist is a ConfigError before anything runs.
    try {
      this.#trust = loadTrust(c.verification.trust, c.verification.masterListAnchors);
    } catch (e) {
      if (e instanceof ConfigError) throw new ConfigError(`${c.file}: verification.trust: ${e.message}`, { file: c.file, key: "verification.trust" });
      throw e;
    }
    this.outbox = new Outbox(c.outbox.path, { maxEvents: c.outbox.maxEvents });
    this.watcher = new ReaderWatcher({ select: (name) => readerSelected(c.readers, name), log: this.#log });
    this.link = new MqttLink(linkOptionsFromConfig(c, { version: opts.version, readers: () => this.watcher.readers }));
    this.dispatcher = new CommandDispatcher({
      link: this.link,
      topics: this.topics,
      log: (level, message, fields) => this.#log.log(level, message, fields as LogFields),
    });
    this.dispatcher.register("read", (cmd, ctx) => this.#remoteRead(cmd, ctx));
    this.dispatcher.register("diagnose", (cmd, ctx) => this.#remoteDiagnose(cmd, ctx));

    this.metrics.gauge("mrtd_outbox_pending", () => this.#outboxStat("pending"));
    this.metrics.gauge("mrtd_outbox_dropped_total", () => this.#outboxStat("dropped"));
    this.metrics.gauge("mrtd_outbox_delivered_total", () => this.#outboxStat("delivered"));
    this.metrics.gauge("mrtd_commands_received_total", () => this.dispatcher.stats().received);
    this.metrics.gauge("mrtd_pcscd_reconnects_total", () => this.watcher.reopens);
    this.metrics.gauge("mrtd_process_resident_bytes", () => residentMemory()?.residentBytes ?? NaN);
    this.metrics.gauge("mrtd_process_resident_anon_bytes", () => residentMemory()?.anonBytes ?? NaN);
    this.metrics.gauge("mrtd_memory_trimmed_bytes_total", () => this.#trimmedBytes);
  }

  async start(): Promise<void> {
    if (this.#started) throw new Error("AgentService: already started");
    this.#started = true;
    const c = this.config;
    // Before anything runs hot: the optimising JITs' code and working memory are most of what
    // a read adds to the agent's RSS (test/bench/agent.bench.ts measures both settings).
    Bun.unsafe.setJITPolicy(c.memory.jitThresholdScale);
    if (c.telemetry.includePersonalData && c.telemetry.personalDataPublicKey) {
      const { eventInfo, sealForRecipient } = await import("./envelope.ts");
      const key = Uint8Array.from(Buffer.from(c.telemetry.personalDataPublicKey, "base64"));
      try {
        sealForRecipient(key, new Uint8Array(0), "key check"); // a low-order point fails here, not at the first read
      } catch {
        throw new ConfigError(`${c.file}: telemetry.personal_data_public_key: not a usable X25519 public key`, { file: c.file, key: "telemetry.personal_data_public_key" });
      }
      this.#eventSealer = (plain, eventId) => sealForRecipient(key, plain, eventInfo(c.agent.id, eventId));
    }
    this.watcher.on((e) => this.#onWatcher(e));
    this.link.on("connected", ({ attempt }) => {
      this.#log.info("broker connected", { url: c.mqtt.url, attempt, pendingEvents: this.#outboxStat("pending") });
      void this.outbox.drain(this.link);
      for (const reader of this.#health.keys()) this.#publishHealth(reader, true);
      this.#publishMetrics();
    });
    this.link.on("disconnected", ({ reason }) => this.#log.warn("broker connection lost", { reason }));
    this.link.on("reconnecting", ({ attempt, delayMs }) => this.#log[attempt <= 1 ? "info" : "debug"]("reconnecting to the broker", { attempt, delayMs }));
    this.link.on("error", (e) => this.#log.warn("mqtt error", { error: e.name, message: mqttErrorText(e) }));
    this.link.on("message", (m) => void this.dispatcher.handle(m));

    this.watcher.start();
    await Promise.race([this.watcher.firstScan(), sleep(5000)]);
    this.link.start();
    this.#timers.push(setInterval(() => this.#publishAllHealth(), c.telemetry.healthIntervalS * 1000));
    this.#timers.push(setInterval(() => this.#publishMetrics(), c.telemetry.metricsIntervalS * 1000));
    this.#log.info("agent started", {
      agentId: c.agent.id,
      config: c.file,
      readers: this.watcher.readers,
      pcscd: this.watcher.serviceUp,
      readOnInsert: c.readers.readOnInsert,
      outboxPending: this.#outboxStat("pending"),
    });
    // Once start-up is over (broker connected, outbox drained, first telemetry sent).
    const trimTimer = setTimeout(() => this.#trimMemory(), 5000);
    trimTimer.unref();
    this.#timers.push(trimTimer);
    this.#notifier.ready(`watching ${this.watcher.readers.length} reader(s)`);
  }

  /** Stops everything; safe to call twice. */
  async stop(reason = "stop"): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#notifier.stopping();
    this.#log.info("agent stopping", { reason, readInProgress: this.#currentRead !== undefined });
    for (const t of this.#timers) clearInterval(t);
    const current = this.#currentRead;
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
    await this.watcher.stop();
    this.outbox.close();
    this.#log.info("agent stopped", { reason });
  }

  /**
   * After a read or a diagnosis, once the reply is on its way: a card operation leaves file
   * buffers and crypto temporaries behind, so collect them now rather than let the heap grow
   * on a board with little memory (card operations are rare; a GC costs ms), then release the
   * code pages it touched.
   */
  #afterCardWork(): void {
    setTimeout(() => {
      Bun.gc(true);
      this.#trimMemory();
    }, 0);
  }

  /** Releases the executable's pages the agent stopped touching ([memory] trim_executable_pages). */
  #trimMemory(): void {
    if (!this.config.memory.trimExecutablePages || this.#stopping) return;
    try {
      this.#trimmedBytes += trimExecutablePages().releasedBytes;
    } catch (e) {
      // Never worth stopping for: the pages stay resident, as without the setting.
      this.#log.debug("memory trim failed", { error: e instanceof Error ? e.message : "unknown" });
    }
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
    if (!this.#testKey || this.#stopping || this.#cardBusy) return;
    const key = this.#testKey;
    const p = this.#withCard(async () => {
      await this.#read({ reader, ...key, trigger: "insert", cardWaitMs: INSERT_READ_CARD_WAIT_MS });
    }).catch((err) => this.#log.debug("read on insert ended with an error", errorFields(err)));
    this.#readsInFlight.add(p);
    void p.finally(() => this.#readsInFlight.delete(p));
  }

  /** Runs `fn` holding the card lock; waits for the lock up to `waitMs` (0: fail at once). */
  async #withCard<T>(fn: () => Promise<T>, waitMs = 0, signal?: AbortSignal): Promise<T> {
    const deadline = Date.now() + waitMs;
    while (this.#cardBusy) {
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) throw new CommandError("BUSY", "another card operation is running; retry later with the same id");
      await Promise.race([this.#cardBusy, sleep(Math.min(left, 1000))]);
    }
    let release!: () => void;
    this.#cardBusy = new Promise<void>((r) => (release = r));
    try {
      return await fn();
    } finally {
      this.#cardBusy = undefined;
      release();
    }
  }

  // ------------------------------------------------------------------------------------------
  // Reading

  /** One read in `reader`; records the event, metrics and health. Rejects with the read's error. */
  async #read(p: {
    reader: string;
    accessKey?: BacAccessKey;
    /** Card access number (PACE); from the test key file only, until remote CANs come sealed. */
    can?: string;
    files?: LdsFileInfo[];
    trigger: "command" | "insert";
    commandId?: string;
    cardWaitMs: number;
    signal?: AbortSignal;
    onProgress?: (p: ReadProgress) => void;
  }): Promise<ReadOutcome> {
    const abort = new AbortController();
    const onOuterAbort = () => abort.abort(p.signal!.reason);
    p.signal?.addEventListener("abort", onOuterAbort, { once: true });
    const apduMs: number[] = [];
    const record = (ins: number, sw: number | undefined, ms: number) => {
      apduMs.push(ms);
      this.metrics.histogram("mrtd_apdu_duration_seconds", { command: commandLabel(commandName(ins)) }, APDU_BUCKETS_S).observe(ms / 1000);
      this.metrics.inc("mrtd_apdu_status_total", { sw: statusWordLabel(sw) });
    };
    const wrap = (c: CardConnection) => meteredConnection(c, record, abort.signal);
    const reconnect = async (waitMs: number): Promise<CardConnection> => {
      const name = await this.watcher.waitForCard((n) => n === p.reader, waitMs, abort.signal);
      const client = this.watcher.client;
      if (!client) throw new TransportError("SCARD_E_NO_SERVICE", "pcscd is not reachable", { retryable: true });
      return wrap(await client.connect(name));
    };
    const t0 = performance.now();
    const stopLag = this.#sampleLoopLag();
    const run = (async (): Promise<ReadOutcome> => {
      let conn: CardConnection | undefined;
      let doc: DocumentRead | undefined;
      let error: unknown;
      try {
        conn = await reconnect(Math.min(p.cardWaitMs, 2000));
        doc = await readDocument(
          conn,
          {
            ...(p.accessKey ? { accessKey: p.accessKey } : {}),
            ...(p.can !== undefined ? { can: p.can } : {}),
            ...(p.files ? { files: p.files } : {}),
            ...(p.onProgress ? { onProgress: p.onProgress } : {}),
            recovery: { maxRecoveries: 200, cardWaitMs: p.cardWaitMs, backoffMs: 25, maxConsecutive: 16 },
            activeAuthentication: this.config.verification.activeAuthentication,
          },
          reconnect,
        );
      } catch (e) {
        error = e;
      } finally {
        await conn?.disconnect("leave").catch(() => undefined);
      }
      const outcome = this.#recordRead(p, doc, error, performance.now() - t0, apduMs);
      this.#afterCardWork();
      return outcome;
    })();
    this.#currentRead = { done: run, abort };
    try {
      const outcome = await run;
      if (outcome.error !== undefined) throw outcome.error;
      return outcome;
    } finally {
      stopLag();
      this.#currentRead = undefined;
      p.signal?.removeEventListener("abort", onOuterAbort);
    }
  }

  /**
   * Event-loop lag while a read runs (mrtd_event_loop_lag_seconds): a timer every 5 ms notes
   * how late it fires. Only during reads, so the idle agent keeps no timer spinning.
   */
  #sampleLoopLag(): () => void {
    const h = this.metrics.histogram("mrtd_event_loop_lag_seconds", {}, LAG_BUCKETS_S);
    const PERIOD = 5;
    let last = performance.now();
    const t = setInterval(() => {
      const now = performance.now();
      h.observe(Math.max(0, now - last - PERIOD) / 1000);
      last = now;
    }, PERIOD);
    return () => clearInterval(t);
  }

  #recordRead(p: { reader: string; trigger: "command" | "insert"; commandId?: string }, doc: DocumentRead | undefined, error: unknown, wallMs: number, apduMs: number[]): ReadOutcome {
    const id = this.config.agent.id;
    let event: ReadEvent;
    let failureClass: string | undefined;
    if (doc) {
      const v = verdictOf(doc, this.#trust);
      event = readEvent(id, doc.summary, {
        trigger: p.trigger,
        ...(p.commandId ? { commandId: p.commandId } : {}),
        ...(v ? { verdict: v.verdict, reasons: v.reasons } : {}),
      });
    } else {
      const report = readFailureReport(error);
      failureClass = report?.failure.code ?? classifyFailure(error).code;
      const summary = noDocumentSummary(p.reader, {
        apdus: report?.apdus ?? apduMs.length,
        ms: report?.ms ?? wallMs,
        steps: report ? [{ name: report.step || "connect", ms: report.ms, apdus: report.apdus }] : [],
        recoveries: report?.recoveries ?? [],
      });
      event = readEvent(id, summary, { trigger: p.trigger, failureClass, ...(p.commandId ? { commandId: p.commandId } : {}) });
    }
    const outcome = doc ? "success" : "failure";
    this.metrics.histogram("mrtd_read_duration_seconds", { outcome }, READ_BUCKETS_S).observe(event.durationMs / 1000);
    this.metrics.inc("mrtd_reads_total", { outcome, trigger: p.trigger });
    if (failureClass) this.metrics.inc("mrtd_read_failures_total", { class: failureClass });
    const recoveries = doc?.summary.recoveries ?? readFailureReport(error)?.recoveries ?? [];
    for (const r of recoveries) this.metrics.inc("mrtd_recoveries_total", { class: r.cause });
    this.health(p.reader).recordRead(!!doc, { ...(failureClass ? { failureClass } : {}), recoveries, apduMs });
    const eventId = Bun.randomUUIDv7();
    if (doc && this.#eventSealer) {
      // Opt-in (telemetry.include_personal_data): sealed to the fleet's key, never in clear.
      const plain = new TextEncoder().encode(JSON.stringify(personalDataOf(doc, { face: false })));
      event.personalData = this.#eventSealer(plain, eventId);
      plain.fill(0);
    }
    this.#appendEvent(event, eventId);
    this.#log.info(doc ? "read complete" : "read failed", {
      reader: p.reader,
      trigger: p.trigger,
      commandId: p.commandId,
      eventId,
      outcome,
      failureClass,
      apdus: event.apdus,
      durationMs: event.durationMs,
      recoveries: event.recoveries,
      verdict: event.verification?.verdict,
      ...(error !== undefined ? errorFields(error) : {}),
    });
    this.#publishHealth(p.reader);
    const out: ReadOutcome = { event, eventId };
    if (doc) out.doc = doc;
    if (error !== undefined) out.error = error;
    return out;
  }

  async #remoteRead(cmd: ReadCommand, ctx: HandlerContext): Promise<ReadReplyResult> {
    const accessKey = bacKeyOf(cmd.accessKey, "accessKey");
    const files: LdsFileInfo[] | undefined = cmd.files?.map((k) => byKey(k)!).filter(Boolean);
    const part = cmd.reader?.toLowerCase();
    const match = (n: string) => part === undefined || n.toLowerCase().includes(part);
    if (this.watcher.serviceUp && !this.watcher.readers.some(match)) {
      this.#recordUnstartedRead(cmd, "NO_READER", 0);
      throw new CommandError("NO_READER", part === undefined ? "no PC/SC reader is connected" : "no connected reader name contains the given reader text");
    }
    const timeoutMs = cmd.timeoutS * 1000;
    const deadline = Date.now() + timeoutMs;
    return this.#withCard(
      async () => {
        void ctx.progress("waiting-for-card", { timeoutS: cmd.timeoutS });
        let reader: string;
        const waitStart = performance.now();
        try {
          reader = await this.watcher.waitForCard(match, Math.max(0, deadline - Date.now()), ctx.signal);
        } catch (e) {
          if (e instanceof TransportError && (e.code === "NO_CARD" || e.code === "NO_READER")) this.#recordUnstartedRead(cmd, e.code, performance.now() - waitStart);
          if (e instanceof TransportError && e.code === "NO_CARD") throw new CommandError("TIMEOUT", `no card was presented within ${cmd.timeoutS} s`);
          if (e instanceof TransportError && e.code === "NO_READER") throw new CommandError("NO_READER", e.message);
          throw e;
        }
        void ctx.progress("card-present", { reader });
        const outcome = await this.#read({
          reader,
          accessKey,
          ...(files ? { files } : {}),
          trigger: "command",
          commandId: cmd.id,
          cardWaitMs: Math.min(10_000, Math.max(2000, deadline - Date.now())),
          signal: ctx.signal,
          onProgress: (pr) => {
            if (pr.kind === "step") void ctx.progress(pr.step);
            else if (pr.kind === "file-done") void ctx.progress("file-done", { file: pr.key, bytes: pr.bytes, apdus: pr.apdus, ms: pr.ms });
            else if (pr.kind === "file-absent") void ctx.progress("file-absent", { file: pr.key, sw: pr.sw.toString(16).toUpperCase().padStart(4, "0") });
            else if (pr.kind === "recovery") void ctx.progress("recovery", { cause: pr.recovery.cause, action: pr.recovery.action, ok: pr.recovery.ok ?? true });
          },
        });
        // The event's own sealed data (telemetry.include_personal_data) is for the fleet's key, not the requester's.
        const { agentId: _a, at: _t, type: _y, personalData: _p, ...rest } = outcome.event;
        const result: ReadReplyResult = { eventId: outcome.eventId, ...rest };
        if (cmd.includePersonalData && cmd.replyPublicKey && outcome.doc) {
          const plain = new TextEncoder().encode(JSON.stringify(personalDataOf(outcome.doc)));
          // Loaded at first use: the X25519 code is only needed for replies with personal data.
          const { replyInfo, sealForRecipientInSlices } = await import("./envelope.ts");
          // In slices: a face image is milliseconds of cipher work the event loop should not wait out.
          result.personalData = await sealForRecipientInSlices(cmd.replyPublicKey, plain, replyInfo(this.config.agent.id, cmd.id));
          plain.fill(0);
        }
        return result;
      },
      timeoutMs,
      ctx.signal,
    );
  }

  /**
   * A remote read that never reached a card (no reader matched, no card within its timeout):
   * a read event and the failure counters say so, for the fleet view. Reader health is left
   * alone: a document not presented says nothing about the reader.
   */
  #recordUnstartedRead(cmd: ReadCommand, failureClass: "NO_READER" | "NO_CARD", waitedMs: number): void {
    const summary = noDocumentSummary(cmd.reader ?? "", { apdus: 0, ms: waitedMs, steps: [], recoveries: [] });
    this.metrics.inc("mrtd_reads_total", { outcome: "failure", trigger: "command" });
    this.metrics.inc("mrtd_read_failures_total", { class: failureClass });
    const eventId = this.#appendEvent(readEvent(this.config.agent.id, summary, { trigger: "command", commandId: cmd.id, failureClass }));
    this.#log.info("read not started", { commandId: cmd.id, failureClass, eventId, waitedMs: Math.round(waitedMs) });
  }

  async #remoteDiagnose(cmd: DiagnoseCommand, ctx: HandlerContext): Promise<unknown> {
    const diagnose = this.#diagnose ?? (await loadDiagnose());
    if (!diagnose) throw new CommandError("NOT_SUPPORTED", "NOT_AVAILABLE: reader diagnostics are not part of this agent build");
    return this.#withCard(
      async () => {
        let lastPct = -1;
        void ctx.progress("diagnosing", { count: cmd.count });
        // A separate PC/SC client: the watcher's monitor worker is blocked in its wait.
        return diagnose({
          ...(cmd.reader !== undefined ? { reader: cmd.reader } : {}),
          count: cmd.count,
          waitMs: 10_000,
          onProgress: (done, total) => {
            const pct = Math.floor((done / total) * 10) * 10;
            if (pct > lastPct) {
              lastPct = pct;
              void ctx.progress("exchanges", { done, total });
            }
          },
        }).finally(() => this.#afterCardWork()); // its own PC/SC client (two workers) came and went
      },
      30_000,
      ctx.signal,
    );
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
    const payload = this.metrics.snapshot(this.config.agent.id, this.config.telemetry.metricsIntervalS);
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

/** A connection that reports every APDU (command kind, SW, ms) and refuses to go on once aborted. */
export function meteredConnection(inner: CardConnection, record: (ins: number, sw: number | undefined, ms: number) => void, signal: AbortSignal): CardConnection {
  const check = () => {
    if (signal.aborted) throw signal.reason instanceof MrtdError ? signal.reason : new TransportError("ABORTED", "the read was aborted", { retryable: false });
  };
  return {
    get reader() {
      return inner.reader;
    },
    get atr() {
      return inner.atr;
    },
    get lastTransmitMicros() {
      return (inner as { lastTransmitMicros?: number }).lastTransmitMicros;
    },
    async transmit(command: Uint8Array): Promise<Uint8Array> {
      check();
      const t0 = performance.now();
      let sw: number | undefined;
      try {
        const r = await inner.transmit(command);
        if (r.length >= 2) sw = (r[r.length - 2]! << 8) | r[r.length - 1]!;
        return r;
      } finally {
        record(command[1] ?? 0, sw, performance.now() - t0);
      }
    },
    reconnect: async (mode) => {
      check();
      return inner.reconnect(mode);
    },
    disconnect: (mode) => inner.disconnect(mode),
  } as CardConnection;
}

/**
 * The MRZ key of a remote command's access key. A remote CAN is refused until access keys
 * arrive sealed (a CAN in clear over MQTT would be readable by anyone with the topic); the
 * read path itself supports the CAN (PACE), as the test key file shows.
 */
function bacKeyOf(k: AccessKey, field: string): BacAccessKey {
  if (k.kind === "can") throw new CommandError("NOT_SUPPORTED", `${field}: a remote CAN is accepted only sealed, which this agent does not support yet; give the MRZ triple`);
  return { documentNumber: k.documentNumber, dateOfBirth: k.dateOfBirth, dateOfExpiry: k.dateOfExpiry };
}

type ReadKeys = { accessKey: BacAccessKey; can?: undefined } | { accessKey?: undefined; can: string };

/** The test bench key (readers.test_key_file): the MRZ triple (BAC or PACE) or a CAN (PACE). */
function readKeysOf(k: AccessKey): ReadKeys {
  if (k.kind === "can") return { can: k.can };
  return { accessKey: { documentNumber: k.documentNumber, dateOfBirth: k.dateOfBirth, dateOfExpiry: k.dateOfExpiry } };
}

/**
 * The document verdict, as the CLI gives it (agent/verification): Passive Authentication
 * against the configured trust sources merged with the Active Authentication result.
 */
function verdictOf(doc: DocumentRead, trust: TrustStore | undefined): { verdict: string; reasons: string[] } | undefined {
  if (!doc.files.has("SOD")) return undefined;
  try {
    const v = verifyRead(doc, { trust });
    return { verdict: v.overall, reasons: v.reasons };
  } catch {
    return { verdict: "unverifiable", reasons: ["VERIFICATION_ERROR"] };
  }
}

/** The summary of a read that produced no document: no ATR, no files, no link settings. */
function noDocumentSummary(reader: string, r: { apdus: number; ms: number; steps: ReadSummary["steps"]; recoveries: ReadSummary["recoveries"] }): ReadSummary {
  return {
    reader,
    atr: "",
    files: {},
    apdus: r.apdus,
    durationMs: Math.round(r.ms * 100) / 100,
    steps: r.steps,
    recoveries: r.recoveries,
    link: { blockSize: 0, extendedLength: false, readBySfi: false },
  };
}

/** The personal data of a read, for sealing: MRZ fields, the face image (unless face: false), DG11/DG12. */
function personalDataOf(doc: DocumentRead, opts: { face: boolean } = { face: true }): Record<string, unknown> {
  const m = doc.mrz;
  const face = doc.dg2?.faces[0];
  return {
    mrz: m
      ? {
          format: m.format,
          documentCode: m.documentCode,
          issuingState: m.issuingState,
          documentNumber: m.documentNumber,
          primaryIdentifier: m.primaryIdentifier,
          secondaryIdentifier: m.secondaryIdentifier,
          nationality: m.nationality,
          dateOfBirth: m.dateOfBirth,
          sex: m.sex,
          dateOfExpiry: m.dateOfExpiry,
          optionalData1: m.optionalData1,
          ...(m.optionalData2 !== undefined ? { optionalData2: m.optionalData2 } : {}),
          checkDigitsValid: m.valid,
        }
      : undefined,
    face: face && opts.face ? { format: face.format, width: face.width, height: face.height, image: b64(face.imageBytes) } : undefined,
    dg11: doc.dg11,
    dg12: doc.dg12,
  };
}

/** The diagnostics function, if this build has it (agent/diagnostics, issue 4). */
async function loadDiagnose(): Promise<DiagnoseFn | undefined> {
  try {
    const mod = (await import("../diagnostics/reader-diagnostics.ts")) as { diagnoseReader?: DiagnoseFn };
    return typeof mod.diagnoseReader === "function" ? mod.diagnoseReader : undefined;
  } catch {
    return undefined;
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
