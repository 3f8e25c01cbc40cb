/**
 * Seeded fault injection for the virtual passport (issue 4): what a flaky RF link does to an
 * exchange, modelled on the field notes (PR533 through CCID on an embedded board) and on what
 * pcscd + vsmartcard vpcd were measured to return here:
 *
 * - "no-answer": the card stays silent; the reader gives up after its timeout and drops the card.
 *   vpcd has no transmit timeout of its own (a silent card blocked SCardTransmit for 100 s), so the
 *   injector plays the reader: after readerTimeoutMs the card leaves the field. pcscd then returns an
 *   EMPTY response (no status word) to that SCardTransmit, SCARD_E_NOT_TRANSACTED to later ones and
 *   SCARD_E_NO_SMARTCARD to SCardReconnect until it has polled the card back.
 * - "sw-6f00" / "sw-6f01" / "sw-6600": the reader stack's pseudo status word instead of the answer;
 *   6F01 comes late (at 90% of the reader timeout, like the field's 2.7 s of 3 s). Seeded coin:
 *   whether the chip had processed the command (SSC moved) before the answer was lost.
 * - "card-leaves": the document leaves the field mid-command and is back after absentMs.
 * - "latency-spike": the answer comes late, up to 90% of the reader timeout (not a failure).
 * - "corrupt": one byte of a protected response is flipped (only responses a MAC covers: SM
 *   commands and EXTERNAL AUTHENTICATE); the reader's MAC check must reject it.
 * - "sm-lost": the chip loses its secure-messaging session and answers 6988.
 * (pcscd restarted mid-read is driven by the tests with ensurePcscd().restart().)
 *
 * The same injector drives the vpcd card (through `intercept`) and the in-process reader of the
 * unit tests and the benchmark (test/faults/in-process-reader.ts).
 */
import type { StartedVirtualPassport } from "./index.ts";

export type FaultKind = "no-answer" | "sw-6f00" | "sw-6f01" | "sw-6600" | "card-leaves" | "latency-spike" | "corrupt" | "sm-lost";

export const FAULT_KINDS: readonly FaultKind[] = ["no-answer", "sw-6f00", "sw-6f01", "sw-6600", "card-leaves", "latency-spike", "corrupt", "sm-lost"];

/** Kinds that make the exchange fail (all but latency spikes). */
export const DISRUPTIVE: ReadonlySet<FaultKind> = new Set(FAULT_KINDS.filter((k) => k !== "latency-spike"));

export interface FaultOptions {
  seed: number;
  /** Probability of a fault per command APDU (0..1). */
  rate?: number;
  /** Kinds to mix, uniformly (default: all). */
  kinds?: readonly FaultKind[];
  /** Deterministic faults: command APDU number (1-based, counted by this injector) → kind. */
  at?: ReadonlyMap<number, FaultKind>;
  /** The reader's response timeout the simulated reader gives up after (pcsc-lite CCID: 3000 ms). */
  readerTimeoutMs?: number;
  /** How long the card stays out of the field after leaving (default 300 ms). */
  absentMs?: number;
  /** Only APDUs for which this returns true may get a random fault. */
  filter?: (apdu: Uint8Array) => boolean;
}

export interface InjectedFault {
  /** Command APDU number (1-based). */
  apdu: number;
  kind: FaultKind;
  ins: number;
  /** Delay before the (pseudo) answer or the drop. */
  delayMs: number;
  /** For pseudo status words: whether the chip had processed the command. */
  chipProcessed?: boolean;
}

/** What a fault needs from the card side. */
export interface FaultMedium {
  /** Let the chip process the command and return its answer. */
  chip(apdu: Uint8Array): Uint8Array;
  /** Whether the chip has a secure-messaging session. */
  chipHasSession(): boolean;
  /** The chip loses its volatile state (session, selection). */
  dropChipSession(): void;
  /** The card leaves the field now and comes back after absentMs. */
  leave(absentMs: number): void;
}

/** The exchange never gets an answer from the card (it left the field). */
export const LOST = Symbol("lost");

