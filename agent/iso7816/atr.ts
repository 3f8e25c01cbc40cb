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
