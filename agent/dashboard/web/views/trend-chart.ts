/**
 * A small line chart in SVG (no chart library): one series of (time, value) points over the
 * width, with its latest value and range written as text.
 */
const NS = "http://www.w3.org/2000/svg";

export function trendChart(title: string, points: Array<[number, number]>, opts: { max?: number; format: (v: number) => string }): SVGSVGElement {
  const w = 320;
  const h = 64;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h + 16}`);
  svg.setAttribute("width", String(w));
  svg.setAttribute("height", String(h + 16));
  svg.setAttribute("class", "trend");
  const label = document.createElementNS(NS, "text");
  label.setAttribute("x", "0");
  label.setAttribute("y", "12");
  label.textContent = points.length === 0 ? `${title}: no history yet` : `${title}: ${opts.format(points[points.length - 1]![1])} now, ${points.length} samples`;
  svg.append(label);
  if (points.length < 2) return svg;
  const t0 = points[0]![0];
  const t1 = points[points.length - 1]![0];
  const vmax = opts.max ?? Math.max(...points.map((p) => p[1]), 1e-9);
  const x = (t: number) => ((t - t0) / Math.max(1, t1 - t0)) * (w - 2) + 1;
  const y = (v: number) => 16 + h - 2 - (Math.min(v, vmax) / vmax) * (h - 4);
  const line = document.createElementNS(NS, "polyline");
  line.setAttribute("points", points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#1a73e8");
  line.setAttribute("stroke-width", "1.5");
  const axis = document.createElementNS(NS, "line");
  axis.setAttribute("x1", "0");
  axis.setAttribute("x2", String(w));
  axis.setAttribute("y1", String(16 + h - 1));
  axis.setAttribute("y2", String(16 + h - 1));
  axis.setAttribute("stroke", "#ccc");
  svg.append(axis, line);
  return svg;
}
