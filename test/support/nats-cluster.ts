/**
 * A three-node NATS JetStream cluster with the MQTT 3.1.1 gateway (Debian nats-server 2.9), for
 * the failover tests and bench:fleet. Every node listens on 127.0.0.1 only, on free ports (client,
 * MQTT, cluster route, HTTP monitoring), has its own `server_name` (JetStream needs it) and its
 * own JetStream store directory under one temporary directory, and routes to the other two.
 * Three nodes, not two: with two, JetStream loses quorum when one dies and new MQTT connections
 * are closed before CONNACK (../shared/reference/mqtt-brokers.md).
 *
 * kill(i) is `kill -9`; restart(i) brings node i back on the same ports with the same store;
 * rollingRestart() restarts each node in turn (SIGTERM, wait until it serves MQTT again);
 * stop() ends every node and removes the directory. A process "exit" hook kills what is left
 * for scripts; tests call stop() in afterAll/finally.
 */
import type { IClientOptions } from "mqtt";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { freePort } from "./mosquitto.ts";
import { answersConnect } from "./mqtt-probe.ts";
import { pumpText } from "./process-output.ts";
import { makeTempDir, removeTempDir } from "./temp-dir.ts";

export interface NatsNode {
  name: string;
  mqttPort: number;
  clientPort: number;
  routePort: number;
  httpPort: number;
  /** mqtt://127.0.0.1:<mqttPort> */
  mqttUrl: string;
  proc?: Subprocess<"ignore", "ignore", "pipe">;
  log: string;
}

export interface NatsClusterOptions {
  nodes?: number;
  /** Extra lines for every node's configuration (e.g. `max_connections: 20000`). */
  extraConfig?: string;
  /** Extra lines inside every node's `mqtt { }` block. */
  extraMqttConfig?: string;
  /** JetStream `max_memory_store` / `max_file_store` (bytes). */
  jetstream?: { maxMemory?: number; maxFile?: number };
  /** Lines that replace the default open authorization (see deploy/nats/). */
  authConfig?: string;
  /** An `mqtt { tls { } }` block body etc.: replaces the plain mqtt listener's extra config. */
  tlsConfig?: string;
  /**
   * The whole configuration of a node instead of the built-in one (test/cluster/nats-acl.test.ts
   * templates deploy/nats/nats-server.conf with it). `store` is the node's JetStream directory,
   * `routes` the other nodes' route URLs.
   */
  configFor?: (n: NatsNode, ctx: { store: string; routes: string[]; dir: string }) => string;
  /** mqtt.js options for the readiness probe (TLS client certificate for a verify_and_map listener). */
  probe?: IClientOptions;
  /** "mqtts" when the MQTT listener speaks TLS. */
  scheme?: "mqtt" | "mqtts";
}

const live = new Set<Subprocess>();
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

export class NatsCluster {
  readonly nodes: NatsNode[];
  private constructor(
    readonly dir: string,
    nodes: NatsNode[],
    private readonly opts: NatsClusterOptions,
  ) {
    this.nodes = nodes;
  }

  get urls(): string[] {
    return this.nodes.map((n) => n.mqttUrl);
  }

