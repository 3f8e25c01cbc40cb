/**
 * The agent's MQTT connection (OASIS MQTT 5.0, or 3.1.1 with `protocol: "3.1.1"`), the only
 * module of the service that imports `mqtt` (the operator CLI, cli/remote-command.ts, has its
 * own short-lived client).
 *
 * - Client id = agent id. With sessionExpiryS > 0 the session is kept by the broker (MQTT 5:
 *   Clean Start 0 and that Session Expiry Interval; 3.1.1: Clean Session 0), so QoS 1 commands
 *   published while the agent is away wait for it, also across a reconnect to another node
 *   of a cluster that shares sessions. The command subscription is made again on every
 *   connect, also when the CONNACK says the session was resumed (see #ready). QoS 1
 *   events are kept by our own disk outbox, not by mqtt.js's memory store.
 * - Several broker URLs are tried in rotation: each connection attempt takes the next URL of
 *   the list (wrapping), after this module's backoff delay. mqtt.js's own `servers` rotation
 *   is not used: it comes with its fixed reconnect period, which is off here.
 * - Last Will: `offline` on the retained status topic; after every connect a retained
 *   `online` birth (version, readers, start time), published again every statusRefreshMs
 *   while connected, and never after the `offline` of a clean stop.
 * - mqtt.js reconnects at a fixed period. Fleets of boards that lose the broker together would
 *   then come back in lock step, so its reconnect is disabled and this module reconnects with
 *   exponential backoff and jitter, using a fresh mqtt.js client per attempt (so nothing it
 *   queued in memory is replayed behind the outbox's back).
 * - Bounded input: CONNECT carries a Maximum Packet Size (MQTT 5.0 §3.1.2.11.4) of
 *   MAX_INCOMING_PACKET_BYTES, so the broker never sends the agent a packet larger than a
 *   command can be; it drops such messages instead (the agent only subscribes to commands).
 * - Commands are subscribed with Retain Handling 2 (no retained messages at subscribe) and
 *   Retain As Published (§3.8.3.1), so a retained command published while the agent is
 *   connected still arrives flagged retained and the dispatcher drops it.
 * - mqtt.js parses a URL string with the deprecated `url.parse()` (a DeprecationWarning on every
 *   start); the URL is parsed here with WHATWG `URL` and handed over as host/port/protocol,
 *   which skips that path without muting other warnings.
 */
import { readFileSync } from "node:fs";
import { ConfigError } from "../errors.ts";
import mqtt from "mqtt";
import type { IClientOptions, IPublishPacket, MqttClient } from "mqtt";
import type { AgentConfig } from "./config.ts";
import { Secret } from "./config.ts";
import type { AgentTopics } from "./topics.ts";
import { agentTopics } from "./topics.ts";
import { backoffDelayMs } from "./backoff.ts";
import { protocolVersion, type MqttProtocol } from "./mqtt-protocol.ts";
import { MAX_INCOMING_PACKET_BYTES } from "./command-validation.ts";

export { MAX_INCOMING_PACKET_BYTES };

export interface StatusOnline {
  state: "online";
  agentId: string;
  version: string;
  readers: string[];
  startedAt: string;
  connectedAt: string;
  /** The agent's long-term HPKE public key: operators seal access keys to it and check replies against it (envelope.ts). */
  hpke?: { alg: string; publicKey: string };
}
export interface StatusOffline {
  state: "offline";
  agentId: string;
  /** "connection-lost" comes from the broker (Last Will); "shutdown" from a clean stop. */
  reason: "connection-lost" | "shutdown";
  startedAt: string;
  at?: string;
}
export type StatusPayload = StatusOnline | StatusOffline;

