/**
 * Getting a working card link back after it was lost, shared by the read and the
 * reader diagnostics: SCardReconnect with a warm reset (the chip's session is gone anyway), a
 * cold reset when the card does not answer the warm one, then, until the window closes,
 * alternately SCardReconnect on the same handle and a wait for the card with a fresh connection
 * (the card left the field, pcscd restarted).
 *
 * Quirk (pcsc-lite 1.9.9 + vsmartcard vpcd, measured): when the card is back before pcscd's next
 * presence poll (~400 ms), a failed SCardReconnect leaves the reader state EMPTY for good, so a
 * wait for presence never ends and SCardConnect fails with SCARD_E_NO_SMARTCARD, while a later
 * SCardReconnect on the old handle works. Hence the old handle is kept and retried.
 */
import { MrtdError, TransportError } from "../errors.ts";
import type { CardConnection } from "../transport/transport.ts";

/** Waits (up to waitMs) for a card in the same reader and connects to it. */
export type Reconnector = (waitMs: number) => Promise<CardConnection>;

/** Codes after which a cold reset (unpower) may help where a warm reset did not. */
const COLD_RESET_HELPS = new Set(["SCARD_W_UNRESPONSIVE_CARD", "SCARD_W_UNPOWERED_CARD", "SCARD_E_NOT_TRANSACTED", "SCARD_E_COMM_DATA_LOST", "SCARD_E_TIMEOUT"]);

/** pcscd itself is gone: waiting for the card means waiting for the daemon. */
const SERVICE_CODES = new Set(["SCARD_E_NO_SERVICE", "SCARD_E_SERVICE_STOPPED", "SCARD_F_COMM_ERROR", "SCARD_E_INVALID_HANDLE"]);

/** Failures of this process, not of the link: waiting does not help. */
const LOCAL_FAILURES = new Set(["CLOSED", "PCSC_WORKER", "PCSC_LIBRARY"]);

const WINDOW_SPENT = new WeakSet<object>();

/** Whether `e` is relinkCard's verdict that the whole window passed without a card. */
export function relinkWindowSpent(e: unknown): boolean {
  return typeof e === "object" && e !== null && WINDOW_SPENT.has(e);
}

/**
 * Returns a working connection (the same one after a reconnect, or a new one) and what was done.
 * Throws TransportError CARD_LOST (or the pcscd code when the daemon stayed away) after waitMs.
 */
export async function relinkCard(conn: CardConnection, reconnect: Reconnector | undefined, waitMs: number): Promise<{ conn: CardConnection; action: string }> {
  const w0 = performance.now();
  const deadline = w0 + waitMs;
  let last: unknown;
  for (const mode of ["reset", "unpower"] as const) {
    try {
      await conn.reconnect(mode);
      return { conn, action: `reconnect (${mode}) and re-authenticate` };
    } catch (e) {
      last = e;
      // Only an unresponsive card is worth a cold reset; a removed card or dead pcscd is not.
      if (!(e instanceof TransportError && COLD_RESET_HELPS.has(e.code))) break;
    }
  }
  if (!(last instanceof MrtdError && last.retryable) && !reconnect) throw last;
  for (let round = 1; ; round++) {
    const left = deadline - performance.now();
    if (left <= 0) {
      const service = last instanceof TransportError && SERVICE_CODES.has(last.code);
      const lost = new TransportError(
        service ? (last as TransportError).code : "CARD_LOST",
        service
          ? `pcscd did not come back within ${waitMs} ms (${(last as TransportError).code})`
          : `the document left the reader and did not come back within ${waitMs} ms`,
        { retryable: false, cause: last },
      );
      WINDOW_SPENT.add(lost);
      throw lost;
    }
    await Bun.sleep(Math.min(round === 1 ? 20 : 100, left));
    try {
      await conn.reconnect("reset");
      return { conn, action: `reconnect (reset) after ${Math.round(performance.now() - w0)} ms and re-authenticate` };
    } catch (e) {
      last = e;
    }
    if (!reconnect) continue;
    try {
      const fresh = await reconnect(Math.max(0, Math.min(300, deadline - performance.now())));
      await conn.disconnect("leave").catch(() => undefined);
      return { conn: fresh, action: `wait for the card (${Math.round(performance.now() - w0)} ms), connect and re-authenticate` };
    } catch (e) {
      // Within the window any link-level answer may be transient (an absent card has made
      // pcscd answer SCARD_E_PROTO_MISMATCH here); only non-link errors end the wait early.
      if (!(e instanceof TransportError) || LOCAL_FAILURES.has(e.code)) throw e;
      last = e;
    }
  }
}
