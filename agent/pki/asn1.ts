/**
 * ASN.1 BER reader and DER writer (ITU-T X.690) for the CMS, X.509 and CRL structures of
 * Passive Authentication (ICAO 9303-10 §4.6.2, 9303-12), and for the ASN.1 inside LDS files
 * (EF.SOD, DG14, DG15). The BER-TLV of APDUs and of the other LDS files is
 * agent/iso7816/tlv.ts's, whose tag and length encoders the writer here uses.
 *
 * Own code rather than asn1js because the input is hostile (a chip or a downloaded file): every
 * length is checked against the input, nesting depth is bounded, and any malformation is a
 * ParseError with an offset. BER indefinite lengths are accepted because some US passports
 * encode EF.SOD with them (proxmark3 PR #1145).
 */
import { concat } from "../bytes.ts";
import { ParseError } from "../errors.ts";
import { encodeTag, encodeTlv } from "../iso7816/tlv.ts";

/** One BER element. Byte fields are views into the input, not copies. */
export interface Asn1 {
  /** Identifier octets as a number, e.g. 0x30 (SEQUENCE), 0xA0 ([0] constructed), 0x77. */
  tag: number;
  tagClass: "universal" | "application" | "context" | "private";
  tagNumber: number;
  constructed: boolean;
  /** The whole element: header, contents and, for an indefinite length, the end-of-contents octets. */
  raw: Uint8Array;
  /** Contents octets (for a constructed element: the encodings of the children). */
  value: Uint8Array;
  /** Children of a constructed element; empty for a primitive one. */
  children: Asn1[];
  /** Offset of the first identifier octet in the parsed input. */
  offset: number;
  /** True when this element or any element inside it used an indefinite length. */
  indefinite: boolean;
}

export interface Asn1Limits {
  /** Maximum nesting depth (X.509 needs about 10). */
  maxDepth?: number;
  /**
   * Maximum number of elements in the tree. The tree is built up front, so without it a 4 MiB
   * input of empty elements is two million objects; an EF.SOD has a few hundred.
   */
  maxNodes?: number;
}

const DEFAULT_MAX_DEPTH = 48;
/** Enough for an EF.SOD, a certificate or a CRL of a few thousand entries; trust files ask for more. */
export const DEFAULT_MAX_NODES = 50_000;
const CLASSES = ["universal", "application", "context", "private"] as const;

/** Parses exactly one element filling `bytes` (trailing bytes are an error unless `allowTrailing`). */
export function parseAsn1(bytes: Uint8Array, opts: Asn1Limits & { allowTrailing?: boolean } = {}): Asn1 {
  const budget: Budget = { maxDepth: opts.maxDepth ?? DEFAULT_MAX_DEPTH, maxNodes: opts.maxNodes ?? DEFAULT_MAX_NODES, nodes: 0 };
  const node = readElement(bytes, 0, bytes.length, 0, budget);
  if (!opts.allowTrailing && node.raw.length !== bytes.length) {
    throw new ParseError(`ASN.1: ${bytes.length - node.raw.length} bytes after the element`, { offset: node.raw.length });
  }
  return node;
}

interface Budget {
  maxDepth: number;
  maxNodes: number;
  nodes: number;
}

