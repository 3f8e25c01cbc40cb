/**
 * deploy/nats/ as shipped (nats-server.conf, users.conf from make-users.sh), on a three-node
 * cluster on loopback with a test PKI: identity from the TLS client certificate
 * (verify_and_map), each agent publishes only under its own id, only operators command.
 * MQTT 3.1.1 (NATS's gateway has no MQTT 5): a denied QoS 1 publish gets no sign, so every
 * denial is checked from the receiving side, after a message that is allowed went through.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { makeTestPki, type TestCerts } from "../support/mosquitto.ts";
import { NatsCluster } from "../support/nats-cluster.ts";
import { removeTempDir } from "../support/temp-dir.ts";

const ROOT = resolve(import.meta.dir, "../..");
const SHIPPED = readFileSync(join(ROOT, "deploy/nats/nats-server.conf"), "utf8");
const IDS = ["agent-a", "agent-b", "operator-test"];

let certs: TestCerts;
let cluster: NatsCluster;
const clients: MqttClient[] = [];

/** The shipped node configuration with ports, paths and routes moved to the test's. */
function templated(conf: string, v: { name: string; clientPort: number; httpPort: number; routePort: number; mqttPort: number; store: string; routes: string[] }): string {
  const rules: Array<[RegExp, string]> = [
    [/^server_name: .*$/m, `server_name: ${v.name}`],
    [/^listen: .*$/m, `listen: 127.0.0.1:${v.clientPort}`],
    [/^http: .*$/m, `http: 127.0.0.1:${v.httpPort}`],
    [/^  store_dir: .*$/m, `  store_dir: "${v.store}"`],
    [/^  listen: 0\.0\.0\.0:6222$/m, `  listen: 127.0.0.1:${v.routePort}`],
    [/^  routes: .*$/m, `  routes: [${v.routes.join(", ")}]`],
    [/^  listen: 0\.0\.0\.0:8883$/m, `  listen: 127.0.0.1:${v.mqttPort}`],
    [/^    cert_file: .*$/m, `    cert_file: "${join(certs.dir, "broker.crt")}"`],
    [/^    key_file: .*$/m, `    key_file: "${join(certs.dir, "broker.key")}"`],
    [/^    ca_file: .*$/m, `    ca_file: "${certs.ca}"`],
  ];
  let out = conf;
  for (const [re, value] of rules) {
    if (!re.test(out)) throw new Error(`deploy/nats/nats-server.conf: no line matching ${re}`);
    out = out.replace(re, value);
  }
  return out;
}

function tls(id: string): IClientOptions {
  return { ca: readFileSync(certs.ca, "utf8"), cert: readFileSync(certs.client(id).cert, "utf8"), key: readFileSync(certs.client(id).key, "utf8"), rejectUnauthorized: true };
}

async function connect(node: number, id: string, extra: IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(cluster.urls[node]!, { clientId: id, protocolVersion: 4, clean: true, reconnectPeriod: 0, connectTimeout: 5000, ...tls(id), ...extra });
  clients.push(c);
  return c;
}

function collect(c: MqttClient): Array<{ topic: string; payload: string }> {
  const got: Array<{ topic: string; payload: string }> = [];
  c.on("message", (topic, payload) => got.push({ topic, payload: payload.toString() }));
  return got;
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out");
    await Bun.sleep(50);
  }
}

