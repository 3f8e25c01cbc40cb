/**
 * Two dashboard processes sharing one PostgreSQL (Debian's postgresql, a throwaway cluster on a
 * loopback port) behind a real Mosquitto (shipped TLS + ACL configuration), in one share
 * group, with simulated agents speaking the agent's own MQTT link and payload builders: both
 * show the same fleet (agents, versions, reader health), the same full event list although each
 * received only part of the events live, the same audit log; a session made on one works on
 * the other (also in chromium: the page of one instance, logged in on the other) and a logout on
 * one ends it on both; the alert webhook is sent once, by one instance; an instance restarted (and one that was down
 * while events arrived) shows everything from the store.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { readerSlug } from "../../agent/service/topics.ts";
import { startMosquitto, type Mosquitto } from "../support/mosquitto.ts";
import { startPostgres, writePasswordFile, type PostgresCluster } from "../support/postgres.ts";
import { apiLogin, DashboardProcess, USERS } from "./fixtures/dashboard-process.ts";
import { SimAgent } from "./fixtures/sim-agent.ts";

const AGENTS = ["pg-sim-1", "pg-sim-2", "pg-sim-3"];
const SQLISH_READER = "Reader'); DROP TABLE readers; -- \"x\"";
const OPERATORS = ["operator-pg-1", "operator-pg-2", "operator-pg-3", "operator-pg-4"];
const CHROMIUM = "/usr/bin/chromium";
let broker: Mosquitto;
let pg: PostgresCluster;
let store: { url: string; passwordFile: string };
const dash: DashboardProcess[] = [];
const sims: SimAgent[] = [];
const tmp = mkdtempSync(join(tmpdir(), "mrtd-dashboard-pg-"));

// History sampled every second, so the test sees both instances sample the same instants.
const start = (i: number, dir?: string) => DashboardProcess.start(broker, { clientId: OPERATORS[i]!, shareGroup: "pg-shared", postgres: store, sampleIntervalS: 1, ...(dir ? { dir } : {}) });

beforeAll(async () => {
  // One after the other: each picks a free port and binds it a moment later.
  pg = await startPostgres();
  broker = await startMosquitto({ config: "tls-acl", agents: AGENTS, operators: OPERATORS });
  store = { url: await pg.database("fleet"), passwordFile: writePasswordFile(tmp, pg.password) };
  dash.push(await start(0), await start(1));
  sims.push(new SimAgent(broker, AGENTS[0]!, ["ACS ACR122U PICC Interface 00 00", "Virtual PCD 00 00"], "0.1.0"));
  sims.push(new SimAgent(broker, AGENTS[1]!, [SQLISH_READER], "0.2.0"));
  sims.push(new SimAgent(broker, AGENTS[2]!, ["Virtual PCD 00 00"], "0.3.0"));
  for (const s of sims) await s.start();
  await sims[0]!.reads("ACS ACR122U PICC Interface 00 00", [true, true, "RF_TIMEOUT"]);
  await sims[0]!.reads("Virtual PCD 00 00", [true]);
  await sims[1]!.reads(SQLISH_READER, [true, "CARD_LOST"]);
  await sims[2]!.reads("Virtual PCD 00 00", [true, true, true]);
  for (const s of sims) await s.publishMetrics();
}, 90_000);

afterAll(async () => {
  for (const s of sims) await s.stop().catch(() => undefined);
  for (const d of dash) await d.stop().catch(() => undefined);
  await broker?.stop();
  await pg?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function until<T>(f: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(100);
  }
}

type Overview = { counts: { online: number; offline: number }; total: number; rows: Array<{ agentId: string; online: boolean; version: string; readers: Array<Record<string, unknown>> }> };
type Api = Awaited<ReturnType<typeof apiLogin>>;

/** What an operator sees of the fleet, without the per-instance arrival times (lastSeen). */
async function fleet(api: Api): Promise<unknown> {
  const o = (await (await api.get("/api/overview?sort=id&limit=500")).json()) as Overview;
  return {
    counts: o.counts,
    rows: o.rows.map((r) => ({ agentId: r.agentId, online: r.online, version: r.version, readers: r.readers.map(({ reader, rate, windowReads, rfDrops, recoveries, p95, connected, lastFailureClass, at }) => ({ reader, rate, windowReads, rfDrops, recoveries, p95, connected, lastFailureClass, at })) })),
  };
}
const events = async (api: Api, agentId: string) => ((await (await api.get(`/api/agents/${agentId}`)).json()) as { events: Array<{ eventId: string }> }).events.map((e) => e.eventId);
const receivedEvents = async (d: DashboardProcess) => ((await (await fetch(`${d.url}/healthz`)).json()) as { received: { events?: number } }).received.events ?? 0;