export interface MqttLinkOptions {
  /** The broker (or give `urls`). */
  url?: string;
  /** Broker URLs tried in rotation, one per connection attempt (instead of `url`). */
  urls?: string[];
  /** "5" (default) or "3.1.1": 3.1.1 sends no properties (no Maximum Packet Size, no user properties, no expiry). */
  protocol?: MqttProtocol;
  /** Keep the session this long after a disconnect (s); 0 (default): a clean session at every connect. */
  sessionExpiryS?: number;
  /**
   * Publish this connection's retained birth again this often while connected (ms; 0 or
   * absent: only at connect), with the current readers: it repairs a retained status the broker
   * lost or replaced (NATS 2.9 acknowledged births it failed to keep while a node was down).
   */
  statusRefreshMs?: number;
  clientId: string;
  topics: AgentTopics;
  version: string;
  /** Current reader names, read at each birth. */
  readers: () => string[];
  /** Published in the birth (StatusOnline.hpke). */
  hpke?: { alg: string; publicKey: string };
  /** PEM contents (not paths). */
  tls?: { ca?: string; cert?: string; key?: string };
  username?: string;
  password?: Secret;
  keepaliveS?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  connectTimeoutMs?: number;
  /** Subscribe to this agent's cmd topics (default true). */
  subscribeCommands?: boolean;
  /** Randomness for the jitter (tests pass their own). */
  random?: () => number;
  now?: () => Date;
}

export interface PublishOptions {
  qos?: 0 | 1;
  retain?: boolean;
  messageExpiryIntervalS?: number;
  userProperties?: Record<string, string>;
  correlationData?: Uint8Array;
  responseTopic?: string;
  contentType?: string;
}

export interface IncomingMessage {
  topic: string;
  payload: Uint8Array;
  qos: number;
  retain: boolean;
  responseTopic?: string;
  correlationData?: Uint8Array;
  /** Seconds left before the message expires, as forwarded by the broker. */
  messageExpiryIntervalS?: number;
  userProperties?: Record<string, string | string[]>;
  contentType?: string;
  /** Local clock (ms) at arrival, for expiry arithmetic. */
  receivedAt: number;
}

export interface LinkEvents {
  /** `sessionPresent`: the broker resumed the session (and its subscriptions); `subscribed`: the command subscription was (re)made. */
  connected: { attempt: number; url: string; sessionPresent: boolean; subscribed: boolean };
  disconnected: { reason: string };
  reconnecting: { attempt: number; delayMs: number; url: string };
  message: IncomingMessage;
  error: Error;
}

/** A publish that did not reach the broker, or was refused by it (MQTT 5 PUBACK reason code). */
export class MqttLinkError extends Error {
  readonly code: "OFFLINE" | "CONNECTION_LOST" | "REFUSED";
  readonly reasonCode: number | undefined;
  constructor(code: MqttLinkError["code"], message: string, reasonCode?: number) {
    super(message);
    this.name = "MqttLinkError";
    this.code = code;
    this.reasonCode = reasonCode;
  }
}

type Listener<K extends keyof LinkEvents> = (value: LinkEvents[K]) => void;

