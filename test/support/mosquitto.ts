/**
 * Starts a real Mosquitto (Debian mosquitto 2.0) for tests, on 127.0.0.1 and a free port.
 *
 * - "plain": anonymous MQTT on loopback, no TLS.
 * - "tls-acl": deploy/mosquitto/mosquitto.conf and deploy/mosquitto/acl as shipped, with the
 *   listener moved to the test port on loopback and the file paths pointed at a temporary
 *   directory holding certificates from deploy/make-test-pki.sh.
 * Websocket listeners bind every interface whatever they are told, so none is used here.
 * `stop()` ends the broker for sure (SIGTERM, then SIGKILL) and can be followed by `restart()`,
 * which brings it back on the same port with the same persistence directory. Temporary files
 * go when the test process exits.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, copyFileSync, existsSync, appendFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { pumpText } from "./process-output.ts";

const ROOT = resolve(import.meta.dir, "../..");
const DEPLOY = join(ROOT, "deploy");

export interface TestCerts {
  dir: string;
  ca: string;
  /** PEM paths for a client name (agent id or "operator-test"). */
  client(name: string): { cert: string; key: string };
}

export interface Mosquitto {
  url: string;
  port: number;
  certs?: TestCerts;
  /** Broker log so far (stderr). */
  log(): string;
  /** Stops the broker; restart() brings it back with its files (persistence). */
  stop(): Promise<void>;
  /** `kill -9` of the broker (no persistence written); restart() brings it back. */
  kill(): Promise<void>;
  /** The broker's process id while it runs. */
  pid(): number | undefined;
  restart(): Promise<void>;
  /** Stops the broker for good and removes its files (and the test PKI once no broker uses it). */
  close(): Promise<void>;
}

export interface StartOptions {
  config?: "plain" | "tls-acl";
  port?: number;
  /** Agent ids to make client certificates for (tls-acl). */
  agents?: string[];
  /**
   * More operator identities besides operator-test (tls-acl): a certificate each and an
   * operator block in the broker's copy of the ACL. The broker makes a certificate's CN its
   * client id, so every concurrent operator connection needs an identity of its own.
   */
  operators?: string[];
  /** Lines added to the "plain" configuration (e.g. `autosave_interval 1`). */
  extraConfig?: string;
}

const live = new Set<Subprocess>();
const tempDirs = new Set<string>();
// For scripts (the demo). `bun test` runs no exit handlers: there stop() removes the broker's
// files, and the test PKI (private keys) goes with the last broker that used it.
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/** PKI made once while brokers use it (openssl is slow enough to matter), with how many do. */
const pkiCache = new Map<string, { certs: TestCerts; users: number }>();

function usePki(agents: string[]): TestCerts {
  const key = agents.join(",");
  const hit = pkiCache.get(key);
  if (hit) {
    hit.users++;
    return hit.certs;
  }
  const certs = makeTestPki(agents);
  pkiCache.set(key, { certs, users: 1 });
  return certs;
}

function releasePki(certs: TestCerts): void {
  for (const [key, entry] of pkiCache) {
    if (entry.certs !== certs || --entry.users > 0) continue;
    pkiCache.delete(key);
    rmSync(certs.dir, { recursive: true, force: true });
    tempDirs.delete(certs.dir);
  }
}

/** A test CA with broker and client certificates (deploy/make-test-pki.sh) in a new temporary directory. */
export function makeTestPki(agents: string[]): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), "mrtd-pki-"));
  tempDirs.add(dir);
  const r = Bun.spawnSync(["bash", join(DEPLOY, "make-test-pki.sh"), dir, ...agents], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`make-test-pki.sh failed: ${r.stderr.toString()}`);
  const certs: TestCerts = {
    dir,
    ca: join(dir, "ca.crt"),
    client: (name) => {
      const cert = join(dir, `${name}.crt`);
      if (!existsSync(cert)) throw new Error(`no test certificate for ${name}`);
      return { cert, key: join(dir, `${name}.key`) };
    },
  };
  return certs;
}

