/**
 * Test support: makes sure a pcscd (pcsc-lite daemon) answers on /run/pcscd/pcscd.comm with the
 * vsmartcard vpcd readers listed. Reuses a running daemon (another test or helper may own it);
 * otherwise starts `pcscd -f` and can stop or restart the one it started.
 */

import { existsSync, mkdirSync, openSync, closeSync } from "node:fs";
import net from "node:net";
import type { Subprocess } from "bun";
import { ptr } from "bun:ffi";
import { pcscLib, SCARD_S_SUCCESS, SCARD_SCOPE_SYSTEM, splitMultiString } from "../../agent/transport/pcsc-ffi.ts";

export const PCSCD_SOCKET = "/run/pcscd/pcscd.comm";
export const VPCD_READERS = ["Virtual PCD 00 00", "Virtual PCD 00 01"];

export interface PcscdHandle {
  /** True when this process started the daemon (then stop() and restart() act on it). */
  started: boolean;
  /** pcscd's output file when started with apduLog (it holds APDUs: test data only). */
  logFile: string | undefined;
  /** Kills the daemon this process started and waits for it to exit; a no-op for a reused daemon. */
  stop(): Promise<void>;
  /** Kills and starts the daemon again, waiting for the readers. Only for a daemon this process started. */
  restart(): Promise<void>;
}

/** Whether the pcscd binary is installed. */
export function pcscdAvailable(): boolean {
  return Bun.which("pcscd", { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` }) !== null;
}

function socketAccepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    if (!existsSync(path)) return resolve(false);
    const s = net.connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/**
 * Whether a pcscd already answers on its socket. Tests that must stop or restart the daemon
 * decide with this, before they are registered, whether to run or be reported skipped: a
 * daemon this process did not start is not theirs to stop.
 */
export function pcscdRunning(): Promise<boolean> {
  return socketAccepts(PCSCD_SOCKET);
}

/** Reader names via a direct (non-blocking, short) SCardListReaders; undefined when pcscd does not answer. */
export function listReadersNow(): string[] | undefined {
  const lib = pcscLib();
  const ctx = new BigUint64Array(1);
  if (lib.SCardEstablishContext(SCARD_SCOPE_SYSTEM, null, null, ptr(ctx)) !== SCARD_S_SUCCESS) return undefined;
  try {
    const len = new BigUint64Array([65536n]);
    const buf = new Uint8Array(65536);
    const rv = lib.SCardListReaders(Number(ctx[0]), null, ptr(buf), ptr(len));
    if (rv !== SCARD_S_SUCCESS) return [];
    return splitMultiString(buf, Number(len[0]));
  } finally {
    lib.SCardReleaseContext(Number(ctx[0]));
  }
}

async function waitForReaders(readers: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seen: string[] | undefined;
  while (Date.now() < deadline) {
    if (await socketAccepts(PCSCD_SOCKET)) {
      seen = listReadersNow();
      if (seen && readers.every((r) => seen!.includes(r))) return;
    }
    await Bun.sleep(50);
  }
  throw new Error(
    `pcscd did not list the readers ${JSON.stringify(readers)} within ${timeoutMs} ms (seen: ${JSON.stringify(seen ?? null)}); ` +
      "is vsmartcard-vpcd installed (/etc/reader.conf.d/vpcd)?",
  );
}

/**
 * Reuses a running pcscd or starts `pcscd -f` (with `-a -d` when apduLog: APDUs are logged at debug level),
 * then waits (bounded) until the vpcd readers are listed.
 */
export async function ensurePcscd(opts: { apduLog?: boolean; readers?: string[]; timeoutMs?: number } = {}): Promise<PcscdHandle> {
  const readers = opts.readers ?? VPCD_READERS;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  if (await socketAccepts(PCSCD_SOCKET)) {
    await waitForReaders(readers, timeoutMs);
    return {
      started: false,
      logFile: undefined,
      stop: async () => {},
      restart: async () => {
        throw new Error("restart(): this pcscd was already running (not started by this process); refusing to kill it");
      },
    };
  }
  if (!pcscdAvailable()) throw new Error("pcscd is not installed (Debian package pcscd)");
  mkdirSync("/run/pcscd", { recursive: true });
  const logFile = opts.apduLog ? `/tmp/pcscd-${process.pid}.log` : undefined;
  let proc: Subprocess | undefined;

  let stop: () => Promise<void>;
  const start = async () => {
    const args = ["pcscd", "-f", ...(opts.apduLog ? ["-a", "-d"] : [])];
    let fd: number | undefined;
    if (logFile) fd = openSync(logFile, "a");
    proc = Bun.spawn(args, { stdin: "ignore", stdout: fd ?? "ignore", stderr: fd ?? "ignore" });
    if (fd !== undefined) closeSync(fd);
    // Do not keep the test process alive for the daemon; stop() ends it.
    proc.unref();
    const exitedEarly = proc.exited.then((code) => {
      throw new Error(`pcscd exited at start with code ${code} (another pcscd on ${PCSCD_SOCKET}?)`);
    });
    exitedEarly.catch(() => undefined);
    try {
      await Promise.race([waitForReaders(readers, timeoutMs), exitedEarly]);
    } catch (err) {
      await stop();
      throw err;
    }
  };

  stop = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill("SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killed = await Promise.race([p.exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 3000)))]);
    clearTimeout(timer);
    if (!killed) {
      p.kill("SIGKILL");
      await p.exited;
    }
  };

  await start();
  return { started: true, logFile, stop, restart: async () => (await stop(), await start()) };
}
