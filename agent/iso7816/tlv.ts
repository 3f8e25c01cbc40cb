/**
 * BER-TLV (ISO/IEC 7816-4 §5.2, ISO/IEC 8825-1) as used by ICAO 9303-10 files and
 * secure-messaging data objects. Tags are returned as numbers holding their bytes
 * (e.g. 0x5F1F, 0x7F61). Definite lengths only: LDS files forbid indefinite ones
 * (EF.SOD's CMS, which may use them, is parsed by agent/pki/asn1.ts instead).
 */
import { ParseError } from "../errors.ts";

export interface Tlv {
  tag: number;
  /** Whether bit 6 of the first tag byte marks a constructed object. */
  constructed: boolean;
  value: Uint8Array;
  /** Offset of the first tag byte in the input. */
  offset: number;
  /** Bytes taken by tag and length. */
  headerLength: number;
  /** Offset just past the value. */
  end: number;
}

/** Reads tag and length only; useful with a file header (the first bytes of a file). */
export function readTlvHeader(bytes: Uint8Array, offset = 0): { tag: number; constructed: boolean; length: number; headerLength: number } {
  let p = offset;
  const need = (n: number, what: string) => {
    if (p + n > bytes.length) throw new ParseError(`TLV truncated in ${what}`, { offset: p });
  };
  need(1, "tag");
  const first = bytes[p++]!;
  let tag = first;
  if ((first & 0x1f) === 0x1f) {
    let count = 0;
    for (;;) {
      need(1, "tag");
      const b = bytes[p++]!;
      tag = tag * 256 + b;
      if (++count > 3) throw new ParseError("TLV tag longer than 4 bytes", { offset });
      if ((b & 0x80) === 0) break;
    }
  }
  need(1, "length");
  const l0 = bytes[p++]!;
  let length: number;
  if (l0 < 0x80) length = l0;
  else if (l0 === 0x80) throw new ParseError("indefinite TLV length not allowed here", { offset: p - 1, tag });
  else {
    const n = l0 & 0x7f;
    if (n > 4) throw new ParseError(`TLV length field of ${n} bytes`, { offset: p - 1, tag });
    need(n, "length");
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + bytes[p++]!;
  }
  return { tag, constructed: (first & 0x20) !== 0, length, headerLength: p - offset };
}

export function parseTlv(bytes: Uint8Array, offset = 0): Tlv {
  const h = readTlvHeader(bytes, offset);
  const start = offset + h.headerLength;
  if (start + h.length > bytes.length) {
    throw new ParseError(`TLV value truncated: tag ${h.tag.toString(16)} needs ${h.length} bytes, ${bytes.length - start} left`, {
      offset,
      tag: h.tag,
    });
  }
  return {
    tag: h.tag,
    constructed: h.constructed,
    value: bytes.subarray(start, start + h.length),
    offset,
    headerLength: h.headerLength,
    end: start + h.length,
  };
}

/** Parses consecutive TLVs filling `bytes` exactly. */
export function parseTlvList(bytes: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let p = 0;
  while (p < bytes.length) {
    // ISO 7816-4: 00 and FF bytes between objects are padding
    if (bytes[p] === 0x00 || bytes[p] === 0xff) {
      p++;
      continue;
    }
    const t = parseTlv(bytes, p);
    out.push(t);
    p = t.end;
  }
  return out;
}

/** First child with `tag` inside a constructed value, or undefined. */
export function findTlv(bytes: Uint8Array, tag: number): Tlv | undefined {
  return parseTlvList(bytes).find((t) => t.tag === tag);
}

export function encodeLength(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffff) throw new RangeError(`encodeLength: bad length ${n}`);
  if (n < 0x80) return Uint8Array.of(n);
  if (n < 0x100) return Uint8Array.of(0x81, n);
  if (n < 0x10000) return Uint8Array.of(0x82, n >> 8, n & 0xff);
  return Uint8Array.of(0x83, n >> 16, (n >> 8) & 0xff, n & 0xff);
}

export function encodeTag(tag: number): Uint8Array {
  if (!Number.isInteger(tag) || tag < 0 || tag > 0xffffffff) throw new RangeError(`encodeTag: bad tag ${tag}`);
  const out: number[] = [];
  let t = tag;
  do {
    out.unshift(t & 0xff);
    t = Math.floor(t / 256);
  } while (t > 0);
  return Uint8Array.from(out);
}

export function encodeTlv(tag: number, ...values: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const v of values) n += v.length;
  const t = encodeTag(tag);
  const l = encodeLength(n);
  const out = new Uint8Array(t.length + l.length + n);
  out.set(t, 0);
  out.set(l, t.length);
  let o = t.length + l.length;
  for (const v of values) {
    out.set(v, o);
    o += v.length;
  }
  return out;
}
