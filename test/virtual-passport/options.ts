/**
 * Options of the virtual passport: the chip's length limits and status-word habits,
 * its ATR (PC/SC Part 3 §3.1.3.2.3 contactless ATR) and the RF-link latency the vpcd
 * link simulates. Defaults give a well-behaved ICAO 9303 chip with extended length.
 */
import type { MrzKey } from "./card-sm.ts";

/** How fast the simulated contactless link answers (used by the vpcd link, not by the chip logic). */
export type Latency = { kind: "fast" } | { kind: "realistic"; bitRate: number; turnaroundMs: number };

export interface CardOptions {
  /** The BAC access key printed in the MRZ (the chip stores Kenc/Kmac derived from it). */
  mrzKey: MrzKey;
  /** Largest Ne the chip serves in one READ BINARY (plaintext bytes under secure messaging). */
  maxLe: number;
  /** Whether the chip accepts extended-length APDUs (and says so in its ATR). When false they get 6700. */
  extendedLength: boolean;
  /** What a too-large Le gets: 6700, or 6Cxx naming the largest acceptable Ne (ISO 7816-4 §5.6, when it fits a byte). */
  leTooLargeSw: "6700" | "6Cxx";
  latency: Latency;
  atr: Uint8Array;
  /** Source of RND.IC and K.IC; injectable so tests replay ICAO 9303-11 Appendix D. */
  random: (n: number) => Uint8Array;
}

export type CardOptionsInput = Partial<Omit<CardOptions, "mrzKey">> & { mrzKey: MrzKey };

/** Bit rate of ISO 14443 at 4x the base rate (106 kbit/s), what most passports negotiate with desktop readers. */
export const REALISTIC_LATENCY: Latency = { kind: "realistic", bitRate: 424_000, turnaroundMs: 3 };

export function resolveCardOptions(input: CardOptionsInput): CardOptions {
  const extendedLength = input.extendedLength ?? true;
  const maxLe = input.maxLe ?? (extendedLength ? 65536 : 256);
  if (!Number.isInteger(maxLe) || maxLe < 1 || maxLe > 65536) throw new RangeError(`maxLe must be 1..65536, got ${maxLe}`);
  if (!extendedLength && maxLe > 256) throw new RangeError(`maxLe ${maxLe} needs extendedLength`);
  const latency = input.latency ?? { kind: "fast" };
  if (latency.kind === "realistic") {
    if (!(latency.bitRate > 0)) throw new RangeError(`latency.bitRate must be positive, got ${latency.bitRate}`);
    if (!(latency.turnaroundMs >= 0)) throw new RangeError(`latency.turnaroundMs must be >= 0, got ${latency.turnaroundMs}`);
  }
  return {
    mrzKey: input.mrzKey,
    maxLe,
    extendedLength,
    leTooLargeSw: input.leTooLargeSw ?? "6700",
    latency,
    atr: input.atr ?? contactlessAtr(extendedLength),
    random: input.random ?? ((n) => crypto.getRandomValues(new Uint8Array(n))),
  };
}

/**
 * PC/SC Part 3 ATR for an ISO 14443-4 card: 3B 8n 80 01 ‖ historical bytes ‖ TCK.
 * Historical bytes (ISO 7816-4 §8.1.1): category 80, then the compact-TLV card
 * capabilities '73': selection by full DF name and by FID, short EF identifiers;
 * one-byte data units; command chaining, and extended Lc/Le when supported.
 */
export function contactlessAtr(extendedLength: boolean): Uint8Array {
  const historical = [0x80, 0x73, 0x94, 0x01, extendedLength ? 0xc0 : 0x80];
  const body = [0x80 | historical.length, 0x80, 0x01, ...historical];
  let tck = 0;
  for (const b of body) tck ^= b;
  return Uint8Array.from([0x3b, ...body, tck]);
}

/** Whether an ATR's historical bytes announce extended Lc/Le (card capabilities '73', third byte bit 7). */
export function atrAnnouncesExtendedLength(atr: Uint8Array): boolean {
  const t0 = atr[1];
  if (atr[0] !== 0x3b || t0 === undefined) return false;
  const k = t0 & 0x0f;
  const historical = atr.subarray(atr.length - 1 - k, atr.length - 1);
  if (historical[0] !== 0x80) return false;
  for (let p = 1; p < historical.length; ) {
    const tl = historical[p]!;
    const len = tl & 0x0f;
    if (tl >> 4 === 7 && len >= 3) return ((historical[p + 3] ?? 0) & 0x40) !== 0;
    p += 1 + len;
  }
  return false;
}
