/**
 * Data for the agent page's charts, shaped on the server from what the dashboard keeps: the
 * APDU latency distribution from the agent's newest metrics payload (its cumulative
 * `mrtd_apdu_duration_seconds` buckets per command, turned into counts per bucket, with
 * p50/p95/p99 by the agent's own histogramQuantile), all commands merged and each on its own.
 */
import { histogramQuantile } from "../service/metrics.ts";
import type { HistogramMetric, MetricsPayload } from "../service/payloads.ts";

export type Le = number | "+Inf";
export interface LatencySeries {
  /** The `command` label (select, read_binary, ...), or "all" for every command merged. */
  command: string;
  /** Observations per bucket (not cumulative), one per `bounds` entry. */
  counts: number[];
  count: number;
  /** Seconds. */
  sum: number;
  /** Upper bucket bounds (seconds) holding each quantile; "+Inf" past the last bound; null without observations. */
  p50: Le | null;
  p95: Le | null;
  p99: Le | null;
}
export interface LatencyHistogram {
  /** The metrics payload's time. */
  at: string;
  /** Bucket upper bounds in seconds, ascending, the last "+Inf". */
  bounds: Le[];
  all: LatencySeries;
  byCommand: LatencySeries[];
}

const APDU = "mrtd_apdu_duration_seconds";
/** Commands shown at most (the `command` label is a pattern: a misbehaving agent could send many). */
const MAX_COMMANDS = 32;

const leNum = (le: Le): number => (le === "+Inf" ? Infinity : le);

/** The cumulative count at bound `le`: the count of the largest bound of `h` not above it (0 below its first). */
function cumulativeAt(h: HistogramMetric, le: number): number {
  let n = 0;
  for (const b of h.buckets) if (leNum(b.le) <= le && b.count > n) n = b.count;
  return n;
}

function series(command: string, bounds: Le[], cumulative: number[], sum: number): LatencySeries {
  const counts = cumulative.map((c, i) => Math.max(0, c - (i === 0 ? 0 : cumulative[i - 1]!)));
  const count = cumulative[cumulative.length - 1] ?? 0;
  const h: HistogramMetric = { name: APDU, labels: {}, buckets: bounds.map((le, i) => ({ le, count: cumulative[i]! })), sum, count };
  const q = (p: number): Le | null => {
    const v = histogramQuantile(h, p);
    return v === undefined ? null : v === Infinity ? "+Inf" : v;
  };
  return { command, counts, count, sum, p50: q(0.5), p95: q(0.95), p99: q(0.99) };
}

/** The APDU latency distribution of an agent's metrics payload, or null when it has none. */
export function apduLatencyHistogram(m: MetricsPayload | null): LatencyHistogram | null {
  const hs = (m?.histograms ?? []).filter((h) => h.name === APDU && h.buckets.length > 0);
  if (!m || hs.length === 0) return null;
  // One set of bounds for all commands (the agent uses the same for each; a union if not).
  const finite = new Set<number>();
  for (const h of hs) for (const b of h.buckets) if (b.le !== "+Inf" && Number.isFinite(b.le)) finite.add(b.le);
  const bounds: Le[] = [...[...finite].sort((a, b) => a - b).slice(0, 64), "+Inf"];
  const cumulativeOf = (h: HistogramMetric): number[] => {
    // Monotone even if a payload is not: each bound at least the one below it.
    let prev = 0;
    return bounds.map((le) => (prev = Math.max(prev, le === "+Inf" ? Math.max(h.count, cumulativeAt(h, Infinity)) : cumulativeAt(h, le))));
  };
  const byCommand = new Map<string, { cumulative: number[]; sum: number }>();
  for (const h of hs) {
    const cmd = h.labels.command ?? "";
    const c = cumulativeOf(h);
    const acc = byCommand.get(cmd);
    if (acc) {
      acc.cumulative = acc.cumulative.map((v, i) => v + c[i]!);
      acc.sum += h.sum;
    } else byCommand.set(cmd, { cumulative: c, sum: h.sum });
  }
  const all = new Array<number>(bounds.length).fill(0);
  let sum = 0;
  for (const s of byCommand.values()) {
    s.cumulative.forEach((v, i) => (all[i]! += v));
    sum += s.sum;
  }
  const list = [...byCommand].sort(([, x], [, y]) => y.cumulative[y.cumulative.length - 1]! - x.cumulative[x.cumulative.length - 1]!).slice(0, MAX_COMMANDS);
  return {
    at: m.at,
    bounds,
    all: series("all", bounds, all, sum),
    byCommand: list.map(([cmd, s]) => series(cmd, bounds, s.cumulative, s.sum)),
  };
}
