/**
 * The fleet as the dashboard knows it, in memory: every agent's status, readers' health and
 * last metrics, kept current from validated payloads (contract.ts) and written behind to the
 * store in batches. The overview is answered from here (filter, sort and page over 10,000
 * agents take a few milliseconds), alerts are derived from it, and so are the Prometheus
 * aggregates (prometheus.ts).
 */
import type { StatusPayload } from "../service/mqtt-link.ts";
import type { MetricsPayload, ReaderHealth } from "../service/payloads.ts";
import { readerSlug } from "../service/topics.ts";
import type { DashboardConfig } from "./config.ts";
import type { Accepted } from "./contract.ts";
import type { AgentRow, EventRow, ReaderRow, SampleRow } from "./store.ts";

export interface ReaderState {
  slug: string;
  health: ReaderHealth;
  updatedAt: number;
  /** Newest health time (ms, agent clock) applied. */
  msgAt: number;
  /** (ms, rfDrops) points at least 5 min apart over the last hour, for the RF-drop rate. */
  rfWindow: Array<[number, number]>;
}
export interface AgentState {
  agentId: string;
  online: boolean;
  version: string | null;
  startedAt: string | null;
  lastSeen: number;
  offlineSince: number | null;
  readers: Map<string, ReaderState>;
  metrics: MetricsPayload | null;
  /** Newest message time (ms, agent clock) applied: a shared store keeps the newest row (store.ts AgentRow.msgAt). */
  msgAt: number;
  /** The agent's long-term HPKE public key (base64) from its last birth; in memory only (the retained birth brings it back). */
  publicKey: string | null;
}

export interface Alert {
  kind: "offline" | "success-rate" | "rf-drops";
  agentId: string;
  reader?: string;
  message: string;
  since?: number;
}

/** What changed, for live updates (SSE) and write-behind. */
export type Change = { kind: "agent" | "reader" | "event" | "metrics"; agentId: string; slug?: string };

export type Sort = "id" | "lastSeen" | "version" | "successRate" | "rfDrops" | "p95";
export interface OverviewQuery {
  q?: string;
  status?: "online" | "offline" | "alerting";
  sort?: Sort;
  desc?: boolean;
  offset?: number;
  limit?: number;
}

const RF_POINT_GAP_MS = 5 * 60_000;
/** Events waiting for the store at most (a store that is down must not grow memory without bound). */
export const MAX_PENDING_EVENTS = 20_000;
const HOUR_MS = 3_600_000;
/** Readers with read counts waiting for a sample, at most (two per agent of a 10,000-agent fleet, five times over). */
const MAX_READ_KEYS = 100_000;
/** Read event ids remembered to count a redelivered one once. */
const MAX_COUNTED_IDS = 20_000;

export class FleetState {
  readonly agents = new Map<string, AgentState>();
  readonly #alerts: DashboardConfig["alerts"];
  #pendingAgents = new Set<string>();
  #pendingReaders = new Set<string>();
  /** Agents whose metrics changed since the last write (the payload is large: written only then). */
  #pendingMetrics = new Set<string>();
  #pendingEvents: EventRow[] = [];
  /** Events dropped because the store fell too far behind. */
  droppedEvents = 0;
  /** Read events per reader ("agent\0slug") received since that reader's last sample. */
  #reads = new Map<string, { ok: number; failed: number }>();
  /** Recently counted read events ("agent\0eventId"): a redelivered event (QoS 1) is counted once. */
  #counted = new Set<string>();

  constructor(alerts: DashboardConfig["alerts"]) {
    this.#alerts = alerts;
  }

  /** Restores state written by an earlier run (before any message arrives). */
  restore(agents: AgentRow[], readers: ReaderRow[]): void {
    for (const a of agents) {
      let metrics: MetricsPayload | null = null;
      try {
        metrics = a.metrics ? (JSON.parse(a.metrics) as MetricsPayload) : null;
      } catch {
        metrics = null;
      }
      this.agents.set(a.agentId, { agentId: a.agentId, online: a.online, version: a.version, startedAt: a.startedAt, lastSeen: a.lastSeen, offlineSince: a.offlineSince, readers: new Map(), metrics, msgAt: a.msgAt ?? 0, publicKey: null });
    }
    for (const r of readers) {
      const a = this.agents.get(r.agentId);
      if (!a) continue;
      try {
        a.readers.set(r.slug, { slug: r.slug, health: JSON.parse(r.health) as ReaderHealth, updatedAt: r.updatedAt, msgAt: r.msgAt ?? 0, rfWindow: [] });
      } catch {
        // a row this version cannot read: the next health message replaces it
      }
    }
  }