/** mulberry32: small, fast, seeded; enough for reproducible fault plans. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FaultInjector {
  readonly injected: InjectedFault[] = [];
  /** Command APDUs seen. */
  apdus = 0;
  readonly readerTimeoutMs: number;
  readonly absentMs: number;
  /** Random faults pause while false (deterministic `at` faults still fire). */
  enabled = true;
  private readonly random: () => number;
  private readonly rate: number;
  private readonly kinds: readonly FaultKind[];
  private readonly at: ReadonlyMap<number, FaultKind>;
  private readonly filter: ((apdu: Uint8Array) => boolean) | undefined;

  constructor(opts: FaultOptions) {
    this.random = seededRandom(opts.seed);
    this.rate = opts.rate ?? 0;
    if (!(this.rate >= 0 && this.rate <= 1)) throw new RangeError(`rate must be 0..1, got ${this.rate}`);
    this.kinds = opts.kinds ?? FAULT_KINDS;
    if (this.kinds.length === 0) throw new RangeError("kinds must not be empty");
    this.at = opts.at ?? new Map();
    this.readerTimeoutMs = opts.readerTimeoutMs ?? 3000;
    this.absentMs = opts.absentMs ?? 300;
    this.filter = opts.filter;
  }

  /** Faults injected so far, by kind. */
  counts(): Partial<Record<FaultKind, number>> {
    const out: Partial<Record<FaultKind, number>> = {};
    for (const f of this.injected) out[f.kind] = (out[f.kind] ?? 0) + 1;
    return out;
  }

  get disruptive(): number {
    return this.injected.filter((f) => DISRUPTIVE.has(f.kind)).length;
  }

  /**
   * Applies the fault (if any) for one command: resolves with the response to send instead of
   * the chip's, undefined to let the chip answer normally, or LOST when the card left.
   */
  async apply(apdu: Uint8Array, medium: FaultMedium): Promise<Uint8Array | undefined | typeof LOST> {
    const n = ++this.apdus;
    const kind = this.pick(n, apdu, medium);
    if (kind === undefined) return undefined;
    const ins = apdu[1] ?? 0;
    const fault: InjectedFault = { apdu: n, kind, ins, delayMs: 0 };
    this.injected.push(fault);
    const t = this.readerTimeoutMs;
    switch (kind) {
      case "no-answer":
        fault.delayMs = t;
        await Bun.sleep(t);
        medium.leave(this.absentMs);
        return LOST;
      case "card-leaves":
        medium.leave(this.absentMs);
        return LOST;
      case "sw-6f00":
      case "sw-6f01":
      case "sw-6600": {
        fault.chipProcessed = this.random() < 0.5;
        if (fault.chipProcessed) medium.chip(apdu);
        fault.delayMs = kind === "sw-6f01" ? Math.round(t * 0.9) : Math.round(this.random() * t * 0.1);
        if (fault.delayMs > 0) await Bun.sleep(fault.delayMs);
        return kind === "sw-6f00" ? Uint8Array.of(0x6f, 0x00) : kind === "sw-6f01" ? Uint8Array.of(0x6f, 0x01) : Uint8Array.of(0x66, 0x00);
      }
      case "latency-spike":
        fault.delayMs = Math.round(t * (0.3 + 0.6 * this.random()));
        await Bun.sleep(fault.delayMs);
        return undefined;
      case "corrupt": {
        const r = medium.chip(apdu);
        const out = r.slice();
        if (out.length > 2) {
          const i = Math.floor(this.random() * (out.length - 2));
          out[i] = out[i]! ^ (1 << Math.floor(this.random() * 8));
        }
        return out;
      }
      case "sm-lost":
        medium.dropChipSession();
        return Uint8Array.of(0x69, 0x88);
    }
  }

  /** For startVirtualPassport({ intercept }): `medium` is called once the card is started. */
  intercept(medium: () => FaultMedium): (apdu: Uint8Array) => Promise<Uint8Array | undefined> {
    return async (apdu) => {
      const r = await this.apply(apdu, medium());
      // The card left: vpcd gets no answer on this socket (reinsert opens a new one).
      if (r === LOST) return new Promise<never>(() => {});
      return r;
    };
  }

  private pick(n: number, apdu: Uint8Array, medium: FaultMedium): FaultKind | undefined {
    const fixed = this.at.get(n);
    if (fixed !== undefined) return applicable(fixed, apdu, medium) ? fixed : undefined;
    if (!this.enabled || this.rate === 0 || (this.filter && !this.filter(apdu))) return undefined;
    if (this.random() >= this.rate) return undefined;
    // Draw among the kinds that can happen to this exchange (a corrupt plain answer would not be a MAC test).
    const ok = this.kinds.filter((k) => applicable(k, apdu, medium));
    if (ok.length === 0) return undefined;
    return ok[Math.floor(this.random() * ok.length)];
  }
}

function applicable(kind: FaultKind, apdu: Uint8Array, medium: FaultMedium): boolean {
  if (kind === "corrupt") return apdu[0] === 0x0c || apdu[1] === 0x82;
  if (kind === "sm-lost") return medium.chipHasSession() && apdu[0] === 0x0c;
  return true;
}

/** The fault medium of a virtual passport inserted in vpcd. */
export function vpcdMedium(started: StartedVirtualPassport): FaultMedium {
  return {
    chip: (apdu) => started.card.handle(apdu),
    chipHasSession: () => started.card.authenticated,
    dropChipSession: () => started.card.reset(),
    leave: (absentMs) => void started.reinsert({ absentMs }),
  };
}
