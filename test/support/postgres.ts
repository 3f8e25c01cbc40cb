/**
 * Starts a throwaway PostgreSQL cluster for tests (Debian's postgresql, any installed major
 * version): `initdb` into a temporary directory, the server listening on 127.0.0.1 only, on a
 * free port, with its unix socket in that directory (never the system's /var/run/postgresql,
 * never a system cluster on 5432). PostgreSQL refuses to run as root, so as root (CI) the
 * directory is given to the `postgres` user and initdb and the server run under that user with
 * setpriv. Local (socket) connections are trusted for the test's own set-up; TCP needs a
 * password (scram-sha-256), which is how the dashboard connects.
 * `stop()` shuts the server down (fast shutdown, then SIGKILL) and removes the directory; a
 * failed start does the same before it throws. `down()` and `up()` stop and restart the server
 * with its data, for outage tests.
 */
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { userInfo, tmpdir } from "node:os";
import { join } from "node:path";
import { SQL, type Subprocess } from "bun";
import { freePort } from "./mosquitto.ts";

export interface PostgresCluster {
  /** 127.0.0.1 and the cluster's port. */
  host: string;
  port: number;
  /** The role the dashboard uses (password login over TCP). */
  user: string;
  password: string;
  /** Creates a database owned by `user` (if it does not exist) and returns its URL, without the password. */
  database(name: string): Promise<string>;
  /** A superuser client over the unix socket, for checks a test makes behind the store's back. */
  admin(database?: string): SQL;
  log(): string;
  /** Stops the server, keeping its data; up() starts it again on the same port. */
  down(): Promise<void>;
  up(): Promise<void>;
  stop(): Promise<void>;
}

const live = new Set<Subprocess>();
const dirs = new Set<string>();
// For scripts; `bun test` runs no exit handlers, there stop() (in afterAll) does this.
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The bin directory of the newest installed PostgreSQL (Debian: /usr/lib/postgresql/<major>/bin). */
export function postgresBin(): string | undefined {
  const base = "/usr/lib/postgresql";
  if (existsSync(base)) {
    const majors = readdirSync(base)
      .filter((v) => /^\d+$/.test(v) && existsSync(join(base, v, "bin", "postgres")))
      .sort((a, b) => Number(b) - Number(a));
    if (majors[0]) return join(base, majors[0], "bin");
  }
  const initdb = Bun.which("initdb");
  return initdb ? join(initdb, "..") : undefined;
}

