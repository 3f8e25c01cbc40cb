/**
 * The state one read carries from step to step, held in one place instead of closures: the
 * card connection (a new one after the card is reconnected), the APDU meter, what was learnt
 * about reading this card (ReadTuning), the secure channel, the recovery budget and history,
 * the step timings and where the read is. The steps of read-document.ts take the session as
 * their explicit input.
 *
 * Recovery: a lost link or a dead secure channel is brought back by reconnecting (SCardReconnect
 * with reset, or waiting for the card to come back) and authenticating again (PACE or BAC, as the
 * first time: authenticate.ts), within a budget; every attempt is listed.
 */
import { AccessDeniedError, MrtdError, PaceError, SecureMessagingError, TransportError } from "../errors.ts";
import { maxReadPlaintext, SecureChannel, type SmCipher } from "../icao/secure-messaging.ts";
import type { CommandApdu } from "../iso7816/apdu.ts";
import type { LdsFileInfo } from "../lds/lds-files.ts";
import type { CardConnection } from "../transport/transport.ts";
import { ApduMeter } from "./apdu-meter.ts";
import { authenticate as runAccessControl, type AccessKeys, type Authenticated, type AuthMemory, type AuthMode } from "./authenticate.ts";
import { classifyFailure, DEFAULT_READER_TIMEOUT_MS, type ClassifiedFailure } from "./failure-classes.ts";
import type { SecureSession, SmResponse } from "./file-reader.ts";
import type { FileKey, Recovery, StepTiming } from "./read-result.ts";
import { ReadTuning } from "./read-tuning.ts";
import { relinkCard, relinkWindowSpent, type Reconnector } from "./relink.ts";

export interface RecoveryOptions {
  /** Recoveries allowed in one read (each handled failure counts one). */
  maxRecoveries: number;
  /** How long to wait for the card (and pcscd) to come back after a link loss. */
  cardWaitMs: number;
  /**
   * Backoff base: the first retry after progress is immediate, then base × 2^(k-2) for the
   * k-th failure in a row without a verified block, capped at 1 s.
   */
  backoffMs: number;
  /** Failures in a row without any verified block before giving up (default 16). */
  maxConsecutive?: number;
  /** The reader's response timeout, to put the elapsed time of a lost exchange in context (default 3000). */
  readerTimeoutMs?: number;
}

/**
 * Sized for a flaky link: at a 20% per-APDU loss rate a 100-APDU read meets ~30 losses, and one
 * recovery (SELECT, GET CHALLENGE, EXTERNAL AUTHENTICATE, the read; PACE needs 5 exchanges
 * before the SELECT) needs 4 to 7 exchanges in a row to pass; 16 failures in a row without
 * progress bounds a dead link.
 */
export const DEFAULT_RECOVERY: RecoveryOptions = { maxRecoveries: 200, cardWaitMs: 10_000, backoffMs: 25, maxConsecutive: 16, readerTimeoutMs: DEFAULT_READER_TIMEOUT_MS };

/** What the read had done when it failed for good: for the CLI's --json and for telemetry. */
export interface ReadFailureReport {
  failure: ClassifiedFailure;
  step: string;
  file?: FileKey;
  offset?: number;
  recoveries: Recovery[];
  apdus: number;
  ms: number;
  /** Why recovery stopped, when it was tried. */
  stoppedBecause?: string;
}

const FAILURE_REPORTS = new WeakMap<object, ReadFailureReport>();

/** The classified failure and recovery history of an error thrown by readDocument. */
export function readFailureReport(e: unknown): ReadFailureReport | undefined {
  return typeof e === "object" && e !== null ? FAILURE_REPORTS.get(e) : undefined;
}

export interface SessionOptions {
  /** The MRZ key and/or the CAN. */
  keys: AccessKeys;
  /** PACE when offered, else BAC ("auto"), or only one. */
  auth: AuthMode;
  random: (n: number) => Uint8Array;
  recovery: RecoveryOptions;
  tuning: ReadTuning;
  trace: boolean | undefined;
  onStep?: (name: string) => void;
  onRecovery?: (r: Recovery) => void;
}