function readElement(buf: Uint8Array, start: number, limit: number, depth: number, budget: Budget): Asn1 {
  if (depth > budget.maxDepth) throw new ParseError(`ASN.1: nesting deeper than ${budget.maxDepth}`, { offset: start });
  if (++budget.nodes > budget.maxNodes) throw new ParseError(`ASN.1: more than ${budget.maxNodes} elements`, { offset: start });
  let p = start;
  if (p >= limit) throw new ParseError("ASN.1: truncated in identifier", { offset: p });
  const first = buf[p++]!;
  const tagClass = CLASSES[first >> 6]!;
  const constructed = (first & 0x20) !== 0;
  let tagNumber = first & 0x1f;
  let tag = first;
  if (tagNumber === 0x1f) {
    tagNumber = 0;
    for (let count = 0; ; count++) {
      if (p >= limit) throw new ParseError("ASN.1: truncated in identifier", { offset: p });
      if (count >= 3) throw new ParseError("ASN.1: tag number too long", { offset: start });
      const b = buf[p++]!;
      tagNumber = tagNumber * 128 + (b & 0x7f);
      tag = tag * 256 + b;
      if ((b & 0x80) === 0) break;
    }
  }
  if (p >= limit) throw new ParseError("ASN.1: truncated in length", { offset: p, tag });
  const l0 = buf[p++]!;
  if (l0 === 0x80) {
    // Indefinite length (BER only): children up to the end-of-contents octets 00 00.
    if (!constructed) throw new ParseError("ASN.1: indefinite length on a primitive element", { offset: start, tag });
    const contentStart = p;
    const children: Asn1[] = [];
    for (;;) {
      if (p + 2 > limit) throw new ParseError("ASN.1: missing end-of-contents", { offset: p, tag });
      if (buf[p] === 0 && buf[p + 1] === 0) break;
      const child = readElement(buf, p, limit, depth + 1, budget);
      children.push(child);
      p += child.raw.length;
    }
    return {
      tag,
      tagClass,
      tagNumber,
      constructed,
      raw: buf.subarray(start, p + 2),
      value: buf.subarray(contentStart, p),
      children,
      offset: start,
      indefinite: true,
    };
  }
  let length: number;
  if (l0 < 0x80) length = l0;
  else {
    const n = l0 & 0x7f;
    if (n === 0x7f) throw new ParseError("ASN.1: reserved length octet", { offset: p - 1, tag });
    if (n > 4) throw new ParseError(`ASN.1: length of ${n} octets`, { offset: p - 1, tag });
    if (p + n > limit) throw new ParseError("ASN.1: truncated in length", { offset: p, tag });
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[p++]!;
  }
  if (length > limit - p) {
    throw new ParseError(`ASN.1: element of ${length} bytes, ${limit - p} available`, { offset: start, tag });
  }
  const end = p + length;
  const children: Asn1[] = [];
  let indefinite = false;
  if (constructed) {
    let q = p;
    while (q < end) {
      const child = readElement(buf, q, end, depth + 1, budget);
      children.push(child);
      indefinite ||= child.indefinite;
      q += child.raw.length;
    }
  }
  return {
    tag,
    tagClass,
    tagNumber,
    constructed,
    raw: buf.subarray(start, end),
    value: buf.subarray(p, end),
    children,
    offset: start,
    indefinite,
  };
}

// ---------------------------------------------------------------------------------------------
// Typed accessors. Each throws ParseError naming what was expected.

export function expectTag(node: Asn1 | undefined, tag: number, what: string): Asn1 {
  if (!node) throw new ParseError(`ASN.1: ${what} missing`);
  if (node.tag !== tag) {
    throw new ParseError(`ASN.1: ${what}: expected tag ${tag.toString(16)}, got ${node.tag.toString(16)}`, {
      offset: node.offset,
      tag: node.tag,
    });
  }
  return node;
}

export function expectSequence(node: Asn1 | undefined, what: string): Asn1 {
  return expectTag(node, 0x30, what);
}

/** Child `i` of a constructed node, or a ParseError. */
export function child(node: Asn1, i: number, what: string): Asn1 {
  const c = node.children[i];
  if (!c) throw new ParseError(`ASN.1: ${what} missing`, { offset: node.offset, tag: node.tag });
  return c;
}

/** OBJECT IDENTIFIER in dotted form. Arcs beyond 2^53 are rejected (none exist in this field). */
export function readOid(node: Asn1 | undefined, what = "OBJECT IDENTIFIER"): string {
  const n = expectTag(node, 0x06, what);
  return decodeOid(n.value, n.offset);
}

export function decodeOid(v: Uint8Array, offset?: number): string {
  if (v.length === 0 || v.length > 64) throw new ParseError(`ASN.1: OID of ${v.length} bytes`, { offset, tag: 0x06 });
  const arcs: number[] = [];
  let acc = 0;
  for (let i = 0; i < v.length; i++) {
    const b = v[i]!;
    if (acc === 0 && b === 0x80) throw new ParseError("ASN.1: OID arc with leading 0x80", { offset, tag: 0x06 });
    acc = acc * 128 + (b & 0x7f);
    if (acc > Number.MAX_SAFE_INTEGER / 128) throw new ParseError("ASN.1: OID arc too large", { offset, tag: 0x06 });
    if ((b & 0x80) === 0) {
      arcs.push(acc);
      acc = 0;
    } else if (i === v.length - 1) throw new ParseError("ASN.1: OID truncated", { offset, tag: 0x06 });
  }
  const firstArc = arcs[0]!;
  const head = firstArc < 40 ? [0, firstArc] : firstArc < 80 ? [1, firstArc - 40] : [2, firstArc - 80];
  return [...head, ...arcs.slice(1)].join(".");
}

/** Largest INTEGER accepted: an 8192-bit RSA modulus with its sign byte. Bounds BigInt work on hostile input. */
export const MAX_INTEGER_BYTES = 1025;

/** INTEGER as a bigint (two's complement). */
export function readBigInt(node: Asn1 | undefined, what = "INTEGER"): bigint {
  const n = expectTag(node, 0x02, what);
  if (n.value.length === 0) throw new ParseError(`ASN.1: empty ${what}`, { offset: n.offset, tag: 0x02 });
  if (n.value.length > MAX_INTEGER_BYTES) throw new ParseError(`ASN.1: ${what} of ${n.value.length} bytes`, { offset: n.offset, tag: 0x02 });
  let h = "";
  for (const b of n.value) h += b.toString(16).padStart(2, "0");
  let x = BigInt("0x" + h);
  if (n.value[0]! & 0x80) x -= 1n << BigInt(n.value.length * 8);
  return x;
}

