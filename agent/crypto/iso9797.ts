/**
 * ISO/IEC 9797-1: padding method 2 and MAC algorithm 3 with DES (the "retail MAC"),
 * as ICAO 9303-11 §9.7.2 (BAC) and §9.8.6.1 (3DES secure messaging) require.
 */
import { forEachSlice } from "../bytes.ts";
import { ParseError } from "../errors.ts";
import { createDes, type DesCipher } from "./des.ts";

/** Padding method 2: append 0x80, then zeros up to a multiple of blockSize (always adds at least one byte). */
export function pad(data: Uint8Array, blockSize = 8): Uint8Array {
  if (!(data instanceof Uint8Array)) throw new TypeError("pad: data must be a Uint8Array");
  if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > 255) throw new RangeError(`pad: blockSize must be 1..255, got ${blockSize}`);
  const out = new Uint8Array((Math.floor(data.length / blockSize) + 1) * blockSize);
  out.set(data, 0);
  out[data.length] = 0x80;
  return out;
}

/** Removes padding method 2. Throws ParseError if the trailing bytes are not 0x80 followed by zeros. */
export function unpad(data: Uint8Array): Uint8Array {
  let i = data.length - 1;
  while (i >= 0 && data[i] === 0) i--;
  if (i < 0 || data[i] !== 0x80) throw new ParseError("bad ISO/IEC 9797-1 padding (method 2): no 0x80 marker", { offset: Math.max(i, 0) });
  return data.slice(0, i);
}

/** A retail MAC keyed once (Ka = key16[0..8], Kb = key16[8..16]), for use per APDU in secure messaging. */
export interface RetailMac {
  /** MAC over data that is already padded to a multiple of 8 bytes; returns 8 bytes. */
  mac(paddedData: Uint8Array): Uint8Array;
  /** mac() with the event loop running between slices of `sliceBytes` (a multiple of 8). */
  macInSlices(paddedData: Uint8Array, sliceBytes: number): Promise<Uint8Array>;
  wipe(): void;
}

export function createRetailMac(key16: Uint8Array): RetailMac {
  if (!(key16 instanceof Uint8Array)) throw new TypeError("createRetailMac: key16 must be a Uint8Array");
  if (key16.length !== 16) throw new RangeError(`createRetailMac: key16 must be 16 bytes, got ${key16.length}`);
  const ka: DesCipher = createDes(key16.subarray(0, 8));
  const kb: DesCipher = createDes(key16.subarray(8, 16));
  const check = (paddedData: Uint8Array) => {
    if (!(paddedData instanceof Uint8Array)) throw new TypeError("retailMac: paddedData must be a Uint8Array");
    if (paddedData.length === 0 || paddedData.length % 8 !== 0) {
      throw new RangeError(`retailMac: paddedData length must be a non-zero multiple of 8, got ${paddedData.length}`);
    }
  };
  // MAC algorithm 3: CBC with Ka over every block, then the output transformation D(Kb), E(Ka).
  const output = (h: Uint8Array) => {
    kb.decryptBlock(h, 0, h, 0);
    ka.encryptBlock(h, 0, h, 0);
    return h;
  };
  return {
    mac(paddedData) {
      check(paddedData);
      return output(ka.cbcLastBlock(paddedData));
    },
    async macInSlices(paddedData, sliceBytes) {
      check(paddedData);
      if (!Number.isInteger(sliceBytes) || sliceBytes < 8 || sliceBytes % 8 !== 0) throw new RangeError(`retailMac: sliceBytes must be a positive multiple of 8, got ${sliceBytes}`);
      let h: Uint8Array | undefined;
      await forEachSlice(paddedData.length, sliceBytes, (start, end) => (h = ka.cbcLastBlock(paddedData.subarray(start, end), h)));
      return output(h!);
    },
    wipe() {
      ka.wipe();
      kb.wipe();
    },
  };
}

/** ISO/IEC 9797-1 MAC algorithm 3 with DES over already-padded data; 8-byte result. */
export function retailMac(key16: Uint8Array, paddedData: Uint8Array): Uint8Array {
  const m = createRetailMac(key16);
  try {
    return m.mac(paddedData);
  } finally {
    m.wipe();
  }
}
