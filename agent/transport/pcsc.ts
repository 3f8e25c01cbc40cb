/**
 * PC/SC transport over pcsc-lite (PC/SC Workgroup spec part 5, WinSCard API) for Bun.
 *
 * Blocking calls run in two workers (pcsc-worker.ts), each with its own SCARDCONTEXT:
 *   - the monitor worker: SCardListReaders, SCardGetStatusChange (woken by SCardCancel from this thread);
 *   - the I/O worker: SCardConnect/Reconnect/Transmit/Status/GetAttrib/Disconnect for every card of this client.
 * Calls on one worker are serialised. Workers are unref'd while idle, so an un-closed client does not keep
 * the process alive; close() ends them. A killed pcscd surfaces as TransportError (SCARD_E_NO_SERVICE,
 * SCARD_F_COMM_ERROR, ...), never as a hang.
 *
 * For `bun build --compile`, pcsc-worker.ts must be added as an extra entrypoint.
 */

import { TransportError } from "../errors.ts";
import type { CardConnection } from "./transport.ts";
import {
  channelViews,
  CHANNEL_SIZE,
  DATA_SIZE,
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
  OP_NAMES,
  RV_WORKER_EXCEPTION,
  type ChannelViews,
} from "./pcsc-channel.ts";
import {
  pcscLib,
  PNP_NOTIFICATION,
  SCARD_LEAVE_CARD,
  SCARD_PROTOCOL_ANY,
  SCARD_PROTOCOL_T0,
  SCARD_PROTOCOL_T1,
  SCARD_RESET_CARD,
  SCARD_S_SUCCESS,
  SCARD_SHARE_EXCLUSIVE,
  SCARD_SHARE_SHARED,
  SCARD_STATE_CHANGED,
  SCARD_STATE_PRESENT,
  SCARD_UNPOWER_CARD,
} from "./pcsc-ffi.ts";
import { pcscError } from "./pcsc-errors.ts";

export {
  PNP_NOTIFICATION,
  SCARD_ATTR_ATR_STRING,
  SCARD_ATTR_CHANNEL_ID,
  SCARD_ATTR_CURRENT_PROTOCOL_TYPE,
  SCARD_ATTR_DEVICE_FRIENDLY_NAME,
  SCARD_ATTR_DEVICE_SYSTEM_NAME,
  SCARD_ATTR_ICC_INTERFACE_STATUS,
  SCARD_ATTR_ICC_PRESENCE,
  SCARD_ATTR_ICC_TYPE_PER_ATR,
  SCARD_ATTR_MAXINPUT,
  SCARD_ATTR_VENDOR_IFD_SERIAL_NO,
  SCARD_ATTR_VENDOR_IFD_TYPE,
  SCARD_ATTR_VENDOR_IFD_VERSION,
  SCARD_ATTR_VENDOR_NAME,
  SCARD_STATE_CHANGED,
  SCARD_STATE_EMPTY,
  SCARD_STATE_EXCLUSIVE,
  SCARD_STATE_INUSE,
  SCARD_STATE_MUTE,
  SCARD_STATE_PRESENT,
  SCARD_STATE_UNAVAILABLE,
  SCARD_STATE_UNAWARE,
  SCARD_STATE_UNKNOWN,
  SCARD_STATE_UNPOWERED,
  TAG_IFD_ATR,
} from "./pcsc-ffi.ts";

/** How long call() spins before sleeping until the worker's message (see call()). */
const SPIN_MS = 0.15;

const SCARD_E_TIMEOUT = 0x8010000a;
const SCARD_W_RESET_CARD = 0x80100068;
const SCARD_E_NO_READERS_AVAILABLE = 0x8010002e;
const SCARD_E_UNSUPPORTED_FEATURE = 0x8010001f;
const SCARD_E_INSUFFICIENT_BUFFER = 0x80100008;