export async function startPostgres(): Promise<PostgresCluster> {
  const bin = postgresBin();
  if (!bin) throw new Error("PostgreSQL is not installed (deploy/dev-setup.sh installs Debian's postgresql)");
  const dir = mkdtempSync(join(tmpdir(), "mrtd-postgres-"));
  dirs.add(dir);
  const data = join(dir, "data");
  const logFile = join(dir, "server.log");
  // As root: everything as the postgres user (the directory is its own); otherwise as ourselves.
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? postgresIds() : undefined;
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const as = (argv: string[]) => (owner ? ["setpriv", `--reuid=${owner.uid}`, `--regid=${owner.gid}`, "--init-groups", ...argv] : argv);
  const superuser = owner ? "postgres" : userInfo().username;
  const user = "mrtd_dashboard";
  const password = Buffer.from(crypto.getRandomValues(new Uint8Array(18))).toString("hex");
  let proc: Subprocess | undefined;
  let port = 0;
  const admins: SQL[] = [];

  /** Starts the server on `port`; false (and nothing left running) if it did not come up. */
  const launch = async (): Promise<boolean> => {
    const p = Bun.spawn(
      as([
        join(bin, "postgres"),
        "-D", data,
        "-c", "listen_addresses=127.0.0.1",
        "-c", `port=${port}`,
        "-c", `unix_socket_directories=${dir}`,
        "-c", "fsync=off",
        "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off",
        "-c", "shared_buffers=32MB",
        "-c", "max_connections=50",
        "-c", "log_destination=stderr",
      ]),
      { cwd: dir, stdin: "ignore", stdout: "ignore", stderr: Bun.file(logFile) },
    );
    proc = p;
    live.add(p);
    if (await ready(p, dir, port, superuser, 30_000)) return true;
    await shutdown();
    return false;
  };
  /** Fast shutdown (roll back open transactions, disconnect clients, stop), SIGKILL after 10 s. */
  const shutdown = async () => {
    const p = proc;
    if (!p) return;
    if (p.exitCode === null) {
      p.kill("SIGINT");
      const code = await Promise.race([p.exited, Bun.sleep(10_000).then(() => undefined)]);
      if (code === undefined) {
        p.kill("SIGKILL");
        await p.exited;
      }
    }
    live.delete(p);
  };
  const stop = async () => {
    for (const a of admins.splice(0)) await a.close().catch(() => undefined);
    await shutdown();
    rmSync(dir, { recursive: true, force: true });
    dirs.delete(dir);
  };

  try {
    const init = Bun.spawnSync(as([join(bin, "initdb"), "-D", data, "-U", superuser, "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]), {
      cwd: dir,
      stdout: "pipe",
      stderr: "pipe",
    });
    if (init.exitCode !== 0) throw new Error(`initdb failed (${init.exitCode}): ${init.stderr.toString().slice(-2000)}`);
    // The port is picked free, then bound by the server a moment later: retried if someone took it.
    for (let attempt = 0; ; attempt++) {
      port = await freePort();
      if (await launch()) break;
      if (attempt >= 2) throw new Error(`PostgreSQL did not start: ${readLog(logFile).slice(-2000)}`);
    }
    const admin = (database = "postgres") => {
      const c = new SQL({ adapter: "postgres", path: dir, port, username: superuser, database, max: 2 });
      admins.push(c);
      return c;
    };
    const root = admin();
    // A utility statement takes no parameters; the name and the password are our own (hex).
    await root.unsafe(`CREATE ROLE ${user} LOGIN PASSWORD '${password}'`);
    return {
      host: "127.0.0.1",
      port,
      user,
      password,
      database: async (name) => {
        if (!/^[a-z_][a-z0-9_]{0,40}$/.test(name)) throw new RangeError(`database name ${name}: lower-case letters, digits and _ only`);
        const [row] = await root`SELECT count(*)::int AS n FROM pg_database WHERE datname = ${name}`;
        if ((row as { n: number }).n === 0) await root.unsafe(`CREATE DATABASE ${name} OWNER ${user}`);
        return `postgres://${user}@127.0.0.1:${port}/${name}`;
      },
      admin,
      log: () => readLog(logFile),
      down: shutdown,
      up: async () => {
        if (!(await launch())) throw new Error(`PostgreSQL did not come back on port ${port}: ${readLog(logFile).slice(-2000)}`);
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

function postgresIds(): { uid: number; gid: number } {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  if (!line) throw new Error("running as root, and there is no postgres user to run PostgreSQL as (Debian's postgresql package creates it)");
  const f = line.split(":");
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/** Ready when the server accepts a connection on its socket; false if it exited first or took too long. */
async function ready(proc: Subprocess, dir: string, port: number, superuser: string, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  const socket = join(dir, `.s.PGSQL.${port}`);
  while (Date.now() < until) {
    if (proc.exitCode !== null) return false;
    if (existsSync(socket) && statSync(socket).isSocket()) {
      const c = new SQL({ adapter: "postgres", path: dir, port, username: superuser, database: "postgres", max: 1, connectionTimeout: 2 });
      try {
        await c`SELECT 1`;
        return true;
      } catch (e) {
        // Any answer from the server but "starting up" means it listens.
        const msg = (e as Error).message;
        if (!/starting up|ECONNREFUSED|ENOENT/i.test(msg)) return true;
      } finally {
        await c.close().catch(() => undefined);
      }
    }
    await Bun.sleep(50);
  }
  return false;
}

function readLog(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

/** Writes a password file a dashboard configuration can name (store.password_file), mode 0600. */
export function writePasswordFile(dir: string, password: string): string {
  const f = join(dir, "pg-password");
  writeFileSync(f, password + "\n", { mode: 0o600 });
  return f;
}
