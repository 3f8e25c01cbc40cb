/**
 * An in-process reader for unit tests and the fault benchmark: the virtual passport chip behind a
 * CardConnection that behaves like pcscd + vsmartcard vpcd as measured here (issue 4), with the
 * fault injector in between. No PC/SC, no sockets: reads run in-process, so thousands of faulty
 * reads take seconds. Behaviour copied from the real stack:
 *
 * - the exchange during which the card leaves returns an EMPTY response (no status word);
 * - later transmits on that handle fail with SCARD_E_NOT_TRANSACTED;
 * - SCardReconnect fails with SCARD_E_NO_SMARTCARD while the card is out and until the reader has
 *   polled it back (pollMs after it returned; pcscd polls vpcd every ~400 ms), then warm-resets it;
 * - waiting for the card (the Reconnector) ends with NO_CARD when the wait runs out.
 */
import { TransportError } from "../../agent/errors.ts";
import { pcscError } from "../../agent/transport/pcsc-errors.ts";
import type { CardConnection } from "../../agent/transport/transport.ts";
import type { Reconnector } from "../../agent/reading/read-document.ts";
import type { VirtualPassport } from "../virtual-passport/card.ts";
import { FaultInjector, LOST, type FaultMedium } from "../virtual-passport/faults.ts";

const SCARD_E_NOT_TRANSACTED = 0x80100016;
const SCARD_E_NO_SMARTCARD = 0x8010000c;

export interface InProcessReaderOptions {
  name?: string;
  /** Delay until the reader notices the returned card (default 20 ms). */
  pollMs?: number;
}

export class InProcessReader {
  readonly name: string;
  readonly pollMs: number;
  /** Time (performance.now) from which the card is back and seen; Infinity while it is out for good. */
  private presentFrom = 0;
  /** Bumped on every removal: handles from before it are stale. */
  private generation = 0;
  private readonly medium: FaultMedium;

  constructor(
    readonly card: VirtualPassport,
    readonly injector?: FaultInjector,
    opts: InProcessReaderOptions = {},
  ) {
    this.name = opts.name ?? "In-process PCD 00 00";
    this.pollMs = opts.pollMs ?? 20;
    this.medium = {
      chip: (apdu) => this.card.handle(apdu),
      chipHasSession: () => this.card.authenticated,
      dropChipSession: () => this.card.reset(),
      leave: (absentMs) => this.remove(absentMs),
    };
  }

  get present(): boolean {
    return performance.now() >= this.presentFrom;
  }

  /** The card leaves the field; back after absentMs (Infinity: never). */
  remove(absentMs: number): void {
    this.generation++;
    this.card.powerOff();
    this.presentFrom = performance.now() + absentMs + this.pollMs;
  }

  connect(): InProcessConnection {
    if (!this.present) throw pcscError(SCARD_E_NO_SMARTCARD, "SCardConnect");
    this.card.reset();
    return new InProcessConnection(this, this.generation);
  }

  /** Waits for the card (like card-source's reconnect) and connects. */
  readonly reconnector: Reconnector = async (waitMs: number) => {
    const deadline = performance.now() + waitMs;
    while (!this.present) {
      const left = Math.min(deadline, this.presentFrom) - performance.now();
      if (performance.now() >= deadline) throw new TransportError("NO_CARD", `no card in ${this.name} after waiting ${Math.round(waitMs)} ms`, { retryable: true });
      await Bun.sleep(Math.max(1, Math.min(left, 50)));
    }
    return this.connect();
  };

  /** @internal one exchange through the injector. */
  async exchange(apdu: Uint8Array): Promise<Uint8Array> {
    const r = this.injector ? await this.injector.apply(apdu, this.medium) : undefined;
    if (r === LOST) return new Uint8Array(0);
    return r ?? this.card.handle(apdu);
  }

  /** @internal */
  isCurrent(generation: number): boolean {
    return generation === this.generation && this.present;
  }

  /** @internal */
  resume(): number {
    if (!this.present) throw pcscError(SCARD_E_NO_SMARTCARD, "SCardReconnect");
    this.card.reset();
    return this.generation;
  }
}

export class InProcessConnection implements CardConnection {
  readonly reader: string;
  readonly atr: Uint8Array;
  private closed = false;

  constructor(
    private readonly owner: InProcessReader,
    private generation: number,
  ) {
    this.reader = owner.name;
    this.atr = owner.card.options.atr;
  }

  async transmit(command: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new TransportError("DISCONNECTED", "SCardTransmit: the card connection was closed; connect again", { retryable: true });
    if (!this.owner.isCurrent(this.generation)) throw pcscError(SCARD_E_NOT_TRANSACTED, "SCardTransmit");
    return this.owner.exchange(command);
  }

  async reconnect(): Promise<Uint8Array> {
    if (this.closed) throw new TransportError("DISCONNECTED", "SCardReconnect: the card connection was closed; connect again", { retryable: true });
    this.generation = this.owner.resume();
    return this.atr;
  }

  async disconnect(): Promise<void> {
    this.closed = true;
  }
}