export type ShareMode = "shared" | "exclusive";
export type ProtocolChoice = "T0" | "T1" | "any";
export type Disposition = "leave" | "reset" | "unpower";

export interface ReaderStateQuery {
  name: string;
  /** SCARD_STATE_* bits the caller last saw (SCARD_STATE_UNAWARE = 0 to get the current state at once). */
  currentState: number;
}

export interface ReaderState {
  name: string;
  /** dwEventState as pcsc-lite returned it; pass it back as currentState to wait for the next change. */
  eventState: number;
  atr: Uint8Array;
  changed: boolean;
  present: boolean;
}

export interface CardStatus {
  reader: string;
  /** SCARD_ABSENT/PRESENT/POWERED/SPECIFIC... bits from SCardStatus. */
  state: number;
  /** SCARD_PROTOCOL_T0 (1) or SCARD_PROTOCOL_T1 (2). */
  protocol: number;
  atr: Uint8Array;
}

const DISPOSITIONS: Record<Disposition, number> = {
  leave: SCARD_LEAVE_CARD,
  reset: SCARD_RESET_CARD,
  unpower: SCARD_UNPOWER_CARD,
};
const PROTOCOLS: Record<ProtocolChoice, number> = { T0: SCARD_PROTOCOL_T0, T1: SCARD_PROTOCOL_T1, any: SCARD_PROTOCOL_ANY };
const SHARE: Record<ShareMode, number> = { shared: SCARD_SHARE_SHARED, exclusive: SCARD_SHARE_EXCLUSIVE };

interface CallResult {
  rv: number;
  r: [number, number, number, number];
  data: Uint8Array;
  micros: number;
}

/**
 * In a `bun build --compile` binary all modules are bundled into one file at /$bunfs/root
 * and the worker entrypoint keeps its path relative to the entrypoints' common root
 * (agent/, see deploy/build-binary.sh); from a checkout it sits beside this module.
 */
function workerUrl(): string {
  if (import.meta.url.includes("/$bunfs/")) return "/$bunfs/root/transport/pcsc-worker.ts";
  return new URL("./pcsc-worker.ts", import.meta.url).href;
}

/** One worker with its own context; calls are queued and run one at a time. */
class WorkerChannel {
  private readonly worker: Worker;
  private readonly v: ChannelViews;
  private seq = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private closing = false;
  private failure: TransportError | undefined;
  /** Resolves the pending call's sleep; set only while a call sleeps. */
  private wake: (() => void) | undefined;
  context = 0;

  constructor() {
    const sab = new SharedArrayBuffer(CHANNEL_SIZE);
    this.v = channelViews(sab);
    this.worker = new Worker(workerUrl());
    this.worker.unref();
    this.worker.addEventListener("error", (event) => {
      this.failure = new TransportError("PCSC_WORKER", `PC/SC worker failed: ${event.message}`, { retryable: false });
      Atomics.notify(this.v.i32, I_RES);
      this.wake?.();
    });
    this.worker.addEventListener("message", () => this.wake?.());
    this.worker.postMessage({ sab });
  }

  get cancelFlag(): Int32Array {
    return this.v.i32;
  }