export class MqttLink {
  readonly #opts: MqttLinkOptions;
  readonly #startedAt: string;
  readonly #listeners: { [K in keyof LinkEvents]: Set<Listener<K>> } = {
    connected: new Set(),
    disconnected: new Set(),
    reconnecting: new Set(),
    message: new Set(),
    error: new Set(),
  };
  #client: MqttClient | undefined; // set only while connected and ready (subscribed, birth sent)
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #refresh: ReturnType<typeof setInterval> | undefined;
  #running = false;
  #current: MqttClient | undefined; // the client of the current attempt
  readonly #urls: string[];
  #nextUrl = 0;
  #pending = new Map<MqttClient, Set<(e: Error) => void>>();

  constructor(opts: MqttLinkOptions) {
    this.#opts = opts;
    const urls = opts.urls ?? (opts.url !== undefined ? [opts.url] : []);
    if (urls.length === 0) throw new RangeError("MqttLink: give url or urls");
    this.#urls = [...urls];
    this.#startedAt = (opts.now?.() ?? new Date()).toISOString();
  }

  get connected(): boolean {
    return this.#client !== undefined;
  }

  get startedAt(): string {
    return this.#startedAt;
  }

  on<K extends keyof LinkEvents>(event: K, listener: Listener<K>): () => void {
    this.#listeners[event].add(listener);
    return () => this.#listeners[event].delete(listener);
  }

  /** Resolves on the next `connected` (immediately if connected now). */
  waitConnected(timeoutMs = 30000): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        off();
        reject(new MqttLinkError("OFFLINE", `not connected within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.on("connected", () => {
        clearTimeout(t);
        off();
        resolve();
      });
    });
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#connect();
  }

  /**
   * Publishes; for QoS 1 resolves on PUBACK and rejects with the broker's reason code when it
   * refuses (e.g. 0x87 not authorized). Rejects at once when offline: callers decide whether to
   * keep the message (the outbox does) or drop it (health and metrics are republished anyway).
   */
  publish(topic: string, payload: string | Uint8Array, opts: PublishOptions = {}): Promise<void> {
    const client = this.#client;
    if (!client) return Promise.reject(new MqttLinkError("OFFLINE", "not connected to the broker"));
    const properties: NonNullable<IPublishPacket["properties"]> = {};
    const v5 = this.#v5;
    if (v5 && opts.messageExpiryIntervalS !== undefined) properties.messageExpiryInterval = Math.max(1, Math.ceil(opts.messageExpiryIntervalS));
    if (v5 && opts.userProperties) properties.userProperties = opts.userProperties;
    if (v5 && opts.correlationData) properties.correlationData = Buffer.from(opts.correlationData);
    if (v5 && opts.responseTopic) properties.responseTopic = opts.responseTopic;
    if (v5 && opts.contentType) properties.contentType = opts.contentType;
    const body = typeof payload === "string" ? payload : Buffer.from(payload);
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const pending = this.#pending.get(client);
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        pending?.delete(fail);
        reject(e);
      };
      pending?.add(fail);
      client.publish(topic, body, { qos: opts.qos ?? 0, retain: opts.retain ?? false, ...(v5 ? { properties } : {}) }, (err) => {
        if (settled) return;
        settled = true;
        pending?.delete(fail);
        if (!err) return resolve();
        const rc = (err as { code?: unknown }).code;
        if (typeof rc === "number") reject(new MqttLinkError("REFUSED", `broker refused the publish (reason code 0x${rc.toString(16)})`, rc));
        else reject(new MqttLinkError("CONNECTION_LOST", `publish not acknowledged: ${err.message}`));
      });
    });
  }

  /** Publishes `offline` (reason shutdown, retained) when connected, then disconnects cleanly (no will). */
  async stop(opts: { publishOffline?: boolean; timeoutMs?: number } = {}): Promise<void> {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#stopRefresh(); // before the offline status: a later birth would undo it
    const client = this.#current;
    this.#current = undefined;
    if (!client) return;
    const timeoutMs = opts.timeoutMs ?? 3000;
    if (this.#client === client && opts.publishOffline !== false) {
      const offline: StatusOffline = { state: "offline", agentId: this.#opts.clientId, reason: "shutdown", startedAt: this.#startedAt, at: this.#now() };
      await withTimeout(this.publish(this.#opts.topics.status, JSON.stringify(offline), { qos: 1, retain: true }), timeoutMs).catch(() => {});
    }
    this.#client = undefined;
    await withTimeout(new Promise<void>((resolve) => client.end(false, {}, () => resolve())), timeoutMs).catch(() => client.end(true));
  }

  #emit<K extends keyof LinkEvents>(event: K, value: LinkEvents[K]): void {
    for (const l of this.#listeners[event]) {
      try {
        l(value);
      } catch (e) {
        if (event !== "error") this.#emit("error", e instanceof Error ? e : new Error(String(e)));
      }
    }
  }

  get #v5(): boolean {
    return (this.#opts.protocol ?? "5") === "5";
  }

  #now(): string {
    return (this.#opts.now?.() ?? new Date()).toISOString();
  }

  #connect(): void {
    if (!this.#running) return;
    const o = this.#opts;
    const urlText = this.#urls[this.#nextUrl % this.#urls.length]!;
    this.#nextUrl = (this.#nextUrl + 1) % this.#urls.length;
    const url = new URL(urlText);
    const secure = url.protocol === "mqtts:";
    const will: StatusOffline = { state: "offline", agentId: o.clientId, reason: "connection-lost", startedAt: this.#startedAt };
    const options: IClientOptions = {
      protocol: secure ? "mqtts" : "mqtt",
      host: url.hostname.replace(/^\[|\]$/g, ""),
      port: url.port ? Number(url.port) : secure ? 8883 : 1883,
      protocolVersion: protocolVersion(o.protocol ?? "5"),
      clientId: o.clientId,
      clean: !((o.sessionExpiryS ?? 0) > 0),
      keepalive: o.keepaliveS ?? 30,
      reconnectPeriod: 0,
      connectTimeout: o.connectTimeoutMs ?? 10000,
      resubscribe: false,
      queueQoSZero: false,
      // mqtt-packet otherwise pre-builds a 2-byte Buffer for each of the 65,536 packet ids and
      // keeps them for the life of the process: 65,536 live objects, some 6 MB of heap, to save
      // one small allocation per packet. Measured in test/bench/agent.bench.ts.
      writeCache: false,
      will: { topic: o.topics.status, payload: Buffer.from(JSON.stringify(will)), qos: 1, retain: true },
    };
    if (this.#v5) {
      options.properties = { maximumPacketSize: MAX_INCOMING_PACKET_BYTES };
      if ((o.sessionExpiryS ?? 0) > 0) options.properties.sessionExpiryInterval = o.sessionExpiryS!;
    }
    if (o.username !== undefined) options.username = o.username;
    if (o.password !== undefined) options.password = o.password.reveal();
    if (secure) {
      options.rejectUnauthorized = true;
      if (o.tls?.ca) options.ca = o.tls.ca;
      if (o.tls?.cert) options.cert = o.tls.cert;
      if (o.tls?.key) options.key = o.tls.key;
    }
    const client = mqtt.connect(options);
    this.#current = client;
    this.#pending.set(client, new Set());
    let closed = false;

    client.on("connect", (connack) => {
      // Replies and events are small request/response traffic: no Nagle on our side either
      // (the broker's side is deploy/mosquitto's set_tcp_nodelay).
      (client.stream as unknown as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
      void this.#ready(client, urlText, connack.sessionPresent === true);
    });
    client.on("message", (topic, payload, packet) => {
      const p = packet.properties ?? {};
      const msg: IncomingMessage = { topic, payload: new Uint8Array(payload), qos: packet.qos, retain: packet.retain, receivedAt: Date.now() };
      if (p.responseTopic !== undefined) msg.responseTopic = p.responseTopic;
      if (p.correlationData !== undefined) msg.correlationData = new Uint8Array(p.correlationData);
      if (p.messageExpiryInterval !== undefined) msg.messageExpiryIntervalS = p.messageExpiryInterval;
      if (p.userProperties !== undefined) msg.userProperties = p.userProperties;
      if (p.contentType !== undefined) msg.contentType = p.contentType;
      this.#emit("message", msg);
    });
    client.on("error", (e) => this.#emit("error", e));
    client.on("close", () => {
      if (closed) return;
      closed = true;
      const wasReady = this.#client === client;
      if (wasReady) {
        this.#client = undefined;
        this.#stopRefresh();
      }
      const pending = this.#pending.get(client);
      this.#pending.delete(client);
      for (const fail of pending ?? []) fail(new MqttLinkError("CONNECTION_LOST", "connection closed before PUBACK"));
      client.end(true);
      if (wasReady) this.#emit("disconnected", { reason: "connection closed" });
      if (this.#running && this.#current === client) this.#schedule();
    });
  }

  async #ready(client: MqttClient, url: string, sessionPresent: boolean): Promise<void> {
    const o = this.#opts;
    try {
      // Subscribed on every connect, even when the broker says it resumed the session: NATS's
      // MQTT gateway (2.9) resumed sessions on another node whose command subscription then
      // delivered nothing in 2 of 4 runs of the cluster tests, and subscribing again fixed it.
      // Subscribing to the same filter again replaces the subscription (MQTT 5 §3.8.4; 3.1.1
      // §3.8.4); queued commands still arrive, and retained ones are dropped as ever.
      const subscribe = o.subscribeCommands !== false;
      if (this.#current !== client) return;
      // Set before the subscription's and the birth's awaits: a resumed session delivers its
      // queued commands right after the CONNACK, and their replies must not find the link offline.
      this.#client = client;
      if (subscribe) {
        // 3.1.1 has no subscription options: a retained command still arrives flagged retained
        // at subscribe (and is dropped by the dispatcher), but one published live arrives unflagged.
        const granted = await client.subscribeAsync(o.topics.cmdFilter, this.#v5 ? { qos: 1, nl: true, rap: true, rh: 2 } : { qos: 1 });
        const bad = granted.find((g) => g.qos > 2);
        if (bad) this.#emit("error", new Error(`broker refused the command subscription (reason code 0x${bad.qos.toString(16)})`));
        if (this.#current !== client) return; // a newer connection took over meanwhile
      }
      const birth: StatusOnline = {
        state: "online",
        agentId: o.clientId,
        version: o.version,
        readers: o.readers(),
        startedAt: this.#startedAt,
        connectedAt: this.#now(),
      };
      if (o.hpke) birth.hpke = o.hpke;
      await this.publish(o.topics.status, JSON.stringify(birth), { qos: 1, retain: true });
      if (this.#current !== client) return;
      this.#startRefresh(client, birth);
      const attempt = this.#attempt;
      this.#attempt = 0;
      this.#emit("connected", { attempt, url, sessionPresent, subscribed: subscribe });
    } catch (e) {
      this.#emit("error", e instanceof Error ? e : new Error(String(e)));
      // Without a birth the fleet would see a stale status: drop this connection and retry.
      client.end(true);
    }
  }

  #startRefresh(client: MqttClient, birth: StatusOnline): void {
    this.#stopRefresh();
    const ms = this.#opts.statusRefreshMs ?? 0;
    if (ms <= 0) return;
    this.#refresh = setInterval(() => {
      if (this.#client !== client) return this.#stopRefresh();
      const again: StatusOnline = { ...birth, readers: this.#opts.readers() };
      this.publish(this.#opts.topics.status, JSON.stringify(again), { qos: 1, retain: true }).catch(() => {
        /* the connection went: the next connect publishes a new birth */
      });
    }, ms);
  }

  #stopRefresh(): void {
    if (this.#refresh) clearInterval(this.#refresh);
    this.#refresh = undefined;
  }

  #schedule(): void {
    this.#attempt++;
    const o = this.#opts;
    const delayMs = backoffDelayMs(this.#attempt, o.reconnectMinMs ?? 1000, o.reconnectMaxMs ?? 60000, o.random);
    this.#emit("reconnecting", { attempt: this.#attempt, delayMs, url: this.#urls[this.#nextUrl % this.#urls.length]! });
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#connect();
    }, delayMs);
  }
}

/** Builds link options from the validated configuration (reads the TLS files). */
export function linkOptionsFromConfig(config: AgentConfig, extra: { version: string; readers: () => string[]; hpke?: { alg: string; publicKey: string } }): MqttLinkOptions {
  const m = config.mqtt;
  const read = (path: string | undefined, key: string) => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, "utf8");
    } catch (e) {
      throw new ConfigError(`${config.file}: ${key}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? "error"})`, { file: config.file, key });
    }
  };
  const opts: MqttLinkOptions = {
    urls: m.urls,
    protocol: m.protocol,
    sessionExpiryS: m.sessionExpiryS,
    statusRefreshMs: m.statusRefreshS * 1000,
    clientId: config.agent.id,
    topics: agentTopics(m.prefix, config.agent.id),
    version: extra.version,
    readers: extra.readers,
    keepaliveS: m.keepaliveS,
    reconnectMinMs: m.reconnectMinMs,
    reconnectMaxMs: m.reconnectMaxMs,
    connectTimeoutMs: m.connectTimeoutMs,
  };
  if (extra.hpke) opts.hpke = extra.hpke;
  const tls: NonNullable<MqttLinkOptions["tls"]> = {};
  const ca = read(m.ca, "mqtt.ca");
  const cert = read(m.clientCert, "mqtt.client_cert");
  const key = read(m.clientKey, "mqtt.client_key");
  if (ca !== undefined) tls.ca = ca;
  if (cert !== undefined) tls.cert = cert;
  if (key !== undefined) tls.key = key;
  if (ca !== undefined || cert !== undefined) opts.tls = tls;
  if (m.username !== undefined) opts.username = m.username;
  if (m.password !== undefined) opts.password = m.password;
  return opts;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
