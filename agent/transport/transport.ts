/**
 * The one interface the protocol layers need from a card link.
 * Implementations: PC/SC (pcsc.ts), scripted (scripted-transport.ts, for unit tests).
 */

export interface CardTransport {
  /** Send one command APDU, return the raw response APDU (data ‖ SW1 SW2). Throws TransportError. */
  transmit(command: Uint8Array): Promise<Uint8Array>;
}

/** A transport to a card in a reader, able to recover the link. */
export interface CardConnection extends CardTransport {
  readonly reader: string;
  /** The card's ATR as last reported by the reader. */
  readonly atr: Uint8Array;
  /** Reconnect to the card; "reset" warm-resets it, "unpower" cold-resets it. */
  reconnect(mode: "leave" | "reset" | "unpower"): Promise<Uint8Array>;
  disconnect(mode?: "leave" | "reset" | "unpower"): Promise<void>;
}
