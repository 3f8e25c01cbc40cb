/**
 * Read outcomes over time as an SVG bar chart (no chart library): per history sample interval,
 * successful reads (green) under failed ones (red), each bar's numbers in its <title> (shown on
 * hover, read by screen readers), totals written above.
 */
import { readOutcomes, type OutcomeSample } from "../chart-data.ts";
import { svg as el } from "../dom.ts";

export function outcomesChart(samples: OutcomeSample[], now = Date.now()): SVGSVGElement {
  const d = readOutcomes(samples, now);
  const w = 320;
  const hgt = 48;
  const summary = d.bars.length === 0 ? "reads: no history yet" : `reads: ${d.ok} ok, ${d.failed} failed in ${d.bars.length} intervals`;
  const svg = el("svg", { viewBox: `0 0 ${w} ${hgt + 16}`, width: w, height: hgt + 16, class: "trend", role: "img", "data-testid": "outcomes-chart" },
    el("title", {}, `Read outcomes per sample interval, last 48 h: ${summary}`),
    el("text", { x: 0, y: 12 }, summary));
  const span = Math.max(1, d.to - d.from);
  const x = (t: number) => ((t - d.from) / span) * w;
  const y = (n: number) => (n / d.max) * (hgt - 4);
  for (const b of d.bars) {
    if (b.ok + b.failed === 0) continue;
    const x0 = x(b.from);
    const bw = Math.max(1, x(b.at) - x0 - 0.5);
    const g = el("g", { "data-ok": b.ok, "data-failed": b.failed },
      el("title", {}, `${new Date(b.from).toISOString().slice(11, 19)}–${new Date(b.at).toISOString().slice(11, 19)} UTC: ${b.ok} ok, ${b.failed} failed`));
    const base = 16 + hgt;
    const okH = y(b.ok);
    const failH = y(b.failed);
    for (const [fill, top, height] of [["#137333", base - okH, okH], ["#a50e0e", base - okH - failH, failH]] as const) {
      if (height <= 0) continue;
      g.append(el("rect", { x: x0.toFixed(1), y: top.toFixed(1), width: bw.toFixed(1), height: height.toFixed(1), fill }));
    }
    svg.append(g);
  }
  return svg;
}
