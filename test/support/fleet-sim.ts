/**
 * The fleet simulator: many simulated agents in one process, each speaking
 * the agent's contract with the agent's own topics (agent/service/topics.ts), payload builders
 * (reader health from ReaderHealthTracker, card events from payloads.ts), birth and will
 * (StatusOnline/StatusOffline of mqtt-link.ts) and backoff (agent/service/backoff.ts), over
 * MQTT 5 or 3.1.1, with persistent sessions, to a list of broker URLs tried in rotation.
 *
 * Each simulated agent:
 *   - connects with the agent's jittered backoff (or, as a benchmark baseline, the same steps
 *     without jitter), moving to the next URL after every failed or lost connection;
 *   - keeps a persistent session (3.1.1 clean=false, MQTT 5 session expiry) and subscribes to
 *     its commands on every connect, as the agent does;
 *   - publishes a retained `online` birth on every connect (again every `statusRefreshS`), has
 *     a retained `offline` will, and publishes every reader's retained health every
 *     `healthIntervalS`;
 *   - generates events with an `eventId` (payload and, in MQTT 5, the `event-id` user property)
 *     into an outbox sent in order, one at a time, each kept until its PUBACK (so a lost
 *     connection means a resend: duplicates are possible, losses are not);
 *   - answers `ping` (the agent's `{ pong, agentId }`) and `diagnose` (a simulated reader
 *     diagnosis) on the command's reply topic, a repeated id with the first answer again,
 *     reading the route and stamping the reply with the agent's own command-wire.ts functions.
 * Bounded: at most MAX_SIM_AGENTS per process and MAX_SIM_LIFETIME_S of life (then it stops
 * itself); loopback broker URLs only. SimFleetPool spreads a fleet over worker processes
 * (test/support/fleet-sim-worker.ts) for 10,000 connections.
 */
import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from "mqtt";
import { backoffDelayMs } from "../../agent/service/backoff.ts";
import { buildCommandPublish, type CommandMessage, readCommandRouting, replyCorrelation, stampReply } from "../../agent/service/command-wire.ts";
import { ReaderHealthTracker } from "../../agent/service/health.ts";
import type { StatusOffline, StatusOnline } from "../../agent/service/mqtt-link.ts";
import { cardEvent } from "../../agent/service/payloads.ts";
import { agentTopics, type AgentTopics } from "../../agent/service/topics.ts";

export type MqttProtocol = "5" | "3.1.1";

/** Most simulated agents one process runs (each is one connection and one file descriptor). */
export const MAX_SIM_AGENTS = 12_000;
/** Longest life of a simulated fleet, after which it stops itself. */
export const MAX_SIM_LIFETIME_S = 1800;

/** Throws unless every URL is mqtt(s):// on a loopback address. */
export function assertLoopbackUrls(urls: readonly string[]): void {
  if (urls.length === 0) throw new RangeError("fleet-sim: no broker URL");
  for (const u of urls) {
    const url = new URL(u);
    if (url.protocol !== "mqtt:" && url.protocol !== "mqtts:") throw new RangeError(`fleet-sim: ${u} is not mqtt:// or mqtts://`);
    const host = url.hostname.replace(/^\[|\]$/g, "");
    if (!/^127\.\d+\.\d+\.\d+$/.test(host) && host !== "::1" && host !== "localhost") throw new RangeError(`fleet-sim: ${u} is not a loopback address: the simulator talks to test brokers only`);
  }
}

// ---------------------------------------------------------------------------------------------
// The command wire form, both protocols. The operator's side is agent/service/command-wire.ts
// (the CLI's and the dashboard's); the simulated agent's side is its own, small copy of the
// agent's routing (the agent's dispatcher carries more than a simulator needs). MQTT 5: Response Topic, Correlation Data and Message
// Expiry are properties. 3.1.1: the command's payload carries
// `reply: { topic, correlation (base64), expiresAt (RFC 3339) }` and every reply payload
// carries `correlation` (the same base64).

export interface WireMessage {
  topic: string;
  payload: string;
  properties?: { responseTopic?: string; correlationData?: Buffer; messageExpiryInterval?: number; userProperties?: Record<string, string | string[]> };
}

