/**
 * A three-node ejabberd cluster with mod_mqtt (MQTT 5 and 3.1.1; Debian ejabberd 23.01), for
 * the MQTT 5 failover test. Everything on loopback: MQTT listeners on free ports, Erlang
 * distribution bound to 127.0.0.1 (INET_DIST_INTERFACE), node names `mrtdN-<random>@127.0.0.1`,
 * and an epmd of its own on a free port (ERL_EPMD_PORT) that stop() ends, so no daemon outlives
 * the test and no other user of the machine's epmd is touched. Each node has its own config,
 * spool (Mnesia) and log directories under one temporary directory owned by the `ejabberd`
 * user, which the nodes run as (ejabberdctl switches to it). Nodes 2 and 3 `join_cluster` node 1.
 *
 * Authentication is anonymous with `login_anon`: any username with a non-empty password
 * (credentials()). Limits (../shared/reference/mqtt-brokers.md): retained messages are found
 * only by subscribers on the node they were published on; sessions held on a dead node are lost.
 * ~9 s boot per node.
 */
import { chownSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { freePort } from "./mosquitto.ts";
import { answersConnect } from "./mqtt-probe.ts";
import { makeTempDir, removeTempDir } from "./temp-dir.ts";

export interface EjabberdNode {
  index: number;
  name: string;
  mqttPort: number;
  mqttUrl: string;
  cfg: string;
  spool: string;
  logs: string;
  pidFile: string;
  proc?: Subprocess;
}

const live = new Set<Subprocess>();
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

/** uid and gid of the ejabberd user, from /etc/passwd. */
function ejabberdUser(): { uid: number; gid: number } | undefined {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("ejabberd:"));
  if (!line) return undefined;
  const f = line.split(":");
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

export function ejabberdAvailable(): boolean {
  return Bun.which("ejabberdctl") !== null && ejabberdUser() !== undefined && userInfo().uid === 0;
}

export class EjabberdCluster {
  private epmd: Subprocess | undefined;

  private constructor(
    readonly dir: string,
    readonly nodes: EjabberdNode[],
    readonly epmdPort: number,
    private readonly cookie: string,
  ) {}

  get urls(): string[] {
    return this.nodes.map((n) => n.mqttUrl);
  }

  /** Any username with a non-empty password (anonymous login_anon); keep the username stable per client. */
  static credentials(id: string): { username: string; password: string } {
    return { username: id, password: "anon" };
  }

  static async start(count = 3): Promise<EjabberdCluster> {
    const user = ejabberdUser();
    if (!user) throw new Error("no ejabberd user: install Debian's ejabberd (deploy/dev-setup.sh)");
    const dir = makeTempDir("ejabberd-cluster");
    const tag = Math.random().toString(36).slice(2, 8);
    const nodes: EjabberdNode[] = [];
    for (let i = 0; i < count; i++) {
      const mqttPort = await freePort();
      const base = join(dir, `n${i + 1}`);
      nodes.push({ index: i, name: `mrtd${i + 1}-${tag}@127.0.0.1`, mqttPort, mqttUrl: `mqtt://127.0.0.1:${mqttPort}`, cfg: join(base, "cfg"), spool: join(base, "spool"), logs: join(base, "logs"), pidFile: join(base, "ejabberd.pid") });
    }
    const c = new EjabberdCluster(dir, nodes, await freePort(), `mrtd-${tag}-${Math.random().toString(36).slice(2)}`);
    try {
      for (const n of nodes) c.writeConfig(n);
      chownTree(dir, user.uid, user.gid);
      c.epmd = Bun.spawn(["epmd", "-address", "127.0.0.1", "-port", String(c.epmdPort)], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
      live.add(c.epmd);
      await Bun.sleep(200);
      await Promise.all(nodes.map((_, i) => c.launch(i)));
      for (let i = 1; i < count; i++) {
        const r = await c.ctl(i, ["join_cluster", nodes[0]!.name]);
        if (r.code !== 0) throw new Error(`join_cluster of ${nodes[i]!.name}: ${r.out}`);
        await c.waitReady(i, 60_000);
      }
      const r = await c.ctl(0, ["list_cluster"]);
      for (const n of nodes) if (!r.out.includes(n.name)) throw new Error(`ejabberd cluster incomplete: ${r.out}`);
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  private writeConfig(n: EjabberdNode): void {
    for (const d of [n.cfg, n.spool, n.logs]) mkdirSync(d, { recursive: true });
    writeFileSync(join(n.cfg, "inetrc"), "");
    writeFileSync(
      join(n.cfg, "ejabberdctl.cfg"),
      [`ERLANG_NODE=${n.name}`, "INET_DIST_INTERFACE=127.0.0.1", "ERL_EPMD_ADDRESS=127.0.0.1", `ERL_OPTIONS="-setcookie ${this.cookie} -env ERL_CRASH_DUMP_BYTES 0"`, `EJABBERD_PID_PATH=${n.pidFile}`, ""].join("\n"),
    );
    writeFileSync(
      join(n.cfg, "ejabberd.yml"),
      `hosts:
  - localhost
loglevel: warning
log_rotate_count: 0
certfiles: []
listen:
  -
    port: ${n.mqttPort}
    ip: "127.0.0.1"
    module: mod_mqtt
    backlog: 1000
auth_method: [anonymous]
anonymous_protocol: login_anon
acl:
  loopback:
    ip: 127.0.0.0/8
api_permissions:
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
modules:
  mod_mqtt:
    max_queue: 10000
    max_topic_depth: 16
    session_expiry: 1h
`,
    );
  }

  private env(): Record<string, string> {
    return { ...(process.env as Record<string, string>), ERL_EPMD_PORT: String(this.epmdPort) };
  }

  private ctlArgs(n: EjabberdNode): string[] {
    return ["ejabberdctl", "--config-dir", n.cfg, "--ctl-config", join(n.cfg, "ejabberdctl.cfg"), "--config", join(n.cfg, "ejabberd.yml"), "--spool", n.spool, "--logs", n.logs];
  }

  async ctl(i: number, args: string[], timeoutMs = 60_000): Promise<{ code: number; out: string }> {
    const p = Bun.spawn([...this.ctlArgs(this.nodes[i]!), ...args], { env: this.env(), stdin: "ignore", stdout: "pipe", stderr: "pipe", cwd: this.nodes[i]!.spool });
    const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
    const code = await p.exited;
    clearTimeout(t);
    return { code, out: out + err };
  }

  private async launch(i: number, timeoutMs = 60_000): Promise<void> {
    const n = this.nodes[i]!;
    const p = Bun.spawn([...this.ctlArgs(n), "foreground"], { env: this.env(), stdin: "ignore", stdout: "ignore", stderr: "ignore", cwd: n.spool });
    n.proc = p;
    live.add(p);
    void p.exited.then(() => live.delete(p));
    await this.waitReady(i, timeoutMs);
  }

  /** Waits until node i answers an MQTT 5 CONNECT with CONNACK. */
  async waitReady(i: number, timeoutMs = 60_000): Promise<void> {
    const n = this.nodes[i]!;
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (!n.proc || n.proc.exitCode !== null) throw new Error(`ejabberd ${n.name} exited: ${this.log(i).slice(-2000)}`);
      const ok = await answersConnect(n.mqttUrl, { clientId: `ready-probe-${i}`, protocolVersion: 5, ...EjabberdCluster.credentials(`ready-probe-${i}`) });
      if (ok) return;
      if (Date.now() > until) throw new Error(`ejabberd ${n.name} did not accept MQTT within ${timeoutMs} ms: ${this.log(i).slice(-2000)}`);
      await Bun.sleep(300);
    }
  }

  log(i: number): string {
    try {
      return readFileSync(join(this.nodes[i]!.logs, "ejabberd.log"), "utf8");
    } catch {
      return "";
    }
  }

  /** The Erlang VM's pid (beam.smp) of node i, from its pid file. */
  private beamPid(i: number): number | undefined {
    try {
      const pid = Number(readFileSync(this.nodes[i]!.pidFile, "utf8").trim());
      return pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  pid(i: number): number | undefined {
    return this.nodes[i]!.proc ? this.beamPid(i) : undefined;
  }

  /** `kill -9` of node i's Erlang VM. */
  async kill(i: number): Promise<void> {
    const n = this.nodes[i]!;
    const p = n.proc;
    if (!p) return;
    n.proc = undefined;
    const beam = this.beamPid(i);
    if (beam) {
      try {
        process.kill(beam, "SIGKILL");
      } catch {
        /* gone already */
      }
    }
    p.kill("SIGKILL");
    await Promise.race([p.exited, Bun.sleep(5000)]);
  }

  /** Graceful stop of node i (ejabberdctl stop), kill -9 after 20 s. */
  async stopNode(i: number): Promise<void> {
    const n = this.nodes[i]!;
    const p = n.proc;
    if (!p) return;
    await this.ctl(i, ["stop"], 20_000);
    const gone = await Promise.race([p.exited.then(() => true), Bun.sleep(20_000).then(() => false)]);
    if (!gone) await this.kill(i);
    n.proc = undefined;
  }

  /** Starts node i again with its spool (it rejoins the cluster from Mnesia) and waits for MQTT. */
  async restart(i: number): Promise<void> {
    if (this.nodes[i]!.proc) await this.stopNode(i);
    await this.launch(i);
  }

  /** Stops every node and the epmd, removes the directories. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((_, i) => this.kill(i)));
    if (this.epmd) {
      this.epmd.kill("SIGKILL");
      await this.epmd.exited;
      live.delete(this.epmd);
    }
    removeTempDir(this.dir);
  }
}

function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  const r = Bun.spawnSync(["chown", "-R", `${uid}:${gid}`, path]);
  if (r.exitCode !== 0) throw new Error(`chown ${path}: ${r.stderr.toString()}`);
}
