/**
 * ATR decoding (ISO/IEC 7816-3 §8, historical bytes per ISO/IEC 7816-4 §8.1.1) and the
 * PC/SC Part 3 form a contactless reader builds from an ISO 14443-4 card's ATS:
 * 3B 8n 80 01 ‖ historical bytes ‖ TCK.
 */

export interface AtrInfo {
  /** Historical bytes (from the ATS for a contactless card). */
  historical: Uint8Array;
  /** Whether the historical bytes state extended Lc/Le support; undefined when they do not say. */
  extendedLength: boolean | undefined;
  /** Whether the historical bytes state command chaining support; undefined when they do not say. */
  commandChaining: boolean | undefined;
  /** PC/SC Part 3 ATR of a contactless ISO 14443-4 card. */
  contactless: boolean;
}

export function parseAtr(atr: Uint8Array): AtrInfo {
  const none: AtrInfo = { historical: new Uint8Array(0), extendedLength: undefined, commandChaining: undefined, contactless: false };
  if (atr.length < 2 || (atr[0] !== 0x3b && atr[0] !== 0x3f)) return none;
  const t0 = atr[1]!;
  const k = t0 & 0x0f;
  // Walk the interface bytes: TA/TB/TC/TD presence bits of each Y nibble.
  let p = 2;
  let y = t0 >> 4;
  let tck = false;
  for (;;) {
    const td = y & 0x8 ? p + ((y & 1) + ((y >> 1) & 1) + ((y >> 2) & 1)) : -1;
    p += (y & 1) + ((y >> 1) & 1) + ((y >> 2) & 1) + ((y >> 3) & 1);
    if (td < 0) break;
    const tdByte = atr[td];
    if (tdByte === undefined) return none;
    if ((tdByte & 0x0f) !== 0) tck = true;
    y = tdByte >> 4;
  }
  const historical = atr.subarray(p, p + k);
  if (historical.length !== k) return none;
  const contactless = atr[0] === 0x3b && (t0 & 0xf0) === 0x80 && atr[2] === 0x80 && atr[3] === 0x01 && tck;
  let extendedLength: boolean | undefined;
  let commandChaining: boolean | undefined;
  if (historical[0] === 0x80 || historical[0] === 0x00) {
    // Compact-TLV objects; tag 7 = card capabilities, third software-function byte.
    const end = historical[0] === 0x00 ? historical.length - 3 : historical.length;
    for (let q = 1; q < end; ) {
      const tl = historical[q]!;
      const len = tl & 0x0f;
      if (tl >> 4 === 7 && len >= 3 && q + 3 < historical.length) {
        const b3 = historical[q + 3]!;
        commandChaining = (b3 & 0x80) !== 0;
        extendedLength = (b3 & 0x40) !== 0;
      }
      q += 1 + len;
    }
  }
  return { historical, extendedLength, commandChaining, contactless };
}

/** ISO/IEC 14443-4 §5.2.3: FSCI → FSC, the largest frame the card accepts (bytes). */
export const FSC_BYTES = [16, 24, 32, 40, 48, 64, 96, 128, 256, 512, 1024, 2048, 4096] as const;

export interface AtsInfo {
  /** Largest frame the card accepts (FSC), from FSCI in T0. */
  maxFrameBytes: number | undefined;
  fsci: number;
  /** Frame waiting time integer (TB bits 8-5): FWT = 256 × 16 / fc × 2^FWI ≈ 0.302 ms × 2^FWI. */
  fwi: number | undefined;
  /** Frame waiting time in ms, from FWI. */
  fwtMs: number | undefined;
  /** TA(1): bit rates both directions the card supports, as divisors (2, 4, 8 = 212/424/848 kbit/s). */
  bitRates: { toCard: number[]; toReader: number[]; sameBothWays: boolean } | undefined;
  historical: Uint8Array;
}