export const wire = {
  /** The operator's command message: the shared wire module's (agent/service/command-wire.ts), as the operator CLI and the dashboard send it. */
  command(protocol: MqttProtocol, topics: AgentTopics, name: string, requester: string, body: Record<string, unknown>, correlation: Buffer, expiryS: number): WireMessage {
    const p = buildCommandPublish(protocol, { prefix: topics.prefix, agentId: topics.agentId, command: name, requester, body, correlation: new Uint8Array(correlation), expirySeconds: expiryS });
    return { topic: p.topic, payload: p.payload, ...(p.properties ? { properties: { responseTopic: p.properties.responseTopic, correlationData: p.properties.correlationData, messageExpiryInterval: p.properties.messageExpiryInterval } } : {}) };
  },
  /** The operator side: a reply and its correlation (command-wire.ts's replyCorrelation). */
  parseReply(protocol: MqttProtocol, payload: Buffer, properties: { correlationData?: Buffer } | undefined): { reply: Record<string, unknown>; correlation: Buffer | undefined } {
    const reply = JSON.parse(payload.toString("utf8")) as Record<string, unknown>;
    const c = replyCorrelation(protocol, { json: reply, correlationData: properties?.correlationData ? new Uint8Array(properties.correlationData) : undefined });
    delete reply.correlation;
    return { reply, correlation: c ? Buffer.from(c) : undefined };
  },
};

/** mqtt.js options for a protocol: version, persistent session. */
export function sessionOptions(protocol: MqttProtocol, persistent: boolean, sessionExpiryS = 3600): Pick<IClientOptions, "protocolVersion" | "clean" | "properties"> {
  if (protocol === "5") return { protocolVersion: 5, clean: !persistent, ...(persistent ? { properties: { sessionExpiryInterval: sessionExpiryS } } : {}) };
  return { protocolVersion: 4, clean: !persistent };
}

// ---------------------------------------------------------------------------------------------

export interface SimFleetOptions {
  urls: string[];
  protocol: MqttProtocol;
  /** Agent ids (one simulated agent each). */
  ids: string[];
  prefix?: string;
  /** Index into urls where agent i connects first (default: i modulo the URL count). */
  firstUrl?: (i: number) => number;
  readers?: string[];
  healthIntervalS?: number;
  /** Publish the retained birth again this often while connected (the agent's mqtt.status_refresh_s; 0: never). */
  statusRefreshS?: number;
  /** Each agent adds one card event to its outbox this often (0: none). */
  eventIntervalS?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** false: the backoff's steps without jitter (the benchmark's baseline). Default true. */
  jitter?: boolean;
  persistent?: boolean;
  sessionExpiryS?: number;
  keepaliveS?: number;
  connectTimeoutMs?: number;
  /** New connections per second while the fleet starts (default 500). */
  connectRatePerS?: number;
  /** Stops itself after this (at most MAX_SIM_LIFETIME_S). */
  lifetimeS?: number;
  /** username/password per agent (brokers with per-agent users). */
  credentials?: (id: string) => { username: string; password: string };
  version?: string;
}

export interface SimFleetStats {
  agents: number;
  connected: number;
  /** Epoch ms of every successful connect (CONNACK), first connects included. */
  connects: number[];
  /** Epoch ms of every lost connection. */
  disconnects: number[];
  /** Per lost connection: ms from losing it to being connected again (birth acknowledged). */
  outagesMs: number[];
  /** Connect attempts that failed (refused, timed out, closed before CONNACK). */
  failedAttempts: number;
  sessionsResumed: number;
  eventsGenerated: number;
  eventsAcked: number;
  eventsResent: number;
  outboxPending: number;
  commandsAnswered: number;
  healthPublished: number;
}

interface OutboxEntry {
  eventId: string;
  payload: string;
  sent: boolean;
}

class SimulatedAgent {
  readonly topics: AgentTopics;
  readonly readers: ReaderHealthTracker[];
  client: MqttClient | undefined;
  ready = false;
  attempt = 0;
  urlIndex: number;
  outbox: OutboxEntry[] = [];
  inflight = false;
  answers = new Map<string, string>();
  timer: ReturnType<typeof setTimeout> | undefined;
  downAt: number | undefined;
  /** connectedAt of the last birth the broker acknowledged. */
  lastBirth: string | undefined;
  birth: StatusOnline | undefined;
  readonly startedAt = new Date().toISOString();
  seq = 0;