describe("two dashboard instances sharing PostgreSQL", () => {
  test("both show the same fleet: agents, versions, reader health (an SQL-looking reader name as text)", async () => {
    const [one, two] = await Promise.all(dash.map((d) => apiLogin(d.url, USERS.viewer)));
    const seen = await until(async () => {
      const a = (await fleet(one!)) as { rows: Array<{ readers: unknown[] }> };
      const b = await fleet(two!);
      return a.rows.length === 3 && a.rows.every((r) => r.readers.length > 0) && JSON.stringify(a) === JSON.stringify(b) ? a : undefined;
    }, "the same three agents with readers on both");
    expect(seen).toMatchObject({ counts: { online: 3, offline: 0 } });
    expect(JSON.stringify(seen)).toContain(JSON.stringify(SQLISH_READER).slice(1, -1));
    // The shared store holds what both wrote (behind, within a second), once.
    const admin = pg.admin("fleet");
    const want = JSON.stringify(AGENTS.map((a, i) => ({ agent_id: a, version: `0.${i + 1}.0`, readers: a === AGENTS[0] ? 2 : 1 })));
    await until(async () => {
      const rows = await admin`SELECT agent_id, version, (SELECT count(*)::int FROM readers r WHERE r.agent_id = a.agent_id) AS readers FROM agents a ORDER BY agent_id`;
      return JSON.stringify([...rows]) === want ? true : undefined;
    }, "the agents and readers in the database");
  }, 30_000);

  test("the same full event list on both, although each instance received only part of the events live", async () => {
    const [one, two] = await Promise.all(dash.map((d) => apiLogin(d.url, USERS.viewer)));
    const before = await Promise.all(dash.map(receivedEvents));
    for (let i = 0; i < 24; i++) await sims[0]!.card("Virtual PCD 00 00", i % 2 === 0 ? "inserted" : "removed");
    const list = await until(async () => {
      const a = await events(one!, AGENTS[0]!);
      const b = await events(two!, AGENTS[0]!);
      return a.length === 24 && JSON.stringify(a) === JSON.stringify(b) ? a : undefined;
    }, "24 events listed alike on both");
    expect(new Set(list).size).toBe(24);
    const live = (await Promise.all(dash.map(receivedEvents))).map((n, i) => n - before[i]!);
    expect(live[0]! + live[1]!).toBe(24);
    expect(live[0]).toBeGreaterThan(0);
    expect(live[1]).toBeGreaterThan(0);
  }, 30_000);

  test("history: both instances sample the same instants, stored once, and show the same trend", async () => {
    const [one, two] = await Promise.all(dash.map((d) => apiLogin(d.url, USERS.viewer)));
    const path = `/api/agents/${AGENTS[2]}/readers/${readerSlug("Virtual PCD 00 00")}/history`;
    const history = async (api: Api) => ((await (await api.get(path)).json()) as { samples: Array<{ at: number; rate: number }> }).samples;
    const seen = await until(async () => {
      const a = await history(one!);
      const b = await history(two!);
      return a.length >= 3 && JSON.stringify(a) === JSON.stringify(b) ? a : undefined;
    }, "three samples, alike on both");
    expect(seen.every((x) => x.at % 1000 === 0)).toBe(true);
    expect(new Set(seen.map((x) => x.at)).size).toBe(seen.length);
    expect(seen[0]!.rate).toBe(1);
    // Both wrote every instant's samples and pruned after each (the second writer's rows are dropped as duplicates), without an error.
    for (const d of dash) expect(d.lines.filter((l) => l.level === "error")).toEqual([]);
  }, 30_000);

  test("in chromium: logged in on one instance, the other's page knows the session and lists the same events", async () => {
    if (!existsSync(CHROMIUM)) throw new Error("chromium is not installed: run deploy/dev-setup.sh");
    const context = await chromium.launchPersistentContext(join(tmp, "profile"), { executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"] });
    try {
      const page = await context.newPage();
      await page.goto(dash[0]!.url);
      await page.getByLabel("Name").fill(USERS.viewer.name);
      await page.getByLabel("Password").fill(USERS.viewer.password);
      await page.getByRole("button", { name: "Log in" }).click();
      await page.getByTestId("user").waitFor();
      const rowsOn = async (url: string) => {
        await page.goto(`${url}/#/agent/${AGENTS[0]}`);
        await page.locator("[data-testid=events] tbody tr").nth(23).waitFor({ state: "attached", timeout: 10_000 });
        return page.locator("[data-testid=events] tbody tr").allTextContents();
      };
      const one = await rowsOn(dash[0]!.url);
      // Another port, the same host: the browser sends the cookie, and instance two knows the session.
      const two = await rowsOn(dash[1]!.url);
      expect(await page.getByTestId("user").textContent()).toBe(`${USERS.viewer.name} (viewer)`);
      expect(two).toHaveLength(24);
      expect(two).toEqual(one);
    } finally {
      await context.close();
    }
  }, 30_000);

  test("a session made on one instance works on the other (a load balancer may send the user to either); logout ends it on both", async () => {
    const r = await fetch(`${dash[0]!.url}/api/login`, { method: "POST", headers: { origin: dash[0]!.url }, body: JSON.stringify(USERS.operator) });
    expect(r.status).toBe(200);
    const cookie = r.headers.get("set-cookie")!.split(";")[0]!;
    const { csrf } = (await r.json()) as { csrf: string };
    const onTwo = await fetch(`${dash[1]!.url}/api/session`, { headers: { cookie } });
    expect(await onTwo.json()).toEqual({ user: USERS.operator.name, role: "operator", csrf });
    // The database holds a hash of the token, not the token.
    const token = cookie.split("=")[1]!;
    const admin = pg.admin("fleet");
    expect((await admin`SELECT count(*)::int AS n FROM sessions WHERE id = ${token}`)[0]).toEqual({ n: 0 });
    expect((await admin`SELECT count(*)::int AS n FROM sessions WHERE "user" = ${USERS.operator.name}`)[0]).toEqual({ n: 1 });
    const out = await fetch(`${dash[1]!.url}/api/logout`, { method: "POST", headers: { cookie, origin: dash[1]!.url, "x-csrf-token": csrf } });
    expect(out.status).toBe(200);
    expect((await fetch(`${dash[0]!.url}/api/session`, { headers: { cookie } })).status).toBe(401);
  });

  test("an audit entry written through one instance is in the other's audit log", async () => {
    const viewerOnTwo = await apiLogin(dash[1]!.url, USERS.viewer);
    expect((await viewerOnTwo.post(`/api/agents/${AGENTS[2]}/command`, { command: "ping" })).status).toBe(403);
    const onOne = await apiLogin(dash[0]!.url, USERS.operator);
    const audit = (await (await onOne.get("/api/audit")).json()) as { audit: Array<{ user: string; action: string; agentId: string; outcome: string }> };
    expect(audit.audit[0]).toMatchObject({ user: USERS.viewer.name, action: "ping", agentId: AGENTS[2], outcome: "refused: viewer" });
  });

  test("an instance restarted, and one that was down while events arrived, show everything from the store", async () => {
    const viewerOnOne = await apiLogin(dash[0]!.url, USERS.viewer);
    const fleetBefore = await fleet(viewerOnOne);
    const auditBefore = await (await viewerOnOne.get("/api/audit")).text();
    // Instance two goes away; every event now reaches instance one; then two comes back.
    const dir = dash[1]!.dir;
    expect(await dash[1]!.stop({ keepDir: true })).toBe(0);
    for (let i = 0; i < 6; i++) await sims[2]!.readerAttached("Virtual PCD 00 00");
    const want = await until(async () => {
      const e = await events(viewerOnOne, AGENTS[2]!);
      return e.length === 6 ? e : undefined;
    }, "six events on instance one");
    dash[1] = await start(1, dir);
    const two = await apiLogin(dash[1]!.url, USERS.viewer);
    expect(await events(two, AGENTS[2]!)).toEqual(want);
    expect((await events(two, AGENTS[0]!)).length).toBe(24);
    expect(await fleet(two)).toEqual(fleetBefore);
    expect(await (await two.get("/api/audit")).text()).toBe(auditBefore);
    // And an agent going offline shows on both.
    await sims[1]!.stop();
    await until(async () => {
      const [a, b] = await Promise.all([fleet(viewerOnOne), fleet(two)]);
      return JSON.stringify(a) === JSON.stringify(b) && (a as Overview).counts.offline === 1 ? true : undefined;
    }, "the stopped agent offline on both");
  }, 60_000);

  test("PostgreSQL away for a while: both instances keep taking the fleet in, and what they held back reaches the database when it is back", async () => {
    const sim = sims[2]!;
    await pg.down();
    try {
      await sim.reads("Virtual PCD 00 00", ["CARD_LOST", "CARD_LOST"]);
      for (let i = 0; i < 4; i++) await sim.readerAttached("Virtual PCD 00 00");
      // From memory: /metrics needs no session (sessions are in the database, which is away).
      for (const d of dash) {
        await until(async () => (/mrtd_fleet_reader_success_rate\{agent="pg-sim-3",reader="[^"]+"\} 0\.6\b/.test(await (await fetch(`${d.url}/metrics`)).text()) ? true : undefined), `the new success rate on ${d.url}`);
      }
      await until(async () => (dash.some((d) => d.lines.some((l) => l.msg === "store write failed; kept for the next write")) ? true : undefined), "a failed write logged");
      for (const d of dash) expect(d.proc.exitCode).toBeNull();
    } finally {
      await pg.up();
    }
    const apis = await Promise.all(dash.map((d) => apiLogin(d.url, USERS.viewer)));
    for (const api of apis) {
      await until(async () => ((await events(api, AGENTS[2]!)).length === 10 ? true : undefined), "the six earlier and four held-back events");
    }
    expect(JSON.stringify(await fleet(apis[0]!))).toBe(JSON.stringify(await fleet(apis[1]!)));
    const admin = pg.admin("fleet");
    await until(async () => {
      const [r] = await admin`SELECT health FROM readers WHERE agent_id = ${AGENTS[2]!}`;
      return (JSON.parse((r as { health: string }).health) as { successRate: { rate: number } }).successRate.rate === 0.6 ? true : undefined;
    }, "the new health in the database");
  }, 60_000);

  test("the alert webhook is sent by one instance of several, once; when it stops, another sends what changes next", async () => {
    const posts: Array<{ fired: Array<{ kind: string; agentId: string }>; resolved: Array<{ kind: string; agentId: string }> }> = [];
    const hook = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: async (req) => (posts.push((await req.json()) as (typeof posts)[number]), new Response("ok")) });
    const extra = `[alerts]\nwebhook_url = "http://127.0.0.1:${hook.port}/hook"\nwebhook_interval_s = 1\n`;
    const hooked = [
      await DashboardProcess.start(broker, { clientId: OPERATORS[2]!, shareGroup: "pg-shared", postgres: store, extraToml: extra }),
      await DashboardProcess.start(broker, { clientId: OPERATORS[3]!, shareGroup: "pg-shared", postgres: store, extraToml: extra }),
    ];
    try {
      // pg-sim-3's reader: 3 of 5 reads succeeded (the outage test), under the 80% threshold.
      const fired = (p: (typeof posts)[number]) => p.fired.some((a) => a.agentId === AGENTS[2] && a.kind === "success-rate");
      await until(async () => (posts.some(fired) ? true : undefined), "the success-rate alert posted");
      await Bun.sleep(3000); // three more checks by each instance
      expect(posts.filter(fired)).toHaveLength(1);
      // Whichever instance held the lease, one of them stops; the other sends the next change.
      await hooked[0]!.stop();
      await sims[2]!.reads("Virtual PCD 00 00", Array(20).fill(true));
      await until(async () => (posts.some((p) => p.resolved.some((a) => a.agentId === AGENTS[2])) ? true : undefined), "the alert's end posted", 15_000);
      await Bun.sleep(2000);
      expect(posts.filter((p) => p.resolved.some((a) => a.agentId === AGENTS[2]))).toHaveLength(1);
    } finally {
      for (const d of hooked) await d.stop().catch(() => undefined);
      await hook.stop(true);
    }
  }, 60_000);
});
