/**
 * Data shaping for the agent page's charts: the APDU latency histogram from a metrics payload
 * the agent's own registry made (cumulative buckets -> counts per bucket, quantiles by the
 * agent's histogramQuantile), and payloads that do not add up.
 */
import { describe, expect, test } from "bun:test";
import { apduLatencyHistogram } from "../../agent/dashboard/charts.ts";
import { readOutcomes } from "../../agent/dashboard/web/chart-data.ts";
import { diagnoseNote, lastDiagnosis, onDiagnosis, rememberDiagnosis } from "../../agent/dashboard/web/diagnose-memory.ts";
import { APDU_BUCKETS_S, MetricsRegistry } from "../../agent/service/metrics.ts";
import type { MetricsPayload } from "../../agent/service/payloads.ts";

function payload(observe: (r: MetricsRegistry) => void): MetricsPayload {
  const r = new MetricsRegistry();
  observe(r);
  return r.snapshot("kiosk-1", 60, "2026-12-04T10:00:00.000Z", new Date("2026-12-04T10:05:00.000Z"));
}

describe("APDU latency histogram", () => {
  test("counts per bucket, per command and merged, with p50/p95/p99", () => {
    const m = payload((r) => {
      const sel = r.histogram("mrtd_apdu_duration_seconds", { command: "select" }, APDU_BUCKETS_S);
      const rb = r.histogram("mrtd_apdu_duration_seconds", { command: "read_binary" }, APDU_BUCKETS_S);
      for (let i = 0; i < 10; i++) sel.observe(0.002); // 10 in <= 2.5 ms
      for (let i = 0; i < 90; i++) rb.observe(0.008); // 90 in <= 10 ms
      rb.observe(0.3); // 1 in <= 0.5 s
      rb.observe(7); // 1 past the last bound
      r.histogram("mrtd_read_duration_seconds", { outcome: "success" }, [1, 2]).observe(1.5); // not an APDU histogram
    });
    const h = apduLatencyHistogram(m)!;
    expect(h.at).toBe("2026-12-04T10:05:00.000Z");
    expect(h.bounds).toEqual([...APDU_BUCKETS_S, "+Inf"]);
    const at = (le: number | "+Inf") => h.bounds.indexOf(le);
    expect(h.all.count).toBe(102);
    expect(h.all.counts.reduce((a, b) => a + b, 0)).toBe(102);
    expect(h.all.counts[at(0.0025)]).toBe(10);
    expect(h.all.counts[at(0.01)]).toBe(90);
    expect(h.all.counts[at(0.5)]).toBe(1);
    expect(h.all.counts[at("+Inf")]).toBe(1);
    expect(h.all.counts[at(0.001)]).toBe(0);
    // 51st APDU is in the 10 ms bucket; 97th and 101st too; only the last one is past 5 s.
    expect([h.all.p50, h.all.p95, h.all.p99]).toEqual([0.01, 0.01, 0.5]);
    expect(h.byCommand.map((c) => [c.command, c.count])).toEqual([["read_binary", 92], ["select", 10]]);
    const sel = h.byCommand.find((c) => c.command === "select")!;
    expect(sel.counts[at(0.0025)]).toBe(10);
    expect([sel.p50, sel.p95, sel.p99]).toEqual([0.0025, 0.0025, 0.0025]);
    expect(h.byCommand[0]!.p99).toBe("+Inf"); // 0.99 * 92 = 91.08 APDUs: past the 91 at or below 0.5 s
    expect(h.all.sum).toBeCloseTo(10 * 0.002 + 90 * 0.008 + 0.3 + 7, 5);
  });

  test("a metrics payload without APDUs, or none: null; no observations: null quantiles", () => {
    expect(apduLatencyHistogram(null)).toBeNull();
    expect(apduLatencyHistogram(payload(() => undefined))).toBeNull();
    const empty = apduLatencyHistogram(payload((r) => void r.histogram("mrtd_apdu_duration_seconds", { command: "select" }, APDU_BUCKETS_S)))!;
    expect(empty.all.count).toBe(0);
    expect(empty.all.p95).toBeNull();
    expect(empty.all.counts.every((c) => c === 0)).toBe(true);
  });

  test("buckets that do not add up (differing bounds, a falling count) give no negative bars", () => {
    const m: MetricsPayload = {
      agentId: "odd",
      at: "2026-12-04T10:00:00.000Z",
      startedAt: "2026-12-04T09:00:00.000Z",
      intervalS: 60,
      counters: [],
      gauges: [],
      histograms: [
        { name: "mrtd_apdu_duration_seconds", labels: { command: "a" }, buckets: [{ le: 0.01, count: 5 }, { le: 0.1, count: 3 }, { le: "+Inf", count: 6 }], sum: 0.1, count: 6 },
        { name: "mrtd_apdu_duration_seconds", labels: { command: "b" }, buckets: [{ le: 0.05, count: 2 }, { le: "+Inf", count: 2 }], sum: 0.05, count: 2 },
      ],
    };
    const h = apduLatencyHistogram(m)!;
    expect(h.bounds).toEqual([0.01, 0.05, 0.1, "+Inf"]);
    const a = h.byCommand.find((c) => c.command === "a")!;
    expect(a.counts).toEqual([5, 0, 0, 1]);
    expect(h.all.counts).toEqual([5, 2, 0, 1]);
    expect(h.all.counts.every((c) => c >= 0)).toBe(true);
    expect(h.all.p99).toBe("+Inf");
  });
});

