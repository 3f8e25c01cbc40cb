/**
 * Helpers shared by the LDS file parsers (ICAO 9303-10 §4.6, §4.7): the outer file
 * template, tag lists (DO'5C'), text and date data elements. Errors never carry values.
 */
import { ParseError } from "../errors.ts";
import { parseTlv, parseTlvList, type Tlv } from "../iso7816/tlv.ts";

export function tagHex(tag: number): string {
  return tag.toString(16).toUpperCase().padStart(2, "0");
}

/**
 * Parses the file's outer TLV and checks its tag. Bytes after the outer object are
 * ignored: a whole-file read may bring padding after it.
 */
export function outerTemplate(bytes: Uint8Array, tag: number, file: string): Tlv {
  if (bytes.length === 0) throw new ParseError(`${file}: empty file`, { offset: 0 });
  const t = parseTlv(bytes, 0);
  if (t.tag !== tag) throw new ParseError(`${file}: outer tag ${tagHex(t.tag)}, expected ${tagHex(tag)}`, { offset: 0, tag: t.tag });
  return t;
}

/** A tag list (DO'5C'): BER tags back to back, without lengths. */
export function parseTagList(value: Uint8Array, baseOffset = 0): number[] {
  const tags: number[] = [];
  let p = 0;
  while (p < value.length) {
    const first = value[p]!;
    let tag = first;
    let n = 1;
    if ((first & 0x1f) === 0x1f) {
      for (;;) {
        if (p + n >= value.length) throw new ParseError("tag list: truncated tag", { offset: baseOffset + p, tag: 0x5c });
        const b = value[p + n]!;
        tag = tag * 256 + b;
        n++;
        if (n > 4) throw new ParseError("tag list: tag longer than 4 bytes", { offset: baseOffset + p, tag: 0x5c });
        if ((b & 0x80) === 0) break;
      }
    }
    tags.push(tag);
    p += n;
  }
  return tags;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const latin1 = new TextDecoder("latin1");

/**
 * Text data elements are UTF-8 (9303-10 §4.7.11 notes); documents issued before LDS 1.7
 * sometimes used ISO 8859-1, so bytes that are not valid UTF-8 are read as Latin-1.
 */
export function decodeText(value: Uint8Array): string {
  try {
    return utf8.decode(value);
  } catch {
    return latin1.decode(value);
  }
}

/**
 * Dates are ASCII digits (e.g. YYYYMMDD, 9303-10 §4.7.11/12); some documents encode them
 * as BCD instead (JMRTD's DG11File/DG12File handle the same quirk), 4 or 7 bytes. Anything
 * else is returned as text rather than failing the whole data group.
 */
export function decodeDigits(value: Uint8Array, asciiLength: number): string {
  const ascii = value.every((b) => b >= 0x30 && b <= 0x39);
  if (!ascii && value.length * 2 === asciiLength && value.every((b) => b >> 4 <= 9 && (b & 0x0f) <= 9)) {
    let s = "";
    for (const b of value) s += (b >> 4).toString() + (b & 0x0f).toString();
    return s;
  }
  return decodeText(value);
}

/** Reads an unsigned integer value (DO'02' counts), at most 4 bytes. */
export function decodeCount(t: Tlv): number {
  if (t.value.length < 1 || t.value.length > 4) {
    throw new ParseError(`count (02) of ${t.value.length} bytes`, { offset: t.offset, tag: t.tag });
  }
  let n = 0;
  for (const b of t.value) n = n * 256 + b;
  return n;
}

/** Offset of `sub` inside `file`, when `sub` is a subarray of it. */
export function offsetIn(file: Uint8Array, sub: Uint8Array): number {
  return sub.byteOffset - file.byteOffset;
}

/**
 * The data objects inside `value` (a subarray of `file`), with offsets made absolute
 * in `file`, so errors and results point into the file as read from the chip.
 */
export function children(file: Uint8Array, value: Uint8Array): Tlv[] {
  const base = offsetIn(file, value);
  try {
    return parseTlvList(value).map((t) => ({ ...t, offset: base + t.offset, end: base + t.end }));
  } catch (e) {
    if (e instanceof ParseError) {
      throw new ParseError(e.message, { offset: e.offset === undefined ? undefined : base + e.offset, tag: e.tag, cause: e });
    }
    throw e;
  }
}
