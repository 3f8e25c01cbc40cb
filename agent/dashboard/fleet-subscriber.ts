/**
 * The dashboard's MQTT connection (the dashboard's only importer of `mqtt`), MQTT 5 or 3.1.1
 * (config mqtt.protocol, as the agents'): an operator identity (client certificate under
 * deploy/mosquitto/acl) subscribed to every agent's status, reader health and metrics, and to
 * events through a shared subscription (`$share/<group>/<prefix>/+/events`), so several
 * dashboard instances split the event stream while each sees all state. With 3.1.1 and no
 * share_group, events are subscribed directly (every instance gets every event). With MQTT 5
 * a Maximum Packet Size in CONNECT makes the broker drop anything larger than the contract's
 * largest payload before it reaches us (3.1.1 cannot announce one: the broker's own limit applies).
 * Commands are built with agent/service/command-wire.ts; replies are matched by its
 * replyCorrelation (the property in MQTT 5, the payload's `correlation` in 3.1.1).
 */
import { readFileSync } from "node:fs";
import mqtt from "mqtt";
import type { IClientOptions, MqttClient } from "mqtt";
import { fleetFilters, parseFleetTopic, type FleetTopic } from "../service/topics.ts";
import { protocolVersion, replyCorrelation, type MqttProtocol } from "../service/command-wire.ts";
import type { DashboardConfig } from "./config.ts";
import { MAX_PAYLOAD_BYTES } from "./contract.ts";

export interface FleetMessage {
  topic: FleetTopic;
  payload: Uint8Array;
  retain: boolean;
}

export interface FleetSubscriber {
  readonly connected: boolean;
  readonly protocol: MqttProtocol;
  /**
   * Publishes a command; resolves on PUBACK. Build it with command-wire.ts buildCommandPublish:
   * with 3.1.1 the routing is in the payload and `opts` (MQTT 5 properties) are not sent.
   */
  publish(topic: string, payload: string, opts: { responseTopic?: string; correlationData?: Uint8Array; messageExpiryIntervalS?: number }): Promise<void>;
  /** Subscribes to a reply topic (the dashboard's own); `correlationData` is the reply's correlation in either protocol. */
  subscribeReplies(filter: string, onMessage: (topic: string, payload: Uint8Array, correlationData: Uint8Array | undefined) => void): Promise<void>;
  close(): Promise<void>;
}

const MAX_PACKET = Math.max(...Object.values(MAX_PAYLOAD_BYTES)) + 4096;

