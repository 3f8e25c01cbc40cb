/**
 * The FleetStore on PostgreSQL (Bun's built-in SQL client), for several dashboard instances
 * sharing one picture of the fleet: agent and reader state, history, events, the audit log,
 * login sessions and the alert webhook's lease live in one database.
 *
 * Instances share it safely:
 * - every instance hears every agent's status, health and metrics and writes the same rows;
 *   upserts are keyed by agent (and reader) and keep the row whose message time (`msgAt`, the
 *   agent's own timestamps) is newest, so a late flush from an instance that has not yet heard
 *   the latest message cannot undo the other's write;
 * - events arrive at one instance each (shared subscription); the page reads them from here;
 * - history samples are keyed by (agent, reader, sample time): instances sample on the same
 *   interval grid, so the second writer's row is a duplicate and is dropped, except for its
 *   read counts (each instance counts the read events of its share of the stream): they add up;
 * - retention moves samples into daily rows with one DELETE ... RETURNING, so two instances
 *   pruning at once cannot count a sample twice;
 * - a batch writes its rows in key order, so two writers never wait on each other in a cycle.
 * The schema is created or migrated at start under an advisory lock (one instance at a time).
 * Every value travels as a bound parameter (arrays through unnest): nothing from an agent is
 * ever part of SQL text.
 */
import { SQL } from "bun";
import type { Session, SessionBackend } from "./auth.ts";
import type { AgentRow, AuditRow, DailyRow, EventRow, FleetStore, ReaderRow, Retention, SampleRow } from "./store.ts";

/** The schema version this code writes; an older database is migrated, a newer one refused. */
export const PG_SCHEMA_VERSION = 2;
/** pg_advisory_xact_lock key for schema creation and migration ("mrtd" in ASCII). */
const MIGRATION_LOCK = 0x6d727464;
/** Rows and characters per statement: a large batch (10,000 agents' metrics) goes in parts, each encoded on its own. */
const CHUNK_ROWS = 2000;
const CHUNK_CHARS = 1024 * 1024;

export const MIGRATIONS: Record<number, string[]> = {
  1: [
    `CREATE TABLE agents (agent_id text PRIMARY KEY, online boolean NOT NULL, version text, started_at text, last_seen bigint NOT NULL, offline_since bigint, metrics text, msg_at bigint NOT NULL DEFAULT 0)`,
    `CREATE TABLE readers (agent_id text NOT NULL, slug text NOT NULL, health text NOT NULL, updated_at bigint NOT NULL, msg_at bigint NOT NULL DEFAULT 0, PRIMARY KEY (agent_id, slug))`,
    `CREATE TABLE events (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, agent_id text NOT NULL, event_id text NOT NULL, at text NOT NULL, type text NOT NULL, reader text NOT NULL, body text NOT NULL, UNIQUE (agent_id, event_id))`,
    `CREATE INDEX events_agent ON events (agent_id, at DESC, seq DESC)`,
    `CREATE TABLE samples (agent_id text NOT NULL, slug text NOT NULL, at bigint NOT NULL, rate float8, window_reads float8 NOT NULL, rf_drops float8 NOT NULL, recoveries float8 NOT NULL, p95 float8, PRIMARY KEY (agent_id, slug, at))`,
    `CREATE INDEX samples_at ON samples (at)`,
    `CREATE TABLE daily (agent_id text NOT NULL, slug text NOT NULL, day text NOT NULL, samples bigint NOT NULL, rate_sum float8 NOT NULL, rate_n bigint NOT NULL, max_rf_drops float8 NOT NULL, max_recoveries float8 NOT NULL, max_p95 float8, PRIMARY KEY (agent_id, slug, day))`,
    `CREATE INDEX daily_day ON daily (day)`,
    `CREATE TABLE audit (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at bigint NOT NULL, "user" text NOT NULL, role text NOT NULL, action text NOT NULL, agent_id text NOT NULL, reader text, outcome text NOT NULL)`,
    `CREATE INDEX audit_at ON audit (at)`,
    `CREATE TABLE sessions (id text PRIMARY KEY, "user" text NOT NULL, role text NOT NULL, csrf text NOT NULL, expires bigint NOT NULL)`,
    `CREATE TABLE leases (name text PRIMARY KEY, owner text NOT NULL, until timestamptz NOT NULL, value text)`,
  ],
  // Read outcomes per sample interval (SampleRow.readsOk/readsFailed); rows from before count 0.
  2: [`ALTER TABLE samples ADD COLUMN reads_ok float8 NOT NULL DEFAULT 0, ADD COLUMN reads_failed float8 NOT NULL DEFAULT 0`],
};

