/**
 * Reader health (telemetry): per reader, whether pcscd lists it, whether a card is
 * in it, the failure class of the last failed read, the success rate over the last reads,
 * RF drops and recoveries, and the mean and p95 APDU latency over recent APDUs. Published
 * retained on change and every telemetry.health_interval_s (deploy/asyncapi.yaml, ReaderHealth).
 */
import type { Recovery } from "../reading/read-result.ts";
import type { ReaderHealth } from "./payloads.ts";

/** Reads the success rate is computed over. */
export const SUCCESS_WINDOW = 20;
/** APDUs the latency mean and p95 are computed over. */
export const LATENCY_WINDOW = 512;

export class ReaderHealthTracker {
  readonly reader: string;
  connected = false;
  cardPresent = false;
  lastFailureClass: string | null = null;
  rfDrops = 0;
  recoveries = 0;
  readonly #outcomes: boolean[] = [];
  readonly #latencies: number[] = [];
  #lastPublished = "";

  constructor(reader: string) {
    this.reader = reader;
  }

  /** Records one read: outcome, failure class when it failed, its recoveries and APDU times (ms). */
  recordRead(ok: boolean, opts: { failureClass?: string; recoveries?: readonly Recovery[]; apduMs?: readonly number[] } = {}): void {
    this.#outcomes.push(ok);
    if (this.#outcomes.length > SUCCESS_WINDOW) this.#outcomes.shift();
    if (!ok) this.lastFailureClass = opts.failureClass ?? "UNKNOWN";
    for (const r of opts.recoveries ?? []) {
      this.recoveries++;
      if (r.layer === "rf-link") this.rfDrops++;
    }
    for (const ms of opts.apduMs ?? []) this.#latencies.push(ms);
    if (this.#latencies.length > LATENCY_WINDOW) this.#latencies.splice(0, this.#latencies.length - LATENCY_WINDOW);
  }

  snapshot(agentId: string, at = new Date()): ReaderHealth {
    const succeeded = this.#outcomes.filter(Boolean).length;
    const n = this.#outcomes.length;
    const lat = this.#latencies;
    let mean: number | null = null;
    let p95: number | null = null;
    if (lat.length > 0) {
      mean = round3(lat.reduce((a, b) => a + b, 0) / lat.length);
      const sorted = [...lat].sort((a, b) => a - b);
      p95 = round3(sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)]!);
    }
    return {
      agentId,
      reader: this.reader,
      at: at.toISOString(),
      connected: this.connected,
      cardPresent: this.cardPresent,
      lastFailureClass: this.lastFailureClass,
      successRate: { windowReads: n, succeeded, rate: n === 0 ? null : round3(succeeded / n) },
      rfDrops: this.rfDrops,
      recoveries: this.recoveries,
      apduLatencyMs: { mean, p95 },
    };
  }

  /**
   * Whether the health differs from what was last marked published (the timestamp aside):
   * the service publishes on change, and on its interval regardless.
   */
  changedSincePublished(agentId: string): boolean {
    return this.#fingerprint(agentId) !== this.#lastPublished;
  }

  markPublished(agentId: string): void {
    this.#lastPublished = this.#fingerprint(agentId);
  }

  #fingerprint(agentId: string): string {
    const { at: _at, ...rest } = this.snapshot(agentId, new Date(0));
    return JSON.stringify(rest);
  }
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}
