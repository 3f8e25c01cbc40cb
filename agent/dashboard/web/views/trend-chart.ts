/**
 * A small line chart in SVG (no chart library): one series of (time, value) points over the
 * width, with its latest value and range written as text.
 */
import { svg as el } from "../dom.ts";

export function trendChart(title: string, points: Array<[number, number]>, opts: { max?: number; format: (v: number) => string }): SVGSVGElement {
  const w = 320;
  const h = 64;
  const svg = el("svg", { viewBox: `0 0 ${w} ${h + 16}`, width: w, height: h + 16, class: "trend" },
    el("text", { x: 0, y: 12 }, points.length === 0 ? `${title}: no history yet` : `${title}: ${opts.format(points[points.length - 1]![1])} now, ${points.length} samples`));
  if (points.length < 2) return svg;
  const t0 = points[0]![0];
  const t1 = points[points.length - 1]![0];
  const vmax = opts.max ?? Math.max(...points.map((p) => p[1]), 1e-9);
  const x = (t: number) => ((t - t0) / Math.max(1, t1 - t0)) * (w - 2) + 1;
  const y = (v: number) => 16 + h - 2 - (Math.min(v, vmax) / vmax) * (h - 4);
  const line = el("polyline", { points: points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "), fill: "none", stroke: "#1a73e8", "stroke-width": "1.5" });
  const axis = el("line", { x1: 0, x2: w, y1: 16 + h - 1, y2: 16 + h - 1, stroke: "#ccc" });
  svg.append(axis, line);
  return svg;
}
