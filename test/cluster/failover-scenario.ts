/**
 * The failover scenario, run on a real three-node cluster by
 * nats-failover.optin.ts and ejabberd-failover.test.ts: simulated agents (test/support/fleet-sim.ts)
 * spread over the nodes with persistent sessions, publishing health and events with eventIds;
 * two event consumers and an operator on other nodes; `kill -9` of one node under traffic with
 * commands to the agents that were on it, its restart, then a rolling restart of all three.
 * Returns what happened; the tests assert it.
 */
import mqtt from "mqtt";
import { subscribeFleet, type FleetSubscriber } from "../../agent/dashboard/fleet-subscriber.ts";
import { EventObserver, type MqttProtocol, SimFleet, SimOperator, type CommandOutcome, type SimFleetStats } from "../support/fleet-sim.ts";

export interface ClusterUnderTest {
  protocol: MqttProtocol;
  urls: string[];
  kill(i: number): Promise<void>;
  restart(i: number): Promise<void>;
  /** Restart node i gracefully (for the rolling restart). */
  stopNode(i: number): Promise<void>;
  credentials?: (id: string) => { username: string; password: string };
}

export interface ScenarioOptions {
  agents: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  /** Phases to run (default both): kill -9 of node 0 then its restart; a rolling restart of every node. */
  kill?: boolean;
  rolling?: boolean;
  log?: (line: string) => void;
}

export interface RetainedView {
  node: number;
  /** Agents whose retained status on this node is `online`. */
  online: Set<string>;
  /** connectedAt of each agent's retained `online` birth on this node. */
  birth: Map<string, string>;
  /** Agents with a retained health message on this node. */
  health: Set<string>;
}

/** What the dashboard's own fleet subscriber saw, live, over the whole scenario. */
export interface DashboardView {
  /** Each agent's last status message: `online <connectedAt>` or `offline`. */
  status: Map<string, string>;
  /** Distinct eventIds it received. */
  events: Set<string>;
}

export interface ScenarioResult {
  ids: string[];
  stats: SimFleetStats;
  /** The fleet's longest reconnect after losing a connection, and what the backoff promises. */
  maxOutageMs: number;
  promisedMs: number;
  observers: Array<{ node: number; distinct: number; raw: number; ids: Set<string> }>;
  generated: number;
  commands: CommandOutcome[];
  retained: RetainedView[];
  /** The dashboard (agent/dashboard/fleet-subscriber.ts, every node in mqtt.urls, a kept session) when the cluster takes certificate-less clients without passwords (not ejabberd's harness: the dashboard has no password login). */
  dashboard?: DashboardView;
  /** Agents connected to a node when the rolling restart stopped it, summed over the nodes. */
  agentsOnStoppedNodes: number;
  /** The node each agent was connected to at the end, and its last birth's connectedAt. */
  currentNode: Map<string, number>;
  lastBirth: Map<string, string>;
}

/** One rotation through every node, each attempt failing at worst by its timeout: then a live node was tried. */
export function promisedReconnectMs(nodes: number, o: Pick<ScenarioOptions, "reconnectMinMs" | "reconnectMaxMs" | "connectTimeoutMs">): number {
  let ms = 0;
  for (let k = 1; k <= nodes; k++) ms += Math.min(o.reconnectMaxMs, o.reconnectMinMs * 2 ** (k - 1)) + o.connectTimeoutMs;
  return ms;
}

