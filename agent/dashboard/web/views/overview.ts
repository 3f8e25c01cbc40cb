/**
 * Fleet overview: online/offline counts, alerts, and one page of agents (100 rows) with their
 * readers' health. Filtering, search, sorting and paging run on the server over the whole
 * fleet, so the page holds 100 rows whatever the fleet's size.
 */
import { api, type AgentRow, type Overview } from "../api.ts";
import { ago, h, ms, pct } from "../dom.ts";
import type { View } from "../app.ts";

const PAGE = 100;
const COLUMNS: Array<[string, string | null]> = [["Agent", "id"], ["Status", null], ["Version", "version"], ["Last seen", "lastSeen"], ["Readers: success rate", "successRate"], ["RF drops", "rfDrops"], ["Recoveries", null], ["APDU p95", "p95"], ["Alerts", null]];

export function overviewView(root: HTMLElement): View {
  const state = { q: "", status: "", sort: "id", desc: false, offset: 0 };
  const counts = h("div", { class: "counts" });
  const alerts = h("div");
  const search = h("input", { type: "search", placeholder: "search agent, reader, version, failure class", size: "40", "data-testid": "search" });
  const status = h("select", { "data-testid": "status-filter" }, h("option", { value: "" }, "all"), h("option", { value: "online" }, "online"), h("option", { value: "offline" }, "offline"), h("option", { value: "alerting" }, "alerting"));
  const pager = h("span", { class: "muted" });
  const prev = h("button", { onclick: () => ((state.offset = Math.max(0, state.offset - PAGE)), void load()) }, "‹ prev");
  const next = h("button", { onclick: () => ((state.offset += PAGE), void load()) }, "next ›");
  const tbody = h("tbody");
  const head = h("tr");
  for (const [label, key] of COLUMNS) {
    head.append(h("th", {}, key ? h("button", { onclick: () => ((state.desc = state.sort === key ? !state.desc : key !== "id" && key !== "version"), (state.sort = key), void load()) }, label) : label));
  }
  root.append(counts, alerts, h("div", { class: "toolbar" }, search, status, prev, next, pager), h("table", { "data-testid": "fleet" }, h("thead", {}, head), tbody));
  let timer: ReturnType<typeof setTimeout> | undefined;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => ((state.q = search.value), (state.offset = 0), void load()), 200);
  });
  status.addEventListener("change", () => ((state.status = status.value), (state.offset = 0), void load()));

  let shown = new Set<string>();
  let loading = false;
  let again = false;
  async function load(): Promise<void> {
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    try {
      const p = new URLSearchParams({ sort: state.sort, offset: String(state.offset), limit: String(PAGE) });
      if (state.desc) p.set("desc", "1");
      if (state.q) p.set("q", state.q);
      if (state.status) p.set("status", state.status);
      render(await api.overview(p));
      if (alerts.isConnected) renderAlerts();
    } finally {
      loading = false;
      if (again) {
        again = false;
        void load();
      }
    }
  }
  function render(o: Overview): void {
    counts.replaceChildren(
      h("div", { class: "count" }, h("b", { class: "online", "data-testid": "online" }, o.counts.online), "online"),
      h("div", { class: "count" }, h("b", { class: "offline", "data-testid": "offline" }, o.counts.offline), "offline"),
      h("div", { class: "count" }, h("b", {}, o.counts.readers), "readers"),
      h("div", { class: "count" }, h("b", { class: o.alerts > 0 ? "bad" : "" }, o.alerts), "alerts"),
      h("div", { class: "count" }, h("b", {}, o.broker ? "connected" : "DISCONNECTED"), "broker"),
    );
    pager.textContent = o.total === 0 ? "no agents" : `${o.offset + 1}–${Math.min(o.total, o.offset + PAGE)} of ${o.total}`;
    tbody.replaceChildren(...o.rows.map(row));
    shown = new Set(o.rows.map((r) => r.agentId));
  }
  async function renderAlerts(): Promise<void> {
    const { alerts: list } = await api.alerts();
    if (list.length === 0) return void alerts.replaceChildren();
    alerts.replaceChildren(
      h("div", { class: "alerts", "data-testid": "alerts" }, h("b", {}, `${list.length} alert${list.length === 1 ? "" : "s"}`), h("ul", {}, ...list.slice(0, 20).map((a) => h("li", {}, h("a", { href: `#/agent/${a.agentId}` }, a.agentId), a.reader ? ` · ${a.reader}` : "", `: ${a.message}`))), list.length > 20 ? h("span", { class: "muted" }, `and ${list.length - 20} more (filter: alerting)`) : null),
    );
  }
  void load();
  return {
    onChange(agents, more) {
      // Counts and alerts change with any agent; rows only when one shown changed.
      if (more || agents.some((a) => shown.has(a)) || agents.length > 0) void load();
    },
    dispose() {
      clearTimeout(timer);
    },
  };
}

function row(a: AgentRow): HTMLTableRowElement {
  const lines = (f: (r: AgentRow["readers"][number]) => Node | string) => h("td", {}, ...a.readers.flatMap((r, i) => [i > 0 ? h("br") : null, f(r)]));
  return h(
    "tr",
    { "data-agent": a.agentId },
    h("td", {}, h("a", { href: `#/agent/${a.agentId}` }, a.agentId)),
    h("td", { class: a.online ? "online" : "offline" }, a.online ? "online" : "offline"),
    h("td", {}, a.version ?? "–"),
    h("td", {}, ago(a.lastSeen)),
    lines((r) => h("span", { class: "reader", "data-reader": r.slug }, `${r.reader}: `, h("span", { class: r.rate !== null && r.rate < 0.8 ? "bad" : "", "data-testid": "rate" }, pct(r.rate)), h("span", { class: "muted" }, ` (${r.windowReads})`))),
    lines((r) => String(r.rfDrops)),
    lines((r) => String(r.recoveries)),
    lines((r) => ms(r.p95)),
    h("td", { class: a.alerts > 0 ? "bad" : "" }, a.alerts > 0 ? String(a.alerts) : ""),
  );
}