/** Small INTEGER (version numbers, DG numbers, salt lengths) as a number. */
export function readSmallInt(node: Asn1 | undefined, what = "INTEGER"): number {
  const n = expectTag(node, 0x02, what);
  if (n.value.length === 0 || n.value.length > 4) {
    throw new ParseError(`ASN.1: ${what} of ${n.value.length} bytes`, { offset: n.offset, tag: 0x02 });
  }
  return Number(readBigInt(n, what));
}

/** Contents of an OCTET STRING, joining the segments of a constructed (BER) one. */
export function readOctetString(node: Asn1 | undefined, what = "OCTET STRING"): Uint8Array {
  if (!node) throw new ParseError(`ASN.1: ${what} missing`);
  if (node.tag === 0x04) return node.value;
  if (node.tag === 0x24) return concat(...segments(node, 0x04, what));
  throw new ParseError(`ASN.1: ${what}: expected OCTET STRING, got tag ${node.tag.toString(16)}`, {
    offset: node.offset,
    tag: node.tag,
  });
}

/** BIT STRING contents without the unused-bits octet; only whole-byte strings are accepted. */
export function readBitStringBytes(node: Asn1 | undefined, what = "BIT STRING"): Uint8Array {
  const n = expectTag(node, 0x03, what);
  if (n.value.length < 1 || n.value[0] !== 0) {
    throw new ParseError(`ASN.1: ${what} with unused bits`, { offset: n.offset, tag: 0x03 });
  }
  return n.value.subarray(1);
}

/** BIT STRING as named bits: bit i (0 = most significant bit of the first byte). */
export function readBitFlags(node: Asn1 | undefined, what = "BIT STRING"): (bit: number) => boolean {
  const n = expectTag(node, 0x03, what);
  if (n.value.length < 1 || n.value[0]! > 7) throw new ParseError(`ASN.1: bad ${what}`, { offset: n.offset, tag: 0x03 });
  const bits = n.value.subarray(1);
  return (bit) => {
    const byte = bits[bit >> 3];
    return byte !== undefined && (byte & (0x80 >> (bit & 7))) !== 0;
  };
}

/** The primitive segments of a constructed (BER) string, nested ones flattened in order. */
function segments(node: Asn1, segmentTag: number, what: string): Uint8Array[] {
  const parts: Uint8Array[] = [];
  for (const c of node.children) {
    if (c.tag === segmentTag) parts.push(c.value);
    else if (c.tag === (segmentTag | 0x20)) parts.push(...segments(c, segmentTag, what));
    else throw new ParseError(`ASN.1: bad segment in ${what}`, { offset: c.offset, tag: c.tag });
  }
  return parts;
}

/** UTCTime or GeneralizedTime (RFC 5280 §4.1.2.5) as a Date. */
export function readTime(node: Asn1 | undefined, what = "Time"): Date {
  if (!node) throw new ParseError(`ASN.1: ${what} missing`);
  const s = latin1(node.value);
  let m: RegExpMatchArray | null;
  let year: number;
  if (node.tag === 0x17) {
    m = s.match(/^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?(Z|[+-]\d{4})$/);
    if (!m) throw new ParseError(`ASN.1: bad UTCTime in ${what}`, { offset: node.offset, tag: node.tag });
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy; // RFC 5280 §4.1.2.5.1
  } else if (node.tag === 0x18) {
    m = s.match(/^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?(?:\.\d+)?(Z|[+-]\d{4})?$/);
    if (!m) throw new ParseError(`ASN.1: bad GeneralizedTime in ${what}`, { offset: node.offset, tag: node.tag });
    year = Number(m[1]);
  } else {
    throw new ParseError(`ASN.1: ${what}: expected a time, got tag ${node.tag.toString(16)}`, { offset: node.offset, tag: node.tag });
  }
  const [mo, d, h, mi, sec] = [m[2], m[3], m[4], m[5], m[6] ?? "0"].map(Number) as [number, number, number, number, number];
  let ms = Date.UTC(year, mo - 1, d, h, mi, sec);
  const zone = m[7];
  if (zone && zone !== "Z") {
    const sign = zone[0] === "-" ? -1 : 1;
    ms -= sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5))) * 60_000;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || Number.isNaN(ms)) {
    throw new ParseError(`ASN.1: impossible date in ${what}`, { offset: node.offset, tag: node.tag });
  }
  return new Date(ms);
}

