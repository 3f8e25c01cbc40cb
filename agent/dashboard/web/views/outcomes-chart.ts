/**
 * Read outcomes over time as an SVG bar chart (no chart library): per history sample interval,
 * successful reads (green) under failed ones (red), each bar's numbers in its <title> (shown on
 * hover, read by screen readers), totals written above.
 */
import { readOutcomes, type OutcomeSample } from "../chart-data.ts";

const NS = "http://www.w3.org/2000/svg";

export function outcomesChart(samples: OutcomeSample[], now = Date.now()): SVGSVGElement {
  const d = readOutcomes(samples, now);
  const w = 320;
  const hgt = 48;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${hgt + 16}`);
  svg.setAttribute("width", String(w));
  svg.setAttribute("height", String(hgt + 16));
  svg.setAttribute("class", "trend");
  svg.setAttribute("role", "img");
  svg.setAttribute("data-testid", "outcomes-chart");
  const summary = d.bars.length === 0 ? "reads: no history yet" : `reads: ${d.ok} ok, ${d.failed} failed in ${d.bars.length} intervals`;
  const title = document.createElementNS(NS, "title");
  title.textContent = `Read outcomes per sample interval, last 48 h: ${summary}`;
  const label = document.createElementNS(NS, "text");
  label.setAttribute("x", "0");
  label.setAttribute("y", "12");
  label.textContent = summary;
  svg.append(title, label);
  const span = Math.max(1, d.to - d.from);
  const x = (t: number) => ((t - d.from) / span) * w;
  const y = (n: number) => (n / d.max) * (hgt - 4);
  for (const b of d.bars) {
    if (b.ok + b.failed === 0) continue;
    const x0 = x(b.from);
    const bw = Math.max(1, x(b.at) - x0 - 0.5);
    const g = document.createElementNS(NS, "g");
    g.setAttribute("data-ok", String(b.ok));
    g.setAttribute("data-failed", String(b.failed));
    const tip = document.createElementNS(NS, "title");
    tip.textContent = `${new Date(b.from).toISOString().slice(11, 19)}–${new Date(b.at).toISOString().slice(11, 19)} UTC: ${b.ok} ok, ${b.failed} failed`;
    g.append(tip);
    const base = 16 + hgt;
    const okH = y(b.ok);
    const failH = y(b.failed);
    for (const [fill, top, height] of [["#137333", base - okH, okH], ["#a50e0e", base - okH - failH, failH]] as const) {
      if (height <= 0) continue;
      const r = document.createElementNS(NS, "rect");
      r.setAttribute("x", x0.toFixed(1));
      r.setAttribute("y", top.toFixed(1));
      r.setAttribute("width", bw.toFixed(1));
      r.setAttribute("height", height.toFixed(1));
      r.setAttribute("fill", fill);
      g.append(r);
    }
    svg.append(g);
  }
  return svg;
}