  static async start(opts: NatsClusterOptions = {}): Promise<NatsCluster> {
    const count = opts.nodes ?? 3;
    const dir = makeTempDir("nats-cluster");
    const nodes: NatsNode[] = [];
    for (let i = 0; i < count; i++) {
      const [mqttPort, clientPort, routePort, httpPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
      nodes.push({ name: `n${i + 1}`, mqttPort, clientPort, routePort, httpPort, mqttUrl: `${opts.scheme ?? "mqtt"}://127.0.0.1:${mqttPort}`, log: "" });
    }
    const c = new NatsCluster(dir, nodes, opts);
    try {
      for (const n of nodes) c.writeConfig(n);
      for (let i = 0; i < count; i++) c.spawn(i);
      for (let i = 0; i < count; i++) await c.waitReady(i, 30_000);
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  private confPath(n: NatsNode): string {
    return join(this.dir, `${n.name}.conf`);
  }

  private writeConfig(n: NatsNode): void {
    const store = join(this.dir, n.name, "jetstream");
    mkdirSync(store, { recursive: true });
    const routes = this.nodes.filter((o) => o !== n).map((o) => `nats-route://127.0.0.1:${o.routePort}`);
    const js = this.opts.jetstream ?? {};
    if (this.opts.configFor) {
      writeFileSync(this.confPath(n), this.opts.configFor(n, { store, routes, dir: this.dir }));
      return;
    }
    const conf = [
      `server_name: ${n.name}`,
      `listen: 127.0.0.1:${n.clientPort}`,
      `http: 127.0.0.1:${n.httpPort}`,
      this.opts.extraConfig ?? "",
      this.opts.authConfig ?? "",
      "jetstream {",
      `  store_dir: "${store}"`,
      `  max_memory_store: ${js.maxMemory ?? 256 * 1024 * 1024}`,
      `  max_file_store: ${js.maxFile ?? 2 * 1024 * 1024 * 1024}`,
      "}",
      "cluster {",
      "  name: mrtd-test",
      `  listen: 127.0.0.1:${n.routePort}`,
      `  routes: [${routes.join(", ")}]`,
      "}",
      "mqtt {",
      `  listen: 127.0.0.1:${n.mqttPort}`,
      // Without it the gateway sizes its streams by the JetStream servers it knows when the first
      // MQTT client connects: a client on a node that started first made them R2 here, and a
      // kill -9 of one node then left streams and consumers without quorum.
      `  stream_replicas: ${this.nodes.length}`,
      this.opts.extraMqttConfig ?? "",
      this.opts.tlsConfig ?? "",
      "}",
      "",
    ].join("\n");
    writeFileSync(this.confPath(n), conf);
  }

  private spawn(i: number): void {
    const n = this.nodes[i]!;
    const p = Bun.spawn([process.env.NATS_SERVER ?? "nats-server", "-c", this.confPath(n)], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    n.proc = p;
    live.add(p);
    void pumpText(p.stderr, (t) => (n.log = (n.log + t).slice(-64 * 1024)));
    void p.exited.then(() => live.delete(p));
  }

  /**
   * Waits until node i sees a JetStream meta leader and a meta group of all running nodes, then
   * until it answers an MQTT CONNECT with CONNACK (its MQTT streams ready). The first: with
   * stream_replicas 3 a client that connects before all three nodes joined gets "no suitable
   * peers for placement", and nats-server 2.9 then kept refusing for over 30 s here.
   */
  async waitReady(i: number, timeoutMs = 30_000, username?: string, password?: string): Promise<void> {
    const n = this.nodes[i]!;
    const until = Date.now() + timeoutMs;
    while (!(await this.metaComplete(i))) {
      if (!n.proc || n.proc.exitCode !== null) throw new Error(`nats ${n.name} exited: ${n.log.slice(-2000)}`);
      if (Date.now() > until) throw new Error(`nats ${n.name}: no JetStream meta group of the running nodes within ${timeoutMs} ms: ${n.log.slice(-2000)}`);
      await Bun.sleep(200);
    }
    for (;;) {
      if (!n.proc || n.proc.exitCode !== null) throw new Error(`nats ${n.name} exited: ${n.log.slice(-2000)}`);
      const ok = await answersConnect(n.mqttUrl, { clientId: `ready-probe-${n.name}`, protocolVersion: 4, ...(username ? { username, password: password ?? "" } : {}), ...this.opts.probe });
      if (ok) return;
      if (Date.now() > until) throw new Error(`nats ${n.name} did not accept MQTT within ${timeoutMs} ms: ${n.log.slice(-2000)}`);
      await Bun.sleep(200);
    }
  }

  /** Node i knows the meta leader, and a meta group at least as large as the running nodes. */
  private async metaComplete(i: number): Promise<boolean> {
    try {
      const r = await fetch(`http://127.0.0.1:${this.nodes[i]!.httpPort}/jsz`, { signal: AbortSignal.timeout(2000) });
      const m = ((await r.json()) as { meta_cluster?: { leader?: string; cluster_size?: number } }).meta_cluster;
      const running = this.nodes.filter((o) => o.proc && o.proc.exitCode === null).length;
      return m?.leader !== undefined && m.leader !== "" && (m.cluster_size ?? 0) >= running;
    } catch {
      return false;
    }
  }

  /** `kill -9` of node i; resolves when it is gone. */
  async kill(i: number): Promise<void> {
    const p = this.nodes[i]!.proc;
    if (!p) return;
    this.nodes[i]!.proc = undefined;
    p.kill("SIGKILL");
    await p.exited;
  }

  /** Graceful stop of node i (SIGTERM, SIGKILL after 5 s). */
  async stopNode(i: number): Promise<void> {
    const p = this.nodes[i]!.proc;
    if (!p) return;
    this.nodes[i]!.proc = undefined;
    p.kill("SIGTERM");
    if (!(await Promise.race([p.exited.then(() => true), Bun.sleep(5000).then(() => false)]))) {
      p.kill("SIGKILL");
      await p.exited;
    }
  }

  /** Starts node i again (same ports, same store) and waits until it serves MQTT. */
  async restart(i: number, timeoutMs = 30_000): Promise<void> {
    if (this.nodes[i]!.proc) await this.stopNode(i);
    this.spawn(i);
    await this.waitReady(i, timeoutMs);
  }

  /** Restarts every node in turn, each back and serving before the next goes; `between` runs after each. */
  async rollingRestart(between?: (i: number) => Promise<void>): Promise<void> {
    for (let i = 0; i < this.nodes.length; i++) {
      await this.stopNode(i);
      await this.restart(i);
      if (between) await between(i);
    }
  }

  pid(i: number): number | undefined {
    return this.nodes[i]!.proc?.pid;
  }

  /** /varz of node i (connections, cpu, mem), or undefined when it does not answer. */
  async varz(i: number): Promise<{ connections: number; cpu: number; mem: number } | undefined> {
    try {
      const r = await fetch(`http://127.0.0.1:${this.nodes[i]!.httpPort}/varz`, { signal: AbortSignal.timeout(2000) });
      return (await r.json()) as { connections: number; cpu: number; mem: number };
    } catch {
      return undefined;
    }
  }

  /** The MQTT gateway's streams as node i sees them: name and how many nodes hold each (leader and replicas). */
  async mqttStreams(i: number): Promise<Array<{ name: string; nodes: number; leader?: string }>> {
    const r = await fetch(`http://127.0.0.1:${this.nodes[i]!.httpPort}/jsz?accounts=true&streams=true`, { signal: AbortSignal.timeout(5000) });
    const j = (await r.json()) as { account_details?: Array<{ stream_detail?: Array<{ name: string; cluster?: { leader?: string; replicas?: unknown[] } }> }> };
    return (j.account_details ?? [])
      .flatMap((a) => a.stream_detail ?? [])
      .filter((s) => s.name.startsWith("$MQTT_"))
      .map((s) => ({ name: s.name, nodes: (s.cluster?.leader ? 1 : 0) + (s.cluster?.replicas?.length ?? 0), ...(s.cluster?.leader ? { leader: s.cluster.leader } : {}) }));
  }

  /** Stops every node and removes the cluster's directory. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((_, i) => this.kill(i)));
    removeTempDir(this.dir);
  }
}
