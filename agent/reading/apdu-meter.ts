/**
 * Counts and times every APDU that crosses a transport, and keeps an optional
 * redacted trace (header, lengths, status word, timing: never data or keys).
 * Also the place where host overhead is measured: wall time per exchange minus
 * the time the transport itself spent inside SCardTransmit, when it reports that.
 */
import type { CardTransport } from "../transport/transport.ts";

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

  constructor(
    private inner: TimedTransport,
    opts: { trace?: boolean } = {},
  ) {
    this.trace = opts.trace ? [] : undefined;
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
      return response;
    } catch (e) {
      error = e;
      throw e;
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