  #agent(agentId: string, now: number): AgentState {
    let a = this.agents.get(agentId);
    if (!a) {
      a = { agentId, online: false, version: null, startedAt: null, lastSeen: now, offlineSince: null, readers: new Map(), metrics: null, msgAt: 0, publicKey: null };
      this.agents.set(agentId, a);
    }
    return a;
  }

  /** Applies one accepted message; `retained` marks a message the broker kept (its time is unknown). */
  apply(m: Accepted, now: number, retained: boolean): Change {
    const a = this.#agent(m.agentId, now);
    this.#pendingAgents.add(a.agentId);
    // The broker relays live messages only from a connected agent: an agent heard live is online,
    // even when its retained birth never reached us (dropped from a full queue on subscribe).
    if (!retained && m.kind !== "status" && !a.online) {
      a.online = true;
      a.offlineSince = null;
    }
    switch (m.kind) {
      case "status": {
        const s: StatusPayload = m.payload;
        a.startedAt = s.startedAt;
        if (s.state === "online") {
          bump(a, Date.parse(s.connectedAt));
          a.online = true;
          a.version = s.version;
          a.publicKey = s.hpke?.publicKey ?? null;
          a.offlineSince = null;
          a.lastSeen = retained ? Math.max(a.lastSeen, Date.parse(s.connectedAt) || 0) : now;
        } else {
          const at = s.at !== undefined ? Date.parse(s.at) : NaN;
          // A will carries no time: a live one happened now; a retained one when we last heard the agent.
          const since = Number.isFinite(at) ? at : retained ? (a.offlineSince ?? a.lastSeen) : now;
          if (Number.isFinite(at) || !retained) bump(a, since);
          if (a.online || a.offlineSince === null) a.offlineSince = since;
          a.online = false;
        }
        return { kind: "agent", agentId: a.agentId };
      }
      case "health": {
        const h = m.payload;
        const slug = readerSlug(h.reader);
        const r = a.readers.get(slug) ?? { slug, health: h, updatedAt: now, msgAt: 0, rfWindow: [] };
        r.health = h;
        r.updatedAt = now;
        bump(r, Date.parse(h.at));
        bump(a, Date.parse(h.at));
        const last = r.rfWindow[r.rfWindow.length - 1];
        if (last && h.rfDrops < last[1]) r.rfWindow = []; // the agent restarted: counts start again
        if (!last || now - last[0] >= RF_POINT_GAP_MS || r.rfWindow.length === 0) r.rfWindow.push([now, h.rfDrops]);
        else r.rfWindow[r.rfWindow.length - 1] = [last[0], h.rfDrops];
        while (r.rfWindow.length > 2 && now - r.rfWindow[0]![0] > HOUR_MS) r.rfWindow.shift();
        a.readers.set(slug, r);
        if (!retained) a.lastSeen = now;
        this.#pendingReaders.add(`${a.agentId}\u0000${slug}`);
        return { kind: "reader", agentId: a.agentId, slug };
      }
      case "metrics":
        bump(a, Date.parse(m.payload.at));
        a.metrics = m.payload;
        this.#pendingMetrics.add(a.agentId);
        a.lastSeen = now;
        return { kind: "metrics", agentId: a.agentId };
      case "events": {
        const e = m.payload;
        bump(a, Date.parse(e.at));
        a.lastSeen = now;
        // A sealed envelope is of no use here (its key is the fleet's, not the dashboard's): not kept.
        if (e.type === "read") this.#countRead(a.agentId, e.eventId, readerSlug(e.reader), e.outcome === "success");
        const { personalData: _sealed, ...kept } = e as typeof e & { personalData?: unknown };
        this.#pendingEvents.push({ agentId: a.agentId, eventId: e.eventId, at: e.at, type: e.type, reader: e.reader, body: JSON.stringify(kept) });
        if (this.#pendingEvents.length > MAX_PENDING_EVENTS) this.droppedEvents += this.#pendingEvents.splice(0, this.#pendingEvents.length - MAX_PENDING_EVENTS).length;
        return { kind: "event", agentId: a.agentId };
      }
    }
  }

  /** Rows to write since the last call. */
  takePending(): { agents: AgentRow[]; readers: ReaderRow[]; events: EventRow[]; samples: SampleRow[] } {
    const agents: AgentRow[] = [];
    for (const id of this.#pendingAgents) {
      const a = this.agents.get(id);
      if (a) agents.push({ agentId: id, online: a.online, version: a.version, startedAt: a.startedAt, lastSeen: a.lastSeen, offlineSince: a.offlineSince, metrics: a.metrics && this.#pendingMetrics.has(id) ? JSON.stringify(a.metrics) : null, msgAt: a.msgAt });
    }
    const readers: ReaderRow[] = [];
    for (const key of this.#pendingReaders) {
      const [id, slug] = key.split("\u0000") as [string, string];
      const r = this.agents.get(id)?.readers.get(slug);
      if (r) readers.push({ agentId: id, slug, health: JSON.stringify(r.health), updatedAt: r.updatedAt, msgAt: r.msgAt });
    }
    const events = this.#pendingEvents;
    this.#pendingAgents = new Set();
    this.#pendingReaders = new Set();
    this.#pendingMetrics = new Set();
    this.#pendingEvents = [];
    return { agents, readers, events, samples: [] };
  }

  /**
   * Puts back what a failed write took: agents and readers are written again from their
   * current state, events ahead of newer ones (at most MAX_PENDING_EVENTS wait).
   */
  requeue(batch: { agents: AgentRow[]; readers: ReaderRow[]; events: EventRow[] }): void {
    for (const a of batch.agents) {
      this.#pendingAgents.add(a.agentId);
      if (a.metrics !== null) this.#pendingMetrics.add(a.agentId);
    }
    for (const r of batch.readers) this.#pendingReaders.add(`${r.agentId}\u0000${r.slug}`);
    this.#pendingEvents = [...batch.events, ...this.#pendingEvents];
    if (this.#pendingEvents.length > MAX_PENDING_EVENTS) this.droppedEvents += this.#pendingEvents.splice(0, this.#pendingEvents.length - MAX_PENDING_EVENTS).length;
  }

  /**
   * One history sample per reader of every online agent (its last health stands until the next:
   * agents republish it at least every telemetry.health_interval_s). Offline agents' readers get
   * none, so their trend shows the gap.
   */
  samples(now: number): SampleRow[] {
    const out: SampleRow[] = [];
    for (const a of this.agents.values()) {
      if (!a.online) continue;
      for (const r of a.readers.values()) {
        const h = r.health;
        const key = `${a.agentId}\u0000${r.slug}`;
        const reads = this.#reads.get(key);
        this.#reads.delete(key);
        out.push({ agentId: a.agentId, slug: r.slug, at: now, rate: h.successRate.rate, windowReads: h.successRate.windowReads, rfDrops: h.rfDrops, recoveries: h.recoveries, p95: h.apduLatencyMs.p95, readsOk: reads?.ok ?? 0, readsFailed: reads?.failed ?? 0 });
      }
    }
    return out;
  }

  /**
   * Counts a read event toward its reader's next sample (an offline agent's or an unknown
   * reader's wait for the sample that includes them). Bounded: a misbehaving agent naming
   * endless readers cannot grow it past MAX_READ_KEYS.
   */
  #countRead(agentId: string, eventId: string, slug: string, ok: boolean): void {
    const id = `${agentId}\u0000${eventId}`;
    if (this.#counted.has(id)) return;
    this.#counted.add(id);
    if (this.#counted.size > MAX_COUNTED_IDS) this.#counted.delete(this.#counted.values().next().value!);
    const key = `${agentId}\u0000${slug}`;
    let c = this.#reads.get(key);
    if (!c) {
      if (this.#reads.size >= MAX_READ_KEYS) return;
      c = { ok: 0, failed: 0 };
      this.#reads.set(key, c);
    }
    if (ok) c.ok++;
    else c.failed++;
  }

  /** RF drops per hour over the reader's last hour, undefined until 5 minutes are covered. */
  rfDropsPerHour(r: ReaderState): number | undefined {
    const first = r.rfWindow[0];
    const last = r.rfWindow[r.rfWindow.length - 1];
    if (!first || !last || last[0] - first[0] < RF_POINT_GAP_MS) return undefined;
    return ((last[1] - first[1]) * HOUR_MS) / (last[0] - first[0]);
  }

  alertsOf(a: AgentState, now: number): Alert[] {
    const t = this.#alerts;
    const out: Alert[] = [];
    if (!a.online && a.offlineSince !== null && now - a.offlineSince > t.offlineAfterMin * 60_000) {
      out.push({ kind: "offline", agentId: a.agentId, message: `offline for ${Math.round((now - a.offlineSince) / 60_000)} min (threshold ${t.offlineAfterMin} min)`, since: a.offlineSince });
    }
    for (const r of a.readers.values()) {
      const sr = r.health.successRate;
      if (sr.rate !== null && sr.windowReads >= t.minWindowReads && sr.rate < t.successRateBelow) {
        out.push({ kind: "success-rate", agentId: a.agentId, reader: r.health.reader, message: `success rate ${(sr.rate * 100).toFixed(0)}% over the last ${sr.windowReads} reads (threshold ${(t.successRateBelow * 100).toFixed(0)}%)` });
      }
      const rf = this.rfDropsPerHour(r);
      if (rf !== undefined && rf > t.rfDropsPerHourAbove) {
        out.push({ kind: "rf-drops", agentId: a.agentId, reader: r.health.reader, message: `${rf.toFixed(1)} RF drops per hour (threshold ${t.rfDropsPerHourAbove})` });
      }
    }
    return out;
  }

  alerts(now: number): Alert[] {
    const out: Alert[] = [];
    for (const a of this.agents.values()) out.push(...this.alertsOf(a, now));
    return out;
  }

  counts(): { agents: number; online: number; offline: number; readers: number } {
    let online = 0;
    let readers = 0;
    for (const a of this.agents.values()) {
      if (a.online) online++;
      readers += a.readers.size;
    }
    return { agents: this.agents.size, online, offline: this.agents.size - online, readers };
  }

  /** A page of the overview: agents matching the query, sorted, with the total that matched. */
  overview(query: OverviewQuery, now: number): { total: number; rows: AgentState[] } {
    const q = query.q?.trim().toLowerCase() ?? "";
    let rows: AgentState[] = [];
    for (const a of this.agents.values()) {
      if (query.status === "online" && !a.online) continue;
      if (query.status === "offline" && a.online) continue;
      if (query.status === "alerting" && this.alertsOf(a, now).length === 0) continue;
      if (q !== "" && !matches(a, q)) continue;
      rows.push(a);
    }
    const key = sortKey(query.sort ?? "id");
    const dir = query.desc ? -1 : 1;
    rows.sort((x, y) => {
      const kx = key(x);
      const ky = key(y);
      if (kx === ky) return x.agentId < y.agentId ? -1 : 1;
      if (kx === null) return 1;
      if (ky === null) return -1;
      return (kx < ky ? -1 : 1) * dir;
    });
    const total = rows.length;
    const offset = Math.max(0, query.offset ?? 0);
    rows = rows.slice(offset, offset + Math.min(500, Math.max(1, query.limit ?? 100)));
    return { total, rows };
  }
}

/** Raises a row's message time to `t` (never lowers it: a late or retained message does not move it back). */
function bump(x: { msgAt: number }, t: number): void {
  if (Number.isFinite(t) && t > x.msgAt) x.msgAt = t;
}

function matches(a: AgentState, q: string): boolean {
  if (a.agentId.toLowerCase().includes(q) || (a.version ?? "").toLowerCase().includes(q)) return true;
  for (const r of a.readers.values()) {
    if (r.health.reader.toLowerCase().includes(q)) return true;
    if ((r.health.lastFailureClass ?? "").toLowerCase().includes(q)) return true;
  }
  return false;
}

/** Worst reader first: an agent sorts by its lowest success rate, highest RF drops, highest p95. */
function sortKey(sort: Sort): (a: AgentState) => string | number | null {
  const over = (pick: (h: ReaderHealth) => number | null, worst: "min" | "max") => (a: AgentState) => {
    let v: number | null = null;
    for (const r of a.readers.values()) {
      const x = pick(r.health);
      if (x === null) continue;
      if (v === null || (worst === "min" ? x < v : x > v)) v = x;
    }
    return v;
  };
  switch (sort) {
    case "id":
      return (a) => a.agentId;
    case "lastSeen":
      return (a) => a.lastSeen;
    case "version":
      return (a) => a.version;
    case "successRate":
      return over((h) => h.successRate.rate, "min");
    case "rfDrops":
      return over((h) => h.rfDrops, "max");
    case "p95":
      return over((h) => h.apduLatencyMs.p95, "max");
  }
}
