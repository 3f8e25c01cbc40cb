/**
 * The APDU latency distribution as an SVG bar chart (no chart library): one bar per bucket of
 * the agent's newest metrics (all commands merged, or the command picked), p50/p95/p99 written
 * above it, each bar's count in its <title> (shown on hover, read by screen readers) and the
 * same numbers in a table below.
 */
import type { Le, LatencyHistogram, LatencySeries } from "../../charts.ts";
import { h, svg as el } from "../dom.ts";

/** A bucket bound in ms (or "> last" for +Inf). */
export function leText(le: Le | null, prev?: Le): string {
  if (le === null) return "–";
  if (le === "+Inf") return prev === undefined || prev === "+Inf" ? "∞" : `> ${fmtMs(prev)}`;
  return `≤ ${fmtMs(le)}`;
}

function fmtMs(s: number): string {
  const v = s * 1000;
  return `${v < 10 ? Number(v.toFixed(1)) : Math.round(v)} ms`;
}

/** The chart with a command picker; `selected` is the command shown ("all" for every command), `onSelect` keeps it across redraws. */
export function latencyHistogram(data: LatencyHistogram | null, selected: string, onSelect: (command: string) => void): HTMLElement {
  if (!data) return h("p", { class: "muted", "data-testid": "latency-histogram" }, "no APDU latency histogram yet (the agent's metrics arrive every metrics interval)");
  const s = data.byCommand.find((c) => c.command === selected) ?? data.all;
  const picker = h("select", { "aria-label": "APDU command", "data-testid": "histogram-command" },
    h("option", { value: "all" }, `all commands (${data.all.count})`),
    ...data.byCommand.map((c) => h("option", { value: c.command }, `${c.command} (${c.count})`)));
  picker.value = s.command;
  picker.addEventListener("change", () => onSelect(picker.value));
  return h("div", { class: "card", "data-testid": "latency-histogram" },
    h("div", { class: "toolbar" }, picker, h("span", { class: "muted" }, `metrics of ${data.at}`)),
    h("p", { "data-testid": "histogram-quantiles" }, `p50 ${leText(s.p50)} · p95 ${leText(s.p95)} · p99 ${leText(s.p99)} · ${s.count} APDUs${s.count > 0 ? `, mean ${fmtMs(s.sum / s.count)}` : ""}`),
    bars(data.bounds, s),
    h("details", {}, h("summary", {}, "bucket counts"),
      h("table", { "data-testid": "histogram-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Latency"), h("th", {}, "APDUs"))),
        h("tbody", {}, ...data.bounds.map((le, i) => h("tr", {}, h("td", {}, leText(le, data.bounds[i - 1])), h("td", {}, String(s.counts[i] ?? 0))))))));
}

function bars(bounds: Le[], s: LatencySeries): SVGSVGElement {
  const bw = 24;
  const gap = 4;
  const hgt = 100;
  const w = bounds.length * (bw + gap);
  const svg = el("svg", { viewBox: `0 0 ${w} ${hgt + 30}`, width: w, height: hgt + 30, role: "img", class: "histogram", "data-testid": "histogram-bars" },
    el("title", {}, `APDU latency distribution, ${s.command === "all" ? "all commands" : s.command}: ${s.count} APDUs, p95 ${leText(s.p95)}`));
  const max = Math.max(1, ...s.counts);
  bounds.forEach((le, i) => {
    const n = s.counts[i] ?? 0;
    const x = i * (bw + gap);
    const bh = n === 0 ? 0 : Math.max(1, (n / max) * hgt);
    const rect = el("rect", { x, y: hgt - bh, width: bw, height: bh, fill: le === s.p95 ? "#e37400" : "#1a73e8", "data-le": String(le), "data-count": n },
      el("title", {}, `${leText(le, bounds[i - 1])}: ${n} APDUs`));
    const label = el("text", { x: x + bw / 2, y: hgt + 12, "text-anchor": "middle" }, le === "+Inf" ? "+∞" : fmtMs(le).replace(" ms", ""));
    const g = el("g", {}, rect, label);
    svg.append(g);
  });
  svg.append(el("text", { x: 0, y: hgt + 26 }, "upper bound, ms (orange: the p95 bucket)"));
  return svg;
}
