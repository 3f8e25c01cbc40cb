/**
 * One document read by the service, and what it leaves behind: the read event (into the
 * outbox), the metrics (APDU and read durations, status words, failure classes, recoveries,
 * event-loop lag), the reader's health, and a log line. Remote reads and reads on insert
 * both go through `read`; a remote read that never reached a card is recorded by
 * `recordUnstarted`. The read in progress is `current`, so that stop() can wait for it or
 * abort it.
 */
import { edenGC } from "bun:jsc";
import { TransportError } from "../errors.ts";
import type { BacAccessKey } from "../icao/mrz-key.ts";
import { commandName } from "../iso7816/apdu.ts";
import type { LdsFileInfo } from "../lds/lds-files.ts";
import type { TrustStore } from "../pki/trust-store.ts";
import { classifyFailure } from "../reading/failure-classes.ts";
import { readDocument, readFailureReport, type DocumentRead, type ReadProgress } from "../reading/read-document.ts";
import type { ReadSummary } from "../reading/read-result.ts";
import { verifyRead } from "../reading/verify-read.ts";
import type { DocumentVerdict } from "../verification/verdict.ts";
import type { CardConnection } from "../transport/transport.ts";
import type { AgentConfig } from "./config.ts";
import type { ReaderHealthTracker } from "./health.ts";
import { errorFields, type LogFields, type Logger } from "./logger.ts";
import { meteredConnection } from "./metered-connection.ts";
import { APDU_BUCKETS_S, commandLabel, READ_BUCKETS_S, statusWordLabel, type MetricsRegistry } from "./metrics.ts";
import { readEvent, type ReadEvent } from "./payloads.ts";
import type { EventSealer } from "./personal-data.ts";
import type { ReaderWatcher } from "./reader-watcher.ts";

export interface ReadRequest {
  reader: string;
  /** The MRZ key (BAC or PACE), or the CAN (PACE): one of the two. */
  accessKey?: BacAccessKey;
  can?: string;
  files?: LdsFileInfo[];
  trigger: "command" | "insert";
  commandId?: string;
  cardWaitMs: number;
  signal?: AbortSignal;
  onProgress?: (p: ReadProgress) => void;
}

export interface ReadOutcome {
  event: ReadEvent;
  eventId: string;
  doc?: DocumentRead;
  /** The whole verdict (a remote read's report carries it). */
  verdict?: DocumentVerdict;
  error?: unknown;
}

export interface CardReadsOptions {
  config: AgentConfig;
  watcher: ReaderWatcher;
  metrics: MetricsRegistry;
  log: Logger;
  /** CSCA certificates, master lists and CRLs from [verification] trust; undefined when none. */
  trust: TrustStore | undefined;
  health: (reader: string) => ReaderHealthTracker;
  /** Puts an event into the outbox; returns its event id. */
  appendEvent: (body: object, eventId?: string) => string;
  /** Publishes a reader's health if it changed. */
  publishHealth: (reader: string) => void;
}

export class CardReads {
  readonly #o: CardReadsOptions;
  #current: { done: Promise<unknown>; abort: AbortController } | undefined;
  /** Seals an event's personal data (telemetry.include_personal_data), set at start. */
  eventSealer: EventSealer | undefined;

  constructor(opts: CardReadsOptions) {
    this.#o = opts;
  }

  /** The read in progress: `done` settles when it has ended and been recorded. */
  get current(): { done: Promise<unknown>; abort: AbortController } | undefined {
    return this.#current;
  }

