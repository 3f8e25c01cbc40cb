/**
 * Image format and size from the image bytes themselves: JPEG (ITU-T T.81 / ISO/IEC 10918-1
 * §B.2: SOFn marker segments) and JPEG 2000 (ISO/IEC 15444-1 Annex I: JP2 signature and
 * 'ihdr' box; Annex A.5.1: SIZ marker of a bare codestream). Used by DG2 (9303-10 §4.7.2)
 * to cross-check the ISO/IEC 19794-5 header. Bounded loops: each step moves forward.
 */

export type ImageFormat = "jpeg" | "jpeg2000" | "unknown";

const JP2_SIGNATURE = [0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20, 0x0d, 0x0a, 0x87, 0x0a] as const;

export function detectImageFormat(b: Uint8Array): ImageFormat {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "jpeg";
  if (b.length >= JP2_SIGNATURE.length && JP2_SIGNATURE.every((v, i) => b[i] === v)) return "jpeg2000";
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0x4f && b[2] === 0xff && b[3] === 0x51) return "jpeg2000";
  return "unknown";
}

export interface ImageSize {
  width: number;
  height: number;
}

/** Size from the image bytes, or undefined when the format is unknown or the markers are missing/cut. */
export function imageSize(b: Uint8Array): ImageSize | undefined {
  switch (detectImageFormat(b)) {
    case "jpeg":
      return jpegSize(b);
    case "jpeg2000":
      return b[0] === 0xff ? sizSize(b, 0) : jp2Size(b);
    case "unknown":
      return undefined;
  }
}

const u16 = (b: Uint8Array, p: number) => b[p]! * 256 + b[p + 1]!;
const u32 = (b: Uint8Array, p: number) => b[p]! * 0x1000000 + b[p + 1]! * 0x10000 + b[p + 2]! * 0x100 + b[p + 3]!;

/** Walks JPEG marker segments from SOI to the first SOFn (not DHT C4, JPG C8, DAC CC). */
export function jpegSize(b: Uint8Array): ImageSize | undefined {
  let p = 2;
  while (p + 4 <= b.length) {
    if (b[p] !== 0xff) return undefined;
    const marker = b[p + 1]!;
    if (marker === 0xff) {
      p++; // fill byte before a marker
      continue;
    }
    // Standalone markers carry no length: TEM, RSTn, SOI, EOI.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      p += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return undefined; // EOI or SOS before any frame header
    const len = u16(b, p + 2);
    if (len < 2) return undefined;
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      // SOFn: Lf(2) P(1) Y(2) X(2)
      if (len < 7 || p + 9 > b.length) return undefined;
      return { height: u16(b, p + 5), width: u16(b, p + 7) };
    }
    p += 2 + len;
  }
  return undefined;
}

/** SIZ marker segment right after SOC: Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz (ISO/IEC 15444-1 §A.5.1). */
function sizSize(b: Uint8Array, p: number): ImageSize | undefined {
  if (p + 22 > b.length || b[p] !== 0xff || b[p + 1] !== 0x4f || b[p + 2] !== 0xff || b[p + 3] !== 0x51) return undefined;
  const xsiz = u32(b, p + 8);
  const ysiz = u32(b, p + 12);
  const xo = u32(b, p + 16);
  const yo = u32(b, p + 20);
  if (xo > xsiz || yo > ysiz) return undefined;
  return { width: xsiz - xo, height: ysiz - yo };
}

/** JP2 boxes: 'jp2h' superbox holding 'ihdr' (HEIGHT, WIDTH); falls back to the 'jp2c' codestream's SIZ. */
function jp2Size(b: Uint8Array): ImageSize | undefined {
  return walkBoxes(b, 0, b.length, 0);
}

function walkBoxes(b: Uint8Array, start: number, end: number, depth: number): ImageSize | undefined {
  let p = start;
  while (p + 8 <= end) {
    let len = u32(b, p);
    const type = String.fromCharCode(b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!);
    let header = 8;
    if (len === 1) {
      if (p + 16 > end) return undefined;
      const hi = u32(b, p + 8);
      if (hi !== 0) return undefined; // a box over 4 GiB cannot be in a DG2
      len = u32(b, p + 12);
      header = 16;
    } else if (len === 0) len = end - p; // box runs to the end
    if (len < header || p + len > end) return undefined;
    if (type === "ihdr" && len >= header + 8) return { height: u32(b, p + header), width: u32(b, p + header + 4) };
    if (type === "jp2h" && depth === 0) {
      const inner = walkBoxes(b, p + header, p + len, depth + 1);
      if (inner) return inner;
    }
    if (type === "jp2c" && depth === 0) return sizSize(b, p + header);
    p += len;
  }
  return undefined;
}
