/**
 * Failover on a real three-node NATS JetStream cluster (Debian nats-server 2.9.10, MQTT 3.1.1
 * gateway): simulated agents with persistent sessions spread over the nodes,
 * two event consumers and an operator on other nodes (failover-scenario.ts).
 *
 * Not part of `npm test` (the file name is not a test file's): `npm run test:nats-failover`
 * runs it, because nats-server 2.9.10 itself still loses events now and then. Measured on the
 * shared 2-core machine:
 * - Until the harness pinned the gateway's streams to three nodes (`stream_replicas`, as
 *   deploy/nats/nats-server.conf does), both tests failed more often than not: the first MQTT
 *   client sometimes connected before the third node had joined, the streams were made R2, and
 *   kill -9 of one node left them without quorum (no client connecting anywhere for over a minute).
 * - With it, kill -9: every agent back in 0.2–10.6 s, every command answered; 3 of 7 runs
 *   failed on every node keeping an older retained birth of the agents that moved (NATS
 *   acknowledged births whose retained copy it failed to store while a stream had no leader)
 *   and 1 on one event never reaching one consumer. With the agents' status refresh
 *   (failover-scenario.ts) it passed 4 of 4, the dashboard's subscriber included in the last.
 * - Rolling restart: 5 of 7 passed; two lost events at one consumer (5 once, after a restarted
 *   node logged "Error applying entries to '$G > $MQTT_msgs': last sequence mismatch" and reset
 *   its copy of the stream; 3 another time).
 * deploy/brokers.md has the details.
 */
import { afterEach, expect, test } from "bun:test";
import { NatsCluster } from "../support/nats-cluster.ts";
import { runFailoverScenario, type ScenarioOptions, type ScenarioResult } from "./failover-scenario.ts";

let cluster: NatsCluster | undefined;
afterEach(async () => {
  if (process.env.NATS_LOG) for (const n of cluster?.nodes ?? []) console.log(n.name, n.log.split("\n").filter((l) => /ERR|WRN/.test(l) && !/route|ready-probe/.test(l)).map((l) => l.replace(/^\[\d+\] [\d/]+ /, "").replace(/sim-\d+/g, "sim-N").replace(/127\.0\.0\.1:\d+ - (mid|rid|cid):\d+/, "")).slice(0, 40).join("\n"));
  await cluster?.stop();
  cluster = undefined;
});

// The command timeout is above the longest reconnect seen here (~15 s under load), so the retry goes to a
// resumed session; a try delivered to a connection that then died is redelivered only after ack_wait (30 s).
// The simulated agents subscribe to their commands on every connect, as the agent does.
const OPTS = { agents: 30, reconnectMinMs: 200, reconnectMaxMs: 2000, connectTimeoutMs: 5000, commandTimeoutMs: 20_000 };

async function run(phases: Pick<ScenarioOptions, "kill" | "rolling">): Promise<ScenarioResult> {
  cluster = await NatsCluster.start();
  const c = cluster;
  const r = await runFailoverScenario({ protocol: "3.1.1", urls: c.urls, kill: (i) => c.kill(i), restart: (i) => c.restart(i), stopNode: (i) => c.stopNode(i) }, { ...OPTS, ...phases, log: (l) => console.log(`nats failover: ${l}`) });
  const seen = r.observers.map((o) => `consumer on node ${o.node}: ${o.raw} raw, ${o.distinct} distinct`).join("; ");
  console.log(`nats failover: ${r.generated} events generated; ${seen}; ${r.stats.eventsResent} resent; ${r.commands.length} commands, ${r.commands.filter((x) => x.retried).length} answered only on the retry (unanswered: ${r.commands.filter((x) => !x.answered).map((x) => x.agentId).join(" ")}); sessions resumed ${r.stats.sessionsResumed}; dashboard: ${r.dashboard?.events.size ?? "-"} distinct events; longest reconnect ${r.maxOutageMs} ms (promised ${r.promisedMs} ms)`);
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
  // The dashboard's own subscriber (every node in mqtt.urls, a kept session): every agent online
  // with its latest birth, and every event.
  expect(r.dashboard).toBeDefined();
  expect(r.ids.filter((id) => r.dashboard!.status.get(id) !== `online ${r.lastBirth.get(id)}`)).toEqual([]);
  expect(r.generated - r.dashboard!.events.size).toBe(0);
  // Retained status and health as seen from every node.
  for (const v of r.retained) {
    expect([...v.online].sort()).toEqual(r.ids);
    // The latest birth, not a stale one.
    expect(r.ids.filter((id) => v.birth.get(id) !== r.lastBirth.get(id))).toEqual([]);
    expect([...v.health].sort()).toEqual(r.ids);
  }
}

test("NATS cluster: a rolling restart under traffic loses no event, answers every command, keeps retained state on every node", async () => {
  assertContract(await run({ kill: false, rolling: true }));
}, 240_000);

test("NATS cluster: kill -9 of one node, then its restart: no event lost, every command answered, retained state right on every node", async () => {
  assertContract(await run({ kill: true, rolling: false }));
}, 240_000);