export async function startMosquitto(opts: StartOptions = {}): Promise<Mosquitto> {
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "mrtd-mosquitto-"));
  tempDirs.add(dir);
  const persistence = join(dir, "data");
  mkdirSync(persistence);
  const confPath = join(dir, "mosquitto.conf");
  let certs: TestCerts | undefined;
  // Run as the current user: as root Mosquitto would otherwise switch to "mosquitto", which
  // cannot read the temporary directory.
  const user = process.getuid?.() === 0 ? "user root\n" : "";
  if ((opts.config ?? "plain") === "plain") {
    writeFileSync(confPath, `${user}listener ${port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence true\npersistence_location ${persistence}/\nlog_dest stderr\nlog_type error\nlog_type warning\n${opts.extraConfig ? opts.extraConfig + "\n" : ""}`);
  } else {
    const operators = opts.operators ?? [];
    if (operators.some((o) => !/^operator-[a-z0-9-]+$/.test(o))) throw new Error("test operator names are operator-<a-z0-9->");
    certs = usePki([...(opts.agents ?? ["agent-test"]), ...operators]);
    copyFileSync(join(DEPLOY, "mosquitto", "acl"), join(dir, "acl"));
    for (const o of operators) appendFileSync(join(dir, "acl"), `\nuser ${o}\ntopic write mrtd/v1/+/cmd/+\ntopic read mrtd/v1/#\n`);
    const shipped = readFileSync(join(DEPLOY, "mosquitto", "mosquitto.conf"), "utf8");
    const rewritten = templateConfig(shipped, {
      listener: `listener ${port} 127.0.0.1`,
      cafile: certs.ca,
      certfile: join(certs.dir, "broker.crt"),
      keyfile: join(certs.dir, "broker.key"),
      acl_file: join(dir, "acl"),
      persistence_location: persistence + "/",
    });
    writeFileSync(confPath, user + rewritten);
  }

  let proc: Subprocess<"ignore", "ignore", "pipe"> | undefined;
  let log = "";
  const launch = async () => {
    const p = Bun.spawn(["mosquitto", "-c", confPath], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    proc = p;
    live.add(p);
    void pumpText(p.stderr, (t) => (log += t));
    const until = Date.now() + 10000;
    while (!(await accepts(port))) {
      if (p.exitCode !== null) throw new Error(`mosquitto exited with ${p.exitCode}: ${log}`);
      if (Date.now() > until) throw new Error(`mosquitto did not accept on ${port}: ${log}`);
      await Bun.sleep(25);
    }
  };
  const stop = async () => {
    const p = proc;
    if (!p) return;
    proc = undefined;
    p.kill("SIGTERM");
    const exited = await Promise.race([p.exited.then(() => true), Bun.sleep(3000).then(() => false)]);
    if (!exited) {
      p.kill("SIGKILL");
      await p.exited;
    }
    live.delete(p);
  };
  let removed = false;
  await launch();
  const scheme = certs ? "mqtts" : "mqtt";
  const handle: Mosquitto = {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    log: () => log,
    stop: async () => {
      await stop();
    },
    kill: async () => {
      const p = proc;
      if (!p) return;
      proc = undefined;
      p.kill("SIGKILL");
      await p.exited;
      live.delete(p);
    },
    pid: () => proc?.pid,
    restart: async () => {
      await stop();
      await launch();
    },
    close: async () => {
      await stop();
      if (removed) return;
      removed = true;
      rmSync(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
      if (certs) releasePki(certs);
    },
  };
  if (certs) handle.certs = certs;
  return handle;
}

/** Replaces the value of each named directive (first word of a line) in a mosquitto.conf. */
export function templateConfig(conf: string, values: Record<string, string>): string {
  const seen = new Set<string>();
  const out = conf
    .split("\n")
    .map((line) => {
      const word = /^(\w+)\s/.exec(line)?.[1];
      if (word === undefined || !(word in values)) return line;
      seen.add(word);
      return word === "listener" ? values[word]! : `${word} ${values[word]}`;
    })
    .join("\n");
  const missing = Object.keys(values).filter((k) => !seen.has(k));
  if (missing.length > 0) throw new Error(`mosquitto.conf template: directives not found: ${missing.join(", ")}`);
  return out;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      res(true);
    });
    s.once("error", () => res(false));
  });
}