beforeAll(async () => {
  certs = makeTestPki(IDS.filter((id) => id !== "operator-test")); // operator-test is always made
  const r = Bun.spawnSync(["bash", join(ROOT, "deploy/nats/make-users.sh"), ...IDS], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
  cluster = await NatsCluster.start({
    scheme: "mqtts",
    probe: tls("operator-test"),
    configFor: (n, ctx) => {
      // "include users.conf" as shipped: beside the node's configuration.
      writeFileSync(join(ctx.dir, "users.conf"), r.stdout);
      return templated(SHIPPED, { name: n.name, clientPort: n.clientPort, httpPort: n.httpPort, routePort: n.routePort, mqttPort: n.mqttPort, store: ctx.store, routes: ctx.routes });
    },
  });
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.end(true);
  await cluster?.stop();
  if (certs) removeTempDir(certs.dir);
});

describe("deploy/nats: per-agent permissions from the client certificate", () => {
  test("an agent publishes under its own id; it cannot publish as another agent, nor command one", async () => {
    const op = await connect(1, "operator-test");
    const seen = collect(op);
    await op.subscribeAsync("mrtd/v1/#", { qos: 1 });
    const b = await connect(2, "agent-b");
    const bCmds = collect(b);
    const granted = await b.subscribeAsync("mrtd/v1/agent-b/cmd/+", { qos: 1 });
    expect(granted[0]!.qos).toBe(1);

    const a = await connect(0, "agent-a");
    // Denied: another agent's status, events, health and reply topics, and a command to it.
    for (const t of ["mrtd/v1/agent-b/status", "mrtd/v1/agent-b/events", "mrtd/v1/agent-b/readers/r-12345678/health", "mrtd/v1/agent-b/reply/operator-test", "mrtd/v1/agent-b/cmd/ping"]) {
      await a.publishAsync(t, JSON.stringify({ forged: true }), { qos: 0 });
    }
    // Allowed, published after the forgeries on the same connection: once it arrives, the forgeries would have too.
    const a2 = a.connected ? a : await connect(0, "agent-a");
    await a2.publishAsync("mrtd/v1/agent-a/status", JSON.stringify({ state: "online", agentId: "agent-a" }), { qos: 1, retain: true });
    await until(() => seen.some((m) => m.topic === "mrtd/v1/agent-a/status"));
    await Bun.sleep(300);
    expect(seen.filter((m) => m.topic.startsWith("mrtd/v1/agent-b/"))).toEqual([]);
    expect(bCmds).toEqual([]);
  }, 30_000);

  test("an agent cannot subscribe to another agent's commands", async () => {
    const a = await connect(0, "agent-a", { clientId: "agent-a-sub" });
    // mqtt.js rejects a SUBACK with a failure code (0x80), carrying the packet.
    const refused = await a.subscribeAsync("mrtd/v1/agent-b/cmd/+", { qos: 1 }).then(
      () => undefined,
      (e: { packet?: { granted?: number[] } }) => e.packet?.granted,
    );
    expect(refused).toEqual([0x80]);
  }, 30_000);

  test("an agent cannot read other clients' QoS 1 deliveries through the gateway's $MQTT.sub subjects", async () => {
    const snoop = await connect(0, "agent-a", { clientId: "agent-a-snoop" });
    const got = collect(snoop);
    await snoop.subscribeAsync("$MQTT/sub/#", { qos: 0 }).catch(() => undefined);
    await snoop.subscribeAsync("#", { qos: 0 }).catch(() => undefined);
    const b = await connect(2, "agent-b", { clientId: "agent-b-3" });
    const bGot = collect(b);
    await b.subscribeAsync("mrtd/v1/agent-b/cmd/+", { qos: 1 });
    const op = await connect(1, "operator-test", { clientId: "operator-test-3" });
    await op.publishAsync("mrtd/v1/agent-b/cmd/diagnose", JSON.stringify({ id: "secret-ish" }), { qos: 1 });
    await until(() => bGot.length === 1);
    await Bun.sleep(300);
    expect(got.filter((m) => m.payload.includes("secret-ish"))).toEqual([]);
  }, 30_000);

  test("only an operator's command reaches an agent", async () => {
    const b = await connect(2, "agent-b", { clientId: "agent-b-2" });
    const got = collect(b);
    await b.subscribeAsync("mrtd/v1/agent-b/cmd/+", { qos: 1 });
    const op = await connect(1, "operator-test", { clientId: "operator-test-2" });
    await op.publishAsync("mrtd/v1/agent-b/cmd/ping", JSON.stringify({ id: "op-1" }), { qos: 1 });
    await until(() => got.length === 1);
    expect(JSON.parse(got[0]!.payload)).toEqual({ id: "op-1" });
  }, 30_000);

  test("the shipped configuration keeps the gateway's streams on all three nodes (stream_replicas), so one node's loss leaves a quorum", async () => {
    await connect(2, "agent-b", { clean: false });
    const streams = await cluster.mqttStreams(1);
    // Sessions, QoS 1 messages and retained messages, each on every node.
    expect(streams.map((s) => s.name)).toEqual(expect.arrayContaining(["$MQTT_sess", "$MQTT_msgs", "$MQTT_rmsgs"]));
    for (const s of streams) expect({ name: s.name, nodes: s.nodes }).toEqual({ name: s.name, nodes: 3 });
  }, 30_000);

  test("a client without a certificate of the fleet CA is refused", async () => {
    const url = cluster.urls[0]!;
    const err = await mqtt
      .connectAsync(url, { clientId: "nobody", protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 3000, ca: readFileSync(certs.ca, "utf8"), rejectUnauthorized: true })
      .then((c) => (c.end(true), undefined), (e: Error) => e);
    expect(err).toBeInstanceOf(Error);
  }, 30_000);
});
