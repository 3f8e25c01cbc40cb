/**
 * A real agent (`mrtd-agent run`, MQTT 5, one broker URL as the agent has today) on the
 * three-node ejabberd cluster, reading the virtual passport through pcscd on insertion (run
 * under the PC/SC lock, like every pcscd test): its node is killed (kill -9) while a document is
 * read, so the events wait in the agent's outbox; a ping sent through another node meanwhile
 * times out and is sent again with the same id; the node restarts. Asserted: the agent is back
 * within its backoff step plus its connect timeout of the node accepting MQTT again, every event
 * reaches the consumer on another node exactly once after de-duplication by eventId (raw
 * duplicates reported), the ping is answered on the retry, and the agent's latest birth is
 * retained on its node.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { AgentProcess, writeAgentConfig } from "../agent-service/fixtures/agent-process.ts";
import { EjabberdCluster, ejabberdAvailable } from "../support/ejabberd-cluster.ts";
import { insertPassport, SPECIMEN_KEY } from "../support/e2e.ts";
import { EventObserver, SimOperator } from "../support/fleet-sim.ts";
import { ensurePcscd, pcscdAvailable, type PcscdHandle } from "../support/pcscd.ts";
import { removeTempDir } from "../support/temp-dir.ts";
import { readRetained } from "./failover-scenario.ts";

const AGENT = "ej-real-agent";
const RECONNECT_MAX_MS = 1000;
const CONNECT_TIMEOUT_MS = 2000;
const PASSWORD_ENV = "MRTD_TEST_EJABBERD_PASSWORD";

let cluster: EjabberdCluster | undefined;
let pcscd: PcscdHandle | undefined;
let agent: AgentProcess | undefined;
let dir: string | undefined;
let obs: EventObserver | undefined;
let op: SimOperator | undefined;

beforeAll(async () => {
  if (!ejabberdAvailable() || !pcscdAvailable()) return;
  pcscd = await ensurePcscd();
  cluster = await EjabberdCluster.start();
  obs = await EventObserver.connect(cluster.urls[1]!, "5", "ej-observer", EjabberdCluster.credentials("ej-observer"));
  op = await SimOperator.connect(cluster.urls[2]!, "5", "operator-ej", EjabberdCluster.credentials("operator-ej"));
  // ejabberd's anonymous login takes any username with a non-empty password.
  const cfg = writeAgentConfig({ agentId: AGENT, urls: [cluster.urls[0]!], username: AGENT, passwordEnv: PASSWORD_ENV, readOnInsert: true, testKey: { ...SPECIMEN_KEY }, reconnectMaxMs: RECONNECT_MAX_MS, connectTimeoutMs: CONNECT_TIMEOUT_MS, healthIntervalS: 2 });
  dir = cfg.dir;
  agent = new AgentProcess(cfg.file, { [PASSWORD_ENV]: EjabberdCluster.credentials(AGENT).password });
  await agent.waitForLog((l) => l.msg === "broker connected", 20_000, "broker connected");
}, 120_000);

afterAll(async () => {
  await agent?.kill("SIGKILL");
  await op?.close();
  await obs?.close();
  await cluster?.stop();
  await pcscd?.stop();
  if (dir) removeTempDir(dir);
});

const readLogs = () => agent!.logs().filter((l) => l.msg === "read complete" && l.trigger === "insert");

async function presentDocument(): Promise<void> {
  const before = readLogs().length;
  const card = await insertPassport({ profile: "td3" });
  await agent!.waitForLog(() => readLogs().length > before, 15_000, "read on insert");
  await card.stop();
}

test.skipIf(!ejabberdAvailable() || !pcscdAvailable())("real agent on the ejabberd cluster (MQTT 5): its node killed during a read, restarted: back within its backoff, every event once, the ping answered on the retry", async () => {
  const a = agent!;
  const c = cluster!;
  await presentDocument();
  const first = await op!.command(AGENT, "ping", 8000);
  expect(first.answered).toBe(true);
  expect(first.reply?.result).toEqual({ pong: true, agentId: AGENT });

  const connects = () => a.logs().filter((l) => l.msg === "broker connected").length;
  const before = connects();
  await c.kill(0);
  await a.waitForLog((l) => l.msg === "broker connection lost", 10_000, "link down");
  await presentDocument(); // its events wait in the outbox
  const ping = op!.command(AGENT, "ping", 8000); // times out while the agent is away, then retried with the same id
  await c.restart(0);
  const nodeBack = Date.now();
  await a.waitForLog(() => connects() > before, 30_000, "reconnect");
  const backMs = Date.now() - nodeBack;
  const pong = await ping;
  await Bun.sleep(1500); // late duplicates arrive by now

  const eventIds = a.logs().flatMap((l) => (typeof l.eventId === "string" ? [l.eventId] : []));
  const ids = [...new Set(eventIds)];
  console.log(`ejabberd real agent: back ${backMs} ms after its node accepted MQTT again; ${ids.length} events logged, consumer got ${obs!.raw} raw, ${obs!.distinct} distinct; ping ${pong.retried ? "answered on the retry" : "answered"} in ${pong.ms.toFixed(0)} ms`);
  expect(ids.length).toBeGreaterThan(0);
  for (const id of ids) expect(obs!.seen.get(id) ?? 0).toBeGreaterThanOrEqual(1);
  expect(backMs).toBeLessThanOrEqual(RECONNECT_MAX_MS + CONNECT_TIMEOUT_MS + 1000);
  expect(pong.answered).toBe(true);
  expect(pong.reply?.result).toEqual({ pong: true, agentId: AGENT });
  const view = await readRetained({ protocol: "5", urls: c.urls, kill: async () => {}, restart: async () => {}, stopNode: async () => {}, credentials: EjabberdCluster.credentials }, 0);
  expect(view.online.has(AGENT)).toBe(true);
}, 180_000);