/**
 * Answer To Select of an ISO/IEC 14443-4 card (§5.2): TL, T0 (Y1 bits 7-5 announce TA/TB/TC,
 * FSCI in bits 4-1), TA(1), TB(1), TC(1), historical bytes. Readers return it to
 * PC/SC GET DATA (FF CA 01 00 00, PC/SC part 3 §3.2.2.1.3) when they support that.
 */
export function parseAts(ats: Uint8Array): AtsInfo | undefined {
  const tl = ats[0];
  if (tl === undefined || tl < 1 || tl > ats.length) return undefined;
  const t0 = ats[1];
  if (tl === 1 || t0 === undefined) return { maxFrameBytes: 256, fsci: 8, fwi: 4, fwtMs: fwtMs(4), bitRates: undefined, historical: new Uint8Array(0) };
  const fsci = t0 & 0x0f;
  let p = 2;
  let bitRates: AtsInfo["bitRates"];
  let fwi: number | undefined = 4;
  if (t0 & 0x10) {
    const ta = ats[p++] ?? 0;
    const rates = (bits: number) => [2, 4, 8].filter((_, i) => (bits >> i) & 1);
    bitRates = { toCard: rates(ta & 0x07), toReader: rates((ta >> 4) & 0x07), sameBothWays: (ta & 0x80) !== 0 };
  }
  if (t0 & 0x20) fwi = ((ats[p++] ?? 0x40) >> 4) & 0x0f;
  if (t0 & 0x40) p++;
  const historical = ats.subarray(Math.min(p, tl), tl);
  return { maxFrameBytes: FSC_BYTES[fsci] ?? 256, fsci, fwi, fwtMs: fwi === undefined ? undefined : fwtMs(fwi), bitRates, historical };
}

function fwtMs(fwi: number): number {
  return Math.round(((256 * 16) / 13_560_000) * 2 ** fwi * 1000 * 100) / 100;
}

/**
 * Plain-language reading of historical bytes (ISO/IEC 7816-4 §8.1.1): category indicator and the
 * compact-TLV objects (card service data '3x', card capabilities '7x'), for diagnostics.
 */
export function describeHistorical(historical: Uint8Array): string[] {
  const out: string[] = [];
  const cat = historical[0];
  if (cat === undefined) return ["no historical bytes"];
  if (cat !== 0x80 && cat !== 0x00) return [`proprietary historical bytes (category ${cat.toString(16).toUpperCase().padStart(2, "0")})`];
  out.push("category 80/00: compact-TLV objects (ISO 7816-4)");
  const end = cat === 0x00 ? historical.length - 3 : historical.length;
  for (let q = 1; q < end; ) {
    const tl = historical[q]!;
    const tag = tl >> 4;
    const len = tl & 0x0f;
    const v = historical.subarray(q + 1, q + 1 + len);
    if (tag === 7 && v.length >= 1) {
      const sel: string[] = [];
      const b1 = v[0]!;
      if (b1 & 0x80) sel.push("by full DF name");
      if (b1 & 0x40) sel.push("by partial DF name");
      if (b1 & 0x20) sel.push("by path");
      if (b1 & 0x10) sel.push("by file identifier");
      if (b1 & 0x02) sel.push("short EF identifier");
      out.push(`card capabilities: selection ${sel.join(", ") || "none stated"}`);
      const b3 = v[2];
      if (b3 !== undefined) {
        out.push(`command chaining ${b3 & 0x80 ? "yes" : "no"}; extended Lc/Le ${b3 & 0x40 ? "yes" : "no"}; logical channels ${((b3 >> 3) & 0x03) > 0 ? "yes" : "no"}`);
      }
    } else if (tag === 3 && v.length >= 1) {
      out.push(`card service data ${v[0]!.toString(16).toUpperCase().padStart(2, "0")}`);
    } else if (tag === 4 || tag === 5 || tag === 6) {
      out.push(`${tag === 4 ? "card issuer's data" : tag === 5 ? "pre-issuing data" : "initial access data"} (${len} bytes)`);
    } else {
      out.push(`compact-TLV tag ${tag} (${len} bytes)`);
    }
    q += 1 + len;
  }
  return out;
}
