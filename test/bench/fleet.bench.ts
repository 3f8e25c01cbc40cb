/**
 * Fleet benchmark: 10,000 simulated agents (test/support/fleet-sim.ts, in worker
 * processes) on a three-node NATS JetStream cluster (MQTT 3.1.1 gateway, persistent sessions)
 * and, in the same run, on a single Mosquitto (MQTT 5, persistent sessions), each agent
 * publishing its retained reader health every 10 s and an event (with an eventId, through an
 * outbox kept until PUBACK) every 60 s. Then, on each broker, twice:
 *   1. `kill -9` of one node (Mosquitto: of the broker, restarted 5 s later) with the agent's
 *      jittered backoff (agent/service/backoff.ts, the agent's default 1 s .. 60 s);
 *   2. the node brought back, the same fleet switched to the backoff's steps without jitter,
 *      and another node killed (one whose agents did not move in 1.): the baseline for the
 *      reconnect curve.
 * During each outage an operator on a surviving node sends `ping` to agents that were on the
 * killed node, with a timeout and one retry of the same id.
 *
 * Figures, each against its target:
 *   - agents reconnected within 60 s of the kill: 100%;
 *   - reconnects per second, peak, jittered vs the no-jitter baseline: the jitter must lower it;
 *   - events lost and duplicated (raw, before de-duplication by eventId): 0 lost;
 *   - commands sent during the outage answered within their timeout plus one retry: all;
 *   - broker and agent-side (simulator workers) CPU seconds and peak RSS.
 * Shared 2-core machine: the figures are noisy and the simulator's own CPU competes with the
 * brokers'.
 *
 * When the NATS cluster cannot carry the whole fleet here, that is printed as a missed target with
 * the broker's own errors, and the failover is measured again at --nats-fallback agents.
 *
 * Usage: bun test/bench/fleet.bench.ts [--agents 10000] [--workers 2] [--only nats|mosquitto] [--nats-fallback 2000]
 */
import { readFileSync } from "node:fs";
import { startMosquitto } from "../support/mosquitto.ts";
import { NatsCluster } from "../support/nats-cluster.ts";
import { EventObserver, type MqttProtocol, SimFleetPool, SimOperator, type CommandOutcome } from "../support/fleet-sim.ts";

const args = process.argv.slice(2);
const opt = (name: string, d: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : d);
const AGENTS = Number(opt("--agents", "10000"));
const WORKERS = Number(opt("--workers", "2"));
const ONLY = opt("--only", "");
/** A second NATS run at this many agents (0: none), measured when the full fleet was not carried here. */
const NATS_FALLBACK = Number(opt("--nats-fallback", "2000"));
/** New connections per second while the NATS fleet starts. */
const NATS_RAMP = Number(opt("--nats-ramp", "150"));
const HEALTH_S = 10;
const EVENT_S = 60;
const WINDOW_S = 60;
const CMD_TIMEOUT_MS = 15_000;
const COMMANDS = 30;

const lines: string[] = [];
const say = (s: string) => {
  console.log(s);
  lines.push(s);
};
const missed: string[] = [];
let current = "";
const verdict = (ok: boolean) => {
  if (!ok) missed.push(current);
  return ok ? "meets target" : "MISSES target";
};

