/**
 * Where the dashboard keeps the fleet: current agent and reader state (so a restart shows the
 * fleet at once, before retained messages arrive again), recent events, reader history
 * (samples, rolled up per day), and the audit log of commands. FleetStore is the interface; the
 * bun:sqlite implementation (one instance) is below, the PostgreSQL one (several instances
 * sharing state) in store-postgres.ts; both pass test/dashboard/fixtures/store-contract.ts.
 */
import { Database } from "bun:sqlite";
import type { SessionBackend } from "./auth.ts";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";

export interface AgentRow {
  agentId: string;
  online: boolean;
  version: string | null;
  startedAt: string | null;
  /** ms since epoch of the last message from the agent. */
  lastSeen: number;
  /** ms since epoch the agent went offline, null when online. */
  offlineSince: number | null;
  /**
   * The last metrics payload (JSON). In a write: null when unchanged since the last write (the
   * stored one stays). Loaded: null before one arrived.
   */
  metrics: string | null;
  /**
   * The newest message time (ms, the agent's own timestamps) this row reflects: a shared store
   * keeps the row with the newest, whichever instance writes last. 0 when unknown.
   */
  msgAt?: number;
}
export interface ReaderRow {
  agentId: string;
  slug: string;
  /** The last ReaderHealth payload (JSON). */
  health: string;
  updatedAt: number;
  /** The health payload's own time (ms), as AgentRow.msgAt. */
  msgAt?: number;
}
export interface EventRow {
  agentId: string;
  eventId: string;
  at: string;
  type: string;
  reader: string;
  /** The event payload (JSON, as validated: no personal data but a sealed envelope, which is dropped). */
  body: string;
}
export interface SampleRow {
  agentId: string;
  slug: string;
  /** Sample time, ms since epoch. */
  at: number;
  rate: number | null;
  windowReads: number;
  rfDrops: number;
  recoveries: number;
  p95: number | null;
  /**
   * Read events (successful, failed) of this reader the dashboard received since its previous
   * sample. With several instances on one database each counts its share of the event stream
   * and the store adds them up (store-postgres.ts).
   */
  readsOk: number;
  readsFailed: number;
}
export interface DailyRow {
  agentId: string;
  slug: string;
  day: string;
  samples: number;
  meanRate: number | null;
  maxRfDrops: number;
  maxRecoveries: number;
  maxP95: number | null;
}
export interface AuditRow {
  at: number;
  user: string;
  role: string;
  action: string;
  agentId: string;
  reader: string | null;
  outcome: string;
}
export interface Retention {
  rawRetentionH: number;
  dailyRetentionD: number;
  eventsPerAgent: number;
  auditRetentionD: number;
}

export interface FleetStore {
  /** Writes a batch of state changes and new rows in one transaction. */
  write(batch: { agents: AgentRow[]; readers: ReaderRow[]; events: EventRow[]; samples: SampleRow[] }): Promise<void>;
  loadAgents(): Promise<AgentRow[]>;
  loadReaders(): Promise<ReaderRow[]>;
  recentEvents(agentId: string, limit: number): Promise<EventRow[]>;
  samples(agentId: string, slug: string, sinceMs: number): Promise<SampleRow[]>;
  daily(agentId: string, slug: string): Promise<DailyRow[]>;
  audit(entry: AuditRow): Promise<void>;
  auditLog(limit: number): Promise<AuditRow[]>;
  /** Rolls samples older than the raw retention up into days, then deletes what is past retention. */
  prune(nowMs: number, r: Retention): Promise<{ samplesRolledUp: number; deleted: number }>;
  close(): Promise<void>;
  /** Login sessions, when the store is shared (else each instance keeps its own in memory). */
  readonly sessions?: SessionBackend;
  /**
   * Takes or renews a named lease for `owner`, when the store is shared: one instance of several
   * sends the alert webhook. `value` is what the last holder left with it (setLeaseValue).
   */
  lease?(name: string, owner: string, ttlS: number): Promise<{ held: boolean; value: string | null }>;
  setLeaseValue?(name: string, owner: string, value: string): Promise<void>;
}