export interface PostgresStoreOptions {
  /** postgres://user@host:port/database */
  url: string;
  password?: string;
  /** Connections in the pool (default 4). */
  max?: number;
}

export class PostgresFleetStore implements FleetStore {
  readonly #sql: SQL;
  readonly sessions: SessionBackend;

  private constructor(sql: SQL) {
    this.#sql = sql;
    this.sessions = new PostgresSessions(sql);
  }

  /** Connects, creates or migrates the schema, and returns the store. */
  static async open(o: PostgresStoreOptions): Promise<PostgresFleetStore> {
    // Bun lets PGDATABASE win over the URL's database; the configured URL is what counts here.
    const database = databaseOf(o.url);
    const sql = new SQL(o.url, {
      ...(o.password !== undefined ? { password: o.password } : {}),
      ...(database ? { database } : {}),
      max: o.max ?? 4,
      connectionTimeout: 10,
      idleTimeout: 60,
      connection: { application_name: "mrtd-dashboard" },
    });
    try {
      await migrate(sql);
    } catch (e) {
      await sql.close().catch(() => undefined);
      throw new Error(`cannot open the PostgreSQL store at ${redact(o.url)}: ${(e as Error).message}`, { cause: e });
    }
    return new PostgresFleetStore(sql);
  }

  async write(batch: { agents: AgentRow[]; readers: ReaderRow[]; events: EventRow[]; samples: SampleRow[] }): Promise<void> {
    // One row per key (an upsert may not touch a row twice in one statement), in key order.
    const agents = [...new Map(batch.agents.map((a) => [a.agentId, a])).values()].sort((a, b) => cmp(a.agentId, b.agentId));
    const readers = [...new Map(batch.readers.map((r) => [`${r.agentId}\u0000${r.slug}`, r])).values()].sort((a, b) => cmp(a.agentId, b.agentId) || cmp(a.slug, b.slug));
    const events = batch.events;
    // One row per key here too (DO UPDATE may not touch a row twice): the reads of duplicates add up.
    const sampleMap = new Map<string, SampleRow>();
    for (const x of batch.samples) {
      const k = `${x.agentId}\u0000${x.slug}\u0000${x.at}`;
      const prev = sampleMap.get(k);
      sampleMap.set(k, prev ? { ...prev, readsOk: prev.readsOk + x.readsOk, readsFailed: prev.readsFailed + x.readsFailed } : x);
    }
    const samples = [...sampleMap.values()];
    if (agents.length + readers.length + events.length + samples.length === 0) return;
    const { texts, ints, floats, bools } = arrays(this.#sql);
    await this.#sql.begin(async (tx) => {
      for (const c of chunks(agents, (a) => a.agentId.length + (a.metrics?.length ?? 0) + 64)) {
        await tx`INSERT INTO agents (agent_id, online, version, started_at, last_seen, offline_since, metrics, msg_at)
          SELECT * FROM unnest(${texts(c.map((a) => a.agentId))}::text[], ${bools(c.map((a) => a.online))}::boolean[], ${texts(c.map((a) => a.version))}::text[],
            ${texts(c.map((a) => a.startedAt))}::text[], ${ints(c.map((a) => a.lastSeen))}::int8[], ${ints(c.map((a) => a.offlineSince))}::int8[], ${texts(c.map((a) => a.metrics))}::text[], ${ints(c.map((a) => a.msgAt ?? 0))}::int8[])
          ON CONFLICT (agent_id) DO UPDATE SET online = excluded.online, version = excluded.version, started_at = excluded.started_at, last_seen = excluded.last_seen,
            offline_since = excluded.offline_since, metrics = coalesce(excluded.metrics, agents.metrics), msg_at = excluded.msg_at
          WHERE agents.msg_at <= excluded.msg_at`;
      }
      for (const c of chunks(readers, (r) => r.agentId.length + r.slug.length + r.health.length + 32)) {
        await tx`INSERT INTO readers (agent_id, slug, health, updated_at, msg_at)
          SELECT * FROM unnest(${texts(c.map((r) => r.agentId))}::text[], ${texts(c.map((r) => r.slug))}::text[], ${texts(c.map((r) => r.health))}::text[], ${ints(c.map((r) => r.updatedAt))}::int8[], ${ints(c.map((r) => r.msgAt ?? 0))}::int8[])
          ON CONFLICT (agent_id, slug) DO UPDATE SET health = excluded.health, updated_at = excluded.updated_at, msg_at = excluded.msg_at
          WHERE readers.msg_at <= excluded.msg_at`;
      }
      for (const c of chunks(events, (e) => e.agentId.length + e.eventId.length + e.at.length + e.type.length + e.reader.length + e.body.length)) {
        await tx`INSERT INTO events (agent_id, event_id, at, type, reader, body)
          SELECT * FROM unnest(${texts(c.map((e) => e.agentId))}::text[], ${texts(c.map((e) => e.eventId))}::text[], ${texts(c.map((e) => e.at))}::text[], ${texts(c.map((e) => e.type))}::text[], ${texts(c.map((e) => e.reader))}::text[], ${texts(c.map((e) => e.body))}::text[])
          ON CONFLICT (agent_id, event_id) DO NOTHING`;
      }
      for (const c of chunks(samples, (s) => s.agentId.length + s.slug.length + 64)) {
        // The other instances' samples of the same instant add their shares of the read events.
        await tx`INSERT INTO samples (agent_id, slug, at, rate, window_reads, rf_drops, recoveries, p95, reads_ok, reads_failed)
          SELECT * FROM unnest(${texts(c.map((s) => s.agentId))}::text[], ${texts(c.map((s) => s.slug))}::text[], ${ints(c.map((s) => s.at))}::int8[], ${floats(c.map((s) => s.rate))}::float8[],
            ${floats(c.map((s) => s.windowReads))}::float8[], ${floats(c.map((s) => s.rfDrops))}::float8[], ${floats(c.map((s) => s.recoveries))}::float8[], ${floats(c.map((s) => s.p95))}::float8[],
            ${floats(c.map((s) => s.readsOk))}::float8[], ${floats(c.map((s) => s.readsFailed))}::float8[])
          ON CONFLICT (agent_id, slug, at) DO UPDATE SET reads_ok = samples.reads_ok + excluded.reads_ok, reads_failed = samples.reads_failed + excluded.reads_failed
          WHERE excluded.reads_ok + excluded.reads_failed > 0`;
      }
    });
  }

  async loadAgents(): Promise<AgentRow[]> {
    const rows: Array<{ agent_id: string; online: boolean; version: string | null; started_at: string | null; last_seen: number; offline_since: number | null; metrics: string | null; msg_at: number }> = await this.#sql`
      SELECT agent_id, online, version, started_at, last_seen::float8 AS last_seen, offline_since::float8 AS offline_since, metrics, msg_at::float8 AS msg_at FROM agents`;
    return rows.map((r) => ({ agentId: r.agent_id, online: r.online, version: r.version, startedAt: r.started_at, lastSeen: r.last_seen, offlineSince: r.offline_since, metrics: r.metrics, msgAt: r.msg_at }));
  }

  async loadReaders(): Promise<ReaderRow[]> {
    const rows: Array<{ agent_id: string; slug: string; health: string; updated_at: number; msg_at: number }> = await this.#sql`
      SELECT agent_id, slug, health, updated_at::float8 AS updated_at, msg_at::float8 AS msg_at FROM readers`;
    return rows.map((r) => ({ agentId: r.agent_id, slug: r.slug, health: r.health, updatedAt: r.updated_at, msgAt: r.msg_at }));
  }

  /** Newest first by the agent's own event time (two instances insert their halves of the stream a second apart). */
  async recentEvents(agentId: string, limit: number): Promise<EventRow[]> {
    const rows: Array<{ agent_id: string; event_id: string; at: string; type: string; reader: string; body: string }> = await this.#sql`
      SELECT agent_id, event_id, at, type, reader, body FROM events WHERE agent_id = ${agentId} ORDER BY at DESC, seq DESC LIMIT ${limit}`;
    return rows.map((r) => ({ agentId: r.agent_id, eventId: r.event_id, at: r.at, type: r.type, reader: r.reader, body: r.body }));
  }

  async samples(agentId: string, slug: string, sinceMs: number): Promise<SampleRow[]> {
    const rows: Array<{ agent_id: string; slug: string; at: number; rate: number | null; window_reads: number; rf_drops: number; recoveries: number; p95: number | null; reads_ok: number; reads_failed: number }> = await this.#sql`
      SELECT agent_id, slug, at::float8 AS at, rate, window_reads, rf_drops, recoveries, p95, reads_ok, reads_failed FROM samples WHERE agent_id = ${agentId} AND slug = ${slug} AND at >= ${Math.trunc(sinceMs)} ORDER BY at`;
    return rows.map((r) => ({ agentId: r.agent_id, slug: r.slug, at: r.at, rate: r.rate, windowReads: r.window_reads, rfDrops: r.rf_drops, recoveries: r.recoveries, p95: r.p95, readsOk: r.reads_ok, readsFailed: r.reads_failed }));
  }

  async daily(agentId: string, slug: string): Promise<DailyRow[]> {
    const rows: Array<{ agent_id: string; slug: string; day: string; samples: number; rate_sum: number; rate_n: number; max_rf_drops: number; max_recoveries: number; max_p95: number | null }> = await this.#sql`
      SELECT agent_id, slug, day, samples::float8 AS samples, rate_sum, rate_n::float8 AS rate_n, max_rf_drops, max_recoveries, max_p95 FROM daily WHERE agent_id = ${agentId} AND slug = ${slug} ORDER BY day`;
    return rows.map((r) => ({ agentId: r.agent_id, slug: r.slug, day: r.day, samples: r.samples, meanRate: r.rate_n > 0 ? r.rate_sum / r.rate_n : null, maxRfDrops: r.max_rf_drops, maxRecoveries: r.max_recoveries, maxP95: r.max_p95 }));
  }

  async audit(e: AuditRow): Promise<void> {
    await this.#sql`INSERT INTO audit (at, "user", role, action, agent_id, reader, outcome) VALUES (${Math.trunc(e.at)}, ${clean(e.user)}, ${clean(e.role)}, ${clean(e.action)}, ${clean(e.agentId)}, ${e.reader === null ? null : clean(e.reader)}, ${clean(e.outcome)})`;
  }

  async auditLog(limit: number): Promise<AuditRow[]> {
    const rows: Array<{ at: number; user: string; role: string; action: string; agent_id: string; reader: string | null; outcome: string }> = await this.#sql`
      SELECT at::float8 AS at, "user", role, action, agent_id, reader, outcome FROM audit ORDER BY seq DESC LIMIT ${limit}`;
    return rows.map((r) => ({ at: r.at, user: r.user, role: r.role, action: r.action, agentId: r.agent_id, reader: r.reader, outcome: r.outcome }));
  }

  async prune(nowMs: number, r: Retention): Promise<{ samplesRolledUp: number; deleted: number }> {
    const rawCut = Math.trunc(nowMs - r.rawRetentionH * 3_600_000);
    const dayCut = new Date(nowMs - r.dailyRetentionD * 86_400_000).toISOString().slice(0, 10);
    return this.#sql.begin(async (tx) => {
      // Samples past raw retention leave the table and land in their day in one statement:
      // an instance pruning at the same time waits for these rows and then finds them gone.
      const [moved] = await tx`
        WITH moved AS (DELETE FROM samples WHERE at < ${rawCut} RETURNING *),
        rolled AS (
          INSERT INTO daily
          SELECT agent_id, slug, to_char(to_timestamp(at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, count(*), coalesce(sum(rate), 0), count(rate), max(rf_drops), max(recoveries), max(p95)
          FROM moved GROUP BY 1, 2, 3
          ON CONFLICT (agent_id, slug, day) DO UPDATE SET samples = daily.samples + excluded.samples, rate_sum = daily.rate_sum + excluded.rate_sum, rate_n = daily.rate_n + excluded.rate_n,
            max_rf_drops = greatest(daily.max_rf_drops, excluded.max_rf_drops), max_recoveries = greatest(daily.max_recoveries, excluded.max_recoveries), max_p95 = greatest(daily.max_p95, excluded.max_p95)
          RETURNING 1)
        SELECT (SELECT count(*) FROM moved)::int AS moved, (SELECT count(*) FROM rolled)::int AS rolled`;
      let deleted = (moved as { moved: number }).moved;
      deleted += (await tx`DELETE FROM daily WHERE day < ${dayCut}`).count;
      // The newest eventsPerAgent events of each agent stay.
      deleted += (
        await tx`DELETE FROM events e USING (SELECT seq FROM (SELECT seq, row_number() OVER (PARTITION BY agent_id ORDER BY at DESC, seq DESC) AS n FROM events) t WHERE n > ${r.eventsPerAgent}) old WHERE e.seq = old.seq`
      ).count;
      deleted += (await tx`DELETE FROM audit WHERE at < ${Math.trunc(nowMs - r.auditRetentionD * 86_400_000)}`).count;
      deleted += (await tx`DELETE FROM sessions WHERE expires < ${Math.trunc(nowMs)}`).count;
      return { samplesRolledUp: (moved as { rolled: number }).rolled, deleted };
    });
  }

  /**
   * Takes or renews the lease `name` for `owner` for `ttlS` seconds (database time). `held`
   * while `owner` has it; `value` is what the holder last left with it (setLeaseValue), so a new
   * holder carries on where the last one stopped. One instance of several sends the alert webhook.
   */
  async lease(name: string, owner: string, ttlS: number): Promise<{ held: boolean; value: string | null }> {
    const rows: Array<{ value: string | null }> = await this.#sql`
      INSERT INTO leases (name, owner, until) VALUES (${name}, ${owner}, clock_timestamp() + make_interval(secs => ${ttlS}))
      ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until WHERE leases.owner = excluded.owner OR leases.until < clock_timestamp()
      RETURNING value`;
    return { held: rows.length === 1, value: rows[0]?.value ?? null };
  }

  /** Leaves `value` with the lease, if `owner` still holds it. */
  async setLeaseValue(name: string, owner: string, value: string): Promise<void> {
    await this.#sql`UPDATE leases SET value = ${clean(value)} WHERE name = ${name} AND owner = ${owner}`;
  }

  async close(): Promise<void> {
    await this.#sql.close({ timeout: 5 });
  }
}

/** Login sessions in the shared database, so any instance knows a session another made. */
class PostgresSessions implements SessionBackend {
  readonly #sql: SQL;
  constructor(sql: SQL) {
    this.#sql = sql;
  }
  async put(id: string, s: Session): Promise<void> {
    await this.#sql`INSERT INTO sessions (id, "user", role, csrf, expires) VALUES (${id}, ${s.user}, ${s.role}, ${s.csrf}, ${Math.trunc(s.expires)})
      ON CONFLICT (id) DO UPDATE SET "user" = excluded."user", role = excluded.role, csrf = excluded.csrf, expires = excluded.expires`;
  }
  async get(id: string): Promise<Session | undefined> {
    const rows: Array<{ user: string; role: Session["role"]; csrf: string; expires: number }> = await this.#sql`SELECT "user", role, csrf, expires::float8 AS expires FROM sessions WHERE id = ${id}`;
    const r = rows[0];
    return r ? { user: r.user, role: r.role, csrf: r.csrf, expires: r.expires } : undefined;
  }
  async delete(id: string): Promise<void> {
    await this.#sql`DELETE FROM sessions WHERE id = ${id}`;
  }
}

async function migrate(sql: SQL): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`CREATE TABLE IF NOT EXISTS mrtd_dashboard_schema (version int NOT NULL)`;
    const rows: Array<{ version: number }> = await tx`SELECT version FROM mrtd_dashboard_schema`;
    const at = rows[0]?.version ?? 0;
    if (at > PG_SCHEMA_VERSION) throw new Error(`the dashboard database has schema version ${at}, newer than this dashboard's ${PG_SCHEMA_VERSION}: upgrade the dashboard`);
    for (let v = at + 1; v <= PG_SCHEMA_VERSION; v++) for (const stmt of MIGRATIONS[v] ?? []) await tx.unsafe(stmt);
    if (rows.length === 0) await tx`INSERT INTO mrtd_dashboard_schema (version) VALUES (${PG_SCHEMA_VERSION})`;
    else if (at !== PG_SCHEMA_VERSION) await tx`UPDATE mrtd_dashboard_schema SET version = ${PG_SCHEMA_VERSION}`;
  });
}

