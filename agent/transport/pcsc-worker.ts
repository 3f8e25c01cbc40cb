/**
 * Worker thread that makes the blocking pcsc-lite calls (SCardTransmit, SCardGetStatusChange,
 * SCardConnect, ...) so the main event loop never stalls on a slow or lost card.
 * It receives its SharedArrayBuffer once by postMessage, then serves calls over the Atomics
 * channel described in pcsc-channel.ts until it gets Op.Quit.
 */

import { ptr } from "bun:ffi";
import {
  channelViews,
  F_ARG,
  F_DATA_LEN,
  F_MICROS,
  F_OP,
  F_RESULT,
  F_RV,
  I_CANCEL,
  I_REQ,
  I_RES,
  Op,
  RV_WORKER_EXCEPTION,
  type ChannelViews,
} from "./pcsc-channel.ts";
import {
  cString,
  MAX_ATR_SIZE,
  MAX_BUFFER_SIZE,
  MAX_BUFFER_SIZE_EXTENDED,
  pcscLib,
  READERSTATE_SIZE,
  RS_ATR,
  RS_CB_ATR,
  RS_CURRENT_STATE,
  RS_EVENT_STATE,
  RS_READER,
  SCARD_PROTOCOL_RAW,
  SCARD_PROTOCOL_T0,
  SCARD_PROTOCOL_T1,
  SCARD_S_SUCCESS,
  SCARD_SCOPE_SYSTEM,
  splitMultiString,
} from "./pcsc-ffi.ts";

/** The worker global scope (DedicatedWorkerGlobalScope); tsconfig has no DOM/webworker lib. */
declare const self: { onmessage: ((event: MessageEvent<{ sab: SharedArrayBuffer }>) => void) | null; close(): void };

const SCARD_E_CANCELLED = 0x80100002;

const u64Out = new BigUint64Array(1);
const u64Out2 = new BigUint64Array(1);
const u64Out3 = new BigUint64Array(1);
const u64Out4 = new BigUint64Array(1);
/** SCARD_IO_REQUEST {dwProtocol, cbPciLength} per protocol; pcsc-lite reads only the protocol. */
const ioRequests = new Map<number, BigUint64Array>(
  [SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1, SCARD_PROTOCOL_RAW].map((p) => [p, new BigUint64Array([BigInt(p), 16n])]),
);

function writeJson(v: ChannelViews, value: unknown): number {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  v.res.set(bytes);
  return bytes.length;
}

function readJson<T>(v: ChannelViews, length: number): T {
  return JSON.parse(new TextDecoder().decode(v.req.slice(0, length))) as T;
}