const SCHEMA = `
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS agents (agent_id TEXT PRIMARY KEY, online INTEGER NOT NULL, version TEXT, started_at TEXT, last_seen INTEGER NOT NULL, offline_since INTEGER, metrics TEXT);
CREATE TABLE IF NOT EXISTS readers (agent_id TEXT NOT NULL, slug TEXT NOT NULL, health TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (agent_id, slug));
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, agent_id TEXT NOT NULL, event_id TEXT NOT NULL, at TEXT NOT NULL, type TEXT NOT NULL, reader TEXT NOT NULL, body TEXT NOT NULL, UNIQUE (agent_id, event_id));
CREATE INDEX IF NOT EXISTS events_agent ON events (agent_id, seq);
CREATE TABLE IF NOT EXISTS samples (agent_id TEXT NOT NULL, slug TEXT NOT NULL, at INTEGER NOT NULL, rate REAL, window_reads INTEGER NOT NULL, rf_drops INTEGER NOT NULL, recoveries INTEGER NOT NULL, p95 REAL, reads_ok INTEGER NOT NULL DEFAULT 0, reads_failed INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS samples_reader ON samples (agent_id, slug, at);
CREATE INDEX IF NOT EXISTS samples_at ON samples (at);
CREATE TABLE IF NOT EXISTS daily (agent_id TEXT NOT NULL, slug TEXT NOT NULL, day TEXT NOT NULL, samples INTEGER NOT NULL, rate_sum REAL NOT NULL, rate_n INTEGER NOT NULL, max_rf_drops INTEGER NOT NULL, max_recoveries INTEGER NOT NULL, max_p95 REAL, PRIMARY KEY (agent_id, slug, day));
CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, user TEXT NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL, agent_id TEXT NOT NULL, reader TEXT, outcome TEXT NOT NULL);
`;

export class SqliteFleetStore implements FleetStore {
  readonly #db: Database;
  readonly #q;