  constructor(
    readonly fleet: SimFleet,
    readonly id: string,
    index: number,
  ) {
    const o = fleet.opts;
    this.topics = agentTopics(o.prefix ?? "mrtd/v1", id);
    this.urlIndex = (o.firstUrl?.(index) ?? index) % o.urls.length;
    this.readers = (o.readers ?? ["Virtual PCD 00 00"]).map((r) => {
      const t = new ReaderHealthTracker(r);
      t.connected = true;
      return t;
    });
  }

  connect(): void {
    const f = this.fleet;
    if (!f.running) return;
    const o = f.opts;
    const url = new URL(o.urls[this.urlIndex]!);
    const will: StatusOffline = { state: "offline", agentId: this.id, reason: "connection-lost", startedAt: this.startedAt };
    const options: IClientOptions = {
      protocol: url.protocol === "mqtts:" ? "mqtts" : "mqtt",
      host: url.hostname.replace(/^\[|\]$/g, ""),
      port: Number(url.port),
      clientId: this.id,
      ...sessionOptions(o.protocol, o.persistent ?? true, o.sessionExpiryS),
      keepalive: o.keepaliveS ?? 60,
      reconnectPeriod: 0,
      connectTimeout: o.connectTimeoutMs ?? 10_000,
      resubscribe: false,
      writeCache: false,
      will: { topic: this.topics.status, payload: Buffer.from(JSON.stringify(will)), qos: 1, retain: true },
      ...(o.credentials ? o.credentials(this.id) : {}),
    };
    const client = mqtt.connect(options);
    this.client = client;
    let closed = false;
    client.on("connect", (connack) => {
      void this.onConnect(client, connack.sessionPresent);
    });
    client.on("message", (topic, payload, packet) => this.onCommand(topic, payload, packet.properties, packet.retain));
    client.on("error", () => undefined);
    client.on("close", () => {
      if (closed) return;
      closed = true;
      client.end(true);
      if (this.client !== client) return;
      this.client = undefined;
      if (this.ready) {
        this.ready = false;
        f.stats.connected--;
        this.downAt = Date.now();
        f.stats.disconnects.push(this.downAt);
      } else f.stats.failedAttempts++;
      this.inflight = false;
      this.urlIndex = (this.urlIndex + 1) % o.urls.length;
      this.schedule();
    });
  }

