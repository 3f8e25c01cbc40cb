/**
 * Total length of an LDS file from its first bytes (ICAO 9303-10 §4.6: every file is
 * one BER-TLV; lengths in 1, 2, 3, 4 or 5 bytes per ISO/IEC 8825-1 §8.1.3). A reader
 * reads a short header first (e.g. 4-6 bytes), then the rest of the file.
 */
import { ParseError } from "../errors.ts";

/**
 * Largest file accepted: far above real LDS files (DG2 is 5-30 KB, DG3 ~32 KB+), low
 * enough that a hostile length cannot make the reader allocate or loop for gigabytes.
 */
export const MAX_LDS_FILE_LENGTH = 4 * 1024 * 1024;

export type FileHeaderResult =
  | { tag: number; totalLength: number; headerLength: number }
  /** The header is cut: read at least this many more bytes and ask again. */
  | { needMore: number };

export function fileLengthFromHeader(firstBytes: Uint8Array, maxLength: number = MAX_LDS_FILE_LENGTH): FileHeaderResult {
  let p = 0;
  if (firstBytes.length < 1) return { needMore: 2 };
  const first = firstBytes[p++]!;
  if (first === 0x00 || first === 0xff) throw new ParseError(`file header: ${first === 0 ? "00" : "FF"} is not a tag`, { offset: 0 });
  let tag = first;
  if ((first & 0x1f) === 0x1f) {
    for (;;) {
      if (p >= firstBytes.length) return { needMore: 2 }; // at least one tag byte and one length byte
      const b = firstBytes[p++]!;
      tag = tag * 256 + b;
      if (p > 4) throw new ParseError("file header: tag longer than 4 bytes", { offset: 0 });
      if ((b & 0x80) === 0) break;
    }
  }
  if (p >= firstBytes.length) return { needMore: 1 };
  const l0 = firstBytes[p++]!;
  let length: number;
  if (l0 < 0x80) length = l0;
  else if (l0 === 0x80) throw new ParseError("file header: indefinite length", { offset: p - 1, tag });
  else {
    const n = l0 & 0x7f;
    if (n > 4) throw new ParseError(`file header: length field of ${n} bytes`, { offset: p - 1, tag });
    if (p + n > firstBytes.length) return { needMore: p + n - firstBytes.length };
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + firstBytes[p++]!;
  }
  const totalLength = p + length;
  if (totalLength > maxLength) {
    throw new ParseError(`file header: length ${length} exceeds the limit of ${maxLength} bytes`, { offset: 0, tag });
  }
  return { tag, totalLength, headerLength: p };
}