  constructor(path: string) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.#db = new Database(path, { create: true, strict: true });
    this.#db.exec(SCHEMA);
    migrateSqlite(this.#db);
    const db = this.#db;
    this.#q = {
      agent: db.prepare("INSERT INTO agents VALUES ($agentId, $online, $version, $startedAt, $lastSeen, $offlineSince, $metrics) ON CONFLICT (agent_id) DO UPDATE SET online = excluded.online, version = excluded.version, started_at = excluded.started_at, last_seen = excluded.last_seen, offline_since = excluded.offline_since, metrics = coalesce(excluded.metrics, metrics)"),
      reader: db.prepare("INSERT INTO readers VALUES ($agentId, $slug, $health, $updatedAt) ON CONFLICT (agent_id, slug) DO UPDATE SET health = excluded.health, updated_at = excluded.updated_at"),
      event: db.prepare("INSERT OR IGNORE INTO events (agent_id, event_id, at, type, reader, body) VALUES ($agentId, $eventId, $at, $type, $reader, $body)"),
      sample: db.prepare("INSERT INTO samples (agent_id, slug, at, rate, window_reads, rf_drops, recoveries, p95, reads_ok, reads_failed) VALUES ($agentId, $slug, $at, $rate, $windowReads, $rfDrops, $recoveries, $p95, $readsOk, $readsFailed)"),
      audit: db.prepare("INSERT INTO audit (at, user, role, action, agent_id, reader, outcome) VALUES ($at, $user, $role, $action, $agentId, $reader, $outcome)"),
    };
  }

  async write(batch: { agents: AgentRow[]; readers: ReaderRow[]; events: EventRow[]; samples: SampleRow[] }): Promise<void> {
    const q = this.#q;
    this.#db.transaction(() => {
      for (const a of batch.agents) q.agent.run({ ...a, online: a.online ? 1 : 0 });
      for (const r of batch.readers) q.reader.run({ ...r });
      for (const e of batch.events) q.event.run({ ...e });
      for (const s of batch.samples) q.sample.run({ ...s });
    })();
  }

  async loadAgents(): Promise<AgentRow[]> {
    return this.#db
      .query<{ agent_id: string; online: number; version: string | null; started_at: string | null; last_seen: number; offline_since: number | null; metrics: string | null }, []>("SELECT * FROM agents")
      .all()
      .map((r) => ({ agentId: r.agent_id, online: r.online === 1, version: r.version, startedAt: r.started_at, lastSeen: r.last_seen, offlineSince: r.offline_since, metrics: r.metrics }));
  }

  async loadReaders(): Promise<ReaderRow[]> {
    return this.#db
      .query<{ agent_id: string; slug: string; health: string; updated_at: number }, []>("SELECT * FROM readers")
      .all()
      .map((r) => ({ agentId: r.agent_id, slug: r.slug, health: r.health, updatedAt: r.updated_at }));
  }

  async recentEvents(agentId: string, limit: number): Promise<EventRow[]> {
    return this.#db
      .query<{ agent_id: string; event_id: string; at: string; type: string; reader: string; body: string }, [string, number]>("SELECT * FROM events WHERE agent_id = ? ORDER BY seq DESC LIMIT ?")
      .all(agentId, limit)
      .map((r) => ({ agentId: r.agent_id, eventId: r.event_id, at: r.at, type: r.type, reader: r.reader, body: r.body }));
  }

  async samples(agentId: string, slug: string, sinceMs: number): Promise<SampleRow[]> {
    return this.#db
      .query<{ agent_id: string; slug: string; at: number; rate: number | null; window_reads: number; rf_drops: number; recoveries: number; p95: number | null; reads_ok: number; reads_failed: number }, [string, string, number]>(
        "SELECT * FROM samples WHERE agent_id = ? AND slug = ? AND at >= ? ORDER BY at",
      )
      .all(agentId, slug, sinceMs)
      .map((r) => ({ agentId: r.agent_id, slug: r.slug, at: r.at, rate: r.rate, windowReads: r.window_reads, rfDrops: r.rf_drops, recoveries: r.recoveries, p95: r.p95, readsOk: r.reads_ok, readsFailed: r.reads_failed }));
  }

  async daily(agentId: string, slug: string): Promise<DailyRow[]> {
    return this.#db
      .query<{ agent_id: string; slug: string; day: string; samples: number; rate_sum: number; rate_n: number; max_rf_drops: number; max_recoveries: number; max_p95: number | null }, [string, string]>(
        "SELECT * FROM daily WHERE agent_id = ? AND slug = ? ORDER BY day",
      )
      .all(agentId, slug)
      .map((r) => ({ agentId: r.agent_id, slug: r.slug, day: r.day, samples: r.samples, meanRate: r.rate_n > 0 ? r.rate_sum / r.rate_n : null, maxRfDrops: r.max_rf_drops, maxRecoveries: r.max_recoveries, maxP95: r.max_p95 }));
  }

  async audit(entry: AuditRow): Promise<void> {
    this.#q.audit.run({ ...entry });
  }

  async auditLog(limit: number): Promise<AuditRow[]> {
    return this.#db
      .query<{ at: number; user: string; role: string; action: string; agent_id: string; reader: string | null; outcome: string }, [number]>("SELECT * FROM audit ORDER BY seq DESC LIMIT ?")
      .all(limit)
      .map((r) => ({ at: r.at, user: r.user, role: r.role, action: r.action, agentId: r.agent_id, reader: r.reader, outcome: r.outcome }));
  }

  async prune(nowMs: number, r: Retention): Promise<{ samplesRolledUp: number; deleted: number }> {
    const rawCut = nowMs - r.rawRetentionH * 3_600_000;
    const dayCut = new Date(nowMs - r.dailyRetentionD * 86_400_000).toISOString().slice(0, 10);
    let rolled = 0;
    let deleted = 0;
    this.#db.transaction(() => {
      rolled = this.#db
        .prepare(
          `INSERT INTO daily SELECT agent_id, slug, strftime('%Y-%m-%d', at / 1000, 'unixepoch') AS day, count(*), coalesce(sum(rate), 0), count(rate), max(rf_drops), max(recoveries), max(p95)
           FROM samples WHERE at < ? GROUP BY agent_id, slug, day
           ON CONFLICT (agent_id, slug, day) DO UPDATE SET samples = samples + excluded.samples, rate_sum = rate_sum + excluded.rate_sum, rate_n = rate_n + excluded.rate_n,
             max_rf_drops = max(max_rf_drops, excluded.max_rf_drops), max_recoveries = max(max_recoveries, excluded.max_recoveries), max_p95 = max(coalesce(max_p95, excluded.max_p95), coalesce(excluded.max_p95, max_p95))`,
        )
        .run(rawCut).changes;
      deleted += this.#db.prepare("DELETE FROM samples WHERE at < ?").run(rawCut).changes;
      deleted += this.#db.prepare("DELETE FROM daily WHERE day < ?").run(dayCut).changes;
      // Keep the newest eventsPerAgent events of each agent.
      deleted += this.#db
        .prepare("DELETE FROM events WHERE seq IN (SELECT seq FROM (SELECT seq, row_number() OVER (PARTITION BY agent_id ORDER BY seq DESC) AS n FROM events) WHERE n > ?)")
        .run(r.eventsPerAgent).changes;
      deleted += this.#db.prepare("DELETE FROM audit WHERE at < ?").run(nowMs - r.auditRetentionD * 86_400_000).changes;
    })();
    return { samplesRolledUp: rolled, deleted };
  }

  async close(): Promise<void> {
    this.#db.close();
  }
}

/**
 * Brings a database an earlier version made up to this schema (CREATE TABLE IF NOT EXISTS
 * leaves existing tables as they were): samples gained reads_ok and reads_failed.
 */
function migrateSqlite(db: Database): void {
  const cols = new Set(db.query<{ name: string }, []>("SELECT name FROM pragma_table_info('samples')").all().map((c) => c.name));
  db.transaction(() => {
    if (!cols.has("reads_ok")) db.exec("ALTER TABLE samples ADD COLUMN reads_ok INTEGER NOT NULL DEFAULT 0");
    if (!cols.has("reads_failed")) db.exec("ALTER TABLE samples ADD COLUMN reads_failed INTEGER NOT NULL DEFAULT 0");
  })();
}