  /** One read in `reader`; records the event, metrics and health. Rejects with the read's error. */
  async read(p: ReadRequest): Promise<ReadOutcome> {
    const abort = new AbortController();
    const onOuterAbort = () => abort.abort(p.signal!.reason);
    p.signal?.addEventListener("abort", onOuterAbort, { once: true });
    const apduMs: number[] = [];
    const record = (ins: number, sw: number | undefined, ms: number) => {
      apduMs.push(ms);
      this.#o.metrics.histogram("mrtd_apdu_duration_seconds", { command: commandLabel(commandName(ins)) }, APDU_BUCKETS_S).observe(ms / 1000);
      this.#o.metrics.inc("mrtd_apdu_status_total", { sw: statusWordLabel(sw) });
    };
    const wrap = (c: CardConnection) => meteredConnection(c, record, abort.signal);
    const reconnect = async (waitMs: number): Promise<CardConnection> => {
      const name = await this.#o.watcher.waitForCard((n) => n === p.reader, waitMs, abort.signal);
      const client = this.#o.watcher.client;
      if (!client) throw new TransportError("SCARD_E_NO_SERVICE", "pcscd is not reachable", { retryable: true });
      this.#o.log.debug("connecting to the card", { reader: name, waitMs });
      // Ours until disconnect (a PC/SC transaction), taken again on every new connection.
      return wrap(await client.connect(name, { transaction: true }));
    };
    const t0 = performance.now();
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
            onProgress: (pr) => {
              if (pr.kind !== "file") this.#o.log.debug("read progress", progressFields(pr));
              p.onProgress?.(pr);
            },
            recovery: { maxRecoveries: 200, cardWaitMs: p.cardWaitMs, backoffMs: 25, maxConsecutive: 16 },
            activeAuthentication: this.#o.config.verification.activeAuthentication,
          },
          reconnect,
        );
      } catch (e) {
        error = e;
      } finally {
        await conn?.disconnect(this.#o.config.readers.disconnect).catch(() => undefined);
      }
      return this.#record(p, doc, error, performance.now() - t0, apduMs);
    })();
    this.#current = { done: run, abort };
    try {
      const outcome = await run;
      if (outcome.error !== undefined) throw outcome.error;
      return outcome;
    } finally {
      this.#current = undefined;
      p.signal?.removeEventListener("abort", onOuterAbort);
    }
  }

  #record(p: { reader: string; trigger: "command" | "insert"; commandId?: string }, doc: DocumentRead | undefined, error: unknown, wallMs: number, apduMs: number[]): ReadOutcome {
    const id = this.#o.config.agent.id;
    let event: ReadEvent;
    let failureClass: string | undefined;
    let verdict: DocumentVerdict | undefined;
    if (doc) {
      const v = verdictOf(doc, this.#o.trust, this.#o.config.verification.trust);
      verdict = v?.full;
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
    this.#o.metrics.histogram("mrtd_read_duration_seconds", { outcome }, READ_BUCKETS_S).observe(event.durationMs / 1000);
    this.#o.metrics.inc("mrtd_reads_total", { outcome, trigger: p.trigger });
    if (failureClass) this.#o.metrics.inc("mrtd_read_failures_total", { class: failureClass });
    const recoveries = doc?.summary.recoveries ?? readFailureReport(error)?.recoveries ?? [];
    for (const r of recoveries) this.#o.metrics.inc("mrtd_recoveries_total", { class: r.cause });
    this.#o.health(p.reader).recordRead(!!doc, { ...(failureClass ? { failureClass } : {}), recoveries, apduMs });
    const eventId = Bun.randomUUIDv7();
    // Opt-in (telemetry.include_personal_data): sealed to the fleet's key, never in clear.
    if (doc && this.eventSealer) event.personalData = this.eventSealer(doc, eventId);
    this.#o.appendEvent(event, eventId);
    this.#o.log.info(doc ? "read complete" : "read failed", {
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
    this.#o.publishHealth(p.reader);
    // The read's garbage (secure-messaging temporaries, the verification's big-integer
    // arithmetic: some 70,000 BigInts) goes now, in a young-generation collection of a
    // millisecond or so, before a remote read's sealing adds its own: the heap does not grow
    // to hold both (RssAnon at the peak of a read 3-5 MB lower, test/bench/agent.bench.ts).
    edenGC();
    const out: ReadOutcome = { event, eventId };
    if (doc) out.doc = doc;
    if (verdict) out.verdict = verdict;
    if (error !== undefined) out.error = error;
    return out;
  }

  /**
   * A remote read that never reached a card (no reader matched, no card within its timeout):
   * a read event and the failure counters say so, for the fleet view. Reader health is left
   * alone: a document not presented says nothing about the reader.
   */
  recordUnstarted(cmd: { id: string; reader?: string }, failureClass: "NO_READER" | "NO_CARD", waitedMs: number): void {
    const summary = noDocumentSummary(cmd.reader ?? "", { apdus: 0, ms: waitedMs, steps: [], recoveries: [] });
    this.#o.metrics.inc("mrtd_reads_total", { outcome: "failure", trigger: "command" });
    this.#o.metrics.inc("mrtd_read_failures_total", { class: failureClass });
    const eventId = this.#o.appendEvent(readEvent(this.#o.config.agent.id, summary, { trigger: "command", commandId: cmd.id, failureClass }));
    this.#o.log.info("read not started", { commandId: cmd.id, failureClass, eventId, waitedMs: Math.round(waitedMs) });
  }
}

/**
 * The document verdict, as the CLI gives it (agent/verification): Passive Authentication
 * against the configured trust sources merged with the Active Authentication result.
 */
function verdictOf(doc: DocumentRead, trust: TrustStore | undefined, trustSources: string[]): { verdict: string; reasons: string[]; full?: DocumentVerdict } | undefined {
  if (!doc.files.has("SOD")) return undefined;
  try {
    const v = verifyRead(doc, { trust, trustSources });
    return { verdict: v.overall, reasons: v.reasons, full: v };
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

/** A read's progress for a debug log line: step names, file keys, sizes, counts, recovery causes; never file contents. */
function progressFields(pr: ReadProgress): LogFields {
  if (pr.kind === "step") return { kind: pr.kind, step: pr.step };
  if (pr.kind === "recovery") return { kind: pr.kind, cause: pr.recovery.cause, action: pr.recovery.action, ok: pr.recovery.ok ?? true };
  if (pr.kind === "file-done") return { kind: pr.kind, file: pr.key, bytes: pr.bytes, apdus: pr.apdus, ms: pr.ms };
  if (pr.kind === "file-absent") return { kind: pr.kind, file: pr.key, sw: pr.sw.toString(16).toUpperCase().padStart(4, "0") };
  return { kind: pr.kind };
}
