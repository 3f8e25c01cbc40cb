/**
 * Counts and times every APDU that crosses a transport, and keeps an optional
 * redacted trace (header, lengths, status word, timing: never data or keys).
 * Also the place where host overhead is measured: wall time per exchange minus
 * the time the transport itself spent inside SCardTransmit, when it reports that.
 *
 * It also turns what is not an answer from the card into a link loss (TransportError,
 * retryable): a reader-stack pseudo status word alone (6F00, 6F01, 6600, 6Fxx: no ICAO chip
 * sends them; field notes) and a response without any status word (vsmartcard vpcd returns an
 * empty answer when the card leaves mid-command). The elapsed time goes with the error.
 */
import { TransportError } from "../errors.ts";
import { commandName } from "../iso7816/apdu.ts";
import { describeSw, isReaderStackSw } from "../iso7816/status-words.ts";
import type { CardTransport } from "../transport/transport.ts";
import { noteLinkElapsed } from "./failure-classes.ts";

export interface TraceEntry {
  /** Milliseconds since the meter started. */
  t: number;
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  /** Command length in bytes and response data length (without SW). */
  commandBytes: number;
  responseBytes: number;
  sw: number | undefined;
  ms: number;
  error?: string;
}

/** A transport that can say how long its last exchange spent in the native call. */
export interface TimedTransport extends CardTransport {
  readonly lastTransmitMicros?: number;
}

export class ApduMeter implements CardTransport {
  count = 0;
  totalMs = 0;
  /** Sum of the time the transport reported inside SCardTransmit (when it reports). */
  nativeMs = 0;
  nativeReported = false;
  readonly trace: TraceEntry[] | undefined;
  private readonly start = performance.now();
  private listeners: ((e: TraceEntry) => void)[] = [];

  private readonly readerStackAsLoss: boolean;

  constructor(
    private inner: TimedTransport,
    opts: { trace?: boolean; readerStackAsLoss?: boolean } = {},
  ) {
    this.trace = opts.trace ? [] : undefined;
    this.readerStackAsLoss = opts.readerStackAsLoss ?? true;
  }

  /** Swap the underlying transport (after a reconnect) keeping the counters. */
  setTransport(inner: TimedTransport): void {
    this.inner = inner;
  }

  onExchange(listener: (e: TraceEntry) => void): void {
    this.listeners.push(listener);
  }

  async transmit(command: Uint8Array): Promise<Uint8Array> {
    const t0 = performance.now();
    let response: Uint8Array | undefined;
    let error: unknown;
    try {
      response = await this.inner.transmit(command);
      if (this.readerStackAsLoss) checkAnswered(command, response, performance.now() - t0);
      return response;
    } catch (e) {
      error = e;
      // pcsc-lite 1.9.9: an SCardTransmit cut by a pcscd restart has returned
      // SCARD_W_SECURITY_VIOLATION (1 run in 5 here), and one to a card that left and came back
      // within a presence poll SCARD_E_PROTO_MISMATCH (vpcd): lost links, not refusals.
      if (e instanceof TransportError && !e.retryable && TRANSMIT_LOSS_CODES.has(e.code)) {
        error = new TransportError(e.code, `${e.message} (during SCardTransmit: treated as a lost link; pcscd may have restarted)`, { retryable: true, pcscCode: e.pcscCode, cause: e });
      }
      throw error;
    } finally {
      const ms = performance.now() - t0;
      this.count++;
      this.totalMs += ms;
      const native = this.inner.lastTransmitMicros;
      if (native !== undefined && response !== undefined) {
        this.nativeMs += native / 1000;
        this.nativeReported = true;
      }
      if (this.trace || this.listeners.length > 0) {
        const n = response?.length ?? 0;
        const entry: TraceEntry = {
          t: Math.round((t0 - this.start) * 1000) / 1000,
          cla: command[0] ?? 0,
          ins: command[1] ?? 0,
          p1: command[2] ?? 0,
          p2: command[3] ?? 0,
          commandBytes: command.length,
          responseBytes: Math.max(0, n - 2),
          sw: n >= 2 ? (response![n - 2]! << 8) | response![n - 1]! : undefined,
          ms: Math.round(ms * 1000) / 1000,
        };
        if (error !== undefined) entry.error = (error as { code?: string }).code ?? (error as Error).name;
        this.trace?.push(entry);
        for (const l of this.listeners) l(entry);
      }
    }
  }
}

const TRANSMIT_LOSS_CODES = new Set(["SCARD_W_SECURITY_VIOLATION", "SCARD_E_PROTO_MISMATCH"]);

/** Throws the link loss that a missing answer or a reader-stack pseudo status word stands for. */
function checkAnswered(command: Uint8Array, response: Uint8Array, ms: number): void {
  const name = commandName(command[1] ?? 0);
  if (response.length < 2) {
    const e = new TransportError("NO_RESPONSE", `${name}: the reader returned ${response.length} bytes, no status word (card lost mid-command) after ${Math.round(ms)} ms`, { retryable: true });
    noteLinkElapsed(e, ms);
    throw e;
  }
  const sw = (response[response.length - 2]! << 8) | response[response.length - 1]!;
  if (response.length === 2 && isReaderStackSw(sw)) {
    const code = sw.toString(16).toUpperCase().padStart(4, "0");
    const e = new TransportError(`RF_${code}`, `${name}: ${code} from the reader stack after ${Math.round(ms)} ms: ${describeSw(sw).meaning}`, { retryable: true });
    noteLinkElapsed(e, ms);
    throw e;
  }
}