describe("read outcomes per sample interval", () => {
  const t = Date.UTC(2026, 11, 4, 12);
  const m = 60_000;
  test("one bar per sample, its interval back to the previous sample; totals and the tallest bar", () => {
    const d = readOutcomes([
      { at: t - 30 * m, readsOk: 2, readsFailed: 1 },
      { at: t - 45 * m, readsOk: 0, readsFailed: 0 },
      { at: t - 15 * m, readsOk: 5, readsFailed: 0 },
    ], t);
    expect(d.bars.map((b) => [(t - b.from) / m, (t - b.at) / m, b.ok, b.failed])).toEqual([[60, 45, 0, 0], [45, 30, 2, 1], [30, 15, 5, 0]]);
    expect([d.ok, d.failed, d.max]).toEqual([7, 1, 5]);
    expect(d.from).toBe(t - 60 * m);
    expect(d.to).toBe(t);
  });

  test("older than the window is left out; a gap (agent offline) does not widen the bar after it; no negative counts", () => {
    const d = readOutcomes([
      { at: t - 49 * 60 * m, readsOk: 9, readsFailed: 9 },
      { at: t - 300 * m, readsOk: 1, readsFailed: 0 },
      { at: t - 285 * m, readsOk: 1, readsFailed: 0 },
      { at: t - 15 * m, readsOk: -4, readsFailed: 2 },
    ], t);
    expect(d.bars).toHaveLength(3);
    expect((d.bars[2]!.at - d.bars[2]!.from) / m).toBe(15);
    expect([d.bars[2]!.ok, d.bars[2]!.failed]).toEqual([0, 2]);
    expect([d.ok, d.failed]).toEqual([2, 2]);
  });

  test("no samples: an empty chart over the window", () => {
    const d = readOutcomes([], t);
    expect(d.bars).toEqual([]);
    expect([d.from, d.to, d.max]).toEqual([t - 48 * 60 * m, t, 1]);
  });
});

describe("last diagnose result per reader (kept in the page)", () => {
  const result = (name: string, verdict: string) => ({
    reader: { name, missing: [] },
    verdict,
    stability: { exchanges: 10, ok: 9, failed: 1, presenceFlaps: 2, relinks: 0, latencyMs: { min: 3, p50: 5, p95: 9.5, p99: 12, max: 15 } },
    advice: ["keep the document flat"],
  });
  test("the newest result per agent and reader, shaped into one line; listeners hear of it", () => {
    const heard: string[] = [];
    const off = onDiagnosis((id) => heard.push(id));
    expect(lastDiagnosis("kiosk-1", "ACS")).toBeUndefined();
    rememberDiagnosis("kiosk-1", result("ACS", "good"), 1000);
    rememberDiagnosis("kiosk-1", result("ACS", "marginal"), 2000);
    rememberDiagnosis("kiosk-2", result("ACS", "unusable"), 3000);
    expect(lastDiagnosis("kiosk-1", "ACS")).toEqual({ at: 2000, reader: "ACS", verdict: "marginal", summary: "9/10 exchanges ok, 2 presence flap(s), p95 9.5 ms", advice: ["keep the document flat"] });
    expect(lastDiagnosis("kiosk-2", "ACS")!.verdict).toBe("unusable");
    expect(heard).toEqual(["kiosk-1", "kiosk-1", "kiosk-2"]);
    off();
    rememberDiagnosis("kiosk-1", result("ACS", "good"));
    expect(heard).toHaveLength(3);
  });

  test("a result without a reader name is not kept; odd fields do not throw", () => {
    expect(diagnoseNote({ verdict: "good" }, 1)).toBeUndefined();
    expect(rememberDiagnosis("kiosk-9", { reader: { name: 5 } })).toBeUndefined();
    expect(diagnoseNote({ reader: { name: "R" }, stability: { ok: "x", latencyMs: null }, advice: "no" }, 1)).toEqual({ at: 1, reader: "R", verdict: "?", summary: "?/? exchanges ok", advice: [] });
  });
});
