/**
 * JSON payloads the agent publishes on its health, metrics and events topics (schemas in
 * deploy/asyncapi.yaml; test/service/asyncapi.test.ts validates what these builders make).
 * Events and telemetry carry no personal data: a read event keeps sizes, timings and
 * verdicts but not file hashes, since a hash of DG1 (the MRZ) can be brute-forced back to
 * the MRZ from its few unknown fields.
 */
import type { FileKey, ReadSummary, StepTiming } from "../reading/read-result.ts";
import type { SealedEnvelope } from "./envelope.ts";

export interface ReaderHealth {
  agentId: string;
  reader: string;
  at: string;
  connected: boolean;
  cardPresent: boolean;
  /** Failure class of the last failed read (reading/failure-classes.ts), null if none yet. */
  lastFailureClass: string | null;
  successRate: { windowReads: number; succeeded: number; rate: number | null };
  rfDrops: number;
  recoveries: number;
  apduLatencyMs: { mean: number | null; p95: number | null };
}

/** One Prometheus-style histogram with cumulative buckets (`le` upper bounds; last is +Inf). */
export interface HistogramMetric {
  name: string;
  labels: Record<string, string>;
  buckets: Array<{ le: number | "+Inf"; count: number }>;
  sum: number;
  count: number;
}
/** A monotonic count since `startedAt` (or, where its description says so, since an earlier origin). */
export interface CounterMetric {
  name: string;
  labels: Record<string, string>;
  value: number;
}
/** A value as it stands at `at` (memory, queue length): may go down. */
export interface GaugeMetric {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface MetricsPayload {
  agentId: string;
  at: string;
  /** When this agent process started: counters and histograms count from here (a reset when it changes). */
  startedAt: string;
  intervalS: number;
  histograms: HistogramMetric[];
  counters: CounterMetric[];
  gauges: GaugeMetric[];
}

interface EventBase {
  agentId: string;
  at: string;
}
export interface ReadEvent extends EventBase {
  type: "read";
  reader: string;
  /** "command" for remote reads, "insert" for reads on card arrival. */
  trigger: "command" | "insert";
  commandId?: string;
  outcome: "success" | "failure";
  failureClass?: string;
  documentType?: string;
  issuingState?: string;
  verification?: { hashesMatchSod?: boolean; verdict?: string; reasons?: string[] };
  files: Partial<Record<FileKey, { bytes: number; apdus: number; ms: number }>>;
  steps: StepTiming[];
  apdus: number;
  durationMs: number;
  recoveries: number;
  /** How the read authenticated: PACE or BAC, the password type, PACE mapping, group and cipher (never the key). */
  access?: { protocol: "PACE" | "BAC"; password?: "MRZ" | "CAN"; mapping?: "GM" | "IM" | "CAM"; group?: string; cipher: string };
  /**
   * Only with telemetry.include_personal_data: the MRZ fields and DG11/DG12 (never the face),
   * sealed to telemetry.personal_data_public_key by the agent's key (envelope.ts, kind "event", bound to eventId).
   */
  personalData?: SealedEnvelope;
}
export interface ReaderEvent extends EventBase {
  type: "reader";
  reader: string;
  change: "attached" | "detached";
}
export interface CardEvent extends EventBase {
  type: "card";
  reader: string;
  change: "inserted" | "removed";
  atr?: string;
}
export type AgentEvent = ReadEvent | ReaderEvent | CardEvent;

/** A read event from a read summary, without personal data (no hashes, no MRZ, no face). */
export function readEvent(
  agentId: string,
  summary: ReadSummary,
  opts: { trigger: "command" | "insert"; commandId?: string; failureClass?: string; verdict?: string; reasons?: string[]; at?: Date },
): ReadEvent {
  const files: ReadEvent["files"] = {};
  for (const [k, f] of Object.entries(summary.files) as Array<[FileKey, NonNullable<ReadSummary["files"][FileKey]>]>) {
    files[k] = { bytes: f.bytes, apdus: f.apdus, ms: f.ms };
  }
  const e: ReadEvent = {
    agentId,
    at: (opts.at ?? new Date()).toISOString(),
    type: "read",
    reader: summary.reader,
    trigger: opts.trigger,
    outcome: opts.failureClass === undefined ? "success" : "failure",
    files,
    steps: summary.steps.map((s) => ({ name: s.name, ms: s.ms, apdus: s.apdus })),
    apdus: summary.apdus,
    durationMs: summary.durationMs,
    recoveries: summary.recoveries.length,
  };
  if (opts.commandId !== undefined) e.commandId = opts.commandId;
  if (opts.failureClass !== undefined) e.failureClass = opts.failureClass;
  if (summary.documentType !== undefined) e.documentType = summary.documentType;
  if (summary.issuingState !== undefined) e.issuingState = summary.issuingState;
  const a = summary.authentication;
  if (a) {
    e.access = { protocol: a.protocol, cipher: a.cipher };
    if (a.password) e.access.password = a.password;
    if (a.mapping) e.access.mapping = a.mapping;
    if (a.group) e.access.group = a.group;
  }
  if (summary.hashesMatchSod !== undefined || opts.verdict !== undefined) {
    e.verification = {};
    if (summary.hashesMatchSod !== undefined) e.verification.hashesMatchSod = summary.hashesMatchSod;
    if (opts.verdict !== undefined) e.verification.verdict = opts.verdict;
    // Reason codes only (e.g. DG_HASH_MISMATCH, NO_CSCA, AA_FAILED): no personal data.
    if (opts.reasons !== undefined) e.verification.reasons = opts.reasons;
  }
  return e;
}

export function readerEvent(agentId: string, reader: string, change: ReaderEvent["change"], at = new Date()): ReaderEvent {
  return { agentId, at: at.toISOString(), type: "reader", reader, change };
}

export function cardEvent(agentId: string, reader: string, change: CardEvent["change"], atr?: string, at = new Date()): CardEvent {
  const e: CardEvent = { agentId, at: at.toISOString(), type: "card", reader, change };
  if (atr !== undefined) e.atr = atr;
  return e;
}