  /** Runs op in the worker; resolves with rv and results (rv is not checked here). */
  call(op: Op, args: number[] = [], data?: Uint8Array): Promise<CallResult> {
    const run = async (): Promise<CallResult> => {
      if (this.failure) throw this.failure;
      if (this.closed || (this.closing && op !== Op.Release && op !== Op.Quit)) {
        throw new TransportError("CLOSED", `${OP_NAMES[op]}: the PC/SC client is closed`, { retryable: false });
      }
      const { i32, f64, req, res } = this.v;
      if (data) {
        if (data.length > DATA_SIZE) throw new RangeError(`${OP_NAMES[op]}: data of ${data.length} bytes exceeds ${DATA_SIZE}`);
        req.set(data);
      }
      f64[F_OP] = op;
      for (let i = 0; i < 5; i++) f64[F_ARG + i] = args[i] ?? 0;
      const seq = (this.seq = (this.seq + 1) | 0);
      Atomics.store(i32, I_REQ, seq);
      Atomics.notify(i32, I_REQ);
      // Bun's Atomics.waitAsync keeps a core busy while it waits (measured: 98% CPU for a
      // 2 s wait), which an idle agent on a board cannot afford. So: spin briefly for the
      // fast exchanges (an APDU to a close card answers in ~0.1 ms), then sleep in the event
      // loop until the worker's postMessage says the answer is there.
      const spinUntil = performance.now() + SPIN_MS;
      while (Atomics.load(i32, I_RES) !== seq && performance.now() < spinUntil);
      if (Atomics.load(i32, I_RES) !== seq) {
        this.worker.ref(); // a pending call keeps the process alive
        try {
          while (Atomics.load(i32, I_RES) !== seq) {
            // close() and a worker crash wake us without answering: stop waiting then.
            if (this.failure) throw this.failure;
            if (this.closed) throw new TransportError("CLOSED", `${OP_NAMES[op]}: the PC/SC client was closed during the call`, { retryable: false });
            await new Promise<void>((resolve) => {
              this.wake = resolve;
              if (Atomics.load(i32, I_RES) === seq || this.failure || this.closed) resolve();
            });
          }
        } finally {
          this.wake = undefined;
          this.worker.unref();
        }
      }
      const rv = f64[F_RV]!;
      const n = f64[F_DATA_LEN]!;
      const out = res.slice(0, n);
      if (rv === RV_WORKER_EXCEPTION) {
        const msg = (JSON.parse(new TextDecoder().decode(out)) as { error: string }).error;
        throw new TransportError("PCSC_LIBRARY", `${OP_NAMES[op]}: ${msg}`, { retryable: false });
      }
      return { rv, r: [f64[F_RESULT]!, f64[F_RESULT + 1]!, f64[F_RESULT + 2]!, f64[F_RESULT + 3]!], data: out, micros: f64[F_MICROS]! };
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** call() that throws the PC/SC error for rv != SCARD_S_SUCCESS. */
  async check(op: Op, args: number[] = [], data?: Uint8Array): Promise<CallResult> {
    const result = await this.call(op, args, data);
    if (result.rv !== SCARD_S_SUCCESS) throw pcscError(result.rv, OP_NAMES[op]!);
    return result;
  }

  async establish(): Promise<void> {
    this.context = (await this.check(Op.Establish)).r[0];
  }

  /** Releases the context and stops the worker, waiting at most `graceMs` for a call in flight. */
  async close(graceMs: number): Promise<void> {
    if (this.closed || this.closing) return;
    this.closing = true;
    const ctx = this.context;
    const finish = (async () => {
      if (ctx) await this.call(Op.Release, [ctx]).catch(() => undefined);
      await this.call(Op.Quit).catch(() => undefined);
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([finish, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    this.closed = true;
    this.wake?.();
    this.context = 0;
    this.worker.terminate();
    // Release a call still waiting on a worker that will never answer (it exceeded graceMs).
    Atomics.notify(this.v.i32, I_RES);
  }
}

const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const parse = <T>(bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes)) as T;

/** A pcsc-lite client: reader listing and monitoring, and connections to cards. */
export class PcscClient {
  private readonly monitor: WorkerChannel;
  private readonly io: WorkerChannel;
  private waits = 0;
  private cancelTimer: ReturnType<typeof setInterval> | undefined;
  private closed = false;
  /** Cards connected with a transaction, until they are disconnected. */
  private readonly claimed = new Set<PcscCard>();

  private constructor(monitor: WorkerChannel, io: WorkerChannel) {
    this.monitor = monitor;
    this.io = io;
  }

  /** Starts both workers and establishes their contexts. Throws TransportError SCARD_E_NO_SERVICE without pcscd. */
  static async open(): Promise<PcscClient> {
    const monitor = new WorkerChannel();
    const io = new WorkerChannel();
    try {
      await Promise.all([monitor.establish(), io.establish()]);
    } catch (err) {
      await Promise.all([monitor.close(500), io.close(500)]);
      throw err;
    }
    return new PcscClient(monitor, io);
  }

  /** Reader names; an empty list (not an error) when no reader is connected. */
  async listReaders(): Promise<string[]> {
    const result = await this.monitor.call(Op.ListReaders, [this.monitor.context]);
    if (result.rv === SCARD_E_NO_READERS_AVAILABLE) return [];
    if (result.rv !== SCARD_S_SUCCESS) throw pcscError(result.rv, "SCardListReaders");
    return parse<string[]>(result.data);
  }

  /**
   * Waits until the state of one of `readers` differs from its currentState, or `timeoutMs` passes
   * (pass 0xFFFFFFFF to wait forever; cancel() wakes it). Include PNP_NOTIFICATION to hear of readers
   * being added or removed. On timeout it RETURNS each reader with changed=false and eventState=currentState
   * (it does not throw SCARD_E_TIMEOUT). Throws TransportError SCARD_E_CANCELLED when cancel() woke it,
   * SCARD_E_UNKNOWN_READER for an unknown name.
   */
  async getStatusChange(readers: ReaderStateQuery[], timeoutMs: number): Promise<ReaderState[]> {
    this.waits++;
    let result: CallResult;
    try {
      const payload = json(readers.map((r) => ({ name: r.name, currentState: r.currentState })));
      result = await this.monitor.call(Op.GetStatusChange, [this.monitor.context, timeoutMs >>> 0, payload.length], payload);
    } finally {
      if (--this.waits === 0) this.stopCancelling();
    }
    if (result.rv === SCARD_E_TIMEOUT) {
      return readers.map((r) => ({
        name: r.name,
        eventState: r.currentState,
        atr: new Uint8Array(0),
        changed: false,
        present: (r.currentState & SCARD_STATE_PRESENT) !== 0,
      }));
    }
    if (result.rv !== SCARD_S_SUCCESS) throw pcscError(result.rv, "SCardGetStatusChange");
    const states = parse<{ eventState: number; atr: number[] }[]>(result.data);
    return readers.map((r, i) => {
      const s = states[i]!;
      return {
        name: r.name,
        eventState: s.eventState,
        atr: Uint8Array.from(s.atr),
        changed: (s.eventState & SCARD_STATE_CHANGED) !== 0,
        present: r.name !== PNP_NOTIFICATION && (s.eventState & SCARD_STATE_PRESENT) !== 0,
      };
    });
  }

  /**
   * Wakes pending getStatusChange calls (they throw SCARD_E_CANCELLED). A no-op when none is pending.
   * SCardCancel only hits a wait already inside pcsc-lite, so a flag covers a wait about to start and
   * SCardCancel is repeated every 20 ms until the wait has returned.
   */
  cancel(): void {
    if (this.closed || this.waits === 0) return;
    Atomics.store(this.monitor.cancelFlag, I_CANCEL, 1);
    const ctx = this.monitor.context;
    pcscLib().SCardCancel(ctx);
    this.cancelTimer ??= setInterval(() => pcscLib().SCardCancel(ctx), 20);
  }

  private stopCancelling(): void {
    Atomics.store(this.monitor.cancelFlag, I_CANCEL, 0);
    clearInterval(this.cancelTimer);
    this.cancelTimer = undefined;
  }

  /**
   * Connects to the card in `reader` (default: shared, T=0 or T=1). Throws SCARD_E_NO_SMARTCARD if there is none.
   * With `transaction`, the card is claimed (PcscCard.claim) before it is returned.
   */
  async connect(reader: string, opts: { shareMode?: ShareMode; protocols?: ProtocolChoice; transaction?: boolean } = {}): Promise<PcscCard> {
    const share = SHARE[opts.shareMode ?? "shared"];
    const protocols = PROTOCOLS[opts.protocols ?? "any"];
    const name = json(reader);
    // pcscd holds SCardConnect (and SCardBeginTransaction) while another handle has a transaction
    // on the reader. A handle of ours that still has one (the connection being replaced after a
    // lost link) would wait for ever on the one worker that could release it: let go of it first.
    for (const other of this.claimed) if (other.reader === reader) await other.releaseTransactions();
    const { r } = await this.io.check(Op.Connect, [this.io.context, share, protocols, name.length], name);
    const card = new PcscCard(this.io, reader, r[0], r[1], share, protocols);
    try {
      if (opts.transaction) {
        await card.claim();
        this.claimed.add(card);
        card.onDisconnect = () => this.claimed.delete(card);
      }
      const status = await card.status();
      card.atr = status.atr;
    } catch (err) {
      await card.disconnect().catch(() => undefined);
      throw err;
    }
    return card;
  }

  /** Cancels waits, releases both contexts and ends the workers; a call in flight gets up to 2 s. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.cancel();
    this.closed = true;
    await Promise.all([this.monitor.close(2000), this.io.close(2000)]);
    this.stopCancelling();
  }
}

/** A connection to one card through pcsc-lite. */
export class PcscCard implements CardConnection {
  readonly reader: string;
  atr: Uint8Array = new Uint8Array(0);
  /** SCARD_PROTOCOL_T0 (1) or SCARD_PROTOCOL_T1 (2). */
  protocol: number;
  /** Duration of the last SCardTransmit call itself, in µs (host overhead = transmit() wall time minus this). */
  lastTransmitMicros = 0;
  private readonly io: WorkerChannel;
  private handle: number;
  private readonly share: number;
  private readonly protocols: number;
  private connected = true;
  private claimed = false;
  /** SCardBeginTransaction calls that succeeded on this handle (pcsc-lite counts them). */
  private lockDepth = 0;
  /** @internal set by PcscClient.connect to forget a claimed card once it is disconnected. */
  onDisconnect: (() => void) | undefined;
  /** Resets by other clients that claim() found and acknowledged (SCARD_W_RESET_CARD before our first exchange). */
  resetsAcknowledged = 0;

  /** @internal created by PcscClient.connect */
  constructor(io: WorkerChannel, reader: string, handle: number, protocol: number, share: number, protocols: number) {
    this.io = io;
    this.reader = reader;
    this.handle = handle;
    this.protocol = protocol;
    this.share = share;
    this.protocols = protocols;
  }

  private ensureConnected(operation: string): void {
    if (!this.connected) throw new TransportError("DISCONNECTED", `${operation}: the card connection was closed; connect again`, { retryable: true });
  }

  /** Sends one command APDU and returns the response APDU (data ‖ SW1 SW2). Throws TransportError. */
  async transmit(command: Uint8Array): Promise<Uint8Array> {
    this.ensureConnected("SCardTransmit");
    const { data, micros } = await this.io.check(Op.Transmit, [this.handle, this.protocol, command.length], command);
    this.lastTransmitMicros = micros;
    return data;
  }

  /**
   * SCardReconnect; "reset" warm-resets, "unpower" cold-resets the card. Returns the new ATR.
   * A claimed card is claimed again: pcsc-lite keeps our transaction across a reset we make, but
   * drops it when the card leaves the reader, and the chip's new session must not start unguarded.
   */
  async reconnect(mode: Disposition): Promise<Uint8Array> {
    this.ensureConnected("SCardReconnect");
    const { r } = await this.io.check(Op.Reconnect, [this.handle, this.share, this.protocols, DISPOSITIONS[mode]]);
    this.protocol = r[0];
    if (this.claimed) await this.begin();
    this.atr = (await this.status()).atr;
    return this.atr;
  }

  /** SCardDisconnect, which also ends our transactions. "reset" leaves the next application a fresh chip. */
  async disconnect(mode: Disposition = "leave"): Promise<void> {
    if (!this.connected) return;
    this.connected = false;
    this.claimed = false;
    this.lockDepth = 0;
    this.onDisconnect?.();
    await this.io.check(Op.Disconnect, [this.handle, DISPOSITIONS[mode]]);
  }

  /**
   * Makes the card ours until disconnect: SCardBeginTransaction, so another PC/SC client's
   * SCardTransmit, SCardReconnect and reset-on-disconnect wait until we are done instead of
   * slipping into our secure-messaging session. Taken again after every reconnect.
   *
   * pcsc-lite answers SCARD_W_RESET_CARD when another client reset the card since we connected
   * (an application that disconnected with reset just before): that is acknowledged with
   * SCardReconnect(leave), which changes nothing on the card, and the transaction is begun again.
   * SCardBeginTransaction waits, without a timeout, while another client holds a transaction.
   * Nested transactions are counted by pcsc-lite and all end with SCardDisconnect.
   */
  async claim(): Promise<void> {
    this.ensureConnected("SCardBeginTransaction");
    for (let attempt = 1; ; attempt++) {
      const { rv } = await this.io.call(Op.BeginTransaction, [this.handle]);
      if (rv === SCARD_S_SUCCESS) break;
      if (rv !== SCARD_W_RESET_CARD || attempt >= 3) throw pcscError(rv, "SCardBeginTransaction");
      const { r } = await this.io.check(Op.Reconnect, [this.handle, this.share, this.protocols, SCARD_LEAVE_CARD]);
      this.protocol = r[0];
      this.resetsAcknowledged++;
    }
    this.lockDepth++;
    this.claimed = true;
  }

  /** @internal Called by PcscClient.connect when a new connection to the same reader takes over the claim. */
  async releaseTransactions(): Promise<void> {
    // The card stays claimed in intent: a later successful reconnect of this handle takes it again.
    for (; this.lockDepth > 0 && this.connected; this.lockDepth--) {
      const { rv } = await this.io.call(Op.EndTransaction, [this.handle, SCARD_LEAVE_CARD]);
      if (rv !== SCARD_S_SUCCESS) break;
    }
    this.lockDepth = 0;
  }

  private async begin(): Promise<void> {
    await this.io.check(Op.BeginTransaction, [this.handle]);
    this.lockDepth++;
  }

  async status(): Promise<CardStatus> {
    this.ensureConnected("SCardStatus");
    const { data } = await this.io.check(Op.Status, [this.handle]);
    const s = parse<{ reader: string; state: number; protocol: number; atr: number[] }>(data);
    return { reader: s.reader, state: s.state, protocol: s.protocol, atr: Uint8Array.from(s.atr) };
  }

  /** SCardGetAttrib; undefined when the reader driver does not support the attribute. */
  async getAttribute(attrId: number): Promise<Uint8Array | undefined> {
    this.ensureConnected("SCardGetAttrib");
    const result = await this.io.call(Op.GetAttrib, [this.handle, attrId >>> 0]);
    if (result.rv === SCARD_E_UNSUPPORTED_FEATURE || result.rv === SCARD_E_INSUFFICIENT_BUFFER) return undefined;
    if (result.rv !== SCARD_S_SUCCESS) throw pcscError(result.rv, "SCardGetAttrib");
    return result.data;
  }

  async beginTransaction(): Promise<void> {
    this.ensureConnected("SCardBeginTransaction");
    await this.io.check(Op.BeginTransaction, [this.handle]);
  }

  async endTransaction(mode: Disposition = "leave"): Promise<void> {
    this.ensureConnected("SCardEndTransaction");
    await this.io.check(Op.EndTransaction, [this.handle, DISPOSITIONS[mode]]);
  }
}
