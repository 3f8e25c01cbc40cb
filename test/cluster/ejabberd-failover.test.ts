/**
 * Failover on a real three-node ejabberd cluster (Debian ejabberd 23.01, mod_mqtt, MQTT 5),
 * with its documented limits (../shared/reference/mqtt-brokers.md,
 * deploy/brokers.md): retained messages are node-local, and sessions held on a dead or
 * restarted node are lost (sessionPresent=false, queued messages gone). What must still hold
 * and is asserted: every agent back within the backoff's promise; every event reaches at least
 * one of the two consumers (on different nodes; a consumer on a restarted node misses what was
 * published while its session was gone, so the union is asserted and each one is reported;
 * except, measured, the event in flight when a node stops gracefully: see the rolling test);
 * every command answered on the first try or on the retry with the same id; each agent's
 * retained status and health visible on the node it is connected to; and, as the limit after a
 * kill -9, older births on other nodes (after the rolling restart every node showed the latest).
 */
import { afterEach, expect, test } from "bun:test";
import { EjabberdCluster, ejabberdAvailable } from "../support/ejabberd-cluster.ts";
import { runFailoverScenario, type ScenarioOptions, type ScenarioResult } from "./failover-scenario.ts";

let cluster: EjabberdCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const OPTS = { agents: 30, reconnectMinMs: 200, reconnectMaxMs: 2000, connectTimeoutMs: 5000, commandTimeoutMs: 12_000 };

async function run(phases: Pick<ScenarioOptions, "kill" | "rolling">, label: string): Promise<ScenarioResult> {
  cluster = await EjabberdCluster.start();
  const c = cluster;
  const r: ScenarioResult = await runFailoverScenario(
    { protocol: "5", urls: c.urls, kill: (i) => c.kill(i), restart: (i) => c.restart(i), stopNode: (i) => c.stopNode(i), credentials: EjabberdCluster.credentials },
    { ...OPTS, ...phases, log: (l) => console.log(`ejabberd ${label}: ${l}`) },
  );
  const union = new Set<string>();
  for (const o of r.observers) for (const id of o.ids) union.add(id);
  const seen = r.observers.map((o) => `consumer starting on node ${o.node}: ${o.raw} raw, ${o.distinct} distinct`).join("; ");
  const stale = (v: ScenarioResult["retained"][number]) => r.ids.filter((id) => v.birth.get(id) !== r.lastBirth.get(id)).length;
  const views = r.retained.map((v) => `node ${v.node}: ${v.online.size} online (${stale(v)} not the latest birth), ${v.health.size} health`).join("; ");
  console.log(`ejabberd ${label}: ${r.generated} events generated, ${union.size} reached a consumer; ${seen}; ${r.stats.eventsResent} resent; ${r.commands.length} commands, ${r.commands.filter((x) => x.retried).length} answered only on the retry; sessions resumed ${r.stats.sessionsResumed}; longest reconnect ${r.maxOutageMs} ms (promised ${r.promisedMs} ms); retained seen from ${views}`);
  expect(r.stats.outboxPending).toBe(0);
  expect(r.commands.length).toBeGreaterThan(0);
  expect(r.commands.filter((x) => !x.answered).map((x) => x.agentId)).toEqual([]);
  expect(r.maxOutageMs).toBeLessThanOrEqual(r.promisedMs);
  // Each agent's latest retained birth and its health are on the node it is connected to...
  for (const id of r.ids) {
    const view = r.retained[r.currentNode.get(id)!]!;
    expect(view.birth.get(id)).toBe(r.lastBirth.get(id)!);
    expect(view.health.has(id)).toBe(true);
  }
  return r;
}

function lostEvents(r: ScenarioResult): number {
  const union = new Set<string>();
  for (const o of r.observers) for (const id of o.ids) union.add(id);
  return r.generated - union.size;
}

test.skipIf(!ejabberdAvailable())("ejabberd cluster (MQTT 5): kill -9 of one node and its restart: agents back, every event reaches a consumer, commands answered, latest retained state on the agent's node, older births on others (node-local retained)", async () => {
  const r = await run({ kill: true, rolling: false }, "kill -9");
  expect(lostEvents(r)).toBe(0);
  // The documented limit: another node still holds an older birth (retained messages are node-local).
  expect(r.retained.some((v) => r.ids.some((id) => v.birth.get(id) !== r.lastBirth.get(id)))).toBe(true);
}, 300_000);

// Measured: a graceful stop (ejabberdctl stop) acknowledged one in-flight QoS 1 event per agent
// connected to the stopping node and delivered it to no subscriber (30 of 405 in a run, exactly
// one per agent on the node stopped last, both consumers missing the same ones). The limit is
// asserted as measured: at most one lost event per agent on a stopped node; none otherwise.
test.skipIf(!ejabberdAvailable())("ejabberd cluster (MQTT 5): rolling restart: agents back, commands answered, latest retained state on the agent's node only; at most one event lost per agent on a gracefully stopped node (ejabberd's limit)", async () => {
  const r = await run({ kill: false, rolling: true }, "rolling restart");
  console.log(`ejabberd rolling restart: ${lostEvents(r)} events acknowledged and delivered to no consumer; ${r.agentsOnStoppedNodes} agent connections on the nodes as they stopped`);
  expect(lostEvents(r)).toBeLessThanOrEqual(r.agentsOnStoppedNodes);
}, 300_000);