export async function subscribeFleet(
  cfg: DashboardConfig["mqtt"],
  onMessage: (m: FleetMessage) => void,
  onState: (s: { connected: boolean; error?: string }) => void,
): Promise<FleetSubscriber> {
  const v5 = cfg.protocol === "5";
  const urls = (cfg.urls?.length ? cfg.urls : [cfg.url]).map((u) => new URL(u));
  const secure = urls[0]!.protocol === "mqtts:";
  const hostPort = (u: URL) => ({ host: u.hostname.replace(/^\[|\]$/g, ""), port: u.port ? Number(u.port) : secure ? 8883 : 1883 });
  const persistent = (cfg.sessionExpiryS ?? 0) > 0;
  const options: IClientOptions = {
    protocol: secure ? "mqtts" : "mqtt",
    ...hostPort(urls[0]!),
    // Several brokers (a cluster's nodes): mqtt.js moves to the next one at each reconnect.
    ...(urls.length > 1 ? { servers: urls.map((u) => ({ ...hostPort(u), protocol: secure ? ("mqtts" as const) : ("mqtt" as const) })) } : {}),
    protocolVersion: protocolVersion(cfg.protocol),
    clientId: cfg.clientId,
    // A persistent session keeps the events published while the dashboard reconnects (3.1.1:
    // Clean Session 0, the broker decides how long; MQTT 5: the Session Expiry Interval below).
    clean: !persistent,
    keepalive: 30,
    reconnectPeriod: 2000,
    connectTimeout: 10000,
    resubscribe: true,
    writeCache: false,
    // Receive Maximum: on subscribe Mosquitto sends every retained status and health at once; with
    // its default 20 in flight the rest queue, and beyond max_queued_messages (1000) they are
    // dropped (20,000 retained health messages: 1,020 arrived; with this, 15,637).
    ...(v5 ? { properties: { maximumPacketSize: MAX_PACKET, receiveMaximum: 65535, ...(persistent ? { sessionExpiryInterval: cfg.sessionExpiryS } : {}) } } : {}),
  };
  if (secure) {
    options.rejectUnauthorized = true;
    if (cfg.ca) options.ca = readFileSync(cfg.ca, "utf8");
    if (cfg.clientCert) options.cert = readFileSync(cfg.clientCert, "utf8");
    if (cfg.clientKey) options.key = readFileSync(cfg.clientKey, "utf8");
  }
  const f = fleetFilters(cfg.prefix);
  const replyHandlers: Array<{ filter: string; fn: (topic: string, payload: Uint8Array, cd: Uint8Array | undefined) => void }> = [];
  const client: MqttClient = mqtt.connect(options);
  let connected = false;
  client.on("connect", () => {
    connected = true;
    onState({ connected: true });
    client.subscribe(
      { [f.status]: { qos: 1 }, [f.health]: { qos: 1 }, [f.metrics]: { qos: 0 }, [cfg.shareGroup !== undefined ? `$share/${cfg.shareGroup}/${f.events}` : f.events]: { qos: 1 } },
      (err, granted) => {
        const refused = (granted ?? []).filter((g) => g.qos >= 0x80).map((g) => g.topic);
        if (err || refused.length > 0) onState({ connected: true, error: `subscription refused: ${err?.message ?? refused.join(", ")}` });
      },
    );
  });
  client.on("close", () => {
    if (connected) onState({ connected: false });
    connected = false;
  });
  client.on("error", (e) => onState({ connected, error: e.message }));
  client.on("message", (topic, payload, packet) => {
    const t = parseFleetTopic(cfg.prefix, topic);
    if (t) {
      onMessage({ topic: t, payload: new Uint8Array(payload), retain: packet.retain });
      return;
    }
    for (const h of replyHandlers) {
      if (!topicMatches(h.filter, topic)) continue;
      let json: unknown;
      if (!v5) {
        try {
          json = JSON.parse(payload.toString("utf8"));
        } catch {
          json = undefined;
        }
      }
      const cd = packet.properties?.correlationData;
      const c = replyCorrelation(cfg.protocol, { json, correlationData: cd ? new Uint8Array(cd) : undefined });
      h.fn(topic, new Uint8Array(payload), c);
    }
  });
  // Wait for the first connection, or for every broker to have failed once, so the CLI can say
  // what went wrong (with several URLs mqtt.js tries the next one at each reconnect).
  await new Promise<void>((resolve, reject) => {
    const failures: string[] = [];
    const ok = () => {
      client.off("error", bad);
      resolve();
    };
    const bad = (e: Error) => {
      failures.push(`${urls[failures.length % urls.length]!.origin}: ${e.message}`);
      if (failures.length < urls.length) return;
      client.off("connect", ok);
      client.off("error", bad);
      client.end(true);
      reject(new Error(`cannot connect to ${urls.length > 1 ? "any of the brokers" : cfg.url}: ${failures.join("; ")}`));
    };
    client.once("connect", ok);
    client.on("error", bad);
  });
  return {
    get connected() {
      return connected;
    },
    protocol: cfg.protocol,
    publish: (topic, payload, opts) =>
      new Promise((resolve, reject) => {
        const properties: Record<string, unknown> = {};
        if (opts.responseTopic) properties.responseTopic = opts.responseTopic;
        if (opts.correlationData) properties.correlationData = Buffer.from(opts.correlationData);
        if (opts.messageExpiryIntervalS) properties.messageExpiryInterval = opts.messageExpiryIntervalS;
        client.publish(topic, payload, { qos: 1, ...(v5 ? { properties } : {}) }, (err, packet) => {
          const rc = (packet as { reasonCode?: number } | undefined)?.reasonCode;
          if (err) reject(err);
          else if (rc !== undefined && rc >= 0x80) reject(new Error(`broker refused the publish (reason code 0x${rc.toString(16)})`));
          else resolve();
        });
      }),
    subscribeReplies: async (filter, fn) => {
      replyHandlers.push({ filter, fn });
      await client.subscribeAsync(filter, { qos: 1 });
    },
    close: () => new Promise<void>((resolve) => client.end(false, {}, () => resolve())),
  };
}

function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
