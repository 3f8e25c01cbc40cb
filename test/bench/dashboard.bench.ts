/**
 * Dashboard benchmark: the real `mrtd-agent dashboard` process against Mosquitto on loopback
 * (plain listener: one simulator connection speaks for every agent, which the ACL would refuse),
 * fed by a fleet simulator that builds each agent's payloads with the agent's own builders
 * (birth, reader health from ReaderHealthTracker, metrics from MetricsRegistry) on the real
 * topics. Measures, for --agents agents with two readers each:
 *   - ingest: health messages/s the dashboard takes in (published as fast as the broker accepts
 *     them, counted by the dashboard's own mrtd_dashboard_messages_total), against the same
 *     run's baseline of Mosquitto alone relaying them to a counting subscriber;
 *   - the dashboard's RSS once the whole fleet is loaded (births, health, metrics);
 *   - the overview API (sorted by worst success rate, a search, the alerting filter) over the
 *     whole fleet;
 *   - in Debian's chromium (when installed): the overview page's render time with the fleet
 *     loaded, and 20 health changes from publish to visible on the page.
 * Targets: ingest >= 5,000 messages/s per core, RSS < 300 MB for 10,000 agents, overview < 1 s,
 * change visible p99 < 1 s.
 * With --store postgres, the dashboard runs a second time on a throwaway PostgreSQL cluster
 * (a fresh broker too), for ingest, RSS and the write-behind's lag with postgres against
 * sqlite in the same run.
 * Figures on a shared machine are noisy.
 * Usage: bun test/bench/dashboard.bench.ts [--agents 10000] [--rounds 3] [--store sqlite|postgres]
 */
import mqtt from "mqtt";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { ReaderHealthTracker } from "../../agent/service/health.ts";
import { APDU_BUCKETS_S, MetricsRegistry } from "../../agent/service/metrics.ts";
import { agentTopics, readerSlug } from "../../agent/service/topics.ts";
import { startMosquitto } from "../support/mosquitto.ts";
import { startPostgres, writePasswordFile } from "../support/postgres.ts";
import { apiLogin, DashboardProcess, USERS } from "../dashboard/fixtures/dashboard-process.ts";

const args = process.argv.slice(2);
const opt = (name: string, d: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : d);
const AGENTS = opt("--agents", 10_000);
const ROUNDS = opt("--rounds", 3);
/** "postgres": a second pass on a throwaway PostgreSQL cluster after the sqlite one, for the comparison. */
const STORE = args.includes("--store") ? args[args.indexOf("--store") + 1] : "sqlite";
if (STORE !== "sqlite" && STORE !== "postgres") throw new Error("--store: sqlite or postgres");
const READERS = ["ACS ACR122U PICC Interface 00 00", "Virtual PCD 00 00"];

function fleetMessages(round: number): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < AGENTS; i++) {
    const id = `bench-${String(i).padStart(5, "0")}`;
    const t = agentTopics("mrtd/v1", id);
    for (const r of READERS) {
      const h = new ReaderHealthTracker(r);
      h.connected = true;
      for (let k = 0; k < 5 + ((i + round) % 15); k++) h.recordRead((k + i) % 7 !== 0, { failureClass: "RF_TIMEOUT", apduMs: [3 + (i % 5), 6 + round] });
      out.push([t.health(r), JSON.stringify(h.snapshot(id))]);
    }
  }
  return out;
}

async function client(url: string, id: string): Promise<mqtt.MqttClient> {
  const c = mqtt.connect(url, { clientId: id, protocolVersion: 5, writeCache: false });
  await new Promise<void>((res, rej) => (c.once("connect", () => res()), c.once("error", rej)));
  return c;
}

/**
 * Publishes every message at QoS 1, keeping at most `window` published but not yet received by
 * the consumer (Mosquitto queues at most 1000 messages per subscriber and drops the rest, so an
 * unpaced burst measures drops, not throughput). Resolves when the consumer has them all.
 */
async function publishPaced(c: mqtt.MqttClient, msgs: Array<[string, string]>, retain: boolean, received: () => Promise<number> | number, window = 800): Promise<void> {
  const start = await received();
  let next = 0;
  let lastGot = -1;
  let lastProgress = Date.now();
  for (;;) {
    const got = (await received()) - start;
    if (got >= msgs.length) return;
    if (got !== lastGot) [lastGot, lastProgress] = [got, Date.now()];
    else if (Date.now() - lastProgress > 5000) throw new Error(`stalled: ${got} of ${msgs.length} messages received (the broker dropped some?)`);
    const burst: Array<Promise<unknown>> = [];
    while (next < msgs.length && next - got < window) {
      const [t, p] = msgs[next++]!;
      burst.push(c.publishAsync(t, p, { qos: 1, retain }));
    }
    await Promise.all(burst);
    await Bun.sleep(burst.length === 0 ? 5 : 1);
  }
}