/** Character string types of X.520 names, decoded for display. */
export function readString(node: Asn1): string {
  switch (node.tag) {
    case 0x0c: // UTF8String
      return new TextDecoder("utf-8", { fatal: false }).decode(node.value);
    case 0x1e: {
      // BMPString: UTF-16BE
      let s = "";
      for (let i = 0; i + 1 < node.value.length; i += 2) s += String.fromCharCode((node.value[i]! << 8) | node.value[i + 1]!);
      return s;
    }
    case 0x1c: {
      // UniversalString: UTF-32BE
      let s = "";
      for (let i = 0; i + 3 < node.value.length; i += 4) {
        const cp = ((node.value[i]! << 24) | (node.value[i + 1]! << 16) | (node.value[i + 2]! << 8) | node.value[i + 3]!) >>> 0;
        s += cp <= 0x10ffff ? String.fromCodePoint(cp) : "\ufffd";
      }
      return s;
    }
    default: // PrintableString, IA5String, TeletexString, VisibleString, NumericString
      return latin1(node.value);
  }
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return s;
}

/**
 * The element re-encoded with the given identifier and definite lengths. Used for CMS signed
 * attributes, which are signed as a DER `SET OF` (tag 31) though carried as `[0] IMPLICIT`
 * (RFC 5652 §5.4). An element without indefinite lengths keeps its received encoding.
 */
export function reencode(node: Asn1, newTag?: number): Uint8Array {
  const tag = newTag ?? node.tag;
  if (!node.indefinite) {
    const headerTagLen = encodeTag(node.tag).length;
    return concat(encodeTag(tag), node.raw.subarray(headerTagLen));
  }
  return derTlv(tag, ...node.children.map((c) => reencode(c)));
}

// ---------------------------------------------------------------------------------------------
// DER writer: used to re-encode and by tests to build structures.

export function derTlv(tag: number, ...contents: Uint8Array[]): Uint8Array {
  return encodeTlv(tag, ...contents);
}

export const der = {
  seq: (...c: Uint8Array[]) => derTlv(0x30, ...c),
  set: (...c: Uint8Array[]) => derTlv(0x31, ...c),
  octets: (b: Uint8Array) => derTlv(0x04, b),
  bits: (b: Uint8Array) => derTlv(0x03, Uint8Array.of(0), b),
  null: () => Uint8Array.of(0x05, 0x00),
  bool: (v: boolean) => Uint8Array.of(0x01, 0x01, v ? 0xff : 0x00),
  printable: (s: string) => derTlv(0x13, new TextEncoder().encode(s)),
  utf8: (s: string) => derTlv(0x0c, new TextEncoder().encode(s)),
  /** [n] EXPLICIT or constructed context tag. */
  ctx: (n: number, ...c: Uint8Array[]) => derTlv(0xa0 | n, ...c),
  /** [n] IMPLICIT primitive context tag. */
  ctxPrim: (n: number, b: Uint8Array) => derTlv(0x80 | n, b),
  oid: (dotted: string) => derTlv(0x06, encodeOid(dotted)),
  int: (x: bigint | number) => derTlv(0x02, intBytes(BigInt(x))),
  /** UTCTime before 2050, GeneralizedTime after (RFC 5280 §4.1.2.5). */
  time: (d: Date) => {
    const iso = d.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z";
    const y = d.getUTCFullYear();
    return y >= 1950 && y < 2050 ? derTlv(0x17, new TextEncoder().encode(iso.slice(2))) : derTlv(0x18, new TextEncoder().encode(iso));
  },
};

export function encodeOid(dotted: string): Uint8Array {
  const arcs = dotted.split(".").map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) throw new RangeError(`encodeOid: bad OID ${dotted}`);
  const out: number[] = [];
  const push = (a: number) => {
    const tmp = [a & 0x7f];
    let x = Math.floor(a / 128);
    while (x > 0) {
      tmp.unshift((x & 0x7f) | 0x80);
      x = Math.floor(x / 128);
    }
    out.push(...tmp);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return Uint8Array.from(out);
}

/** Minimal two's-complement big-endian bytes of an integer. */
export function intBytes(x: bigint): Uint8Array {
  if (x === 0n) return Uint8Array.of(0);
  const out: number[] = [];
  let v = x;
  if (x > 0n) {
    while (v > 0n) {
      out.unshift(Number(v & 0xffn));
      v >>= 8n;
    }
    if (out[0]! & 0x80) out.unshift(0);
  } else {
    let n = 1n;
    while (x < -(1n << (8n * n - 1n))) n++;
    v = x + (1n << (8n * n));
    for (let i = 0n; i < n; i++) {
      out.unshift(Number(v & 0xffn));
      v >>= 8n;
    }
  }
  return Uint8Array.from(out);
}
