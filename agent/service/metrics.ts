/**
 * The agent's metrics (telemetry): Prometheus-style histograms with cumulative
 * buckets and counters, published as JSON on the metrics topic (deploy/asyncapi.yaml,
 * Metrics) and printable in the Prometheus text format (exposition format 0.0.4).
 *
 *   mrtd_apdu_duration_seconds{command}     one observation per APDU, by command kind
 *   mrtd_read_duration_seconds{outcome}     one observation per read
 *   mrtd_apdu_status_total{sw}              status words seen (reader-stack pseudo SWs included)
 *   mrtd_read_failures_total{class}         failure classes (reading/failure-classes.ts) of failed reads
 *   mrtd_recoveries_total{class}            recoveries during reads, by the class they recovered from
 *   mrtd_reads_total{outcome,trigger}       reads
 *   mrtd_commands_total{command,result}     remote commands (result = ok or the error code)
 *   mrtd_event_loop_lag_seconds             event-loop lag sampled every 5 ms while a read runs
 *   mrtd_pcscd_reconnects_total             times the PC/SC context was re-established
 *   mrtd_outbox_dropped_total, mrtd_outbox_pending, mrtd_outbox_delivered_total
 *
 * Values are cumulative since the agent started (as Prometheus counters are); `intervalS`
 * says how often they are published. Labels never hold personal data.
 */
import { hex4 } from "../errors.ts";
import { isListedSw, isMoreData, isWrongLe } from "../iso7816/status-words.ts";
import type { CounterMetric, HistogramMetric, MetricsPayload } from "./payloads.ts";

/**
 * The `sw` label of mrtd_apdu_status_total: a status word comes from the card (or a hostile chip),
 * so the label takes a bounded set of values: the status words we know, the families 61XX, 6CXX,
 * 63CX and 6FXX, "none" (no answer) and "other".
 */
export function statusWordLabel(sw: number | undefined): string {
  if (sw === undefined) return "none";
  if (isListedSw(sw)) return hex4(sw);
  if (isMoreData(sw)) return "61XX";
  if (isWrongLe(sw)) return "6CXX";
  if ((sw & 0xfff0) === 0x63c0) return "63CX";
  if ((sw & 0xff00) === 0x6f00) return "6FXX";
  return "other";
}

/** APDU buckets: a contactless APDU takes 1-50 ms; reader-stack timeouts end near 3 s. */
export const APDU_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;
/** Read buckets: a BAC read of DG1+DG2 takes 0.5-10 s; recoveries stretch it. */
export const READ_BUCKETS_S = [0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120] as const;

/** Event-loop lag buckets: the agent aims at a p99 under 20 ms during reads. */
export const LAG_BUCKETS_S = [0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1] as const;

/** The smallest bucket bound holding quantile `q` of the observations (upper estimate), or undefined. */
export function histogramQuantile(h: HistogramMetric, q: number): number | undefined {
  if (h.count === 0) return undefined;
  const want = q * h.count;
  for (const b of h.buckets) if (b.count >= want) return b.le === "+Inf" ? Infinity : b.le;
  return Infinity;
}

export class Histogram {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly bounds: readonly number[];
  /** Non-cumulative counts per bucket; the last slot is +Inf. */
  readonly #counts: number[];
  #sum = 0;
  #count = 0;
  constructor(name: string, labels: Record<string, string>, bounds: readonly number[]) {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new RangeError(`Histogram: bad metric name ${name}`);
    for (let i = 1; i < bounds.length; i++) if (!(bounds[i]! > bounds[i - 1]!)) throw new RangeError("Histogram: bounds must increase");
    this.name = name;
    this.labels = labels;
    this.bounds = bounds;
    this.#counts = new Array(bounds.length + 1).fill(0);
  }
  observe(value: number): void {
    if (!Number.isFinite(value) || value < 0) return;
    let i = this.bounds.findIndex((b) => value <= b);
    if (i < 0) i = this.bounds.length;
    this.#counts[i]!++;
    this.#sum += value;
    this.#count++;
  }
  get count(): number {
    return this.#count;
  }
  get sum(): number {
    return this.#sum;
  }
  snapshot(): HistogramMetric {
    let acc = 0;
    const buckets: HistogramMetric["buckets"] = this.bounds.map((le, i) => ({ le, count: (acc += this.#counts[i]!) }));
    buckets.push({ le: "+Inf", count: this.#count });
    return { name: this.name, labels: { ...this.labels }, buckets, sum: round6(this.#sum), count: this.#count };
  }
}

/** Counters and histograms keyed by name and labels. */
export class MetricsRegistry {
  readonly #histograms = new Map<string, Histogram>();
  readonly #counters = new Map<string, CounterMetric>();
  readonly #gauges = new Map<string, () => number>();

  histogram(name: string, labels: Record<string, string>, bounds: readonly number[]): Histogram {
    const key = seriesKey(name, labels);
    let h = this.#histograms.get(key);
    if (!h) {
      h = new Histogram(name, labels, bounds);
      this.#histograms.set(key, h);
    }
    return h;
  }

  inc(name: string, labels: Record<string, string> = {}, by = 1): void {
    const key = seriesKey(name, labels);
    const c = this.#counters.get(key);
    if (c) c.value += by;
    else this.#counters.set(key, { name, labels: { ...labels }, value: by });
  }

  counter(name: string, labels: Record<string, string> = {}): number {
    return this.#counters.get(seriesKey(name, labels))?.value ?? 0;
  }

  /** A value read at every snapshot (outbox size, ...), published among the counters. */
  gauge(name: string, read: () => number): void {
    this.#gauges.set(name, read);
  }

  snapshot(agentId: string, intervalS: number, at = new Date()): MetricsPayload {
    const counters = [...this.#counters.values()].map((c) => ({ name: c.name, labels: { ...c.labels }, value: c.value }));
    for (const [name, read] of this.#gauges) {
      const v = read();
      if (Number.isFinite(v) && v >= 0) counters.push({ name, labels: {}, value: v });
    }
    return {
      agentId,
      at: at.toISOString(),
      intervalS,
      histograms: [...this.#histograms.values()].map((h) => h.snapshot()),
      counters,
    };
  }
}

/** The Prometheus text exposition (0.0.4) of a metrics payload. */
export function toPrometheusText(m: MetricsPayload): string {
  const lines: string[] = [];
  const typed = new Set<string>();
  for (const h of m.histograms) {
    if (!typed.has(h.name)) lines.push(`# TYPE ${h.name} histogram`);
    typed.add(h.name);
    for (const b of h.buckets) lines.push(`${h.name}_bucket${labelText({ ...h.labels, le: String(b.le) })} ${b.count}`);
    lines.push(`${h.name}_sum${labelText(h.labels)} ${h.sum}`);
    lines.push(`${h.name}_count${labelText(h.labels)} ${h.count}`);
  }
  for (const c of m.counters) {
    if (!typed.has(c.name)) lines.push(`# TYPE ${c.name} ${c.name.endsWith("_total") ? "counter" : "gauge"}`);
    typed.add(c.name);
    lines.push(`${c.name}${labelText(c.labels)} ${c.value}`);
  }
  return lines.join("\n") + "\n";
}

/** A command kind as a label value: "READ BINARY (odd)" -> "read_binary_odd". */
export function commandLabel(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, "");
}

function labelText(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  return `{${entries.map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`).join(",")}}`;
}

function seriesKey(name: string, labels: Record<string, string>): string {
  return name + JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
}

function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