  schedule(): void {
    const f = this.fleet;
    if (!f.running) return;
    this.attempt++;
    const o = f.opts;
    const delay = backoffDelayMs(this.attempt, o.reconnectMinMs ?? 1000, o.reconnectMaxMs ?? 60_000, o.jitter === false ? () => 1 : Math.random);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.connect();
    }, delay);
  }

  async onConnect(client: MqttClient, sessionPresent: boolean): Promise<void> {
    const f = this.fleet;
    try {
      if (sessionPresent) f.stats.sessionsResumed++;
      // On every connect, as the agent does (agent/service/mqtt-link.ts): NATS 2.9 resumed
      // sessions whose command subscription then delivered nothing until it was made again.
      const sub = f.opts.protocol === "5" ? { qos: 1 as const, nl: true, rap: true, rh: 2 } : { qos: 1 as const };
      await client.subscribeAsync(this.topics.cmdFilter, sub);
      const birth: StatusOnline = { state: "online", agentId: this.id, version: f.opts.version ?? "0.1.0-sim", readers: this.readers.map((r) => r.reader), startedAt: this.startedAt, connectedAt: new Date().toISOString() };
      await client.publishAsync(this.topics.status, JSON.stringify(birth), { qos: 1, retain: true });
      if (this.client !== client) return;
      this.lastBirth = birth.connectedAt;
      this.birth = birth;
      this.ready = true;
      this.attempt = 0;
      f.stats.connected++;
      f.stats.connects.push(Date.now());
      if (this.downAt !== undefined) f.stats.outagesMs.push(Date.now() - this.downAt);
      this.downAt = undefined;
      this.pump();
    } catch {
      client.end(true);
    }
  }

  /** A command, routed and answered with the agent's own wire code (readCommandRouting, stampReply). */
  onCommand(topic: string, payload: Buffer, properties: { responseTopic?: string; correlationData?: Buffer; messageExpiryInterval?: number } | undefined, retain: boolean): void {
    const f = this.fleet;
    const name = this.topics.commandOf(topic);
    if (name === undefined || retain) return;
    const now = Date.now();
    const msg: CommandMessage = { payload: new Uint8Array(payload), responseTopic: properties?.responseTopic, correlationData: properties?.correlationData ? new Uint8Array(properties.correlationData) : undefined, messageExpiryIntervalS: properties?.messageExpiryInterval, receivedAt: now };
    const routing = readCommandRouting(f.opts.protocol, msg, this.topics, now);
    if (routing.kind === "drop") return;
    let reply: string;
    if (routing.kind === "refuse") {
      reply = JSON.stringify({ ...(routing.id !== undefined ? { id: routing.id } : {}), command: name, kind: "result", ok: false, error: routing.error });
    } else {
      let body: unknown;
      try {
        body = JSON.parse(payload.toString("utf8"));
      } catch {
        body = undefined;
      }
      const id = typeof body === "object" && body !== null && typeof (body as { id?: unknown }).id === "string" ? (body as { id: string }).id : undefined;
      const cached = id !== undefined ? this.answers.get(id) : undefined;
      reply = cached ?? JSON.stringify(id === undefined ? { kind: "result", ok: false, error: { code: "MISSING_FIELD", message: "id is required" } } : simulatedResult(this, name, id));
      if (id !== undefined && cached === undefined) {
        this.answers.set(id, reply);
        if (this.answers.size > 64) this.answers.delete(this.answers.keys().next().value!);
      }
    }
    const m = stampReply(routing.route, reply, Date.now());
    if (!m) return; // the requester stopped waiting
    const opts: IClientPublishOptions = { qos: 1, ...(m.properties ? { properties: m.properties } : {}) };
    this.client?.publishAsync(m.topic, m.payload, opts).then(
      () => f.stats.commandsAnswered++,
      () => undefined,
    );
  }

  /** The agent's status refresh: this connection's birth again, retained. */
  refreshStatus(): void {
    const c = this.client;
    if (!c || !this.ready || !this.birth) return;
    c.publishAsync(this.topics.status, JSON.stringify(this.birth), { qos: 1, retain: true }).catch(() => undefined);
  }

  publishHealth(): void {
    const c = this.client;
    if (!c || !this.ready) return;
    const f = this.fleet;
    for (const r of this.readers) {
      this.seq++;
      r.recordRead(this.seq % 13 !== 0, { failureClass: "RF_TIMEOUT", apduMs: [3 + (this.seq % 5), 7] });
      c.publishAsync(this.topics.health(r.reader), JSON.stringify(r.snapshot(this.id)), { qos: 1, retain: true }).then(
        () => f.stats.healthPublished++,
        () => undefined,
      );
    }
  }

  addEvent(): void {
    const f = this.fleet;
    const eventId = crypto.randomUUID();
    const r = this.readers[0]!.reader;
    this.seq++;
    const e = { ...cardEvent(this.id, r, this.seq % 2 ? "inserted" : "removed", this.seq % 2 ? "3B8880010000000000000000" : undefined), eventId };
    this.outbox.push({ eventId, payload: JSON.stringify(e), sent: false });
    f.stats.eventsGenerated++;
    this.pump();
  }

  /** Sends the outbox's head (one at a time, in order) until its PUBACK; a lost connection resends it. */
  pump(): void {
    const c = this.client;
    const head = this.outbox[0];
    if (!c || !this.ready || this.inflight || !head) return;
    const f = this.fleet;
    this.inflight = true;
    if (head.sent) f.stats.eventsResent++;
    head.sent = true;
    const opts: IClientPublishOptions = { qos: 1, ...(f.opts.protocol === "5" ? { properties: { userProperties: { "event-id": head.eventId } } } : {}) };
    c.publishAsync(this.topics.events, head.payload, opts).then(
      () => {
        if (this.client !== c) return;
        this.inflight = false;
        if (this.outbox[0] === head) {
          this.outbox.shift();
          f.stats.eventsAcked++;
        }
        this.pump();
      },
      () => {
        if (this.client === c) this.inflight = false;
      },
    );
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const c = this.client;
    this.client = undefined;
    if (c) {
      if (this.ready) {
        const off: StatusOffline = { state: "offline", agentId: this.id, reason: "shutdown", startedAt: this.startedAt, at: new Date().toISOString() };
        await Promise.race([c.publishAsync(this.topics.status, JSON.stringify(off), { qos: 1, retain: true }).catch(() => undefined), Bun.sleep(2000)]);
      }
      await Promise.race([c.endAsync().catch(() => undefined), Bun.sleep(2000)]);
      c.end(true);
    }
    if (this.ready) this.fleet.stats.connected--;
    this.ready = false;
  }
}