export class ReadSession {
  readonly t0 = performance.now();
  readonly meter: ApduMeter;
  readonly tuning: ReadTuning;
  readonly steps: StepTiming[] = [];
  readonly recoveries: Recovery[] = [];
  /** The card connection; replaced when recovery connects to the card again. */
  conn: CardConnection;
  /** The step running and the file and offset it is at (recoveries and the failure report name them). */
  currentStep = "";
  where: { file?: FileKey; offset?: number } = {};
  /** The file reader's view of the session: protected commands, and recovery of the channel. */
  readonly secure: SecureSession;

  readonly #opts: SessionOptions;
  readonly #reconnect: Reconnector | undefined;
  /** What authentication learnt about the card (EF.CardAccess, the MSE:Set AT form), kept across recoveries. */
  readonly #authMemory: AuthMemory = {};
  #channel: SecureChannel | undefined;
  /** How the last authentication went (PACE or BAC; no key material). */
  authFacts: Authenticated["facts"] | undefined;
  /** PACE-CAM's chip data from the first PACE-CAM, to check against DG14 later. */
  cam: Authenticated["cam"];
  #consecutiveLosses = 0;

  constructor(connection: CardConnection, opts: SessionOptions, reconnect?: Reconnector) {
    this.conn = connection;
    this.#opts = opts;
    this.#reconnect = reconnect;
    this.tuning = opts.tuning;
    this.meter = new ApduMeter(connection, { trace: opts.trace });
    this.secure = {
      send: async (cmd: CommandApdu): Promise<SmResponse> => {
        if (!this.#channel) throw new SecureMessagingError("no-channel", "no secure channel");
        const r = await this.#channel.send(cmd);
        if (r.protected) this.#consecutiveLosses = 0;
        return r;
      },
      recover: async (cause: unknown, at: { file: LdsFileInfo; offset: number }): Promise<void> => {
        this.where = { file: at.file.key, offset: at.offset };
        await this.restore(cause);
      },
    };
  }

  get random(): (n: number) => Uint8Array {
    return this.#opts.random;
  }

  /** Runs one named step, timing it (ms and APDUs). */
  async step<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.#opts.onStep?.(name);
    const s0 = performance.now();
    const a0 = this.meter.count;
    try {
      return await fn();
    } finally {
      this.steps.push({ name, ms: round(performance.now() - s0), apdus: this.meter.count - a0 });
    }
  }

