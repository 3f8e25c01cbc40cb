/**
 * Finds the card to read: picks a PC/SC reader (optionally by a part of its name),
 * waits for a card to be presented, connects, and can connect again to the same
 * reader after the card left the field (the Reconnector the reading steps use).
 * The card is ours from connect to close (a PC/SC transaction) and is reset when we let go.
 */
import { TransportError } from "../errors.ts";
import { PcscClient, SCARD_STATE_MUTE, SCARD_STATE_UNAWARE, type PcscCard, type ReaderState } from "../transport/pcsc.ts";

export interface OpenCardOptions {
  /** Use the first reader whose name contains this (case-insensitive). */
  reader?: string;
  /** How long to wait for a card when none is present (0: do not wait). */
  waitMs: number;
  /** Called once when the wait starts, with the reader(s) being watched. */
  onWaiting?: (readers: string) => void;
  /** An already open client to use (the service keeps one); otherwise one is opened and closed here. */
  client?: PcscClient;
  /**
   * Hold a PC/SC transaction on the card from connect to close, taken again on every new
   * connection (default true): no other client's APDU can come between ours.
   */
  claim?: boolean;
  /** What close() does to the card: "reset" (default) ends the chip's session for the next application; "leave" keeps it. */
  disconnect?: CardDisposition;
}

/** How the card is left when the agent is done with it (`--leave-card`, `readers.disconnect`). */
export type CardDisposition = "reset" | "leave";

export interface OpenedCard {
  connection: PcscCard;
  client: PcscClient;
  /** Waits for a card in the same reader and connects to it. */
  reconnect: (waitMs: number) => Promise<PcscCard>;
  close(): Promise<void>;
}

export async function openCard(opts: OpenCardOptions): Promise<OpenedCard> {
  let own = opts.client === undefined;
  let client = opts.client ?? (await PcscClient.open());
  try {
    const readers = await selectReaders(client, opts.reader);
    const state = await waitForCard(client, readers, opts.waitMs, opts.onWaiting);
    const transaction = opts.claim ?? true;
    let current = await client.connect(state.name, { transaction });
    const reader = state.name;
    return {
      get connection() {
        return current;
      },
      get client() {
        return client;
      },
      reconnect: async (waitMs: number) => {
        const deadline = performance.now() + waitMs;
        for (;;) {
          try {
            await waitForCard(client, [reader], Math.max(0, deadline - performance.now()));
            current = await client.connect(reader, { transaction });
            return current;
          } catch (e) {
            // An unknown reader may be pcscd still starting up: retry it within the window too.
            const retry = e instanceof TransportError && !["CLOSED", "PCSC_WORKER", "PCSC_LIBRARY", "NO_READER"].includes(e.code);
            if (!retry || performance.now() >= deadline) throw e;
            if (SERVICE_LOST.has(e.code)) {
              // pcscd restarted: this client's contexts are dead. Open a fresh client (ours to close).
              try {
                const fresh = await PcscClient.open();
                if (own) await client.close().catch(() => undefined);
                client = fresh;
                own = true;
              } catch {
                // pcscd not back yet
              }
            }
            // pcscd polls readers (~400 ms for vpcd): a card it still lists may already be gone.
            await Bun.sleep(Math.min(50, Math.max(0, deadline - performance.now())));
          }
        }
      },
      close: async () => {
        await current.disconnect(opts.disconnect ?? "reset").catch(() => undefined);
        if (own) await client.close();
      },
    };
  } catch (e) {
    if (own) await client.close();
    throw e;
  }
}

/** Codes meaning the client's connection to pcscd is gone (daemon stopped or restarted). */
const SERVICE_LOST = new Set(["SCARD_E_NO_SERVICE", "SCARD_E_SERVICE_STOPPED", "SCARD_F_COMM_ERROR", "SCARD_E_INVALID_HANDLE", "SCARD_E_UNKNOWN_READER"]);

export async function selectReaders(client: PcscClient, namePart: string | undefined): Promise<string[]> {
  const all = await client.listReaders();
  if (all.length === 0) {
    throw new TransportError("NO_READER", "no PC/SC reader found: plug the reader in and check that pcscd lists it (pcsc_scan)", { retryable: false });
  }
  if (namePart === undefined) return all;
  const wanted = all.filter((r) => r.toLowerCase().includes(namePart.toLowerCase()));
  if (wanted.length === 0) {
    throw new TransportError("NO_READER", `no reader name contains "${namePart}"; readers: ${all.join(", ")}`, { retryable: false });
  }
  return wanted;
}

/** Returns the first reader holding a responsive card, waiting up to waitMs for one. */
export async function waitForCard(client: PcscClient, readers: string[], waitMs: number, onWaiting?: (r: string) => void): Promise<ReaderState> {
  const deadline = performance.now() + waitMs;
  let states = await client.getStatusChange(readers.map((name) => ({ name, currentState: SCARD_STATE_UNAWARE })), 0);
  let announced = false;
  for (;;) {
    const ready = states.find((s) => s.present && (s.eventState & SCARD_STATE_MUTE) === 0);
    if (ready) return ready;
    const left = deadline - performance.now();
    if (left <= 0) {
      const mute = states.find((s) => (s.eventState & SCARD_STATE_MUTE) !== 0);
      if (mute) {
        throw new TransportError("CARD_MUTE", `the card in ${mute.name} does not answer (mute): place the document flat on the reader and keep it still`, {
          retryable: true,
        });
      }
      throw new TransportError("NO_CARD", `no card in ${readers.join(", ")}${waitMs > 0 ? ` after waiting ${Math.round(waitMs / 1000)} s` : ""}`, {
        retryable: true,
      });
    }
    if (!announced) {
      onWaiting?.(readers.join(", "));
      announced = true;
    }
    states = await client.getStatusChange(
      states.map((s) => ({ name: s.name, currentState: s.eventState })),
      Math.ceil(left),
    );
  }
}
