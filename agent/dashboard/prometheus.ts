/**
 * Fleet aggregates for Prometheus (text exposition format 0.0.4), from the dashboard's
 * in-memory state: agents online/offline, per-reader success rate, RF drops and APDU p95,
 * the APDU latency histograms of all agents merged (buckets summed per `le` and command),
 * failures by class and outbox drops summed over agents, and what the dashboard itself
 * received and rejected. Agent-side counters are cumulative since each agent started, so a
 * fleet sum drops when an agent restarts: Prometheus' rate() treats that as a counter reset.
 */
import { METRIC_CATALOG } from "../service/metrics.ts";
import type { FleetState } from "./fleet-state.ts";

export interface IngestCounters {
  received: Record<string, number>;
  rejected: Record<string, number>;
}

export function fleetExposition(state: FleetState, ingest: IngestCounters, now: number): string {
  const out: string[] = [];
  const head = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  const c = state.counts();
  head("mrtd_fleet_agents", "gauge", "Agents known to the dashboard, by status");
  out.push(`mrtd_fleet_agents{state="online"} ${c.online}`, `mrtd_fleet_agents{state="offline"} ${c.offline}`);
  head("mrtd_fleet_alerts", "gauge", "Active alerts, by kind");
  const alertCounts: Record<string, number> = { offline: 0, "success-rate": 0, "rf-drops": 0 };
  for (const a of state.alerts(now)) alertCounts[a.kind]!++;
  for (const [k, v] of Object.entries(alertCounts)) out.push(`mrtd_fleet_alerts{kind="${k}"} ${v}`);

  const rate: string[] = [];
  const rf: string[] = [];
  const p95: string[] = [];
  for (const a of state.agents.values()) {
    for (const r of a.readers.values()) {
      const l = `{agent="${esc(a.agentId)}",reader="${esc(r.slug)}"}`;
      if (r.health.successRate.rate !== null) rate.push(`mrtd_fleet_reader_success_rate${l} ${r.health.successRate.rate}`);
      rf.push(`mrtd_fleet_reader_rf_drops${l} ${r.health.rfDrops}`);
      if (r.health.apduLatencyMs.p95 !== null) p95.push(`mrtd_fleet_reader_apdu_p95_seconds${l} ${r.health.apduLatencyMs.p95 / 1000}`);
    }
  }
  head("mrtd_fleet_reader_success_rate", "gauge", "Success rate over each reader's last reads (reader health window)");
  out.push(...rate);
  head("mrtd_fleet_reader_rf_drops", "gauge", "RF drops of each reader since its agent started (reader health)");
  out.push(...rf);
  head("mrtd_fleet_reader_apdu_p95_seconds", "gauge", "p95 APDU round trip of each reader over its last APDUs (reader health)");
  out.push(...p95);

  // Merged histograms: buckets summed per command and bound, over every agent's last metrics.
  const hist = new Map<string, { les: Map<string, number>; sum: number; count: number }>();
  const failures = new Map<string, number>();
  let dropped = 0;
  for (const a of state.agents.values()) {
    const m = a.metrics;
    if (!m) continue;
    for (const h of m.histograms) {
      if (h.name !== "mrtd_apdu_duration_seconds") continue;
      const cmd = h.labels.command ?? "";
      const acc = hist.get(cmd) ?? { les: new Map(), sum: 0, count: 0 };
      for (const b of h.buckets) acc.les.set(String(b.le), (acc.les.get(String(b.le)) ?? 0) + b.count);
      acc.sum += h.sum;
      acc.count += h.count;
      hist.set(cmd, acc);
    }
    for (const s of m.counters) {
      if (s.name === "mrtd_read_failures_total") failures.set(s.labels.class ?? "", (failures.get(s.labels.class ?? "") ?? 0) + s.value);
      if (s.name === "mrtd_outbox_dropped_total") dropped += s.value;
    }
  }
  head("mrtd_fleet_apdu_duration_seconds", "histogram", `Fleet merge of ${METRIC_CATALOG.mrtd_apdu_duration_seconds!.help}`);
  for (const [cmd, h] of [...hist].sort(([x], [y]) => (x < y ? -1 : 1))) {
    const les = [...h.les].sort(([x], [y]) => leValue(x) - leValue(y));
    for (const [le, n] of les) out.push(`mrtd_fleet_apdu_duration_seconds_bucket{command="${esc(cmd)}",le="${le}"} ${n}`);
    out.push(`mrtd_fleet_apdu_duration_seconds_sum{command="${esc(cmd)}"} ${round6(h.sum)}`, `mrtd_fleet_apdu_duration_seconds_count{command="${esc(cmd)}"} ${h.count}`);
  }
  head("mrtd_fleet_read_failures_total", "counter", "Failed reads by failure class, summed over agents (each since it started)");
  for (const [cls, n] of [...failures].sort()) out.push(`mrtd_fleet_read_failures_total{class="${esc(cls)}"} ${n}`);
  head("mrtd_fleet_outbox_dropped_total", "counter", "Events agents dropped because their outbox was full, summed over agents");
  out.push(`mrtd_fleet_outbox_dropped_total ${dropped}`);
  head("mrtd_dashboard_messages_total", "counter", "Messages the dashboard received, by topic kind");
  for (const [k, v] of Object.entries(ingest.received).sort()) out.push(`mrtd_dashboard_messages_total{kind="${k}"} ${v}`);
  head("mrtd_dashboard_rejected_total", "counter", "Messages the dashboard refused, by reason");
  for (const [k, v] of Object.entries(ingest.rejected).sort()) out.push(`mrtd_dashboard_rejected_total{reason="${k}"} ${v}`);
  head("mrtd_dashboard_store_dropped_events_total", "counter", "Events the dashboard dropped because its store fell too far behind");
  out.push(`mrtd_dashboard_store_dropped_events_total ${state.droppedEvents}`);
  return out.join("\n") + "\n";
}

function leValue(le: string): number {
  return le === "+Inf" ? Infinity : Number(le);
}

function esc(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