/** A simulated command result: what the agent answers ping with, a diagnose-like summary otherwise. */
function simulatedResult(a: SimulatedAgent, name: string, id: string): Record<string, unknown> {
  if (name === "ping") return { id, command: "ping", kind: "result", ok: true, result: { pong: true, agentId: a.id } };
  if (name === "diagnose") return { id, command: "diagnose", kind: "result", ok: true, result: { simulated: true, reader: a.readers[0]!.reader, verdict: "good", exchanges: 200 } };
  return { id, command: name, kind: "result", ok: false, error: { code: "NOT_SUPPORTED", message: `the simulator answers ping and diagnose, not ${name}` } };
}

export class SimFleet {
  opts: SimFleetOptions;
  readonly agents: SimulatedAgent[];
  running = false;
  readonly stats: SimFleetStats;
  private timers: Array<ReturnType<typeof setInterval> | ReturnType<typeof setTimeout>> = [];

  constructor(opts: SimFleetOptions) {
    assertLoopbackUrls(opts.urls);
    if (opts.ids.length > MAX_SIM_AGENTS) throw new RangeError(`fleet-sim: at most ${MAX_SIM_AGENTS} agents per process (asked for ${opts.ids.length}); use SimFleetPool`);
    if ((opts.lifetimeS ?? 600) > MAX_SIM_LIFETIME_S) throw new RangeError(`fleet-sim: lifetime at most ${MAX_SIM_LIFETIME_S} s`);
    this.opts = opts;
    this.agents = opts.ids.map((id, i) => new SimulatedAgent(this, id, i));
    this.stats = { agents: this.agents.length, connected: 0, connects: [], disconnects: [], outagesMs: [], failedAttempts: 0, sessionsResumed: 0, eventsGenerated: 0, eventsAcked: 0, eventsResent: 0, outboxPending: 0, commandsAnswered: 0, healthPublished: 0 };
  }

  /** Starts connecting every agent at connectRatePerS; resolves when all got their first attempt. */
  async start(): Promise<void> {
    this.running = true;
    const o = this.opts;
    this.timers.push(setTimeout(() => void this.stop(), (o.lifetimeS ?? 600) * 1000));
    const rate = o.connectRatePerS ?? 500;
    const t0 = performance.now();
    for (let i = 0; i < this.agents.length; i++) {
      if (!this.running) return;
      const due = (i / rate) * 1000 - (performance.now() - t0);
      if (due > 0) await Bun.sleep(due);
      this.agents[i]!.connect();
    }
    // Periodic work, spread over each period by agent index.
    const healthMs = (o.healthIntervalS ?? 10) * 1000;
    const tick = 250;
    let n = 0;
    this.timers.push(
      setInterval(() => {
        const now = n++ * tick;
        const eventMs = (o.eventIntervalS ?? 0) * 1000;
        const refreshMs = (o.statusRefreshS ?? 0) * 1000;
        const slot = (period: number, i: number) => Math.floor(((i * period) / this.agents.length) / tick) === Math.floor((now % period) / tick);
        for (let i = 0; i < this.agents.length; i++) {
          const a = this.agents[i]!;
          if (slot(healthMs, i)) a.publishHealth();
          if (eventMs > 0 && slot(eventMs, i)) a.addEvent();
          if (refreshMs > 0 && slot(refreshMs, i)) a.refreshStatus();
        }
      }, tick),
    );
  }

