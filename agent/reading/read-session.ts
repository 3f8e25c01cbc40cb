/**
 * The state one read carries from step to step, held in one place instead of closures: the
 * card connection (a new one after the card is reconnected), the APDU meter, what was learnt
 * about reading this card (ReadTuning), the secure channel, the recovery budget and history,
 * the step timings and where the read is. The steps of read-document.ts take the session as
 * their explicit input.
 *
 * Recovery: a lost link or a dead secure channel is brought back by reconnecting (SCardReconnect
 * with reset, or waiting for the card to come back), selecting the application and running BAC
 * again, within a budget; every attempt is listed.
 */
import { AccessDeniedError, CardStatusError, MrtdError, SecureMessagingError, TransportError } from "../errors.ts";
import { performBac } from "../icao/bac.ts";
import { bacKeySeed, type BacAccessKey } from "../icao/mrz-key.ts";
import { maxReadPlaintext, SecureChannel, tdesSmCipher } from "../icao/secure-messaging.ts";
import type { CommandApdu } from "../iso7816/apdu.ts";
import { decodeResponse, encodeCommand } from "../iso7816/apdu.ts";
import { EMRTD_AID, type LdsFileInfo } from "../lds/lds-files.ts";
import type { CardConnection } from "../transport/transport.ts";
import { ApduMeter } from "./apdu-meter.ts";
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
 * recovery (SELECT, GET CHALLENGE, EXTERNAL AUTHENTICATE, the read) needs 4 exchanges in a row
 * to pass; 16 failures in a row without progress bounds a dead link.
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
  accessKey: BacAccessKey;
  random: (n: number) => Uint8Array;
  recovery: RecoveryOptions;
  tuning: ReadTuning;
  trace: boolean | undefined;
  onStep?: (name: string) => void;
  onRecovery?: (r: Recovery) => void;
}

const SELECT_APPLET: CommandApdu = { cla: 0x00, ins: 0xa4, p1: 0x04, p2: 0x0c, data: EMRTD_AID };

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
  readonly #keySeed: Uint8Array;
  #channel: SecureChannel | undefined;
  #consecutiveLosses = 0;

  constructor(connection: CardConnection, opts: SessionOptions, reconnect?: Reconnector) {
    this.conn = connection;
    this.#opts = opts;
    this.#reconnect = reconnect;
    this.tuning = opts.tuning;
    this.meter = new ApduMeter(connection, { trace: opts.trace });
    this.#keySeed = bacKeySeed(opts.accessKey);
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

  /** SELECT the applet and run BAC: a fresh secure channel. */
  async authenticate(): Promise<void> {
    this.#channel?.close();
    try {
      await this.#plain(SELECT_APPLET, "SELECT eMRTD application");
    } catch (e) {
      // 9303-11 §9.8: a plain command ends a live secure session. A chip still holding one (a
      // previous read on this connection, or the session we gave up on) may answer the plain
      // SELECT with 6982/6988 while dropping the session: the repeated SELECT then goes through.
      if (!(e instanceof CardStatusError && (e.sw === 0x6982 || e.sw === 0x6988))) throw e;
      await this.#plain(SELECT_APPLET, "SELECT eMRTD application");
    }
    const session = await performBac(this.meter, this.#keySeed, this.#opts.random);
    const cipher = tdesSmCipher(session.ksEnc, session.ksMac);
    session.ksEnc.fill(0);
    session.ksMac.fill(0);
    this.#channel = new SecureChannel(this.meter, cipher, session.ssc);
    if (this.tuning.extendedBlock === 0) this.tuning.extendedBlock = maxReadPlaintext(cipher, true);
  }

  /** The first authentication: a link that drops during the first exchanges is recovered like one mid-file. */
  async authenticateFirst(): Promise<void> {
    try {
      await this.authenticate();
    } catch (e) {
      if (e instanceof AccessDeniedError) throw e;
      await this.restore(e);
    }
  }

  /**
   * Brings the secure channel back after `first`: backoff, reconnect (reset) or wait for the
   * card when the link is lost, SELECT the applet and run BAC again. A failure during recovery
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

  /** Ends the secure channel and wipes the key seed. */
  close(): void {
    this.#channel?.close();
    this.#keySeed.fill(0);
  }

  get #readerTimeoutMs(): number {
    return this.#opts.recovery.readerTimeoutMs ?? DEFAULT_READER_TIMEOUT_MS;
  }

  async #plain(cmd: CommandApdu, name: string): Promise<void> {
    const r = decodeResponse(await this.meter.transmit(encodeCommand(cmd)));
    if (r.sw !== 0x9000) throw new CardStatusError(r.sw, name, r.sw === 0x6a82 ? "the card has no eMRTD application (SELECT answered 6A82)" : undefined);
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
