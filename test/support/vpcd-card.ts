/**
 * Test support: a virtual card that plugs into vsmartcard's vpcd reader driver (pcscd readers
 * "Virtual PCD 00 00" on TCP 35963, "Virtual PCD 00 01" on 35964). Connecting the socket = card inserted,
 * closing it = card removed.
 *
 * Wire protocol (vsmartcard vpcd 3.3): frames of big-endian uint16 length + payload. A 1-byte payload
 * from vpcd is a control byte: 0 power off, 1 power on, 2 reset, 4 "send your ATR" (answer with an ATR
 * frame). Any other payload is a command APDU, answered with one response-APDU frame.
 *
 * Latency: vpcd writes length and payload in two TCP segments, so Nagle + delayed ACK would cost ~48 ms
 * per APDU; setting TCP_QUICKACK (re-armed after every read, Linux clears it) and TCP_NODELAY brings an
 * APDU round trip through pcscd to ~0.5 ms (platform-facts.md).
 */

import net from "node:net";
import { dlopen, ptr } from "bun:ffi";

export type PowerEvent = "off" | "on" | "reset";

/**
 * "fast": answer at once. "realistic": wait before answering
 *   turnaroundMs + (command + 3 + response + 3) bytes × 8 / bitRate seconds,
 * i.e. the card's processing time plus both frames on air, each with ISO 14443-4 PCB and CRC_A
 * (3 bytes); parity bits, SOF/EOF and frame delay times are left out (a ~12% underestimate at most).
 */
export type Latency = { kind: "fast" } | { kind: "realistic"; bitRate: number; turnaroundMs: number };

export interface VpcdCardOptions {
  host?: string;
  port?: number;
  atr: Uint8Array;
  handler: (apdu: Uint8Array) => Uint8Array | Promise<Uint8Array>;
  onPower?: (event: PowerEvent) => void;
  /** Called when the handler throws; the card then answers 6F00 (no precise diagnosis). */
  onError?: (err: unknown) => void;
  latency?: Latency;
  /** Set TCP_QUICKACK after every read (default true). Without it each APDU costs ~48 ms. */
  quickAck?: boolean;
}

export interface VpcdLink {
  /** Command APDUs answered since the last (re)connect. */
  readonly apduCount: number;
  readonly connected: boolean;
  /** The card leaves the reader: closes the socket, resolves when it is closed. */
  close(): Promise<void>;
  /** The card enters the reader again (after close() or after vpcd dropped it). */
  reconnect(): Promise<void>;
}

const IPPROTO_TCP = 6;
const TCP_QUICKACK = 12;

let libc: { setsockopt: (fd: number, level: number, name: number, value: number, len: number) => number } | undefined;

function setQuickAck(fd: number): void {
  if (!libc) {
    libc = dlopen("libc.so.6", { setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" } }).symbols as never;
  }
  libc!.setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, ptr(ONE), 4);
}
const ONE = new Int32Array([1]);

function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + payload.length);
  out[0] = payload.length >> 8;
  out[1] = payload.length & 0xff;
  out.set(payload, 2);
  return out;
}

function socketFd(socket: net.Socket): number | undefined {
  // Bun's node:net exposes the descriptor on the internal handle (checked with Bun 1.4.5).
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : undefined;
}

/** Connects a virtual card to vpcd (= inserts it into the reader). */
export async function connectVpcd(opts: VpcdCardOptions): Promise<VpcdLink> {
  const host = opts.host ?? "127.0.0.1";
  const port = opts.port ?? 35963;
  const quickAck = opts.quickAck ?? true;
  const latency = opts.latency ?? { kind: "fast" };
  let socket: net.Socket | undefined;
  let apduCount = 0;

  const open = () =>
    new Promise<void>((resolve, reject) => {
      const s = net.connect({ host, port });
      let pending = new Uint8Array(0);
      let chain: Promise<void> = Promise.resolve();
      let fd: number | undefined;
      const armQuickAck = () => {
        if (quickAck && fd !== undefined) setQuickAck(fd);
      };

      const answer = async (payload: Uint8Array): Promise<void> => {
        if (payload.length === 1) {
          const control = payload[0];
          if (control === 4) s.write(frame(opts.atr));
          else if (control === 0) opts.onPower?.("off");
          else if (control === 1) opts.onPower?.("on");
          else if (control === 2) opts.onPower?.("reset");
          return;
        }
        let response: Uint8Array;
        try {
          response = await opts.handler(payload);
        } catch (err) {
          opts.onError?.(err);
          response = Uint8Array.of(0x6f, 0x00);
        }
        if (latency.kind === "realistic") {
          const ms = latency.turnaroundMs + ((payload.length + 3 + response.length + 3) * 8 * 1000) / latency.bitRate;
          await Bun.sleep(ms);
        }
        apduCount++;
        if (!s.destroyed) s.write(frame(response));
      };

      s.once("connect", () => {
        s.setNoDelay(true);
        fd = socketFd(s);
        armQuickAck();
        socket = s;
        apduCount = 0;
        resolve();
      });
      s.once("error", (err) => {
        if (socket !== s) reject(err);
      });
      s.on("data", (chunk: Uint8Array) => {
        // Linux clears TCP_QUICKACK after ACKs go out: re-arm on every read.
        armQuickAck();
        const merged = new Uint8Array(pending.length + chunk.length);
        merged.set(pending);
        merged.set(chunk, pending.length);
        let offset = 0;
        while (merged.length - offset >= 2) {
          const len = (merged[offset]! << 8) | merged[offset + 1]!;
          if (merged.length - offset - 2 < len) break;
          const payload = merged.slice(offset + 2, offset + 2 + len);
          offset += 2 + len;
          chain = chain.then(() => answer(payload));
        }
        pending = merged.slice(offset);
      });
      s.on("close", () => {
        if (socket === s) socket = undefined;
      });
    });

  const close = () =>
    new Promise<void>((resolve) => {
      const s = socket;
      socket = undefined;
      if (!s || s.destroyed) return resolve();
      s.once("close", () => resolve());
      s.destroy();
    });

  await open();
  return {
    get apduCount() {
      return apduCount;
    },
    get connected() {
      return socket !== undefined && !socket.destroyed;
    },
    close,
    reconnect: async () => {
      await close();
      await open();
    },
  };
}