  async waitConnected(count = this.agents.length, timeoutMs = 60_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.stats.connected < count) {
      if (Date.now() > until) throw new Error(`fleet-sim: ${this.stats.connected} of ${count} agents connected after ${timeoutMs} ms`);
      await Bun.sleep(100);
    }
  }

  /** Stops generating events (the outboxes keep draining). */
  quiesce(): void {
    this.opts.eventIntervalS = 0;
  }

  snapshot(): SimFleetStats {
    this.stats.outboxPending = this.agents.reduce((s, a) => s + a.outbox.length, 0);
    return { ...this.stats, connects: [...this.stats.connects], disconnects: [...this.stats.disconnects], outagesMs: [...this.stats.outagesMs] };
  }

  agent(id: string): SimulatedAgent | undefined {
    return this.agents.find((a) => a.id === id);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    for (const t of this.timers) {
      clearTimeout(t as ReturnType<typeof setTimeout>);
      clearInterval(t as ReturnType<typeof setInterval>);
    }
    this.timers = [];
    for (let i = 0; i < this.agents.length; i += 500) await Promise.all(this.agents.slice(i, i + 500).map((a) => a.stop()));
  }
}

// ---------------------------------------------------------------------------------------------
// Worker processes: SimFleetPool runs one SimFleet per worker (fleet-sim-worker.ts) and merges
// their figures. Options cross the process boundary as JSON, so the function options
// (firstUrl, credentials) become data here.

export interface PoolOptions extends Omit<SimFleetOptions, "firstUrl" | "credentials"> {
  workers: number;
  /** First URL index of agent i of the whole fleet is firstUrlOffset + i modulo the URL count. */
  firstUrlOffset?: number;
}

type WorkerReply = { type: "stats"; stats: SimFleetStats; seq: number } | { type: "started"; seq: number } | { type: "stopped"; seq: number } | { type: "error"; message: string; seq: number };

export class SimFleetPool {
  private readonly procs: Array<import("bun").Subprocess> = [];
  private readonly waiting = new Map<number, (r: WorkerReply) => void>();
  private seq = 0;
  readonly errors: string[] = [];

  private constructor(readonly opts: PoolOptions) {}

  static async start(opts: PoolOptions): Promise<SimFleetPool> {
    assertLoopbackUrls(opts.urls);
    const pool = new SimFleetPool(opts);
    const n = Math.max(1, Math.min(opts.workers, opts.ids.length));
    const per = Math.ceil(opts.ids.length / n);
    const worker = new URL("./fleet-sim-worker.ts", import.meta.url).pathname;
    const fds = per + 256;
    for (let w = 0; w < n; w++) {
      // Raise the open-files limit for the worker where the hard limit allows (one fd per connection).
      const p = Bun.spawn(["bash", "-c", `ulimit -n ${fds} 2>/dev/null || ulimit -n hard 2>/dev/null; exec "$0" "$@"`, process.execPath, worker], {
        stdin: "ignore",
        stdout: "inherit",
        stderr: "inherit",
        ipc: (m) => pool.onMessage(m as WorkerReply),
        serialization: "json",
      });
      pool.procs.push(p);
    }
    try {
      await Promise.all(
        pool.procs.map((_, w) => {
          const ids = opts.ids.slice(w * per, (w + 1) * per);
          const { workers: _w, firstUrlOffset, ...rest } = opts;
          return pool.call(w, { type: "start", opts: { ...rest, ids, firstUrlIndexBase: (firstUrlOffset ?? 0) + w * per } });
        }),
      );
    } catch (e) {
      await pool.stop();
      throw e;
    }
    return pool;
  }

  private onMessage(m: WorkerReply): void {
    const cb = this.waiting.get(m.seq);
    if (!cb) return;
    this.waiting.delete(m.seq);
    cb(m);
  }

  private call(w: number, msg: Record<string, unknown>, timeoutMs = 600_000): Promise<WorkerReply> {
    const seq = ++this.seq;
    return new Promise((res, rej) => {
      const t = setTimeout(() => {
        this.waiting.delete(seq);
        rej(new Error(`fleet-sim worker ${w}: no answer to ${String(msg.type)}`));
      }, timeoutMs);
      this.waiting.set(seq, (r) => {
        clearTimeout(t);
        if (r.type === "error") rej(new Error(`fleet-sim worker ${w}: ${r.message}`));
        else res(r);
      });
      this.procs[w]!.send({ ...msg, seq });
    });
  }

