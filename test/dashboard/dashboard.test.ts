/**
 * The dashboard process against a real Mosquitto (the shipped TLS + ACL configuration, the
 * dashboard as the test PKI's operator), with simulated agents speaking through the agent's
 * own MQTT link, topics and payload builders: the fleet appears, health changes reach the API,
 * events are split between two instances in one share group, hostile payloads are refused or
 * kept as text and never stop the service, access control (login, CSRF, roles, audit) holds,
 * /metrics passes promtool and Debian's prometheus scrapes it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readerSlug } from "../../agent/service/topics.ts";
import { b64, generateKeyPair } from "../../agent/service/envelope.ts";
import { freePort, startMosquitto, type Mosquitto } from "../support/mosquitto.ts";
import { apiLogin, DashboardProcess, USERS } from "./fixtures/dashboard-process.ts";
import { SimAgent } from "./fixtures/sim-agent.ts";

const AGENTS = ["sim-a", "sim-b", "sim-evil"];
const HTML_READER = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>';
let broker: Mosquitto;
let dash: DashboardProcess;
const sims: SimAgent[] = [];
const tmp = mkdtempSync(join(tmpdir(), "mrtd-dashboard-test-"));

beforeAll(async () => {
  broker = await startMosquitto({ config: "tls-acl", agents: AGENTS, operators: ["operator-test-hook", "operator-test-2", "operator-test-tls"] });
  dash = await DashboardProcess.start(broker);
  sims.push(new SimAgent(broker, "sim-a", ["ACS ACR122U PICC Interface 00 00", "Virtual PCD 00 00"], "0.1.0"));
  sims.push(new SimAgent(broker, "sim-b", ["Virtual PCD 00 00"], "0.2.0"));
  sims.push(new SimAgent(broker, "sim-evil", [HTML_READER]));
  for (const s of sims) await s.start();
  await sims[0]!.reads("ACS ACR122U PICC Interface 00 00", [true, true, true, "RF_TIMEOUT"]);
  await sims[0]!.reads("Virtual PCD 00 00", [true]);
  await sims[1]!.reads("Virtual PCD 00 00", [true, true]);
  await sims[2]!.reads(HTML_READER, [true]);
  for (const s of sims) await s.publishMetrics();
}, 60_000);

afterAll(async () => {
  for (const s of sims) await s.stop().catch(() => undefined);
  await dash?.stop();
  await broker?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function until<T>(f: () => Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

type Overview = { counts: { online: number; offline: number }; total: number; rows: Array<{ agentId: string; version: string; readers: Array<{ reader: string; rate: number | null; windowReads: number; rfDrops: number }> }> };

describe("dashboard process", () => {
  test("the fleet appears: agents online with versions, readers with health", async () => {
    const ops = await apiLogin(dash.url, USERS.operator);
    const o = await until(async () => {
      const v = (await (await ops.get("/api/overview?sort=id")).json()) as Overview;
      return v.total === 3 && v.rows.every((r) => r.readers.length > 0) ? v : undefined;
    }, "three agents with readers");
    expect(o.counts).toMatchObject({ online: 3, offline: 0 });
    const a = o.rows.find((r) => r.agentId === "sim-a")!;
    expect(a.version).toBe("0.1.0");
    expect(a.readers.find((r) => r.reader.startsWith("ACS"))).toMatchObject({ rate: 0.75, windowReads: 4, rfDrops: 1 });
    const evil = o.rows.find((r) => r.agentId === "sim-evil")!;
    expect(evil.readers[0]!.reader).toBe(HTML_READER); // kept as text; the page renders text only
  });

  test("a health change reaches the API, and the agent page explains its failure classes", async () => {
    const ops = await apiLogin(dash.url, USERS.operator);
    await sims[1]!.reads("Virtual PCD 00 00", ["CARD_LOST", "CARD_LOST", "CARD_LOST"]);
    const d = await until(async () => {
      const v = (await (await ops.get("/api/agents/sim-b")).json()) as { readers: Array<{ rate: number }>; failureClasses: Array<{ code: string; explanation: string; action: string }> };
      return v.readers[0]!.rate === 0.4 ? v : undefined;
    }, "sim-b's success rate 0.4");
    const lost = d.failureClasses.find((f) => f.code === "CARD_LOST")!;
    expect(lost.explanation).toContain("left the reader mid-read");
    expect(lost.action).toContain("place the document back");
  });

  test("alerts go to the webhook when they start and when they end", async () => {
    const posts: Array<{ fired: Array<{ kind: string; agentId: string }>; resolved: Array<{ kind: string; agentId: string }> }> = [];
    const hook = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: async (req) => (posts.push((await req.json()) as (typeof posts)[number]), new Response("ok")) });
    const second = await DashboardProcess.start(broker, { clientId: "operator-test-hook", extraToml: `[alerts]\nwebhook_url = "http://127.0.0.1:${hook.port}/hook"\nwebhook_interval_s = 1\n` });
    try {
      await until(async () => (posts.some((p) => p.fired.some((a) => a.agentId === "sim-b" && a.kind === "success-rate")) ? true : undefined), "sim-b's alert posted");
      await sims[1]!.reads("Virtual PCD 00 00", Array(20).fill(true));
      await until(async () => (posts.some((p) => p.resolved.some((a) => a.agentId === "sim-b")) ? true : undefined), "sim-b's alert resolved");
    } finally {
      await second.stop();
      await hook.stop(true);
    }
  }, 30_000);

  test("events go through the shared subscription: two instances in one group split them, each sees all state", async () => {
    const second = await DashboardProcess.start(broker, { clientId: "operator-test-2" });
    try {
      const one = await apiLogin(dash.url, USERS.viewer);
      const two = await apiLogin(second.url, USERS.viewer);
      await until(async () => (((await (await two.get("/api/overview")).json()) as Overview).total === 3 ? true : undefined), "the second instance to see the fleet from retained state");
      for (let i = 0; i < 20; i++) await sims[0]!.readerAttached("Virtual PCD 00 00");
      const count = async (api: typeof one) => ((await (await api.get("/api/agents/sim-a")).json()) as { events: unknown[] }).events.length;
      const [n1, n2] = await until(async () => {
        const a = await count(one);
        const b = await count(two);
        return a + b === 20 ? [a, b] : undefined;
      }, "20 events split over the two instances");
      expect(n1).toBeGreaterThan(0);
      expect(n2).toBeGreaterThan(0);
    } finally {
      await second.stop();
    }
  }, 30_000);

  test("hostile payloads are refused (wrong types, huge strings, spoofed agent, bad JSON) and the service keeps running", async () => {
    const evil = sims[2]!;
    const slug = readerSlug(HTML_READER);
    const health = JSON.parse(JSON.stringify(evil.readers.get(HTML_READER)!.snapshot("sim-evil"))) as Record<string, unknown>;
    await evil.raw(evil.topics.health(HTML_READER), JSON.stringify({ ...health, rfDrops: "lots" }));
    await evil.raw(evil.topics.health(HTML_READER), JSON.stringify({ ...health, reader: "R".repeat(100_000) }));
    await evil.raw(evil.topics.health(HTML_READER), "{]");
    await evil.raw(evil.topics.status, JSON.stringify({ state: "online", agentId: "sim-a", version: "9", readers: [], startedAt: "2026-01-01T00:00:00Z", connectedAt: "2026-01-01T00:00:00Z" }));
    await evil.raw(evil.topics.events, JSON.stringify({ eventId: "x", agentId: "sim-evil", at: "2026-01-01T00:00:00Z", type: "reader", reader: "r", change: "exploded" }));
    const metrics = await until(async () => {
      const t = await (await fetch(`${dash.url}/metrics`)).text();
      const m = /mrtd_dashboard_rejected_total\{reason="schema"\} (\d+)/.exec(t);
      return m && Number(m[1]) >= 2 ? t : undefined;
    }, "rejections counted");
    expect(metrics).toMatch(/mrtd_dashboard_rejected_total\{reason="not-json"\} [1-9]/);
    expect(metrics).toMatch(/mrtd_dashboard_rejected_total\{reason="mismatch"\} [1-9]/);
    // The 100 kB reader name never reaches us: the broker drops packets over our Maximum Packet Size.
    const ops = await apiLogin(dash.url, USERS.operator);
    const o = (await (await ops.get("/api/overview?q=sim-")).json()) as Overview;
    expect(o.rows.find((r) => r.agentId === "sim-a")!.version).toBe("0.1.0");
    expect(o.rows.find((r) => r.agentId === "sim-evil")!.readers[0]!.reader).toBe(HTML_READER);
    expect(slug).toMatch(/-[0-9a-f]{8}$/);
    expect(dash.proc.exitCode).toBeNull();
    const warn = dash.lines.filter((l) => l.msg === "payload rejected");
    expect(warn.length).toBeGreaterThan(0);
    expect(JSON.stringify(warn)).not.toContain("RRRRRRRR");
  });

  test("access: login required, CSRF token and same origin on POSTs, viewers cannot send commands, refusals are audited", async () => {
    expect((await fetch(`${dash.url}/api/overview`)).status).toBe(401);
    const bad = await fetch(`${dash.url}/api/login`, { method: "POST", headers: { origin: dash.url }, body: JSON.stringify({ name: USERS.operator.name, password: "wrong" }) });
    expect(bad.status).toBe(401);
    const cross = await fetch(`${dash.url}/api/login`, { method: "POST", headers: { origin: "http://evil.example" }, body: JSON.stringify(USERS.operator) });
    expect(cross.status).toBe(403);
    const login = await fetch(`${dash.url}/api/login`, { method: "POST", headers: { origin: dash.url }, body: JSON.stringify(USERS.viewer) });
    const cookie = login.headers.get("set-cookie")!;
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("SameSite=Strict");
    expect(cookie).not.toContain("Secure"); // plain HTTP on loopback; Secure with http.tls_cert
    const viewer = await apiLogin(dash.url, USERS.viewer);
    expect((await viewer.post("/api/agents/sim-a/command", { command: "ping" }, false)).status).toBe(403); // no CSRF token
    const refused = await viewer.post("/api/agents/sim-a/command", { command: "ping" });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: string }).error).toBe("operators only");
    const audit = (await (await viewer.get("/api/audit")).json()) as { audit: Array<{ user: string; action: string; agentId: string; outcome: string }> };
    expect(audit.audit[0]).toMatchObject({ user: USERS.viewer.name, action: "ping", agentId: "sim-a", outcome: "refused: viewer" });
    const page = await fetch(`${dash.url}/`);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
  });

  test("operator commands: an access key in clear or a malformed command is refused and audited without its body; an unknown agent is 404", async () => {
    const op = await apiLogin(dash.url, USERS.operator);
    const plain = await op.post("/api/agents/sim-a/command", { command: "read", id: `read-${crypto.randomUUID()}`, accessKey: { documentNumber: "L898902C3", dateOfBirth: "740812", dateOfExpiry: "120415" } });
    expect(plain.status).toBe(400);
    const body = await plain.text();
    expect((JSON.parse(body) as { code: string }).code).toBe("PLAINTEXT_ACCESS_KEY");
    expect(body).not.toContain("L898902C3");
    const bad = await op.post("/api/agents/sim-a/command", { command: "diagnose", id: `diagnose-${crypto.randomUUID()}`, replyPublicKey: b64(generateKeyPair().publicKey), count: 0 });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toContain("count must be an integer 1..1000");
    expect((await op.post("/api/agents/nobody/command", { command: "ping" })).status).toBe(404);
    expect((await op.post("/api/agents/sim-a/command", { command: "ping" }, false)).status).toBe(403); // no CSRF token
    const auditText = await (await op.get("/api/audit")).text();
    const audit = (JSON.parse(auditText) as { audit: Array<{ user: string; action: string; agentId: string; outcome: string }> }).audit;
    expect(audit.slice(0, 2)).toMatchObject([
      { user: USERS.operator.name, action: "diagnose", agentId: "sim-a", outcome: "refused: BAD_FIELD" },
      { user: USERS.operator.name, action: "read", agentId: "sim-a", outcome: "refused: PLAINTEXT_ACCESS_KEY" },
    ]);
    expect(auditText).not.toContain("L898902C3");
    expect(JSON.stringify(dash.lines)).not.toContain("L898902C3");
  });

  test("with http.tls_cert the page is served over HTTPS and the session cookie is Secure", async () => {
    const c = broker.certs!;
    const tls = await DashboardProcess.start(broker, { clientId: "operator-test-tls", httpTls: { cert: join(c.dir, "broker.crt"), key: join(c.dir, "broker.key") } });
    try {
      expect(tls.url.startsWith("https://127.0.0.1:")).toBe(true);
      const r = await fetch(`${tls.url}/api/login`, { method: "POST", headers: { origin: tls.url }, body: JSON.stringify(USERS.viewer), tls: { ca: readFileSync(c.ca, "utf8") } });
      expect(r.status).toBe(200);
      expect(r.headers.get("set-cookie")).toMatch(/; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/);
    } finally {
      await tls.stop();
    }
  });

  test("/metrics: fleet aggregates in the exposition format, promtool check metrics clean", async () => {
    const text = await (await fetch(`${dash.url}/metrics`)).text();
    expect(text).toContain('mrtd_fleet_agents{state="online"} 3');
    expect(text).toMatch(/mrtd_fleet_apdu_duration_seconds_count\{command="read_binary"\} \d+/);
    expect(text).toMatch(/mrtd_fleet_read_failures_total\{class="RF_TIMEOUT"\} 1/);
    const promtool = Bun.which("promtool");
    if (!promtool) return;
    const file = join(tmp, "metrics.txt");
    writeFileSync(file, text);
    const p = Bun.spawnSync(["sh", "-c", `promtool check metrics < ${file}`], { stdout: "pipe", stderr: "pipe" });
    expect(p.stdout.toString() + p.stderr.toString()).toBe("");
    expect(p.exitCode).toBe(0);
  });

  test("Debian's prometheus scrapes /metrics, a PromQL query returns the fleet's online agents, and the Grafana dashboard's queries evaluate", async () => {
    const bin = Bun.which("prometheus");
    if (!bin) return; // deploy/dev-setup.sh installs it
    const port = await freePort();
    const dir = join(tmp, "prometheus");
    const target = new URL(dash.url).host;
    mkdirSync(dir);
    writeFileSync(join(dir, "prometheus.yml"), `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mrtd-dashboard\n    static_configs:\n      - targets: ["${target}"]\n`);
    const prom = Bun.spawn([bin, `--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`], { stdout: "ignore", stderr: "pipe" });
    try {
      const query = encodeURIComponent('sum(mrtd_fleet_agents{state="online"})');
      const value = await until(async () => {
        const r = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${query}`).catch(() => undefined);
        if (!r?.ok) return undefined;
        const j = (await r.json()) as { data: { result: Array<{ value: [number, string] }> } };
        return j.data.result[0]?.value[1];
      }, "prometheus to scrape the dashboard", 20_000);
      expect(value).toBe("3");
      // Every query of the Grafana dashboard in deploy/grafana is valid PromQL that Prometheus evaluates.
      const grafana = JSON.parse(readFileSync(join(import.meta.dir, "../../deploy/grafana/mrtd-fleet.json"), "utf8")) as { panels: Array<{ targets: Array<{ expr: string }> }> };
      for (const expr of grafana.panels.flatMap((p) => p.targets.map((t) => t.expr))) {
        const r = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(expr)}`);
        expect(`${expr}: ${r.status}`).toBe(`${expr}: 200`);
      }
      const up = await (await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent('mrtd_fleet_reader_success_rate{agent="sim-b"}')}`)).json() as { data: { result: Array<{ value: [number, string] }> } };
      expect(Number(up.data.result[0]!.value[1])).toBe(1); // its last 20 reads succeeded (the webhook test)
    } finally {
      prom.kill("SIGTERM");
      await Promise.race([prom.exited, Bun.sleep(5000).then(() => prom.kill("SIGKILL"))]);
    }
  }, 30_000);

  test("an agent that stops is shown offline at once (its retained offline status)", async () => {
    const ops = await apiLogin(dash.url, USERS.operator);
    await sims[1]!.stop();
    const o = await until(async () => {
      const v = (await (await ops.get("/api/overview?status=offline")).json()) as Overview;
      return v.total === 1 ? v : undefined;
    }, "sim-b offline");
    expect(o.rows[0]!.agentId).toBe("sim-b");
    expect(o.counts).toMatchObject({ online: 2, offline: 1 });
    // Commands to an offline agent are refused before the broker.
    const ping = await ops.post("/api/agents/sim-b/command", { command: "ping", id: `ping-${crypto.randomUUID()}`, replyPublicKey: b64(generateKeyPair().publicKey) });
    expect(ping.status).toBe(409);
    expect(((await ping.json()) as { code: string }).code).toBe("AGENT_OFFLINE");
  });

  test("SIGTERM stops cleanly after writing the state; a restarted dashboard shows the events it stored (events are not retained)", async () => {
    const before = await apiLogin(dash.url, USERS.operator);
    const n = ((await (await before.get("/api/agents/sim-a")).json()) as { events: unknown[] }).events.length;
    expect(n).toBeGreaterThan(0);
    const dir = dash.dir;
    expect(await dash.stop({ keepDir: true })).toBe(0);
    dash = await DashboardProcess.start(broker, { dir });
    const after = await apiLogin(dash.url, USERS.operator);
    expect(((await (await after.get("/api/agents/sim-a")).json()) as { events: unknown[] }).events.length).toBe(n);
  });
});

describe("MQTT 3.1.1 fleet (mqtt.protocol = \"3.1.1\" on agents and dashboard)", () => {
  test("agents and the dashboard on 3.1.1: the fleet, health and events appear; without share_group events are subscribed directly, so two instances each get every event", async () => {
    const sim = new SimAgent(broker, "sim-a", ["Virtual PCD 00 00"], "0.3.1", "3.1.1");
    const one = await DashboardProcess.start(broker, { protocol: "3.1.1", shareGroup: null, clientId: "operator-test-2" });
    const two = await DashboardProcess.start(broker, { protocol: "3.1.1", shareGroup: null, clientId: "operator-test-hook" });
    try {
      // sim-a reconnects with 3.1.1 (the 5 one from above is replaced: same client id)
      await sim.start();
      await sim.reads("Virtual PCD 00 00", [true, "RF_TIMEOUT"]);
      const apis = [await apiLogin(one.url, USERS.viewer), await apiLogin(two.url, USERS.viewer)];
      for (const api of apis) {
        const a = await until(async () => {
          const v = (await (await api.get("/api/agents/sim-a")).json()) as { version?: string; readers?: Array<{ reader: string; rate: number | null }> };
          return v.version === "0.3.1" && v.readers?.some((r) => r.reader === "Virtual PCD 00 00" && r.rate === 0.5) ? v : undefined;
        }, "sim-a over 3.1.1 with its health");
        expect(a.version).toBe("0.3.1");
      }
      const count = async (api: (typeof apis)[number]) => ((await (await api.get("/api/agents/sim-a")).json()) as { events: Array<{ eventId?: string }> }).events.length;
      const before = await Promise.all(apis.map(count));
      for (let i = 0; i < 5; i++) await sim.readerAttached("Virtual PCD 00 00");
      const after = await until(async () => {
        const n = await Promise.all(apis.map(count));
        return n.every((x, i) => x >= before[i]! + 5) ? n : undefined;
      }, "every event at both instances");
      expect(after.map((n, i) => n - before[i]!)).toEqual([5, 5]);
    } finally {
      await sim.stop().catch(() => undefined);
      await one.stop();
      await two.stop();
    }
  }, 40_000);
});