/** Runs one call; returns rv. Results go to the f64 slots and the response data area. */
function serve(v: ChannelViews, op: number): number {
  const lib = pcscLib();
  const f = v.f64;
  const a = (i: number) => f[F_ARG + i]!;
  f[F_DATA_LEN] = 0;
  switch (op) {
    case Op.Establish: {
      const rv = lib.SCardEstablishContext(SCARD_SCOPE_SYSTEM, null, null, ptr(u64Out));
      f[F_RESULT] = Number(u64Out[0]);
      return rv;
    }
    case Op.Release:
      return lib.SCardReleaseContext(a(0));
    case Op.IsValid:
      return lib.SCardIsValidContext(a(0));
    case Op.ListReaders: {
      u64Out[0] = 0n;
      let rv = lib.SCardListReaders(a(0), null, null, ptr(u64Out));
      if (rv !== SCARD_S_SUCCESS) return rv;
      const buf = new Uint8Array(Number(u64Out[0]) + 1);
      u64Out[0] = BigInt(buf.length);
      rv = lib.SCardListReaders(a(0), null, ptr(buf), ptr(u64Out));
      if (rv !== SCARD_S_SUCCESS) return rv;
      f[F_DATA_LEN] = writeJson(v, splitMultiString(buf, Number(u64Out[0])));
      return rv;
    }
    case Op.GetStatusChange: {
      const readers = readJson<{ name: string; currentState: number }[]>(v, a(2));
      const names = readers.map((r) => cString(r.name));
      const states = new Uint8Array(READERSTATE_SIZE * Math.max(1, readers.length));
      const dv = new DataView(states.buffer);
      readers.forEach((r, i) => {
        const base = i * READERSTATE_SIZE;
        dv.setBigUint64(base + RS_READER, BigInt(ptr(names[i]!)), true);
        dv.setBigUint64(base + RS_CURRENT_STATE, BigInt(r.currentState >>> 0), true);
      });
      // The main thread sets the flag before SCardCancel; checking it here closes the window in
      // which a cancel arrives before pcsc-lite marks the context as cancellable.
      if (Atomics.load(v.i32, I_CANCEL) !== 0) return SCARD_E_CANCELLED;
      const rv = lib.SCardGetStatusChange(a(0), a(1), ptr(states), readers.length);
      const out = readers.map((_, i) => {
        const base = i * READERSTATE_SIZE;
        const cbAtr = Math.min(Number(dv.getBigUint64(base + RS_CB_ATR, true)), MAX_ATR_SIZE);
        return {
          eventState: Number(dv.getBigUint64(base + RS_EVENT_STATE, true)),
          atr: Array.from(states.subarray(base + RS_ATR, base + RS_ATR + cbAtr)),
        };
      });
      f[F_DATA_LEN] = writeJson(v, out);
      void names; // keeps the name buffers alive across the call
      return rv;
    }
    case Op.Connect: {
      const name = cString(readJson<string>(v, a(3)));
      const rv = lib.SCardConnect(a(0), ptr(name), a(1), a(2), ptr(u64Out), ptr(u64Out2));
      f[F_RESULT] = Number(u64Out[0]);
      f[F_RESULT + 1] = Number(u64Out2[0]);
      return rv;
    }
    case Op.Reconnect: {
      const rv = lib.SCardReconnect(a(0), a(1), a(2), a(3), ptr(u64Out));
      f[F_RESULT] = Number(u64Out[0]);
      return rv;
    }
    case Op.Disconnect:
      return lib.SCardDisconnect(a(0), a(1));
    case Op.BeginTransaction:
      return lib.SCardBeginTransaction(a(0));
    case Op.EndTransaction:
      return lib.SCardEndTransaction(a(0), a(1));
    case Op.Transmit: {
      const pci = ioRequests.get(a(1));
      if (!pci) throw new RangeError(`transmit: protocol ${a(1)} is not T0, T1 or RAW`);
      u64Out[0] = BigInt(MAX_BUFFER_SIZE_EXTENDED);
      const t0 = performance.now();
      const rv = lib.SCardTransmit(a(0), ptr(pci), ptr(v.req), a(2), null, ptr(v.res), ptr(u64Out));
      f[F_MICROS] = (performance.now() - t0) * 1000;
      f[F_DATA_LEN] = rv === SCARD_S_SUCCESS ? Number(u64Out[0]) : 0;
      return rv;
    }
    case Op.Status: {
      const name = new Uint8Array(1024);
      const atr = new Uint8Array(MAX_ATR_SIZE + 3);
      u64Out[0] = BigInt(name.length);
      u64Out4[0] = BigInt(atr.length);
      const rv = lib.SCardStatus(a(0), ptr(name), ptr(u64Out), ptr(u64Out2), ptr(u64Out3), ptr(atr), ptr(u64Out4));
      if (rv !== SCARD_S_SUCCESS) return rv;
      f[F_DATA_LEN] = writeJson(v, {
        reader: splitMultiString(name, Number(u64Out[0]))[0] ?? "",
        state: Number(u64Out2[0]),
        protocol: Number(u64Out3[0]),
        atr: Array.from(atr.subarray(0, Number(u64Out4[0]))),
      });
      return rv;
    }
    case Op.GetAttrib: {
      // One call with a MAX_BUFFER_SIZE buffer: pcsc-lite 1.9.9 refuses a larger length with
      // SCARD_E_INSUFFICIENT_BUFFER, and a NULL-buffer length query makes vpcd report "unsupported".
      u64Out[0] = BigInt(MAX_BUFFER_SIZE);
      const rv = lib.SCardGetAttrib(a(0), a(1), ptr(v.res), ptr(u64Out));
      if (rv === SCARD_S_SUCCESS) f[F_DATA_LEN] = Number(u64Out[0]);
      return rv;
    }
    default:
      throw new RangeError(`pcsc-worker: unknown op ${op}`);
  }
}

self.onmessage = (event) => {
  const v = channelViews(event.data.sab);
  // Start from 0, not the current value: the first request may already be posted before this runs.
  let seen = 0;
  for (;;) {
    Atomics.wait(v.i32, I_REQ, seen);
    seen = Atomics.load(v.i32, I_REQ);
    const op = v.f64[F_OP]!;
    if (op === Op.Quit) {
      Atomics.store(v.i32, I_RES, seen);
      Atomics.notify(v.i32, I_RES);
      postMessage(seen);
      break;
    }
    try {
      v.f64[F_RV] = serve(v, op);
    } catch (err) {
      v.f64[F_RV] = RV_WORKER_EXCEPTION;
      v.f64[F_DATA_LEN] = writeJson(v, { error: err instanceof Error ? err.message : String(err) });
    }
    Atomics.store(v.i32, I_RES, seen);
    Atomics.notify(v.i32, I_RES);
    // Wakes a main thread that stopped spinning and sleeps in its event loop (see pcsc.ts).
    postMessage(seen);
  }
  self.close();
};
