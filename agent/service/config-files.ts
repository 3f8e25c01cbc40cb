/**
 * Checks every file and directory a configuration names, the way the run will use them, so
 * that `run --check` and the start of `run` refuse what the run would trip over later. Each
 * problem is a ConfigError "<config file>: <key>: <problem>" (exit code 2):
 *
 *   mqtt.ca, mqtt.client_cert      regular files holding a PEM block
 *   mqtt.client_key                the same, and private (below)
 *   mqtt.password_file             private (parseConfig reads it)
 *   readers.test_key_file          private, and a valid access key (when read_on_insert)
 *   agent.key_file                 private, and an X25519 private key (key-file.ts); when it
 *                                  does not exist, a directory it can be created in
 *   verification.trust             trust sources that load (pki/trust-files.ts)
 *   agent.state_dir                a writable directory, or one that can be created; not on
 *                                  a kernel filesystem (/proc, /sys, ...)
 *   outbox.path                    a SQLite database, or an empty or missing file in such a
 *                                  directory
 *
 * Private files are refused when group or others have any access to them (mode & 077), as
 * ssh refuses private keys, unless agent.strict_key_permissions = false.
 */
import { accessSync, closeSync, constants, openSync, readFileSync, readSync, statfsSync, statSync, type Stats } from "node:fs";
import { dirname, resolve } from "node:path";
import { ConfigError } from "../errors.ts";
import { loadTrust } from "../verification/trust.ts";
import { loadTestAccessKey } from "./test-access-key.ts";
import { KeyFileError, readPrivateKeyFile } from "./key-file.ts";
import type { AgentConfig } from "./config.ts";

/** statfs(2) f_type of filesystems that are the kernel's, not storage (linux/magic.h). */
const KERNEL_FILESYSTEMS = new Map<number, string>([
  [0x9fa0, "proc"],
  [0x62656572, "sysfs"],
  [0x1cd1, "devpts"],
  [0x27e0eb, "cgroup"],
  [0x63677270, "cgroup2"],
  [0x64626720, "debugfs"],
  [0x74726163, "tracefs"],
  [0x73636673, "securityfs"],
]);

/** The first 16 bytes of every SQLite 3 database file (sqlite.org/fileformat.html §1.3). */
const SQLITE_HEADER = "SQLite format 3\0";

export function checkConfigFiles(c: AgentConfig): void {
  const fail = (key: string, problem: string): never => {
    throw new ConfigError(`${c.file}: ${key}: ${problem}`, { file: c.file, key });
  };
  const strict = c.agent.strictKeyPermissions;

  /** A regular file the run reads; `private` adds the permission check. Returns its text. */
  const readable = (key: string, path: string, opts: { pem?: boolean; private?: boolean }): string => {
    const st = stat(path);
    if (typeof st === "string") return fail(key, `${path} ${errnoText(st)}`);
    if (st.isDirectory()) fail(key, `${path} is a directory, not a file`);
    if (!st.isFile()) fail(key, `${path} is not a regular file`);
    if (opts.private && strict && (st.mode & 0o077) !== 0) {
      fail(key, `${path} is accessible by group or others (mode ${modeText(st)}); chmod 600 it, or set agent.strict_key_permissions = false`);
    }
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      return fail(key, `${path} ${errnoText((e as NodeJS.ErrnoException).code)}`);
    }
    if (opts.pem && !/-----BEGIN [A-Z0-9 ]+-----/.test(text)) fail(key, `${path} holds no PEM block (-----BEGIN ...-----)`);
    return text;
  };

  const m = c.mqtt;
  if (m.ca !== undefined) readable("mqtt.ca", m.ca, { pem: true });
  if (m.clientCert !== undefined) readable("mqtt.client_cert", m.clientCert, { pem: true });
  if (m.clientKey !== undefined) readable("mqtt.client_key", m.clientKey, { pem: true, private: true });
  if (m.passwordFile !== undefined) readable("mqtt.password_file", m.passwordFile, { private: true });
  if (c.readers.readOnInsert && c.readers.testKeyFile !== undefined) {
    readable("readers.test_key_file", c.readers.testKeyFile, { private: true });
    loadTestAccessKey(c.readers.testKeyFile); // its own ConfigError names the key file and key
  }
  try {
    loadTrust(c.verification.trust);
  } catch (e) {
    if (e instanceof ConfigError) fail("verification.trust", e.message);
    throw e;
  }

  writableDirectory(c.agent.stateDir, "agent.state_dir", fail);
  const keyFile = stat(c.agent.keyFile);
  if (keyFile === "ENOENT") writableDirectory(dirname(resolve(c.agent.keyFile)), "agent.key_file", fail); // made on first start
  else {
    readable("agent.key_file", c.agent.keyFile, { private: true });
    try {
      readPrivateKeyFile(c.agent.keyFile, { strict }).privateKey.fill(0);
    } catch (e) {
      if (e instanceof KeyFileError) fail("agent.key_file", e.message);
      throw e;
    }
  }
  checkOutbox(c.outbox.path, fail);
}