// ---- process figures from /proc
function cpuS(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}
function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}
/** CPU seconds and peak RSS of a changing set of processes (a restarted node is a new pid). */
class ProcMeter {
  private cpuDone = 0;
  private readonly last = new Map<number, number>();
  peakRssMb = 0;
  private timer: ReturnType<typeof setInterval>;
  constructor(private readonly pids: () => number[]) {
    this.timer = setInterval(() => this.sample(), 1000);
  }
  sample(): void {
    let rss = 0;
    const now = new Set(this.pids());
    for (const pid of now) {
      this.last.set(pid, cpuS(pid) || this.last.get(pid) || 0);
      rss += rssMb(pid);
    }
    for (const [pid, c] of this.last) if (!now.has(pid)) (this.cpuDone += c), this.last.delete(pid);
    this.peakRssMb = Math.max(this.peakRssMb, rss);
  }
  cpu(): number {
    this.sample();
    return this.cpuDone + [...this.last.values()].reduce((a, b) => a + b, 0);
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

interface Broker {
  name: string;
  protocol: MqttProtocol;
  urls: string[];
  nodes: number;
  pids(): number[];
  /** Kills node i (kill -9); for a single broker also restarts it after `downMs`. */
  kill(i: number): Promise<void>;
  restart(i: number): Promise<void>;
  stop(): Promise<void>;
  /** The node the operator and the observer use (never killed). */
  safeNode: number;
  /** Nodes killed in the jittered and the baseline experiment. */
  victims: [number, number];
  rampPerS: number;
  /** Lines that say why the broker struggled (from its logs). */
  diagnose?(): string[];
}

interface Experiment {
  label: string;
  lost: number;
  withinWindow: number;
  backS: number;
  peak: number;
  curve: number[];
  commands: CommandOutcome[];
}

async function experiment(b: Broker, pool: SimFleetPool, op: SimOperator, victim: number, label: string, AGENTS: number): Promise<Experiment> {
  const before = await pool.snapshot();
  const killAt = Date.now();
  await b.kill(victim);
  // Agents whose first URL was the victim (i modulo the node count) were on it, unless a reconnect moved them.
  const targets = Array.from({ length: COMMANDS }, (_, k) => `sim-${String((k * 37 * b.nodes + victim) % AGENTS).padStart(5, "0")}`).filter((id) => Number(id.slice(4)) % b.nodes === victim);
  const cmds = Promise.all(targets.map(async (id, k) => (await Bun.sleep(k * 100), op.command(id, "ping", CMD_TIMEOUT_MS))));
  let s = before;
  let backAt = 0;
  while (Date.now() - killAt < WINDOW_S * 1000) {
    await Bun.sleep(500);
    s = await pool.snapshot();
    const lostNow = s.disconnects.filter((t) => t >= killAt).length;
    if (lostNow > 0 && s.connected >= AGENTS) {
      backAt = Date.now();
      break;
    }
  }
  const lost = s.disconnects.filter((t) => t >= killAt).length;
  const withinWindow = s.connected;
  const curve: number[] = [];
  for (const t of s.connects) if (t >= killAt) curve[Math.floor((t - killAt) / 1000)] = (curve[Math.floor((t - killAt) / 1000)] ?? 0) + 1;
  for (let i = 0; i < curve.length; i++) curve[i] ??= 0;
  const commands = await cmds;
  if (b.nodes > 1) await b.restart(victim);
  // Let the fleet settle before the next experiment.
  await pool.waitConnected(AGENTS, 60_000).catch(() => undefined);
  return { label, lost, withinWindow, backS: backAt ? (backAt - killAt) / 1000 : NaN, peak: Math.max(0, ...curve), curve, commands };
}

async function runOn(b: Broker, AGENTS: number): Promise<void> {
  current = `${b.name} with ${AGENTS} agents`;
  const ids = Array.from({ length: AGENTS }, (_, i) => `sim-${String(i).padStart(5, "0")}`);
  const brokerMeter = new ProcMeter(() => b.pids());
  let pool: SimFleetPool | undefined;
  let op: SimOperator | undefined;
  let obs: EventObserver | undefined;
  try {
    obs = await EventObserver.connect(b.urls[b.safeNode]!, b.protocol, "bench-observer");
    op = await SimOperator.connect(b.urls[b.safeNode]!, b.protocol, "operator-bench");
    const t0 = Date.now();
    pool = await SimFleetPool.start({ urls: b.urls, protocol: b.protocol, ids, workers: WORKERS, healthIntervalS: HEALTH_S, eventIntervalS: EVENT_S, connectRatePerS: b.rampPerS / WORKERS, persistent: true, sessionExpiryS: 3600, connectTimeoutMs: 30_000, keepaliveS: 60, reconnectMinMs: 1000, reconnectMaxMs: 60_000, jitter: true, lifetimeS: 1200 });
    const p = pool;
    const agentMeter = new ProcMeter(() => p.pids());
    try {
      const ramp = await pool.waitConnected(AGENTS, (AGENTS / b.rampPerS) * 1000 + 60_000).then(
        () => undefined,
        async () => pool!.snapshot(),
      );
      const rampS = (Date.now() - t0) / 1000;
      if (ramp) {
        const timeline = [...ramp.connects.map((t) => [t, 1] as const), ...ramp.disconnects.map((t) => [t, -1] as const)].sort((x, y) => x[0] - y[0]);
        let now = 0;
        let peak = 0;
        let peakAt = t0;
        for (const [t, d] of timeline) if ((now += d) > peak) [peak, peakAt] = [now, t];
        say(`${b.name}: ${AGENTS} simulated agents (${WORKERS} worker processes), MQTT ${b.protocol}, persistent sessions, ramp ${b.rampPerS}/s: ${ramp.connected} of ${AGENTS} connected after ${rampS.toFixed(0)} s (at most ${peak} at once, ${((peakAt - t0) / 1000).toFixed(0)} s in; ${ramp.failedAttempts} failed connection attempts)   target ${AGENTS} connected  ${verdict(false)}`);
        if (b.diagnose) for (const l of b.diagnose()) say(`  ${l}`);
        say(`  broker CPU ${brokerMeter.cpu().toFixed(0)} s, peak RSS ${brokerMeter.peakRssMb.toFixed(0)} MB (all nodes); agent side (simulator) CPU ${agentMeter.cpu().toFixed(0)} s, peak RSS ${agentMeter.peakRssMb.toFixed(0)} MB; over ${rampS.toFixed(0)} s; the kill was not measured at this size`);
        return;
      }
      // One full health period with the whole fleet: does the broker carry it?
      const h0 = await pool.snapshot();
      await Bun.sleep(HEALTH_S * 1000);
      const h1 = await pool.snapshot();
      const healthRate = (h1.healthPublished - h0.healthPublished) / HEALTH_S;
      const jittered = await experiment(b, pool, op, b.victims[0], "jittered backoff", AGENTS);
      await pool.set({ jitter: false });
      const baseline = await experiment(b, pool, op, b.victims[1], "no-jitter baseline", AGENTS);
      await pool.set({ jitter: true });
      // Drain: no new events, every outbox empty, the observer caught up.
      await pool.quiesce();
      let s = await pool.snapshot();
      for (let k = 0; k < 60 && (s.outboxPending > 0 || obs.distinct < s.eventsGenerated); k++) {
        await Bun.sleep(500);
        s = await pool.snapshot();
      }
      await Bun.sleep(2000);
      s = await pool.snapshot();
      const eventsLost = s.eventsGenerated - obs.distinct;
      const dup = obs.raw - obs.distinct;
      const agentCpu = agentMeter.cpu();
      const brokerCpu = brokerMeter.cpu();
      const elapsed = (Date.now() - t0) / 1000;

      say(`${b.name}: ${AGENTS} simulated agents (${WORKERS} worker processes), MQTT ${b.protocol}, persistent sessions, health every ${HEALTH_S} s, an event every ${EVENT_S} s each; all connected in ${rampS.toFixed(0)} s (ramp ${b.rampPerS}/s)`);
      say(`  steady state before the kill: ${h1.connected} connected, health acknowledged at ${healthRate.toFixed(0)} msg/s of the fleet's ${(AGENTS / HEALTH_S).toFixed(0)} msg/s`);
      for (const e of [jittered, baseline]) {
        const pct = (100 * e.withinWindow) / AGENTS;
        say(`  ${e.label}: ${e.lost} agents lost their connection; ${pct.toFixed(1)}% of all agents connected within ${WINDOW_S} s of the kill${Number.isNaN(e.backS) ? "" : ` (all back after ${e.backS.toFixed(1)} s)`}   target 100%  ${verdict(e.withinWindow >= AGENTS)}`);
        say(`    reconnects per second after the kill: ${e.curve.slice(0, 30).join(" ")}${e.curve.length > 30 ? " ..." : ""}`);
      }
      const bothBack = jittered.withinWindow >= AGENTS && baseline.withinWindow >= AGENTS;
      say(`  reconnect peak: ${jittered.peak}/s with jitter vs ${baseline.peak}/s without (same run, same fleet)   target: lower with jitter, every agent back in both  ${verdict(bothBack && jittered.peak < baseline.peak)}`);
      say(`  events lost ${eventsLost}, duplicated ${dup} (raw deliveries ${obs.raw} for ${obs.distinct} distinct eventIds of ${s.eventsGenerated} generated; ${s.eventsResent} resent after a lost PUBACK)   target 0 lost, duplicates removed by eventId  ${verdict(eventsLost === 0)}`);
      const all = [...jittered.commands, ...baseline.commands];
      const answered = all.filter((c) => c.answered).length;
      const retried = all.filter((c) => c.retried).length;
      const onRetry = all.filter((c) => c.retried && c.answered).length;
      const maxMs = Math.max(0, ...all.map((c) => c.ms));
      say(`  commands sent during the outages: ${answered} of ${all.length} answered within ${CMD_TIMEOUT_MS / 1000} s + one retry (${retried} timed out once, ${onRetry} of them answered on the retry with the same id; slowest ${(maxMs / 1000).toFixed(1)} s)   target all  ${verdict(answered === all.length && all.length > 0)}`);
      if (b.diagnose) for (const l of b.diagnose()) say(`  ${l}`);
      say(`  broker CPU ${brokerCpu.toFixed(0)} s, peak RSS ${brokerMeter.peakRssMb.toFixed(0)} MB (all nodes); agent side (simulator) CPU ${agentCpu.toFixed(0)} s, peak RSS ${agentMeter.peakRssMb.toFixed(0)} MB; over ${elapsed.toFixed(0)} s`);
    } finally {
      agentMeter.stop();
    }
  } finally {
    brokerMeter.stop();
    await pool?.stop();
    await op?.close();
    await obs?.close();
    await b.stop();
  }
}

async function nats(): Promise<Broker> {
  // The MQTT settings of deploy/nats/nats-server.conf: R3 file streams (stream_replicas 3, set
  // by the harness) and R3 file consumers, one per agent's command subscription.
  const c = await NatsCluster.start({ extraConfig: "max_connections: 20000" });
  return {
    name: "NATS JetStream 3-node cluster",
    protocol: "3.1.1",
    urls: c.urls,
    nodes: 3,
    pids: () => c.nodes.map((_, i) => c.pid(i)).filter((p): p is number => p !== undefined),
    kill: (i) => c.kill(i),
    restart: (i) => c.restart(i),
    stop: () => c.stop(),
    // Agents of a killed node move to the next URL: the baseline kills the node nobody moved
    // to, so both experiments move the same third of the fleet; the operator and observer sit
    // on the node never killed.
    safeNode: 1,
    victims: [0, 2],
    rampPerS: NATS_RAMP,
    diagnose: () => {
      const count = (re: RegExp) => c.nodes.reduce((s, n) => s + (n.log.match(re)?.length ?? 0), 0);
      const timeouts = count(/timeout for request type/g);
      const persist = count(/unable to persist session/g);
      const inUse = count(/another session is in use/g);
      return timeouts + persist + inUse === 0 ? [] : [`NATS logs (last 64 KiB per node): ${timeouts} JetStream requests timed out (the gateway then closes that client), ${persist} sessions could not be persisted, ${inUse} client ids still held by a session`];
    },
  };
}

async function mosquitto(): Promise<Broker> {
  // Sessions and subscriptions saved every second (the default is every 30 minutes): a kill -9
  // otherwise loses every session made since the last save, and with it what consumers were
  // subscribed to (measured: 461 of 9,084 events lost to the consumer). deploy/brokers.md.
  const m = await startMosquitto({ config: "plain", extraConfig: "autosave_interval 1" });
  return {
    name: "Mosquitto single broker",
    protocol: "5",
    urls: [m.url],
    nodes: 1,
    pids: () => [m.pid()].filter((p): p is number => p !== undefined),
    kill: async () => {
      await m.kill();
      await Bun.sleep(5000);
      await m.restart();
    },
    restart: () => m.restart(),
    stop: () => m.close(),
    safeNode: 0,
    victims: [0, 0],
    rampPerS: 1000,
  };
}

say(`fleet benchmark (shared 2-core machine: figures are noisy; the simulator's CPU competes with the brokers')`);
if (ONLY !== "mosquitto") {
  await runOn(await nats(), AGENTS);
  // What this machine's cluster does carry, to show the failover itself at a size it holds.
  if (NATS_FALLBACK > 0 && NATS_FALLBACK < AGENTS) await runOn(await nats(), NATS_FALLBACK);
}
if (ONLY !== "nats") await runOn(await mosquitto(), AGENTS);
const where = [...new Set(missed)];
say(
  where.length === 0
    ? "every target met"
    : `targets not reached on this shared 2-core machine: ${where.join("; ")}. Why: every agent's persistent session on the NATS 2.9 MQTT gateway is a JetStream consumer replicated on all three nodes (its own Raft group), and every QoS 1 message an agent publishes (status, health, events) is stored in one interest-retention stream whose nodes each check it against the consumers' filters one by one (CPU profile of a node at 4,000 sessions: a sixth of its time storing messages, most of that in that subject matching), so the work grows with agents times messages. With three nodes on two cores, set-up slowed until JetStream requests took over 4 s; the gateway then closes that client, and its retries add to the load. Measured here: the collapse came at about 5,200 sessions (file consumers, 150/s), 7,200 (consumer_memory_storage, 150/s) and 8,200 (memory, 40/s), and at 2,900 with the dashboard's subscriber taking the health and status messages; deploy/brokers.md`,
);
process.exit(0);
