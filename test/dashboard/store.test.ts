/**
 * The dashboard's state and store: fleet state from accepted payloads, overview filtering,
 * sorting and paging, alerts, the bun:sqlite store (write-behind, restore, history roll-up
 * and retention), the configuration's checks, and the Prometheus exposition (checked by
 * Debian's promtool when installed).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Database } from "bun:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DASHBOARD_DEFAULTS, parseDashboardConfig, type DashboardConfig } from "../../agent/dashboard/config.ts";
import { acceptPayload } from "../../agent/dashboard/contract.ts";
import { FleetState, MAX_PENDING_EVENTS } from "../../agent/dashboard/fleet-state.ts";
import { fleetExposition } from "../../agent/dashboard/prometheus.ts";
import { SqliteFleetStore } from "../../agent/dashboard/store.ts";
import { fleetStoreContract, hostileInputContract, readOutcomesContract } from "./fixtures/store-contract.ts";
import { ReaderHealthTracker } from "../../agent/service/health.ts";
import { APDU_BUCKETS_S, MetricsRegistry } from "../../agent/service/metrics.ts";
import { parseFleetTopic, readerSlug } from "../../agent/service/topics.ts";

const dir = mkdtempSync(join(tmpdir(), "mrtd-dashboard-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ALERTS: DashboardConfig["alerts"] = { successRateBelow: 0.8, minWindowReads: 5, rfDropsPerHourAbove: 10, offlineAfterMin: 10, webhookIntervalS: 30 };
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

function feedHealth(state: FleetState, agentId: string, reader: string, reads: boolean[], now: number, recoveries = 0) {
  const t = new ReaderHealthTracker(reader);
  reads.forEach((ok, i) => t.recordRead(ok, { failureClass: "RF_TIMEOUT", apduMs: [3 + i], recoveries: i < recoveries ? [{ step: "read DG2", cause: "RF_TIMEOUT", layer: "rf-link", action: "reconnect", apdus: 2, ms: 40 }] : [] }));
  const topic = parseFleetTopic("mrtd/v1", `mrtd/v1/${agentId}/readers/${readerSlug(reader)}/health`)!;
  return state.apply(acceptPayload(topic, enc(t.snapshot(agentId, new Date(now)))), now, false);
}
function feedBirth(state: FleetState, agentId: string, now: number, version = "0.1.0") {
  const at = new Date(now).toISOString();
  state.apply(acceptPayload({ kind: "status", agentId }, enc({ state: "online", agentId, version, readers: [], startedAt: at, connectedAt: at })), now, false);
}

describe("FleetState", () => {
  test("write-behind is bounded: a failed batch is put back (agents and readers once each), waiting events are capped", () => {
    const s = new FleetState(ALERTS);
    const now = Date.now();
    feedBirth(s, "a1", now);
    feedHealth(s, "a1", "R", [true], now);
    const event = (i: number) => acceptPayload({ kind: "events", agentId: "a1" }, enc({ eventId: `e${i}`, agentId: "a1", at: new Date(now).toISOString(), type: "card", reader: "R", change: "inserted" }));
    for (let i = 0; i < 10; i++) s.apply(event(i), now, false);
    const failed = s.takePending();
    // More changes arrive while the write fails; the batch goes back.
    feedHealth(s, "a1", "R", [true, false], now + 1);
    for (let i = 10; i < MAX_PENDING_EVENTS + 5; i++) s.apply(event(i), now, false);
    s.requeue(failed);
    const next = s.takePending();
    expect(next.agents.map((a) => a.agentId)).toEqual(["a1"]);
    expect(next.readers).toHaveLength(1);
    expect(JSON.parse(next.readers[0]!.health).successRate.windowReads).toBe(2); // the current state, not the failed batch's
    expect(next.events).toHaveLength(MAX_PENDING_EVENTS);
    expect(s.droppedEvents).toBe(5); // the oldest go first
    expect(next.events[0]!.eventId).toBe("e5");
    expect(next.readers[0]!.msgAt).toBe(now + 1); // the health payload's own time
  });

  test("overview: search, status filter, worst-reader sort, paging over 10,000 agents", () => {
    const s = new FleetState(ALERTS);
    const now = Date.now();
    for (let i = 0; i < 10_000; i++) {
      const id = `agent-${String(i).padStart(5, "0")}`;
      feedBirth(s, id, now, i % 2 ? "0.1.0" : "0.2.0");
      feedHealth(s, id, `Reader ${i % 7}`, Array.from({ length: 10 }, (_, k) => k >= i % 5), now);
    }
    expect(s.counts()).toEqual({ agents: 10_000, online: 10_000, offline: 0, readers: 10_000 });
    const t0 = performance.now();
    const page = s.overview({ sort: "successRate", offset: 0, limit: 100 }, now);
    const q = s.overview({ q: "reader 3", status: "alerting", limit: 100 }, now);
    const ms = performance.now() - t0;
    expect(page.total).toBe(10_000);
    expect(page.rows).toHaveLength(100);
    expect(page.rows[0]!.readers.get([...page.rows[0]!.readers.keys()][0]!)!.health.successRate.rate).toBe(0.6);
    // Agents with i % 5 == 3 or 4 have 70% / 60% success: alerting; of those, Reader 3's (i % 7 == 3).
    expect(q.total).toBe([...Array(10_000).keys()].filter((i) => i % 5 >= 3 && i % 7 === 3).length);
    expect(ms).toBeLessThan(1000); // a loose bound on a shared machine; typically ~30 ms
  });

  test("an agent heard live is online even without its birth; a retained health message alone does not say so", () => {
    const s = new FleetState(ALERTS);
    const now = Date.now();
    const t = new ReaderHealthTracker("R");
    const topic = parseFleetTopic("mrtd/v1", `mrtd/v1/quiet/readers/${readerSlug("R")}/health`)!;
    s.apply(acceptPayload(topic, enc(t.snapshot("quiet"))), now, true);
    expect(s.agents.get("quiet")!.online).toBe(false);
    s.apply(acceptPayload(topic, enc(t.snapshot("quiet"))), now, false);
    expect(s.agents.get("quiet")!.online).toBe(true);
  });

  test("alerts: success rate under the threshold, offline longer than N minutes", () => {
    const s = new FleetState(ALERTS);
    const now = Date.now();
    feedBirth(s, "a1", now);
    feedHealth(s, "a1", "R", [true, false, false, true, false, true], now);
    expect(s.alerts(now).map((a) => a.kind)).toEqual(["success-rate"]);
    s.apply(acceptPayload({ kind: "status", agentId: "a1" }, enc({ state: "offline", agentId: "a1", reason: "connection-lost", startedAt: new Date(now).toISOString() })), now, false);
    expect(s.alerts(now + 60_000).map((a) => a.kind)).toEqual(["success-rate"]);
    expect(s.alerts(now + 11 * 60_000).map((a) => a.kind).sort()).toEqual(["offline", "success-rate"]);
  });
});

fleetStoreContract("SqliteFleetStore", (name) => new SqliteFleetStore(join(dir, `${name}.sqlite`)));
hostileInputContract("SqliteFleetStore", (name) => new SqliteFleetStore(join(dir, `${name}.sqlite`)));
readOutcomesContract("SqliteFleetStore", (name) => new SqliteFleetStore(join(dir, `${name}.sqlite`)));

describe("SqliteFleetStore schema migration", () => {
  test("a database from before read outcomes gains their columns; its samples count 0 reads", async () => {
    const path = join(dir, "old.sqlite");
    const old = new Database(path, { create: true });
    old.exec("CREATE TABLE samples (agent_id TEXT NOT NULL, slug TEXT NOT NULL, at INTEGER NOT NULL, rate REAL, window_reads INTEGER NOT NULL, rf_drops INTEGER NOT NULL, recoveries INTEGER NOT NULL, p95 REAL)");
    old.exec("INSERT INTO samples VALUES ('a1', 'r', 1000, 0.5, 4, 0, 0, 12.5)");
    old.close();
    const store = new SqliteFleetStore(path);
    await store.write({ agents: [], readers: [], events: [], samples: [{ agentId: "a1", slug: "r", at: 2000, rate: 1, windowReads: 5, rfDrops: 0, recoveries: 0, p95: 10, readsOk: 3, readsFailed: 1 }] });
    expect((await store.samples("a1", "r", 0)).map((x) => [x.at, x.rate, x.readsOk, x.readsFailed])).toEqual([[1000, 0.5, 0, 0], [2000, 1, 3, 1]]);
    await store.close();
    const reopened = new SqliteFleetStore(path); // migrating twice changes nothing
    expect(await reopened.samples("a1", "r", 0)).toHaveLength(2);
    await reopened.close();
  });
});

describe("dashboard configuration", () => {
  const hash = Bun.password.hashSync("pw", { algorithm: "argon2id" });
  test("defaults, users, and clear errors", () => {
    const c = parseDashboardConfig(`[[users]]\nname = "ops"\nrole = "operator"\npassword_hash = "${hash}"\n`, "d.toml");
    expect(c.http).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(c.store.sampleIntervalS).toBe(900);
    expect(c.users[0]!.role).toBe("operator");
    expect(() => parseDashboardConfig(`[htp]\nport = 1\n`, "d.toml")).toThrow("d.toml: htp: unknown section (did you mean http?)");
    expect(() => parseDashboardConfig(`[[users]]\nname = "a"\nrole = "operator"\npassword_hash = "secret"\n`, "d.toml")).toThrow("users[0].password_hash: must be an argon2id hash");
    expect(() => parseDashboardConfig(`[http]\nhost = "0.0.0.0"\n`, "d.toml")).toThrow("http.host: serving beyond loopback needs http.tls_cert");
    expect(() => parseDashboardConfig(`[alerts]\nsuccess_rate_below = 2\n`, "d.toml")).toThrow("alerts.success_rate_below: must be between 0 and 1");
  });

  test("mqtt.protocol: 5 by default with the shared subscription group; 3.1.1 subscribes to events directly unless share_group is set", () => {
    const users = `[[users]]\nname = "ops"\nrole = "operator"\npassword_hash = "${hash}"\n`;
    expect(parseDashboardConfig(users, "d.toml").mqtt).toMatchObject({ protocol: "5", shareGroup: "mrtd-dashboard" });
    const direct = parseDashboardConfig(`[mqtt]\nprotocol = "3.1.1"\n${users}`, "d.toml").mqtt;
    expect(direct.protocol).toBe("3.1.1");
    expect(direct.shareGroup).toBeUndefined();
    expect(parseDashboardConfig(`[mqtt]\nprotocol = "3.1.1"\nshare_group = "g1"\n${users}`, "d.toml").mqtt).toMatchObject({ protocol: "3.1.1", shareGroup: "g1" });
    expect(() => parseDashboardConfig(`[mqtt]\nprotocol = "4"\n${users}`, "d.toml")).toThrow("mqtt.protocol: must be 5 or 3.1.1");
  });
});

describe("Prometheus exposition", () => {
  test("fleet aggregates: agents online, success rates, merged histograms, failures by class; promtool check metrics is clean", async () => {
    const s = new FleetState(ALERTS);
    const now = Date.now();
    for (const id of ["a1", "a2"]) {
      feedBirth(s, id, now);
      feedHealth(s, id, 'Reader "x"\\', [true, false], now);
      const m = new MetricsRegistry();
      m.histogram("mrtd_apdu_duration_seconds", { command: "read_binary" }, APDU_BUCKETS_S).observe(0.004);
      m.inc("mrtd_read_failures_total", { class: "RF_TIMEOUT" }, 2);
      m.counterFrom("mrtd_outbox_dropped_total", () => 3);
      s.apply(acceptPayload({ kind: "metrics", agentId: id }, enc(m.snapshot(id, 60, new Date(now).toISOString()))), now, false);
    }
    const text = fleetExposition(s, { received: { health: 2 }, rejected: { schema: 1 } }, now);
    expect(text).toContain('mrtd_fleet_agents{state="online"} 2');
    expect(text).toContain('mrtd_fleet_apdu_duration_seconds_bucket{command="read_binary",le="0.005"} 2');
    expect(text).toContain('mrtd_fleet_apdu_duration_seconds_count{command="read_binary"} 2');
    expect(text).toContain('mrtd_fleet_read_failures_total{class="RF_TIMEOUT"} 4');
    expect(text).toContain("mrtd_fleet_outbox_dropped_total 6");
    expect(text).toContain("mrtd_dashboard_store_dropped_events_total 0");
    expect(text).toMatch(/mrtd_fleet_reader_success_rate\{agent="a1",reader="reader-x-[0-9a-f]{8}"\} 0.5/);
    const promtool = Bun.which("promtool");
    if (!promtool) return; // deploy/dev-setup.sh installs Debian's prometheus; without it the text checks above stand
    const file = join(dir, "metrics.txt");
    writeFileSync(file, text);
    const p = Bun.spawnSync(["sh", "-c", `promtool check metrics < ${file}`], { stdout: "pipe", stderr: "pipe" });
    expect(p.stderr.toString() + p.stdout.toString()).toBe("");
    expect(p.exitCode).toBe(0);
  });
});

describe("deploy/dashboard.example.toml", () => {
  test("parses, and states every default the code has", () => {
    const file = join(import.meta.dir, "../../deploy/dashboard.example.toml");
    const c = parseDashboardConfig(readFileSync(file, "utf8"), file);
    expect(c.mqtt).toMatchObject(DASHBOARD_DEFAULTS.mqtt);
    expect(c.http).toEqual({ ...DASHBOARD_DEFAULTS.http });
    expect(c.store).toEqual({ ...DASHBOARD_DEFAULTS.store });
    expect(c.alerts).toEqual({ ...DASHBOARD_DEFAULTS.alerts });
    expect(c.users.map((u) => u.role)).toEqual(["operator"]);
  });
});
