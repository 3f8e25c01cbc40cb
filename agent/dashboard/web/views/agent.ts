/**
 * One agent: status, its readers' health, alerts, the failure classes seen with the taxonomy's
 * explanation, causes and advice, and recent events (sizes, timings and verdicts only: events
 * carry no personal data). Operators get the actions panel (actions.ts: ping, diagnose, remote
 * read, sealed in the browser); viewers do not (and the server refuses them anyway). The panel
 * sits outside the part that live updates redraw, so typing and a running command survive them.
 */
import { api, type AgentDetail } from "../api.ts";
import { ago, h, ms, pct } from "../dom.ts";
import type { View } from "../app.ts";
import { trendChart } from "./trend-chart.ts";
import { latencyHistogram } from "./histogram-chart.ts";
import { outcomesChart } from "./outcomes-chart.ts";
import { lastDiagnosis, onDiagnosis } from "../diagnose-memory.ts";
import { actionsPanel, type ActionsPanel } from "./actions.ts";

export function agentView(root: HTMLElement, agentId: string): View {
  const body = h("div");
  const actionsHolder = h("div");
  let actions: ActionsPanel | undefined;
  let histCommand = "all";
  let last: AgentDetail | undefined;
  const offDiagnosis = onDiagnosis((id) => {
    if (id === agentId && last) render(last);
  });
  root.append(h("p", {}, h("a", { href: "#/" }, "‹ fleet")), h("h2", {}, agentId), actionsHolder, body);
  async function load(): Promise<void> {
    try {
      render(await api.agent(agentId));
    } catch (e) {
      body.replaceChildren(h("p", { class: "error" }, (e as Error).message));
    }
  }
  const trends = h("div", { "data-testid": "trends" });
  let trendsAt = 0;
  /** Reader history changes once per sample interval: refetched at most once a minute. */
  async function loadTrends(a: AgentDetail): Promise<void> {
    if (Date.now() - trendsAt < 60_000 && trends.childElementCount > 0) return;
    trendsAt = Date.now();
    const blocks = await Promise.all(
      a.readers.map(async (r) => {
        const hist = await api.history(agentId, r.slug);
        const rate = hist.samples.filter((s) => s.rate !== null).map((s): [number, number] => [s.at, s.rate!]);
        const p95 = hist.samples.filter((s) => s.p95 !== null).map((s): [number, number] => [s.at, s.p95!]);
        return h("div", { class: "card", "data-reader": r.slug }, h("b", {}, r.reader), h("br"), trendChart("success rate", rate, { max: 1, format: (v) => pct(v) }), trendChart("APDU p95", p95, { format: (v) => ms(v) }), outcomesChart(hist.samples));
      }),
    );
    trends.replaceChildren(...blocks);
  }
  function render(a: AgentDetail): void {
    last = a;
    void loadTrends(a).catch(() => undefined);
    const s = api.current();
    if (a.canCommand && s?.role === "operator") {
      if (!actions) {
        actions = actionsPanel(agentId);
        actionsHolder.replaceChildren(actions.el);
      }
      actions.update(a);
    }
    body.replaceChildren(...present(
      h("div", { class: "card" },
        h("span", { class: a.online ? "online" : "offline", "data-testid": "agent-status" }, a.online ? "online" : "offline"),
        ` · version ${a.version ?? "–"} · started ${a.startedAt ?? "–"} · last seen ${ago(a.lastSeen)}`),
      a.alertList.length > 0 ? h("div", { class: "alerts" }, h("ul", {}, ...a.alertList.map((x) => h("li", {}, x.reader ? `${x.reader}: ` : "", x.message)))) : null,
      h("h3", {}, "Readers"),
      h("table", { "data-testid": "readers" },
        h("thead", {}, h("tr", {}, ...["Reader", "Connected", "Card", "Success rate", "RF drops", "RF drops/h", "Recoveries", "APDU mean", "APDU p95", "Last failure", "Updated", "Last diagnose (run from this page)"].map((c) => h("th", {}, c)))),
        h("tbody", {}, ...a.readers.map((r) =>
          h("tr", { "data-reader": r.slug },
            h("td", { "data-testid": "reader-name" }, r.reader),
            h("td", {}, r.connected ? "yes" : "no"),
            h("td", {}, r.cardPresent ? "present" : "–"),
            h("td", { "data-testid": "reader-rate", class: r.rate !== null && r.rate < 0.8 ? "bad" : "" }, `${pct(r.rate)} of ${r.windowReads}`),
            h("td", {}, String(r.rfDrops)),
            h("td", {}, r.rfDropsPerHour === null ? "–" : r.rfDropsPerHour.toFixed(1)),
            h("td", {}, String(r.recoveries)),
            h("td", {}, ms(r.mean)),
            h("td", {}, ms(r.p95)),
            h("td", {}, r.lastFailureClass ?? "–"),
            h("td", {}, r.at),
            diagnoseCell(agentId, r.reader))))),
      h("h3", {}, "APDU latency (the agent's newest metrics)"),
      latencyHistogram(a.apduLatency, histCommand, (c) => {
        histCommand = c;
        if (last) render(last);
      }),
      h("h3", {}, "Trends (last 48 h)"),
      trends,
      h("h3", {}, "Failure classes"),
      a.failureClasses.length === 0 ? h("p", { class: "muted" }, "none seen") : h("div", { "data-testid": "failure-classes" }, ...a.failureClasses.map((f) =>
        h("div", { class: "card" },
          h("b", {}, f.code), f.layer ? h("span", { class: "muted" }, ` (${f.layer})`) : null, f.count !== null ? ` · ${f.count} failed reads` : "",
          h("p", {}, f.explanation ?? "not in this dashboard's failure taxonomy"),
          f.likelyCauses.length > 0 ? h("ul", {}, ...f.likelyCauses.map((c) => h("li", {}, c))) : null,
          f.action ? h("p", {}, h("b", {}, "Advice: "), f.action) : null))),
      h("h3", {}, "Recent events"),
      h("table", { "data-testid": "events" },
        h("thead", {}, h("tr", {}, ...["At", "Type", "Reader", "What", "Duration", "APDUs", "Recoveries"].map((c) => h("th", {}, c)))),
        h("tbody", {}, ...a.events.map((e) =>
          h("tr", {},
            h("td", {}, String(e.at)),
            h("td", {}, String(e.type)),
            h("td", {}, String(e.reader)),
            h("td", {}, e.type === "read" ? `${String(e.outcome)}${e.failureClass ? ` (${String(e.failureClass)})` : ""}${e.documentType ? ` · ${String(e.documentType)} ${String(e.issuingState ?? "")}` : ""}${(e.verification as { verdict?: string } | undefined)?.verdict ? ` · ${(e.verification as { verdict: string }).verdict}` : ""}` : String(e.change)),
            h("td", {}, typeof e.durationMs === "number" ? `${Math.round(e.durationMs)} ms` : ""),
            h("td", {}, typeof e.apdus === "number" ? String(e.apdus) : ""),
            h("td", {}, typeof e.recoveries === "number" ? String(e.recoveries) : ""))))),
    ));
  }
  void load();
  return {
    onChange(agents, more) {
      if (more || agents.includes(agentId)) void load();
    },
    dispose() {
      offDiagnosis();
      actions?.dispose();
    },
  };
}

/** The reader's last diagnose result opened in this page (agents send it only to the requester). */
function diagnoseCell(agentId: string, reader: string): HTMLElement {
  const n = lastDiagnosis(agentId, reader);
  if (!n) return h("td", { class: "muted", "data-testid": "reader-diagnose" }, "–");
  return h("td", { "data-testid": "reader-diagnose", title: n.advice.join("\n") },
    h("b", { class: n.verdict === "good" ? "" : "bad" }, n.verdict.toUpperCase()), ` ${ago(n.at)}: ${n.summary}`);
}

function present(...nodes: Array<Node | null>): Node[] {
  return nodes.filter((n): n is Node => n !== null);
}