  pids(): number[] {
    return this.procs.map((p) => p.pid);
  }

  async snapshot(): Promise<SimFleetStats> {
    const all = await Promise.all(this.procs.map((_, w) => this.call(w, { type: "stats" }, 30_000)));
    const out: SimFleetStats = { agents: 0, connected: 0, connects: [], disconnects: [], outagesMs: [], failedAttempts: 0, sessionsResumed: 0, eventsGenerated: 0, eventsAcked: 0, eventsResent: 0, outboxPending: 0, commandsAnswered: 0, healthPublished: 0 };
    for (const r of all) {
      if (r.type !== "stats") continue;
      const s = r.stats;
      for (const k of ["agents", "connected", "failedAttempts", "sessionsResumed", "eventsGenerated", "eventsAcked", "eventsResent", "outboxPending", "commandsAnswered", "healthPublished"] as const) out[k] += s[k];
      for (const t of s.connects) out.connects.push(t);
      for (const t of s.disconnects) out.disconnects.push(t);
      for (const t of s.outagesMs) out.outagesMs.push(t);
    }
    return out;
  }

  async waitConnected(count = this.opts.ids.length, timeoutMs = 120_000): Promise<SimFleetStats> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.snapshot();
      if (s.connected >= count) return s;
      if (Date.now() > until) throw new Error(`fleet-sim: ${s.connected} of ${count} agents connected after ${timeoutMs} ms`);
      await Bun.sleep(500);
    }
  }

  async quiesce(): Promise<void> {
    await Promise.all(this.procs.map((_, w) => this.call(w, { type: "quiesce" }, 30_000)));
  }

  /** Changes every worker's backoff jitter or intervals from now on. */
  async set(opts: Pick<SimFleetOptions, "jitter" | "eventIntervalS" | "healthIntervalS">): Promise<void> {
    await Promise.all(this.procs.map((_, w) => this.call(w, { type: "set", opts }, 30_000)));
  }

  /** Stops every agent and worker (kills a worker that does not stop within 30 s). */
  async stop(): Promise<void> {
    await Promise.all(
      this.procs.map(async (p, w) => {
        if (p.exitCode === null) await this.call(w, { type: "stop" }, 30_000).catch(() => undefined);
        p.kill("SIGKILL");
        await p.exited;
      }),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// The other side: an operator that commands simulated (or real) agents, and an observer that
// counts events by eventId.

export interface CommandOutcome {
  agentId: string;
  id: string;
  /** Answered, on the first try or the retry. */
  answered: boolean;
  /** The first try timed out (the operator's TIMEOUT), then the same id was sent again. */
  retried: boolean;
  ms: number;
  reply?: Record<string, unknown>;
}

/** mqtt.js options for one URL or several tried in rotation on reconnect (`servers`). */
function rotation(url: string | string[]): IClientOptions {
  const urls = typeof url === "string" ? [url] : url;
  assertLoopbackUrls(urls);
  const parsed = urls.map((u) => new URL(u));
  const first = parsed[0]!;
  return {
    protocol: first.protocol === "mqtts:" ? "mqtts" : "mqtt",
    host: first.hostname,
    port: Number(first.port),
    ...(parsed.length > 1 ? { servers: parsed.map((p) => ({ host: p.hostname, port: Number(p.port) })) } : {}),
  };
}

export class SimOperator {
  private readonly waiting = new Map<string, (r: Record<string, unknown>) => void>();
  readonly raw: Array<{ correlation: string; reply: Record<string, unknown> }> = [];

  private constructor(
    readonly client: MqttClient,
    readonly protocol: MqttProtocol,
    readonly requester: string,
    readonly prefix: string,
  ) {}

  /** Connects to `url` (persistent session, reconnecting there every second) and subscribes to its replies. */
  static async connect(url: string | string[], protocol: MqttProtocol, requester: string, opts: { prefix?: string; username?: string; password?: string } = {}): Promise<SimOperator> {
    const prefix = opts.prefix ?? "mrtd/v1";
    const client = await mqtt.connectAsync({ ...rotation(url), clientId: requester, ...sessionOptions(protocol, true), reconnectPeriod: 1000, connectTimeout: 10_000, writeCache: false, ...(opts.username ? { username: opts.username, password: opts.password ?? "" } : {}) });
    const op = new SimOperator(client, protocol, requester, prefix);
    client.on("error", () => undefined); // reconnects on its own; an unhandled "error" would end the process
    client.on("message", (_topic, payload, packet) => {
      try {
        const { reply, correlation } = wire.parseReply(protocol, payload, packet.properties);
        const key = correlation?.toString("hex") ?? "";
        op.raw.push({ correlation: key, reply });
        if (reply.kind === "result") op.waiting.get(key)?.(reply);
      } catch {
        /* not JSON: ignored */
      }
    });
    await client.subscribeAsync(`${prefix}/+/reply/${requester}`, { qos: 1 });
    return op;
  }

  /** Sends one try of command `id`; resolves with the final reply, or undefined after timeoutMs (TIMEOUT). */
  once(agentId: string, name: string, id: string, timeoutMs: number, body: Record<string, unknown> = {}): Promise<Record<string, unknown> | undefined> {
    const correlation = Buffer.from(crypto.getRandomValues(new Uint8Array(16)));
    const key = correlation.toString("hex");
    const m = wire.command(this.protocol, agentTopics(this.prefix, agentId), name, this.requester, { id, ...body }, correlation, Math.ceil(timeoutMs / 1000));
    return new Promise((res) => {
      const t = setTimeout(() => {
        this.waiting.delete(key);
        res(undefined);
      }, timeoutMs);
      this.waiting.set(key, (r) => {
        clearTimeout(t);
        this.waiting.delete(key);
        res(r);
      });
      this.client.publishAsync(m.topic, m.payload, { qos: 1, ...(m.properties ? { properties: m.properties } : {}) }).catch(() => undefined);
    });
  }

  /** A command with one retry of the same id after a TIMEOUT. */
  async command(agentId: string, name: string, timeoutMs: number, body: Record<string, unknown> = {}): Promise<CommandOutcome> {
    const id = crypto.randomUUID();
    const t0 = performance.now();
    let reply = await this.once(agentId, name, id, timeoutMs, body);
    let retried = false;
    if (!reply) {
      retried = true;
      reply = await this.once(agentId, name, id, timeoutMs, body);
    }
    return { agentId, id, answered: reply !== undefined, retried, ms: performance.now() - t0, ...(reply ? { reply } : {}) };
  }

  async close(): Promise<void> {
    await Promise.race([this.client.endAsync().catch(() => undefined), Bun.sleep(2000)]);
    this.client.end(true);
  }
}

/** Counts the fleet's events by eventId (QoS 1, persistent session): raw deliveries and distinct ids. */
export class EventObserver {
  readonly seen = new Map<string, number>();
  raw = 0;

  private constructor(readonly client: MqttClient) {}

  static async connect(url: string | string[], protocol: MqttProtocol, clientId: string, opts: { prefix?: string; username?: string; password?: string } = {}): Promise<EventObserver> {
    const client = await mqtt.connectAsync({ ...rotation(url), clientId, ...sessionOptions(protocol, true), reconnectPeriod: 1000, connectTimeout: 10_000, writeCache: false, ...(opts.username ? { username: opts.username, password: opts.password ?? "" } : {}) });
    const o = new EventObserver(client);
    client.on("error", () => undefined); // reconnects on its own; an unhandled "error" would end the process
    client.on("message", (_t, payload) => {
      try {
        const id = (JSON.parse(payload.toString("utf8")) as { eventId?: unknown }).eventId;
        if (typeof id !== "string") return;
        o.raw++;
        o.seen.set(id, (o.seen.get(id) ?? 0) + 1);
      } catch {
        /* not JSON */
      }
    });
    await client.subscribeAsync(`${opts.prefix ?? "mrtd/v1"}/+/events`, { qos: 1 });
    return o;
  }

  get distinct(): number {
    return this.seen.size;
  }

  async close(): Promise<void> {
    await Promise.race([this.client.endAsync().catch(() => undefined), Bun.sleep(2000)]);
    this.client.end(true);
  }
}
