/**
 * sd_notify(3) for `Type=notify` units: READY=1 after start, WATCHDOG=1 every half of
 * WatchdogSec (WATCHDOG_USEC), STOPPING=1 on shutdown, STATUS=... for `systemctl status`.
 *
 * The protocol is one datagram to the AF_UNIX SOCK_DGRAM socket named by $NOTIFY_SOCKET (a
 * path, or an abstract name written with a leading "@"). Bun's node:dgram has no unix
 * datagram sockets, so socket(2)/sendto(2) are called from libc through bun:ffi. Without
 * NOTIFY_SOCKET (not run by systemd) every call is a no-op.
 */
import { ptr } from "bun:ffi";
import { libc } from "./libc.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
/** sizeof(struct sockaddr_un): sa_family_t (2 bytes) + sun_path[108]. */
const SOCKADDR_UN_SIZE = 110;

/** struct sockaddr_un for a NOTIFY_SOCKET value, and its length for sendto. */
export function notifyAddress(socketName: string): { addr: Uint8Array; length: number } {
  const name = new TextEncoder().encode(socketName);
  if (name.length < 2 || (socketName[0] !== "/" && socketName[0] !== "@")) {
    throw new RangeError("NOTIFY_SOCKET must be an absolute path or an abstract name starting with @");
  }
  if (name.length > SOCKADDR_UN_SIZE - 2 - (socketName[0] === "/" ? 1 : 0)) throw new RangeError("NOTIFY_SOCKET is too long for sockaddr_un");
  const addr = new Uint8Array(SOCKADDR_UN_SIZE);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(name, 2);
  if (socketName[0] === "@") {
    // Abstract namespace: sun_path starts with NUL and the length counts exactly the name.
    addr[2] = 0;
    return { addr, length: 2 + name.length };
  }
  return { addr, length: 2 + name.length + 1 };
}

/** Sends one notification; false when not under systemd or when the send failed. */
export function sdNotify(state: string, env: Record<string, string | undefined> = process.env): boolean {
  const socketName = env.NOTIFY_SOCKET;
  if (!socketName) return false;
  let target: { addr: Uint8Array; length: number };
  try {
    target = notifyAddress(socketName);
  } catch {
    return false;
  }
  const l = libc();
  const fd = l.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  try {
    const msg = new TextEncoder().encode(state);
    const sent = Number(l.sendto(fd, ptr(msg), msg.length, MSG_NOSIGNAL, ptr(target.addr), target.length));
    return sent === msg.length;
  } finally {
    l.close(fd);
  }
}

/** The watchdog period systemd asked for (WATCHDOG_USEC, for this pid), in ms; undefined when none. */
export function watchdogIntervalMs(env: Record<string, string | undefined> = process.env, pid = process.pid): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID !== undefined && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return usec / 1000;
}

/**
 * READY/WATCHDOG/STOPPING for the service. The watchdog is kicked from a timer on the event
 * loop at half the period (sd_watchdog_enabled(3) advice), so a blocked loop misses it and
 * systemd restarts the agent.
 */
export class SystemdNotifier {
  readonly #env: Record<string, string | undefined>;
  #timer: ReturnType<typeof setInterval> | undefined;
  constructor(env: Record<string, string | undefined> = process.env) {
    this.#env = env;
  }
  get enabled(): boolean {
    return !!this.#env.NOTIFY_SOCKET;
  }
  ready(status?: string): boolean {
    const ok = sdNotify(`READY=1${status ? `\nSTATUS=${status}` : ""}`, this.#env);
    const ms = watchdogIntervalMs(this.#env);
    if (ok && ms !== undefined && !this.#timer) {
      this.#timer = setInterval(() => sdNotify("WATCHDOG=1", this.#env), Math.max(100, ms / 2));
      this.#timer.unref?.();
    }
    return ok;
  }
  status(text: string): boolean {
    return sdNotify(`STATUS=${text}`, this.#env);
  }
  stopping(): boolean {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    return sdNotify("STOPPING=1", this.#env);
  }
}