function checkOutbox(path: string, fail: (key: string, problem: string) => never): void {
  const key = "outbox.path";
  const st = stat(path);
  if (typeof st === "string") {
    if (st !== "ENOENT") fail(key, `${path} ${errnoText(st)}`);
    writableDirectory(dirname(resolve(path)), key, fail); // the outbox creates the file
    return;
  }
  const fs = kernelFilesystem(path);
  if (fs) fail(key, `${path} is on the kernel's ${fs} filesystem, not storage`);
  if (st.isDirectory()) fail(key, `${path} is a directory, not a database file`);
  if (!st.isFile()) fail(key, `${path} is not a regular file`);
  if (st.size > 0) {
    const head = Buffer.alloc(SQLITE_HEADER.length);
    let n = 0;
    try {
      const fd = openSync(path, "r");
      try {
        n = readSync(fd, head, 0, head.length, 0);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      fail(key, `${path} ${errnoText((e as NodeJS.ErrnoException).code)}`);
    }
    if (n < head.length || head.toString("latin1") !== SQLITE_HEADER) fail(key, `${path} is not a SQLite database (the outbox is one); move it away or point outbox.path elsewhere`);
  }
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
  } catch {
    fail(key, `${path} is not readable and writable by this user`);
  }
  writableDirectory(dirname(resolve(path)), key, fail); // SQLite's WAL and journal files go beside it
}

/** A directory the agent writes into: present and writable, or creatable (mkdir -p) under a writable one. */
function writableDirectory(dir: string, key: string, fail: (key: string, problem: string) => never): void {
  const fs = kernelFilesystem(dir);
  if (fs) fail(key, `${dir} is on the kernel's ${fs} filesystem, not storage`);
  let path = resolve(dir);
  let st = stat(path);
  if (typeof st !== "string" && !st.isDirectory()) fail(key, `${dir} is ${st.isFile() ? "a file" : "not a directory"}, not a directory`);
  // Missing: the nearest existing ancestor must be a directory the agent can create it in.
  while (typeof st === "string") {
    if (st !== "ENOENT") fail(key, `${path} ${errnoText(st)}`);
    const parent = dirname(path);
    if (parent === path) break;
    path = parent;
    st = stat(path);
    if (typeof st !== "string" && !st.isDirectory()) fail(key, `${dir} cannot be created: ${path} is not a directory`);
  }
  try {
    accessSync(path, constants.W_OK | constants.X_OK);
  } catch {
    fail(key, path === resolve(dir) ? `${dir} is not writable by this user` : `${dir} cannot be created: ${path} is not writable by this user`);
  }
}

/** The kernel filesystem `path` (or its nearest existing ancestor) is on, if any. */
function kernelFilesystem(path: string): string | undefined {
  let p = resolve(path);
  for (;;) {
    try {
      return KERNEL_FILESYSTEMS.get(Number(statfsSync(p).type));
    } catch {
      const parent = dirname(p);
      if (parent === p) return undefined;
      p = parent;
    }
  }
}

/** stat(2) of `path`, or its errno code. */
function stat(path: string): Stats | string {
  try {
    return statSync(path);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? "error";
  }
}

function errnoText(code: string | undefined): string {
  switch (code) {
    case "ENOENT":
      return "does not exist";
    case "EACCES":
    case "EPERM":
      return "is not readable by this user";
    case "ENOTDIR":
      return "has a path component that is not a directory";
    case "EISDIR":
      return "is a directory, not a file";
    default:
      return `cannot be read (${code ?? "error"})`;
  }
}

function modeText(st: Stats): string {
  return "0" + (st.mode & 0o777).toString(8).padStart(3, "0");
}