export async function readRetained(c: ClusterUnderTest, node: number, prefix = "mrtd/v1"): Promise<RetainedView> {
  const id = `retained-check-${node}-${Date.now() % 100000}`;
  const client = await mqtt.connectAsync(c.urls[node]!, { clientId: id, protocolVersion: c.protocol === "5" ? 5 : 4, clean: true, reconnectPeriod: 0, connectTimeout: 10_000, ...(c.credentials ? c.credentials(id) : {}) });
  const view: RetainedView = { node, online: new Set(), birth: new Map(), health: new Set() };
  try {
    client.on("message", (topic, payload, packet) => {
      if (!packet.retain) return;
      const levels = topic.split("/");
      const agent = levels[2]!;
      try {
        const body = JSON.parse(payload.toString()) as { state?: string; agentId?: string; connectedAt?: string };
        if (levels[3] === "status" && body.state === "online" && body.agentId === agent) {
          view.online.add(agent);
          if (body.connectedAt) view.birth.set(agent, body.connectedAt);
        }
        if (levels[3] === "readers" && levels[5] === "health" && body.agentId === agent) view.health.add(agent);
      } catch {
        /* not JSON */
      }
    });
    await client.subscribeAsync([`${prefix}/+/status`, `${prefix}/+/readers/+/health`], { qos: 1 });
    await Bun.sleep(1500);
  } finally {
    client.end(true);
  }
  return view;
}

/** The simulated agents' mqtt.status_refresh_s here (the agent's default is 300). */
const STATUS_REFRESH_S = 5;
/** The eventId of the event that shows the dashboard's subscriptions are in place (not counted). */
const PROBE_EVENT = "dashboard-probe";