/**
 * PostgreSQL text cannot hold NUL, and a lone UTF-16 surrogate is not UTF-8: both can reach
 * us inside JSON escapes from a misbehaving agent. They become U+FFFD, so such a row is stored
 * (as the characters it could be) instead of failing the whole batch.
 */
function clean(s: string): string {
  return s.replaceAll("\u0000", "\uFFFD").toWellFormed();
}
/** Array parameters for unnest: one bound value per column, however many rows. */
function arrays(sql: SQL) {
  return {
    texts: (v: Array<string | null>) => sql.array(v.map((s) => (s === null ? null : clean(s))), "TEXT"),
    ints: (v: Array<number | null>) => sql.array(v.map((n) => (n === null || !Number.isFinite(n) ? null : Math.trunc(n))), "INT8"),
    floats: (v: Array<number | null>) => sql.array(v.map((n) => (n === null || !Number.isFinite(n) ? null : n)), "FLOAT8"),
    bools: (v: boolean[]) => sql.array(v, "BOOLEAN"),
  };
}

function databaseOf(url: string): string | undefined {
  try {
    return decodeURIComponent(new URL(url).pathname.slice(1)) || undefined;
  } catch {
    return undefined;
  }
}

/** The URL without any password, for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    u.password = "";
    u.searchParams.delete("password");
    return u.toString();
  } catch {
    return "(the configured URL)";
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Splits rows so no statement gets more than CHUNK_ROWS rows or about CHUNK_CHARS characters. */
function* chunks<T>(rows: T[], size: (r: T) => number): Generator<T[]> {
  let cur: T[] = [];
  let chars = 0;
  for (const r of rows) {
    const n = size(r);
    if (cur.length > 0 && (cur.length >= CHUNK_ROWS || chars + n > CHUNK_CHARS)) {
      yield cur;
      cur = [];
      chars = 0;
    }
    cur.push(r);
    chars += n;
  }
  if (cur.length > 0) yield cur;
}
