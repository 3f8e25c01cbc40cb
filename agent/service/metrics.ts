/**
 * The agent's metrics (telemetry): Prometheus-style histograms with cumulative
 * buckets, counters and gauges, published as JSON on the metrics topic (deploy/asyncapi.yaml,
 * Metrics) and printable in the Prometheus text format (exposition format 0.0.4). Every
 * series is one of METRIC_CATALOG (the registry refuses others), and the document's series
 * schemas are generated from it (deploy/gen-asyncapi-enums.ts).
 *
 * Counters and histograms are cumulative since the agent process started (`startedAt`), as
 * Prometheus counters are, never per interval (mrtd_outbox_dropped_total counts since the
 * outbox file was created); `intervalS` says how often they are published. Gauges are values
 * as they stand at `at` and may go down. Labels never hold personal data.
 */
import { hex4 } from "../errors.ts";
import { isListedSw, STATUS_WORD_FAMILIES } from "../iso7816/status-words.ts";
import type { CounterMetric, GaugeMetric, HistogramMetric, MetricsPayload } from "./payloads.ts";

/** What a label's values are: one of a list, a failure class code, a status word, or a pattern. */
export type LabelValues = { enum: readonly string[] } | { failureClass: true } | { statusWord: true } | { pattern: string };
export interface MetricSpec {
  type: "histogram" | "counter" | "gauge";
  help: string;
  labels: Readonly<Record<string, LabelValues>>;
}

const OUTCOME = { enum: ["success", "failure"] } as const;

/** Every metric the agent publishes. */
export const METRIC_CATALOG: Readonly<Record<string, MetricSpec>> = {
  mrtd_apdu_duration_seconds: { type: "histogram", help: "APDU round trips (command to response), one observation per APDU, by command kind (select, read_binary, get_challenge, ...)", labels: { command: { pattern: "^[a-z0-9_]+$" } } },
  mrtd_read_duration_seconds: { type: "histogram", help: "Reads, one observation per read (card work only; a remote read's wait for the card is not in it)", labels: { outcome: OUTCOME } },
  mrtd_event_loop_lag_seconds: { type: "histogram", help: "Event-loop lag sampled every 5 ms while a card operation runs, to the end of its clean-up (GC, page trim)", labels: {} },
  mrtd_hpke_duration_seconds: { type: "histogram", help: "HPKE operations of the agent: sealing a reply (the whole result, a face image included), sealing an event's personal data, opening an access key", labels: { op: { enum: ["reply", "event", "access-key"] } } },
  mrtd_apdu_status_total: { type: "counter", help: "APDU responses by status word (reader-stack pseudo status words such as 6F01 included; none = no status word came back)", labels: { sw: { statusWord: true } } },
  mrtd_reads_total: { type: "counter", help: "Reads by outcome and trigger (a remote read that never reached a card counts as a failure)", labels: { outcome: OUTCOME, trigger: { enum: ["command", "insert"] } } },
  mrtd_read_failures_total: { type: "counter", help: "Failed reads by failure class", labels: { class: { failureClass: true } } },
  mrtd_recoveries_total: { type: "counter", help: "Recoveries during reads (reconnect, re-authenticate, resume) by the failure class they recovered from", labels: { class: { failureClass: true } } },
  mrtd_commands_received_total: { type: "counter", help: "Messages received on the agent's command topics", labels: {} },
  mrtd_pcscd_reconnects_total: { type: "counter", help: "Times the PC/SC context was opened again after pcscd went away", labels: {} },
  mrtd_outbox_delivered_total: { type: "counter", help: "Events the broker acknowledged", labels: {} },
  mrtd_outbox_dropped_total: { type: "counter", help: "Oldest events dropped because the outbox was full, since the outbox file was created (survives restarts)", labels: {} },
  mrtd_memory_trimmed_bytes_total: { type: "counter", help: "Bytes of executable pages released back to the system", labels: {} },
  mrtd_outbox_pending: { type: "gauge", help: "Events waiting in the outbox", labels: {} },
  mrtd_process_resident_bytes: { type: "gauge", help: "The agent's resident memory (VmRSS)", labels: {} },
  mrtd_process_resident_anon_bytes: { type: "gauge", help: "The agent's anonymous resident memory (RssAnon)", labels: {} },
};

/** Throws unless `name` is a catalogued metric of `type` with exactly these label names. */
function checkSeries(name: string, type: MetricSpec["type"], labels: Record<string, string>): void {
  const spec = METRIC_CATALOG[name];
  if (!spec || spec.type !== type) throw new RangeError(`MetricsRegistry: ${name} is not a ${type} of METRIC_CATALOG`);
  const want = Object.keys(spec.labels).sort().join(",");
  const got = Object.keys(labels).sort().join(",");
  if (want !== got) throw new RangeError(`MetricsRegistry: ${name} takes labels {${want}}, not {${got}}`);
}

/**
 * The `sw` label of mrtd_apdu_status_total: a status word comes from the card (or a hostile chip),
 * so the label takes a bounded set of values: the status words we know (4 hex digits), the
 * families of STATUS_WORD_FAMILIES in upper case (61XX, 6CXX, 63CX, 6FXX), "none" (no answer)
 * and "other".
 */
