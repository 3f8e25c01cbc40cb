/**
 * Chart data shaped in the page, without the DOM (unit-tested under Bun): read outcomes per
 * sample interval from a reader's history samples.
 */

export interface OutcomeSample {
  at: number;
  readsOk: number;
  readsFailed: number;
}
export interface OutcomeBar {
  /** The interval's end (the sample time) and start, ms. */
  at: number;
  from: number;
  ok: number;
  failed: number;
}
export interface ReadOutcomes {
  /** The time axis, ms: from the first sample's interval (at most `windowMs` back) to now. */
  from: number;
  to: number;
  bars: OutcomeBar[];
  ok: number;
  failed: number;
  /** The largest ok + failed of one interval (at least 1). */
  max: number;
}

/**
 * One bar per sample: the reads the dashboard received in the interval that ended at the
 * sample. The interval is the gap to the previous sample (the smallest gap for the first, so a
 * gap while the agent was offline does not widen a bar). Samples older than `windowMs` are left
 * out.
 */
export function readOutcomes(samples: OutcomeSample[], now: number, windowMs = 48 * 3_600_000): ReadOutcomes {
  const kept = samples.filter((s) => s.at >= now - windowMs && s.at <= now).sort((a, b) => a.at - b.at);
  let step = Infinity;
  for (let i = 1; i < kept.length; i++) step = Math.min(step, kept[i]!.at - kept[i - 1]!.at);
  if (!Number.isFinite(step) || step <= 0) step = 15 * 60_000;
  const bars = kept.map((s, i): OutcomeBar => {
    const prev = kept[i - 1]?.at;
    const from = prev !== undefined && s.at - prev <= step * 1.5 ? prev : s.at - step;
    return { at: s.at, from, ok: Math.max(0, s.readsOk), failed: Math.max(0, s.readsFailed) };
  });
  const from = bars.length > 0 ? Math.max(now - windowMs, bars[0]!.from) : now - windowMs;
  return {
    from,
    to: Math.max(now, bars[bars.length - 1]?.at ?? now),
    bars,
    ok: bars.reduce((n, b) => n + b.ok, 0),
    failed: bars.reduce((n, b) => n + b.failed, 0),
    max: Math.max(1, ...bars.map((b) => b.ok + b.failed)),
  };
}
