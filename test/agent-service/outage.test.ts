/**
 * Nothing lost offline (issue 5, items 5 and 8): the broker is down for 30 s while documents
 * are read on insertion (readers.read_on_insert with a test key file); the events wait in the
 * disk outbox and, after the broker is back, every one arrives exactly once and in order.
 * The operator holds a persistent MQTT 5 session, so the broker keeps what arrives before it
 * reconnects.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { insertPassport, SPECIMEN_KEY } from "../support/e2e.ts";
import type { Mosquitto } from "../support/mosquitto.ts";
import type { Observer } from "../service/fixtures/mqtt-observer.ts";
import { type AgentEnv, startAgentEnv } from "./fixtures/agent-env.ts";
import type { AgentProcess } from "./fixtures/agent-process.ts";

const AGENT = "outage-agent";
const EVENTS = `mrtd/v1/${AGENT}/events`;
const OUTAGE_MS = 30_000;
const READS_DURING_OUTAGE = 3;

let env: AgentEnv | undefined;
let broker: Mosquitto;
let op: Observer;
let agent: AgentProcess;

beforeAll(async () => {
  env = await startAgentEnv({
    operator: "operator-outage",
    operatorOptions: { clean: false, reconnectPeriod: 300, properties: { sessionExpiryInterval: 600 } },
    subscribe: EVENTS,
    config: { agentId: AGENT, readOnInsert: true, testKey: { ...SPECIMEN_KEY }, reconnectMaxMs: 2000 },
    readyLog: "broker connected",
  });
  ({ broker, op, agent } = env);
}, 30_000);

afterAll(async () => {
  await env?.stop();
});

const readLogs = () => agent.logs().filter((l) => l.msg === "read complete" && l.trigger === "insert");

async function presentDocument(): Promise<void> {
  const before = readLogs().length;
  const card = await insertPassport({ profile: "td3" });
  await agent.waitForLog(() => readLogs().length > before, 10_000, "read on insert");
  await card.stop();
}

test("a 30 s broker outage with reads during it: every event delivered exactly once, in order", async () => {
  await presentDocument(); // one read while online
  await op.waitFor((m) => m.some((x) => (x.json as { change?: string }).change === "removed"), 5000, "online events");
  // Let the operator's PUBACKs reach the broker: otherwise the broker redelivers its last
  // message (DUP) from the persistent session after the restart, which is broker-to-operator
  // QoS 1 behaviour and not what this test measures.
  await Bun.sleep(500);

  const t0 = Date.now();
  await broker.stop();
  await agent.waitForLog((l) => l.msg === "broker connection lost", 5000, "link down");
  for (let i = 0; i < READS_DURING_OUTAGE; i++) await presentDocument();
  const outageReads = readLogs().slice(-READS_DURING_OUTAGE).map((l) => l.eventId as string);
  expect(outageReads).toHaveLength(READS_DURING_OUTAGE);
  await Bun.sleep(Math.max(0, OUTAGE_MS - (Date.now() - t0)));
  const connectsBefore = agent.logs().filter((l) => l.msg === "broker connected").length;
  await broker.restart();

  await agent.waitForLog(() => agent.logs().filter((l) => l.msg === "broker connected").length > connectsBefore, 15_000, "reconnect");
  const reconnect = agent.logs().filter((l) => l.msg === "broker connected").at(-1)!;
  // 3 × (card inserted, read, card removed) waited in the outbox
  expect(reconnect.pendingEvents).toBe(3 * READS_DURING_OUTAGE);
  const isRead = (e: Record<string, unknown>) => e.type === "read";
  await op.waitFor(() => op.messages.map((m) => m.json as Record<string, unknown>).filter(isRead).length >= 1 + READS_DURING_OUTAGE, 15_000, "outage read events");
  await Bun.sleep(1000); // a duplicate would arrive by now

  const events = op.messages.filter((m) => m.topic === EVENTS).map((m) => m.json as Record<string, unknown>);
  const ids = events.map((e) => e.eventId as string);
  expect(new Set(ids).size).toBe(ids.length); // no event twice
  for (const id of outageReads) expect(ids.filter((x) => x === id)).toHaveLength(1);
  // in order: event ids are time-ordered (UUIDv7) and so are the timestamps
  const at = events.map((e) => Date.parse(e.at as string));
  expect([...at].sort((a, b) => a - b)).toEqual(at);
  const card = events.filter((e) => e.type === "card").map((e) => e.change);
  expect(card).toEqual(Array.from({ length: 1 + READS_DURING_OUTAGE }, () => ["inserted", "removed"]).flat());
  const reads = events.filter(isRead);
  expect(reads).toHaveLength(1 + READS_DURING_OUTAGE);
  for (const r of reads) expect(r).toMatchObject({ trigger: "insert", outcome: "success" });
  // the reads during the outage really happened while the broker was down
  for (const r of reads.slice(1)) expect(Date.parse(r.at as string)).toBeLessThan(t0 + OUTAGE_MS);
  expect(agent.proc.exitCode).toBeNull();
}, 90_000);
