/**
 * Failover on a real three-node NATS JetStream cluster (Debian nats-server 2.9.10, MQTT 3.1.1
 * gateway): simulated agents with persistent sessions spread over the nodes,
 * two event consumers and an operator on other nodes (failover-scenario.ts).
 *
 * Not part of `npm test` (the file name is not a test file's): `npm run test:nats-failover`
 * runs it. Both tests fail on this machine more often than not, measured as follows.
 * - The rolling restart (each node stopped and started in turn under traffic): on the shared
 *   2-core machine it passed 3 of 6 runs; the others
 *   had, once each, a node still showing older retained births of most agents 1 s after the
 *   drain, a reconnect slower than the backoff's promise (under load the gateway's JetStream
 *   requests take seconds), and commands unanswered after their retry (before the simulated
 *   agents re-subscribed on every connect).
 * - kill -9 of one node: on the shared 2-core machine,
 *   nats-server 2.9.10 lost JetStream quorum after kill -9 of one node of three in most runs
 *   ("consumer ... has NO quorum, stalled", "JetStream system temporarily unavailable (10008)"
 *   on the two survivors) and no MQTT client, on any node, could connect for over 60 s; in one
 *   run it recovered in 13 s and then lost nothing.
 *   deploy/brokers.md has the measurements.
 */
import { afterEach, expect, test } from "bun:test";
import { NatsCluster } from "../support/nats-cluster.ts";
import { runFailoverScenario, type ScenarioOptions, type ScenarioResult } from "./failover-scenario.ts";

let cluster: NatsCluster | undefined;
afterEach(async () => {
  if (process.env.NATS_LOG) for (const n of cluster?.nodes ?? []) console.log(n.name, n.log.split("\n").filter((l) => /ERR|WRN/.test(l) && !/route|ready-probe/.test(l)).slice(0, 12).join("\n"));
  await cluster?.stop();
  cluster = undefined;
});

// The command timeout is above the longest reconnect seen here (~15 s under load), so the retry goes to a
// resumed session; a try delivered to a connection that then died is redelivered only after ack_wait (30 s).
// Measured: after a node stopped, NATS 2.9 resumed sessions on another node (sessionPresent 1)
// whose QoS 1 command subscription then delivered nothing, in 2 of 4 runs (5-7 of 15 commands
// unanswered after their retry); subscribing again on every connect answered every command in
// 2 of 2 runs. So the simulated agents do that here (the agent's 3.1.1 mode should too).
const OPTS = { agents: 30, reconnectMinMs: 200, reconnectMaxMs: 2000, connectTimeoutMs: 5000, commandTimeoutMs: 20_000, resubscribeAlways: true };

async function run(phases: Pick<ScenarioOptions, "kill" | "rolling">): Promise<ScenarioResult> {
  cluster = await NatsCluster.start();
  const c = cluster;
  const r = await runFailoverScenario({ protocol: "3.1.1", urls: c.urls, kill: (i) => c.kill(i), restart: (i) => c.restart(i), stopNode: (i) => c.stopNode(i) }, { ...OPTS, ...phases, log: (l) => console.log(`nats failover: ${l}`) });
  const seen = r.observers.map((o) => `consumer on node ${o.node}: ${o.raw} raw, ${o.distinct} distinct`).join("; ");
  console.log(`nats failover: ${r.generated} events generated; ${seen}; ${r.stats.eventsResent} resent; ${r.commands.length} commands, ${r.commands.filter((x) => x.retried).length} answered only on the retry (unanswered: ${r.commands.filter((x) => !x.answered).map((x) => x.agentId).join(" ")}); sessions resumed ${r.stats.sessionsResumed}; longest reconnect ${r.maxOutageMs} ms (promised ${r.promisedMs} ms)`);
  return r;
}

function assertContract(r: ScenarioResult): void {
  // No event lost at either consumer (each a persistent session); duplicates are removed by eventId.
  for (const o of r.observers) expect(r.generated - o.distinct).toBe(0);
  expect(r.stats.outboxPending).toBe(0);
  // Every command answered, on the first try or on the retry with the same id.
  expect(r.commands.length).toBeGreaterThan(0);
  expect(r.commands.filter((x) => !x.answered).map((x) => x.agentId)).toEqual([]);
  // Back within what the backoff promises (one rotation through every node).
  expect(r.maxOutageMs).toBeLessThanOrEqual(r.promisedMs);
  // Retained status and health as seen from every node.
  for (const v of r.retained) {
    expect([...v.online].sort()).toEqual(r.ids);
    // The latest birth, not a stale one.
    expect(r.ids.filter((id) => v.birth.get(id) !== r.lastBirth.get(id))).toEqual([]);
    expect([...v.health].sort()).toEqual(r.ids);
  }
}

test("NATS cluster: a rolling restart under traffic loses no event, answers every command, keeps retained state on every node (passed 3 of 6 runs on the shared 2-core machine)", async () => {
  assertContract(await run({ kill: false, rolling: true }));
}, 240_000);

test("NATS cluster: kill -9 of one node, then its restart (nats-server 2.9.10 lost JetStream quorum here in most runs)", async () => {
  assertContract(await run({ kill: true, rolling: false }));
}, 240_000);
