/**
 * The PostgreSQL FleetStore against a real PostgreSQL (Debian's postgresql, a throwaway cluster
 * on a loopback port, test/support/postgres.ts): the FleetStore contract suite the sqlite store
 * runs, bad input as data, and what sharing needs: two stores on one database see each other's
 * writes, the newest message wins whoever writes last, samples of two instances are stored
 * once, concurrent pruning counts nothing twice, sessions and the webhook lease are shared,
 * and the schema is created once however many instances start together.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SQL } from "bun";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Session } from "../../agent/dashboard/auth.ts";
import { parseDashboardConfig } from "../../agent/dashboard/config.ts";
import { MIGRATIONS, PG_SCHEMA_VERSION, PostgresFleetStore } from "../../agent/dashboard/store-postgres.ts";
import type { AgentRow, SampleRow } from "../../agent/dashboard/store.ts";
import { startPostgres, writePasswordFile, type PostgresCluster } from "../support/postgres.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";
import { fleetStoreContract, HOSTILE, hostileInputContract, readOutcomesContract } from "./fixtures/store-contract.ts";

let pg: PostgresCluster;
beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(async () => {
  await pg?.stop();
});

const open = async (name: string) => PostgresFleetStore.open({ url: await pg.database(name), password: pg.password });

fleetStoreContract("PostgresFleetStore", open);
hostileInputContract("PostgresFleetStore", open);
readOutcomesContract("PostgresFleetStore", open);

const agent = (agentId: string, msgAt: number, online: boolean, version = "1"): AgentRow => ({ agentId, online, version, startedAt: null, lastSeen: msgAt, offlineSince: online ? null : msgAt, metrics: null, msgAt });

describe("PostgresFleetStore shared by several instances", () => {
  test("the schema is created once when instances start together; a newer schema is refused", async () => {
    const url = await pg.database("racing");
    const stores = await Promise.all([1, 2, 3, 4].map(() => PostgresFleetStore.open({ url, password: pg.password })));
    const admin = pg.admin("racing");
    expect(await admin`SELECT version FROM mrtd_dashboard_schema`).toEqual([{ version: PG_SCHEMA_VERSION }]);
    await admin`UPDATE mrtd_dashboard_schema SET version = ${PG_SCHEMA_VERSION + 1}`;
    await expect(PostgresFleetStore.open({ url, password: pg.password })).rejects.toThrow(`schema version ${PG_SCHEMA_VERSION + 1}, newer than this dashboard's ${PG_SCHEMA_VERSION}`);
    await admin`UPDATE mrtd_dashboard_schema SET version = ${PG_SCHEMA_VERSION}`;
    for (const s of stores) await s.close();
  });

  test("a version 1 database is migrated: samples gain read outcomes, its rows count 0 reads", async () => {
    // Made by the dashboard's role, as an earlier version would have: the migration runs as it, the tables' owner.
    const old = new SQL(await pg.database("v1"), { password: pg.password, database: "v1", max: 1 });
    await old.begin(async (tx) => {
      await tx`CREATE TABLE mrtd_dashboard_schema (version int NOT NULL)`;
      await tx`INSERT INTO mrtd_dashboard_schema (version) VALUES (1)`;
      for (const stmt of MIGRATIONS[1]!) await tx.unsafe(stmt);
      await tx`INSERT INTO samples (agent_id, slug, at, rate, window_reads, rf_drops, recoveries, p95) VALUES ('ag', 'r', 1000, 0.5, 4, 0, 0, 12.5)`;
    });
    const s = await open("v1");
    expect(await old`SELECT version FROM mrtd_dashboard_schema`).toEqual([{ version: PG_SCHEMA_VERSION }]);
    await old.close();
    await s.write({ agents: [], readers: [], events: [], samples: [{ agentId: "ag", slug: "r", at: 2000, rate: 1, windowReads: 5, rfDrops: 0, recoveries: 0, p95: 10, readsOk: 3, readsFailed: 1 }] });
    expect((await s.samples("ag", "r", 0)).map((x) => [x.at, x.rate, x.readsOk, x.readsFailed])).toEqual([[1000, 0.5, 0, 0], [2000, 1, 3, 1]]);
    await s.close();
  });

  test("a wrong password or an unreachable server fails to open with the reason, never the password", async () => {
    const url = await pg.database("fleet");
    const wrong = await PostgresFleetStore.open({ url, password: "not-the-password" }).catch((e: Error) => e);
    expect(String(wrong)).toContain("password authentication failed");
    expect(String(wrong)).not.toContain("not-the-password");
    const closed = await PostgresFleetStore.open({ url: url.replace(`:${pg.port}/`, ":1/"), password: pg.password }).catch((e: Error) => e);
    expect(closed).toBeInstanceOf(Error);
    expect(String(closed)).not.toContain(pg.password);
  });

  test("the newest message wins, whichever instance writes last; each sees the other's rows", async () => {
    const a = await open("shared");
    const b = await open("shared");
    // a heard the agent go offline (message time 2000); b flushes a second later with the older picture (1000).
    await a.write({ agents: [agent("ag-1", 2000, false)], readers: [{ agentId: "ag-1", slug: "r", health: '{"v":2}', updatedAt: 2, msgAt: 2000 }], events: [], samples: [] });
    await b.write({ agents: [agent("ag-1", 1000, true)], readers: [{ agentId: "ag-1", slug: "r", health: '{"v":1}', updatedAt: 1, msgAt: 1000 }], events: [], samples: [] });
    expect((await b.loadAgents()).find((x) => x.agentId === "ag-1")).toMatchObject({ online: false, msgAt: 2000 });
    expect((await b.loadReaders()).find((x) => x.agentId === "ag-1")!.health).toBe('{"v":2}');
    // A batch naming the agent twice is one upsert (the later row), not an error.
    await a.write({ agents: [agent("ag-2", 10, true, "x"), agent("ag-2", 11, true, "y")], readers: [], events: [], samples: [] });
    expect((await b.loadAgents()).find((x) => x.agentId === "ag-2")!.version).toBe("y");
    // The same message time (both heard the same message): the row is the same either way.
    await b.write({ agents: [agent("ag-1", 2000, false, "2")], readers: [], events: [], samples: [] });
    expect((await a.loadAgents()).find((x) => x.agentId === "ag-1")!.version).toBe("2");
    // Newer from b wins.
    await b.write({ agents: [agent("ag-1", 3000, true)], readers: [], events: [], samples: [] });
    expect((await a.loadAgents()).find((x) => x.agentId === "ag-1")).toMatchObject({ online: true, msgAt: 3000 });
    // Events written by each instance (its half of the shared subscription) are read by both, newest first by event time.
    await a.write({ agents: [], readers: [], events: [0, 2, 4].map((i) => ev("ag-1", i)), samples: [] });
    await b.write({ agents: [], readers: [], events: [1, 3, 5].map((i) => ev("ag-1", i)), samples: [] });
    const ids = (await a.recentEvents("ag-1", 10)).map((e) => e.eventId);
    expect(ids).toEqual(["e5", "e4", "e3", "e2", "e1", "e0"]);
    expect((await b.recentEvents("ag-1", 10)).map((e) => e.eventId)).toEqual(ids);
    await a.close();
    await b.close();
  });

  test("two instances writing the same agents at once, in any order, neither deadlock nor lose the newest row", async () => {
    const a = await open("concurrent");
    const b = await open("concurrent");
    const ids = Array.from({ length: 3000 }, (_, i) => `agent-${i}`);
    const rounds = 8;
    const writes: Array<Promise<void>> = [];
    for (let k = 1; k <= rounds; k++) {
      // Opposite orders, overlapping rows, message times interleaved between the two writers.
      writes.push(a.write({ agents: ids.map((id) => agent(id, k * 10, k % 2 === 0, `a${k}`)), readers: ids.map((id) => ({ agentId: id, slug: "r", health: `{"k":${k}}`, updatedAt: k, msgAt: k * 10 })), events: [], samples: [] }));
      writes.push(b.write({ agents: [...ids].reverse().map((id) => agent(id, k * 10 + 5, k % 2 === 1, `b${k}`)), readers: [...ids].reverse().map((id) => ({ agentId: id, slug: "r", health: `{"k":${k}.5}`, updatedAt: k, msgAt: k * 10 + 5 })), events: [], samples: [] }));
    }
    await Promise.all(writes);
    const rows = await a.loadAgents();
    expect(rows).toHaveLength(ids.length);
    expect(new Set(rows.map((r) => `${r.version}/${r.msgAt}`))).toEqual(new Set([`b${rounds}/${rounds * 10 + 5}`]));
    expect(new Set((await b.loadReaders()).map((r) => r.health))).toEqual(new Set([`{"k":${rounds}.5}`]));
    await a.close();
    await b.close();
  }, 60_000);

  test("samples two instances take on the same grid are stored once; concurrent pruning rolls each up once", async () => {
    const a = await open("history");
    const b = await open("history");
    const now = Date.UTC(2026, 11, 4, 12);
    const samples: SampleRow[] = [];
    for (let h = 100; h >= 60; h--) for (const slug of ["r1", "r2"]) samples.push({ agentId: "ag", slug, at: now - h * 3_600_000, rate: 0.5, windowReads: 10, rfDrops: h, recoveries: 1, p95: h, readsOk: 2, readsFailed: h === 60 ? 1 : 0 });
    // Each instance counted its share of the read events: the stored sample holds their sum.
    const bShare = samples.map((x) => ({ ...x, readsOk: 3, readsFailed: 0 }));
    await Promise.all([a.write({ agents: [], readers: [], events: [], samples }), b.write({ agents: [], readers: [], events: [], samples: bShare })]);
    const stored = await a.samples("ag", "r1", 0);
    expect(stored).toHaveLength(41);
    expect(stored.every((x) => x.readsOk === 5)).toBe(true);
    expect(stored.map((x) => x.readsFailed).reduce((m, n) => m + n, 0)).toBe(1);
    const ret = { rawRetentionH: 48, dailyRetentionD: 90, eventsPerAgent: 50, auditRetentionD: 365 };
    const [ra, rb] = await Promise.all([a.prune(now, ret), b.prune(now, ret)]);
    expect(ra.deleted + rb.deleted).toBe(82);
    const daily = await b.daily("ag", "r1");
    expect(daily.reduce((n, d) => n + d.samples, 0)).toBe(41);
    expect(daily.map((d) => d.day)).toEqual(["2026-11-30", "2026-12-01", "2026-12-02"]);
    expect(daily[0]!.maxRfDrops).toBe(100);
    expect(daily[0]!.meanRate).toBe(0.5);
    expect(await a.samples("ag", "r1", 0)).toEqual([]);
    await a.close();
    await b.close();
  });

  test("sessions made through one store are known to the other, and end for both", async () => {
    const a = await open("sessions");
    const b = await open("sessions");
    const s: Session = { user: HOSTILE.reader.slice(0, 40), role: "operator", csrf: "c".repeat(43), expires: Date.now() + 60_000 };
    await a.sessions.put("id-1", s);
    expect(await b.sessions.get("id-1")).toEqual(s);
    await b.sessions.delete("id-1");
    expect(await a.sessions.get("id-1")).toBeUndefined();
    // Expired sessions go with retention.
    await a.sessions.put("old", { ...s, expires: 1 });
    await a.prune(Date.now(), { rawRetentionH: 48, dailyRetentionD: 90, eventsPerAgent: 50, auditRetentionD: 365 });
    expect(await b.sessions.get("old")).toBeUndefined();
    await a.close();
    await b.close();
  });

  test("one instance holds the alert webhook's lease; another takes it when it lapses, with what the last holder left", async () => {
    const a = await open("lease");
    const b = await open("lease");
    expect(await a.lease("alert-webhook", "A", 1)).toEqual({ held: true, value: null });
    expect((await b.lease("alert-webhook", "B", 1)).held).toBe(false);
    await a.setLeaseValue("alert-webhook", "A", '["reported"]');
    await b.setLeaseValue("alert-webhook", "B", '["not the holder"]');
    expect(await a.lease("alert-webhook", "A", 1)).toEqual({ held: true, value: '["reported"]' });
    await Bun.sleep(1100);
    expect(await b.lease("alert-webhook", "B", 1)).toEqual({ held: true, value: '["reported"]' });
    expect((await a.lease("alert-webhook", "A", 1)).held).toBe(false);
    await a.close();
    await b.close();
  });

  test("the database named in store.url is used even when PGDATABASE names another", async () => {
    const url = await pg.database("named");
    const before = process.env.PGDATABASE;
    process.env.PGDATABASE = "postgres";
    try {
      const s = await PostgresFleetStore.open({ url, password: pg.password });
      await s.write({ agents: [agent("in-named", 1, true)], readers: [], events: [], samples: [] });
      await s.close();
    } finally {
      if (before === undefined) delete process.env.PGDATABASE;
      else process.env.PGDATABASE = before;
    }
    expect(await pg.admin("named")`SELECT agent_id FROM agents`).toEqual([{ agent_id: "in-named" }]);
  });

  test("NUL and lone surrogates from JSON escapes are stored as U+FFFD instead of failing the batch", async () => {
    const s = await open("odd");
    await s.write({ agents: [], readers: [], events: [{ agentId: "odd", eventId: "n", at: "2026-12-04T12:00:00.000Z", type: "card", reader: "a\u0000b\ud800c", body: "{}" }], samples: [] });
    expect((await s.recentEvents("odd", 1))[0]!.reader).toBe("a\uFFFDb\uFFFDc");
    await s.close();
  });
});

describe("configuration of the PostgreSQL store", () => {
  test("store.kind = postgres needs a postgres:// URL without a password; the password comes from a file", () => {
    const c = parseDashboardConfig(`[store]\nkind = "postgres"\nurl = "postgres://dash@db.example:5432/fleet"\npassword_file = "/etc/mrtd-agent/pg-password"\n`, "d.toml");
    expect(c.store).toMatchObject({ kind: "postgres", url: "postgres://dash@db.example:5432/fleet", passwordFile: "/etc/mrtd-agent/pg-password" });
    expect(() => parseDashboardConfig(`[store]\nkind = "postgres"\n`, "d.toml")).toThrow("d.toml: store.url: store.kind = \"postgres\" needs store.url");
    expect(() => parseDashboardConfig(`[store]\nkind = "postgres"\nurl = "postgres://dash:hunter2@db/fleet"\n`, "d.toml")).toThrow("store.url: must not hold the password");
    expect(() => parseDashboardConfig(`[store]\nkind = "postgres"\nurl = "postgres://db/fleet?password=hunter2"\n`, "d.toml")).toThrow("store.url: must not hold the password");
    expect(() => parseDashboardConfig(`[store]\nkind = "postgres"\nurl = "mysql://db/fleet"\n`, "d.toml")).toThrow("store.url: must be a postgres:// URL");
    expect(() => parseDashboardConfig(`[store]\nkind = "mongo"\n`, "d.toml")).toThrow("store.kind: must be one of sqlite, postgres");
    expect(() => parseDashboardConfig(`[store]\nurl = "postgres://db/fleet"\n`, "d.toml")).toThrow('store.url: only with store.kind = "postgres"');
  });

  test("--check prints the store's URL and password file, never the password", () => {
    const dir = makeTempDir("dashboard-pg-check");
    try {
      const secret = "s3cret-Pg-password";
      const pw = writePasswordFile(dir, secret);
      const file = join(dir, "dashboard.toml");
      writeFileSync(file, `[store]\nkind = "postgres"\nurl = "postgres://dash@127.0.0.1:5432/fleet"\npassword_file = "${pw}"\n`);
      const p = Bun.spawnSync([process.execPath, join(import.meta.dir, "../../agent/cli.ts"), "dashboard", "--config", file, "--check"], { stdout: "pipe", stderr: "pipe", env: { ...process.env, PGPASSWORD: secret } });
      const out = p.stdout.toString() + p.stderr.toString();
      expect(p.exitCode).toBe(0);
      expect((JSON.parse(p.stdout.toString()) as { store: unknown }).store).toMatchObject({ kind: "postgres", url: "postgres://dash@127.0.0.1:5432/fleet", passwordFile: pw });
      expect(out).not.toContain(secret);
    } finally {
      removeTempDir(dir);
    }
  });
});

function ev(agentId: string, i: number) {
  return { agentId, eventId: `e${i}`, at: new Date(Date.UTC(2026, 11, 4, 12, 0, i)).toISOString(), type: "card", reader: "R", body: "{}" };
}