export function statusWordLabel(sw: number | undefined): string {
  if (sw === undefined) return "none";
  if (isListedSw(sw)) return hex4(sw);
  return STATUS_WORD_FAMILIES.find((f) => f.matches(sw))?.pattern.toUpperCase() ?? "other";
}

/** The `sw` label values besides a listed status word (deploy/asyncapi.yaml is generated from this). */
export const STATUS_WORD_LABEL_EXTRAS: readonly string[] = ["none", "other", ...STATUS_WORD_FAMILIES.map((f) => f.pattern.toUpperCase())];

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

/** Counters, gauges and histograms keyed by name and labels. */
export class MetricsRegistry {
  readonly #histograms = new Map<string, Histogram>();
  readonly #counters = new Map<string, CounterMetric>();
  /** Counters kept elsewhere (the outbox, the dispatcher), read at each snapshot. */
  readonly #counterReaders = new Map<string, () => number>();
  readonly #gauges = new Map<string, () => number>();

  histogram(name: string, labels: Record<string, string>, bounds: readonly number[]): Histogram {
    const key = seriesKey(name, labels);
    let h = this.#histograms.get(key);
    if (!h) {
      checkSeries(name, "histogram", labels);
      h = new Histogram(name, labels, bounds);
      this.#histograms.set(key, h);
    }
    return h;
  }

  inc(name: string, labels: Record<string, string> = {}, by = 1): void {
    const key = seriesKey(name, labels);
    const c = this.#counters.get(key);
    if (c) c.value += by;
    else {
      checkSeries(name, "counter", labels);
      this.#counters.set(key, { name, labels: { ...labels }, value: by });
    }
  }

  counter(name: string, labels: Record<string, string> = {}): number {
    return this.#counters.get(seriesKey(name, labels))?.value ?? 0;
  }

  /** A counter another part keeps (it must never decrease), read at every snapshot. */
  counterFrom(name: string, read: () => number): void {
    checkSeries(name, "counter", {});
    this.#counterReaders.set(name, read);
  }

  /** A value read at every snapshot that may go down (queue length, memory): a gauge, never a counter. */
  gauge(name: string, read: () => number): void {
    checkSeries(name, "gauge", {});
    this.#gauges.set(name, read);
  }

  snapshot(agentId: string, intervalS: number, startedAt: string, at = new Date()): MetricsPayload {
    const counters: CounterMetric[] = [...this.#counters.values()].map((c) => ({ name: c.name, labels: { ...c.labels }, value: c.value }));
    const gauges: GaugeMetric[] = [];
    const readInto = (into: Array<CounterMetric | GaugeMetric>, readers: Map<string, () => number>) => {
      for (const [name, read] of readers) {
        const v = read();
        if (Number.isFinite(v) && v >= 0) into.push({ name, labels: {}, value: v });
      }
    };
    readInto(counters, this.#counterReaders);
    readInto(gauges, this.#gauges);
    return {
      agentId,
      at: at.toISOString(),
      startedAt,
      intervalS,
      histograms: [...this.#histograms.values()].map((h) => h.snapshot()),
      counters,
      gauges,
    };
  }
}

/** The Prometheus text exposition (0.0.4) of a metrics payload. */
export function toPrometheusText(m: MetricsPayload): string {
  const lines: string[] = [];
  const typed = new Set<string>();
  for (const h of m.histograms) {
    if (!typed.has(h.name)) lines.push(...header(h.name, "histogram"));
    typed.add(h.name);
    for (const b of h.buckets) lines.push(`${h.name}_bucket${labelText({ ...h.labels, le: String(b.le) })} ${b.count}`);
    lines.push(`${h.name}_sum${labelText(h.labels)} ${h.sum}`);
    lines.push(`${h.name}_count${labelText(h.labels)} ${h.count}`);
  }
  for (const [type, series] of [["counter", m.counters], ["gauge", m.gauges]] as const) {
    for (const c of series) {
      if (!typed.has(c.name)) lines.push(...header(c.name, type));
      typed.add(c.name);
      lines.push(`${c.name}${labelText(c.labels)} ${c.value}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** `# HELP` (from METRIC_CATALOG, escaped as the exposition format wants) and `# TYPE` lines. */
function header(name: string, type: MetricSpec["type"]): string[] {
  const help = METRIC_CATALOG[name]?.help;
  return [...(help ? [`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`] : []), `# TYPE ${name} ${type}`];
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

/**
 * Samples event-loop lag into mrtd_event_loop_lag_seconds until the returned function is
 * called: a timer every 5 ms notes how late it fires. The service runs it from a card
 * operation's start to the end of its clean-up, so the idle agent keeps no timer spinning.
 */
export function sampleEventLoopLag(metrics: MetricsRegistry): () => void {
  const h = metrics.histogram("mrtd_event_loop_lag_seconds", {}, LAG_BUCKETS_S);
  const PERIOD = 5;
  let last = performance.now();
  const t = setInterval(() => {
    const now = performance.now();
    h.observe(Math.max(0, now - last - PERIOD) / 1000);
    last = now;
  }, PERIOD);
  return () => clearInterval(t);
}