const CHROMIUM = "/usr/bin/chromium";
type BrowserGlobals = { document: { querySelector(s: string): { textContent: string | null } | null } };

function q(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
}

/** Overview render time and publish-to-visible lag in Debian's chromium, with the fleet loaded. */
async function browserFigures(url: string, pub: mqtt.MqttClient): Promise<{ renderMs: number; lags: number[] }> {
  const profile = mkdtempSync(join(tmpdir(), "mrtd-bench-chromium-"));
  const ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"] });
  try {
    const page = await ctx.newPage();
    await page.goto(url);
    await page.getByLabel("Name").fill(USERS.operator.name);
    await page.getByLabel("Password").fill(USERS.operator.password);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByTestId("user").waitFor();
    const t0 = performance.now();
    await page.reload();
    await page.waitForFunction((n) => (globalThis as unknown as BrowserGlobals).document.querySelector("[data-testid=fleet] tbody tr:nth-child(100)") !== null && n > 0, AGENTS, { timeout: 10_000 });
    const renderMs = performance.now() - t0;
    // bench-00000 is the first row (sorted by id); its first reader's rate cycles through values.
    const id = "bench-00000";
    const t = agentTopics("mrtd/v1", id);
    const slug = readerSlug(READERS[0]!);
    const lags: number[] = [];
    for (let k = 0; k < 20; k++) {
      const h = new ReaderHealthTracker(READERS[0]!);
      h.connected = true;
      for (let r = 0; r < 20; r++) h.recordRead(r < 20 - ((k % 10) + 1), { apduMs: [3] });
      const want = `${Math.round((h.snapshot(id).successRate.rate ?? 0) * 100)}%`;
      const start = performance.now();
      await pub.publishAsync(t.health(READERS[0]!), JSON.stringify(h.snapshot(id)), { qos: 1, retain: true });
      await page.waitForFunction(([sel, w]) => (globalThis as unknown as BrowserGlobals).document.querySelector(sel!)?.textContent === w, [`tr[data-agent="${id}"] [data-reader="${slug}"] [data-testid=rate]`, want], { timeout: 10_000 });
      lags.push(performance.now() - start);
    }
    return { renderMs, lags };
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}
function cpuS(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** One pass: a fresh broker and the dashboard on the given store, the fleet loaded, then rounds of health. */
async function pass(store: "sqlite" | "postgres", withBrowser: boolean): Promise<string[]> {
  const out: string[] = [];
  const broker = await startMosquitto({ config: "plain" });
  const pub = await client(broker.url, "bench-fleet-sim");
  const pg = store === "postgres" ? await startPostgres() : undefined;
  const pwDir = mkdtempSync(join(tmpdir(), "mrtd-bench-pg-"));
  try {
    const postgres = pg ? { url: await pg.database("bench"), passwordFile: writePasswordFile(pwDir, pg.password) } : undefined;
    const dash = await DashboardProcess.start(broker, postgres ? { postgres } : {});
    try {
      const received = async (kind: string) => ((await (await fetch(`${dash.url}/healthz`)).json()) as { received: Record<string, number> }).received[kind] ?? 0;
      const births: Array<[string, string]> = [];
      const metrics: Array<[string, string]> = [];
      const now = new Date().toISOString();
      for (let i = 0; i < AGENTS; i++) {
        const id = `bench-${String(i).padStart(5, "0")}`;
        const t = agentTopics("mrtd/v1", id);
        births.push([t.status, JSON.stringify({ state: "online", agentId: id, version: i % 3 ? "0.2.0" : "0.1.0", readers: READERS, startedAt: now, connectedAt: now })]);
        const m = new MetricsRegistry();
        for (const cmd of ["select", "read_binary", "external_authenticate"]) for (let k = 0; k < 20; k++) m.histogram("mrtd_apdu_duration_seconds", { command: cmd }, APDU_BUCKETS_S).observe((2 + ((i + k) % 40)) / 1000);
        m.inc("mrtd_reads_total", { outcome: "success", trigger: "insert" }, 20);
        m.inc("mrtd_read_failures_total", { class: "RF_TIMEOUT" }, i % 4);
        metrics.push([t.metrics, JSON.stringify(m.snapshot(id, 60, now))]);
      }
      await publishPaced(pub, births, true, () => received("status"));
      await publishPaced(pub, metrics, false, () => received("metrics"));
      const api = await apiLogin(dash.url, USERS.operator);
      const rates: number[] = [];
      let lastRound = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const msgs = fleetMessages(round);
        const cpu0 = cpuS(dash.proc.pid);
        lastRound = Date.now();
        const t0 = performance.now();
        await publishPaced(pub, msgs, true, () => received("health"));
        const s = (performance.now() - t0) / 1000;
        const cpu = cpuS(dash.proc.pid) - cpu0;
        rates.push(msgs.length / s);
        out.push(`  [${store}] round ${round + 1}: ${msgs.length} health messages in ${s.toFixed(2)} s = ${(msgs.length / s).toFixed(0)} msg/s; dashboard CPU ${cpu.toFixed(2)} s = ${(msgs.length / Math.max(cpu, 1e-3)).toFixed(0)} msg per CPU-second`);
      }
      if (pg) {
        // How long after the last health message the shared database holds every reader's newest row.
        const t0 = performance.now();
        const admin = pg.admin("bench");
        for (;;) {
          const [r] = await admin`SELECT count(*)::int AS n FROM readers WHERE updated_at >= ${lastRound}`;
          if ((r as { n: number }).n >= AGENTS * READERS.length || performance.now() - t0 > 30_000) break;
          await Bun.sleep(50);
        }
        const [size] = await admin`SELECT pg_database_size('bench')::float8 / 1048576 AS mb`;
        out.push(`  [postgres] write-behind caught up ${(performance.now() - t0).toFixed(0)} ms after the last round's last message was taken in; database ${(size as { mb: number }).mb.toFixed(0)} MB`);
      } else await Bun.sleep(1500); // the write-behind flush
      const rss = rssMb(dash.proc.pid);
      const timeApi = async (q: string) => {
        const t = performance.now();
        const r = (await (await api.get(`/api/overview?${q}`)).json()) as { total: number };
        return `${q}: ${(performance.now() - t).toFixed(0)} ms (${r.total} agents matched)`;
      };
      const ov = [await timeApi("sort=successRate&limit=100"), await timeApi("q=virtual&limit=100"), await timeApi("status=alerting&limit=100")];
      const browser = withBrowser && existsSync(CHROMIUM) ? await browserFigures(dash.url, pub) : undefined;
      const best = Math.max(...rates);
      out.push(`  [${store}] ingest (best round): ${best.toFixed(0)} msg/s        target >= 5000 msg/s per core  ${best >= 5000 ? "OK" : "MISSED"}`);
      out.push(`  [${store}] dashboard RSS with the fleet loaded: ${rss.toFixed(0)} MB   target < 300 MB  ${rss < 300 ? "OK" : "MISSED"}`);
      for (const o of ov) out.push(`  [${store}] overview API ${o}   target < 1000 ms`);
      if (browser) {
        out.push(`  chromium: overview page of ${AGENTS} agents rendered ${browser.renderMs.toFixed(0)} ms after navigation (100 rows a page)   target < 1000 ms  ${browser.renderMs < 1000 ? "OK" : "MISSED"}`);
        out.push(`  chromium: health change published -> visible, ${browser.lags.length} changes: p50 ${q(browser.lags, 0.5).toFixed(0)} ms, p99 ${q(browser.lags, 0.99).toFixed(0)} ms   target p99 < 1000 ms  ${q(browser.lags, 0.99) < 1000 ? "OK" : "MISSED"}`);
      } else if (withBrowser) out.push(`  chromium: not installed (deploy/dev-setup.sh), page figures skipped`);
    } finally {
      await dash.stop();
    }
  } finally {
    await pub.endAsync();
    await broker.stop();
    await pg?.stop();
    rmSync(pwDir, { recursive: true, force: true });
  }
  return out;
}

// Baseline: Mosquitto alone relaying the health messages to one counting subscriber.
let baseline: number;
{
  const broker = await startMosquitto({ config: "plain" });
  try {
    const pub = await client(broker.url, "bench-fleet-sim");
    const counter = await client(broker.url, "bench-counter");
    let counted = 0;
    counter.on("message", () => counted++);
    await counter.subscribeAsync("mrtd/v1/+/readers/+/health", { qos: 1 });
    const baseMsgs = fleetMessages(99);
    const t0 = performance.now();
    await publishPaced(pub, baseMsgs, false, () => counted);
    baseline = baseMsgs.length / ((performance.now() - t0) / 1000);
    await counter.endAsync();
    await pub.endAsync();
  } finally {
    await broker.stop();
  }
}
const lines = await pass("sqlite", true);
if (STORE === "postgres") lines.push(...(await pass("postgres", false)));
console.log(`dashboard benchmark: ${AGENTS} agents x ${READERS.length} readers, store ${STORE === "postgres" ? "sqlite, then postgres" : "sqlite"} (shared 2-core machine: noisy)`);
console.log(`  Mosquitto alone relays ${baseline.toFixed(0)} msg/s to one subscriber (same run baseline)`);
for (const l of lines) console.log(l);