  /** PACE or BAC (authenticate.ts): a fresh secure channel with the applet selected. */
  async authenticate(): Promise<void> {
    this.#channel?.close();
    const a = await runAccessControl(this.meter, this.#opts.keys, this.#opts.auth, this.#authMemory, this.#opts.random);
    this.#channel = a.channel;
    this.authFacts = a.facts;
    this.cam ??= a.cam;
    if (this.tuning.extendedBlock === 0) this.tuning.extendedBlock = maxReadPlaintext(a.cipher, true);
    // AES blocks are 16 bytes: a short protected response carries 223 plaintext bytes, not 231
    this.tuning.clampTo(maxReadPlaintext(a.cipher, false));
  }

  /** The first authentication: a link that drops during the first exchanges is recovered like one mid-file. */
  async authenticateFirst(): Promise<void> {
    try {
      await this.authenticate();
    } catch (e) {
      if (e instanceof AccessDeniedError || (e instanceof PaceError && !e.retryable)) throw e;
      await this.restore(e);
    }
  }

  /** Chip Authentication: the channel continues under the new session keys, SSC 0 (9303-11 §6.2). */
  switchChannel(cipher: SmCipher): void {
    this.#channel?.close();
    this.#channel = new SecureChannel(this.meter, cipher, 0n);
  }

  /**
   * Brings the secure channel back after `first`: backoff, reconnect (reset) or wait for the
   * card when the link is lost, authenticate again (PACE or BAC). A failure during recovery
   * is recovered in turn, within the same budget. Every attempt is listed.
   */
  async restore(first: unknown): Promise<void> {
    const recovery = this.#opts.recovery;
    let cause = first;
    for (;;) {
      const stop = this.#stopReason(cause);
      if (stop !== undefined) throw this.fail(cause, stop);
      this.#consecutiveLosses++;
      const r0 = performance.now();
      const a0 = this.meter.count;
      const cls = classifyFailure(cause, { readerTimeoutMs: this.#readerTimeoutMs });
      let action = "re-authenticate";
      const wait = this.#consecutiveLosses <= 1 ? 0 : Math.min(1000, recovery.backoffMs * 2 ** (this.#consecutiveLosses - 2));
      try {
        if (wait > 0) await sleep(wait);
        if (cause instanceof TransportError) action = await this.#relink();
        await this.authenticate();
        this.#recordRecovery(cls, action, wait, r0, a0, true);
        return;
      } catch (e) {
        this.#recordRecovery(cls, action, wait, r0, a0, false);
        cause = e;
      }
    }
  }

  /** Adds the classification and history to the error that ends the read. */
  fail(e: unknown, stoppedBecause?: string): unknown {
    if (typeof e === "object" && e !== null && !FAILURE_REPORTS.has(e)) {
      const failure = classifyFailure(e, { readerTimeoutMs: this.#readerTimeoutMs });
      const stopped = stoppedBecause && stoppedBecause !== "not recoverable" ? stoppedBecause : undefined;
      FAILURE_REPORTS.set(e, {
        failure,
        step: this.currentStep,
        ...(this.where.file !== undefined ? { file: this.where.file, offset: this.where.offset } : {}),
        recoveries: [...this.recoveries],
        apdus: this.meter.count,
        ms: round(performance.now() - this.t0),
        ...(stopped ? { stoppedBecause: stopped } : {}),
      });
      if (e instanceof MrtdError && stopped) {
        e.message += ` [gave up after ${this.recoveries.length} recoveries in ${this.currentStep}${this.where.offset !== undefined ? ` at offset ${this.where.offset}` : ""}: ${stopped}]`;
      }
    }
    return e;
  }

  /** Ends the secure channel (its keys are wiped). */
  close(): void {
    this.#channel?.close();
  }

  get #readerTimeoutMs(): number {
    return this.#opts.recovery.readerTimeoutMs ?? DEFAULT_READER_TIMEOUT_MS;
  }

  /** Why no further recovery is attempted for `cause`, or undefined to go on. */
  #stopReason(cause: unknown): string | undefined {
    const recovery = this.#opts.recovery;
    const maxConsecutive = recovery.maxConsecutive ?? DEFAULT_RECOVERY.maxConsecutive!;
    if (!(cause instanceof MrtdError) || !cause.retryable) return "not recoverable";
    if (relinkWindowSpent(cause)) return `the card did not come back within ${recovery.cardWaitMs} ms`;
    if (this.recoveries.length >= recovery.maxRecoveries) return `recovery budget of ${recovery.maxRecoveries} spent`;
    if (this.#consecutiveLosses >= maxConsecutive) return `${this.#consecutiveLosses} failures in a row without progress`;
    return undefined;
  }

  #recordRecovery(cls: ClassifiedFailure, action: string, backoffMs: number, r0: number, a0: number, ok: boolean): void {
    const t = this.tuning;
    const rec: Recovery = {
      step: this.currentStep,
      ...(this.where.file !== undefined ? { file: this.where.file, offset: this.where.offset } : {}),
      cause: cls.code,
      layer: cls.layer,
      observed: cls.observed,
      ...(cls.elapsedMs !== undefined ? { failedAfterMs: cls.elapsedMs } : {}),
      action: ok ? action : `${action}: failed`,
      backoffMs,
      apdus: this.meter.count - a0,
      ms: round(performance.now() - r0),
      blockSize: t.extendedNow && t.extended === "yes" ? t.extendedBlock : t.blockSize,
      ok,
    };
    this.recoveries.push(rec);
    this.#opts.onRecovery?.(rec);
  }

  /** Reconnects the card (or waits for it) after a lost link; the meter follows a new connection. */
  async #relink(): Promise<string> {
    const r = await relinkCard(this.conn, this.#reconnect, this.#opts.recovery.cardWaitMs);
    if (r.conn !== this.conn) {
      this.conn = r.conn;
      this.meter.setTransport(this.conn);
    }
    return r.action;
  }
}

export function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
