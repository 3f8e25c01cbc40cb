/**
 * A card connection that reports every APDU (instruction byte, status word, ms) to the
 * read's metrics and refuses to go on once its read is aborted (shutdown, request expiry).
 */
import { MrtdError, TransportError } from "../errors.ts";
import type { CardConnection } from "../transport/transport.ts";

export function meteredConnection(inner: CardConnection, record: (ins: number, sw: number | undefined, ms: number) => void, signal: AbortSignal): CardConnection {
  const check = () => {
    if (signal.aborted) throw signal.reason instanceof MrtdError ? signal.reason : new TransportError("ABORTED", "the read was aborted", { retryable: false });
  };
  return {
    get reader() {
      return inner.reader;
    },
    get atr() {
      return inner.atr;
    },
    get lastTransmitMicros() {
      return (inner as { lastTransmitMicros?: number }).lastTransmitMicros;
    },
    async transmit(command: Uint8Array): Promise<Uint8Array> {
      check();
      const t0 = performance.now();
      let sw: number | undefined;
      try {
        const r = await inner.transmit(command);
        if (r.length >= 2) sw = (r[r.length - 2]! << 8) | r[r.length - 1]!;
        return r;
      } finally {
        record(command[1] ?? 0, sw, performance.now() - t0);
      }
    },
    reconnect: async (mode) => {
      check();
      return inner.reconnect(mode);
    },
    disconnect: (mode) => inner.disconnect(mode),
  } as CardConnection;
}