export async function runFailoverScenario(c: ClusterUnderTest, o: ScenarioOptions): Promise<ScenarioResult> {
  const log = o.log ?? (() => undefined);
  const nodes = c.urls.length;
  const ids = Array.from({ length: o.agents }, (_, i) => `sim-${String(i).padStart(3, "0")}`);
  const fleet = new SimFleet({ urls: c.urls, protocol: c.protocol, ids, healthIntervalS: 2, eventIntervalS: 1, statusRefreshS: STATUS_REFRESH_S, reconnectMinMs: o.reconnectMinMs, reconnectMaxMs: o.reconnectMaxMs, connectTimeoutMs: o.connectTimeoutMs, keepaliveS: 10, persistent: true, sessionExpiryS: 3600, connectRatePerS: 50, lifetimeS: 600, ...(c.credentials ? { credentials: c.credentials } : {}) });
  // Consumers and operator: each starts on a node other than node 0 (killed first) and moves on in rotation.
  const rotate = (first: number) => [...c.urls.slice(first), ...c.urls.slice(0, first)];
  const observers: EventObserver[] = [];
  let op: SimOperator | undefined;
  const commands: CommandOutcome[] = [];
  let agentsOnStoppedNodes = 0;
  let dash: FleetSubscriber | undefined;
  let dashboard: DashboardView | undefined;
  try {
    if (!c.credentials) {
      const view: DashboardView = { status: new Map(), events: new Set() };
      let probed = false;
      const urls = rotate(2);
      dash = await subscribeFleet({ url: urls[0]!, urls, sessionExpiryS: 3600, protocol: c.protocol, prefix: "mrtd/v1", clientId: "operator-dashboard-failover" }, (m) => {
        try {
          const body = JSON.parse(new TextDecoder().decode(m.payload)) as { state?: string; connectedAt?: string; eventId?: string };
          if (m.topic.kind === "status") view.status.set(m.topic.agentId, body.state === "online" ? `online ${body.connectedAt}` : String(body.state));
          if (m.topic.kind === "events" && body.eventId === PROBE_EVENT) probed = true;
          else if (m.topic.kind === "events" && typeof body.eventId === "string") view.events.add(body.eventId);
        } catch {
          /* not JSON: the contract tests cover that */
        }
      }, () => undefined);
      // Its subscriptions are made after the CONNACK: it is ready once a probe event reaches it
      // (before the observers subscribe, so they never see the probe).
      const probe = await mqtt.connectAsync(urls[0]!, { clientId: "dashboard-probe", protocolVersion: c.protocol === "5" ? 5 : 4, reconnectPeriod: 0 });
      try {
        for (let k = 0; k < 40 && !probed; k++) {
          await probe.publishAsync("mrtd/v1/dashboard-probe/events", JSON.stringify({ eventId: PROBE_EVENT }), { qos: 1 });
          await Bun.sleep(250);
        }
      } finally {
        await probe.endAsync();
      }
      if (!probed) throw new Error("the dashboard's subscriber received nothing for 10 s");
      dashboard = view;
    }
    observers.push(await EventObserver.connect(rotate(1), c.protocol, "observer-1", c.credentials ? c.credentials("observer-1") : {}));
    observers.push(await EventObserver.connect(rotate(2), c.protocol, "observer-2", c.credentials ? c.credentials("observer-2") : {}));
    op = await SimOperator.connect(rotate(1), c.protocol, "operator-failover", c.credentials ? c.credentials("operator-failover") : {});
    const operator = op;
    await fleet.start();
    await fleet.waitConnected(o.agents, 30_000);
    log(`all ${o.agents} agents connected`);
    await Bun.sleep(3000);

    // kill -9 of node 0 under traffic; commands to the agents that were on it.
    if (o.kill !== false) {
      const onNode0 = fleet.agents.filter((a) => a.urlIndex === 0 && a.ready).map((a) => a.id);
      await c.kill(0);
      log(`node 0 killed (${onNode0.length} agents were on it)`);
      const during = Promise.all(onNode0.map((id) => operator.command(id, "ping", o.commandTimeoutMs)));
      await fleet.waitConnected(o.agents, 60_000);
      log("every agent reconnected");
      commands.push(...(await during));
      await c.restart(0);
      log("node 0 restarted");
      await Bun.sleep(2000);
    }

    // Rolling restart: each node stopped and started in turn, commands to every agent meanwhile.
    for (let i = 0; i < (o.rolling === false ? 0 : nodes); i++) {
      const onIt = fleet.agents.filter((a) => a.urlIndex === i && a.ready).map((a) => a.id);
      agentsOnStoppedNodes += onIt.length;
      await c.stopNode(i);
      const cmds = Promise.all(onIt.slice(0, 5).map((id) => operator.command(id, "ping", o.commandTimeoutMs)));
      await c.restart(i);
      await fleet.waitConnected(o.agents, 60_000);
      commands.push(...(await cmds));
      log(`rolling restart: node ${i} back, fleet connected`);
    }

    // Drain: no new events; every outbox empty; the consumers caught up. A QoS 1 message
    // delivered to a consumer whose node then went away is redelivered after the broker's ack
    // wait (NATS: 30 s), so wait past that before calling anything lost.
    fleet.quiesce();
    const until = Date.now() + 45_000;
    for (;;) {
      const s = fleet.snapshot();
      if ((s.outboxPending === 0 && observers.every((ob) => ob.distinct >= s.eventsGenerated) && (dashboard === undefined || dashboard.events.size >= s.eventsGenerated)) || Date.now() > until) break;
      await Bun.sleep(200);
    }
    // One status refresh after the last disruption: NATS 2.9 acknowledged births whose
    // retained copy it failed to store while a node was down, and the agents' refresh repairs them.
    await Bun.sleep(STATUS_REFRESH_S * 1000 + 1000);
    const retained: RetainedView[] = [];
    for (let i = 0; i < nodes; i++) retained.push(await readRetained(c, i));
    const stats = fleet.snapshot();
    const currentNode = new Map(fleet.agents.map((a) => [a.id, a.urlIndex]));
    const lastBirth = new Map(fleet.agents.map((a) => [a.id, a.lastBirth ?? ""]));
    return {
      ids,
      stats,
      maxOutageMs: Math.max(0, ...stats.outagesMs),
      promisedMs: promisedReconnectMs(nodes, o),
      observers: observers.map((ob, k) => ({ node: k + 1, distinct: ob.distinct, raw: ob.raw, ids: new Set(ob.seen.keys()) })),
      generated: stats.eventsGenerated,
      commands,
      retained,
      // A copy: the fleet's clean stop below publishes every agent's offline status to it.
      ...(dashboard ? { dashboard: { status: new Map(dashboard.status), events: new Set(dashboard.events) } } : {}),
      agentsOnStoppedNodes,
      currentNode,
      lastBirth,
    };
  } finally {
    await fleet.stop();
    await dash?.close();
    await op?.close();
    for (const ob of observers) await ob.close();
  }
}
