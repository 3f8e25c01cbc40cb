/**
 * DES and Triple-DES (FIPS 46-3; NIST SP 800-67 keying options 1 and 2), pure JS.
 * BAC and its secure messaging (ICAO 9303-11 §9.7, §9.8) need 2-key 3DES in CBC mode with a
 * zero IV and single DES for the retail MAC; no platform crypto is used.
 *
 * Speed: the S-boxes and the P permutation are merged into eight 64-entry tables of 32-bit
 * words (computed once at load from the FIPS tables below, so the tables cannot drift from the
 * standard); each round is two rotations, two XORs with a packed subkey and eight lookups.
 * IP and FP are byte-table lookups. 3DES runs its 48 rounds without the FP/IP pairs between
 * stages (they cancel). Key schedules are built once per key by createDes()/createTdes();
 * the one-shot functions build them per call.
 */

// FIPS 46-3 tables, 1-based bit positions counted from the most significant bit.
const IP = [
  58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, 62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
  57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3, 61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
];
const P = [16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10, 2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25];
const PC1 = [
  57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
  63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, 14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4,
];
const PC2 = [
  14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
  41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
];
const SHIFTS = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];
// S1..S8, each 4 rows of 16.
const S = [
  [14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
    4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13],
  [15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
    0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9],
  [10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
    13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12],
  [7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
    10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14],
  [2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
    4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3],
  [12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
    9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13],
  [4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
    1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12],
  [13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
    7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11],
];

/** Merged S-box + P tables: SPi[x] = P(Si(x) placed at its nibble), x the 6 E-bits, first bit high. */
function buildSp(box: number): Int32Array {
  const t = new Int32Array(64);
  const sbox = S[box]!;
  for (let x = 0; x < 64; x++) {
    const row = ((x >> 4) & 2) | (x & 1);
    const col = (x >> 1) & 15;
    const pre = sbox[row * 16 + col]! << (28 - 4 * box);
    let out = 0;
    for (let j = 0; j < 32; j++) if ((pre >>> (32 - P[j]!)) & 1) out |= 1 << (31 - j);
    t[x] = out;
  }
  return t;
}
const SP0 = buildSp(0), SP1 = buildSp(1), SP2 = buildSp(2), SP3 = buildSp(3);
const SP4 = buildSp(4), SP5 = buildSp(5), SP6 = buildSp(6), SP7 = buildSp(7);

/** A 64-bit permutation as 8 byte tables (index byte*256 + value) giving the two output words. */
function buildPerm(table: number[]): { hi: Int32Array; lo: Int32Array } {
  const hi = new Int32Array(2048), lo = new Int32Array(2048);
  for (let j = 0; j < 64; j++) {
    const p = table[j]! - 1; // input bit, 0-based from the most significant
    const byte = p >> 3, mask = 0x80 >> (p & 7);
    for (let v = 0; v < 256; v++) {
      if (!(v & mask)) continue;
      const i = byte * 256 + v;
      if (j < 32) hi[i] = hi[i]! | (1 << (31 - j));
      else lo[i] = lo[i]! | (1 << (63 - j));
    }
  }
  return { hi, lo };
}
const FP_TABLE: number[] = new Array(64);
for (let j = 0; j < 64; j++) FP_TABLE[IP[j]! - 1] = j + 1;
const IPT = buildPerm(IP), FPT = buildPerm(FP_TABLE);
const IP_HI = IPT.hi, IP_LO = IPT.lo, FP_HI = FPT.hi, FP_LO = FPT.lo;

/** For each round, the key bit (0-based from the most significant bit of the 8 key bytes) feeding each of the 48 subkey bits. */
const KEY_BITS: Uint8Array[] = (() => {
  const rounds: Uint8Array[] = [];
  let cd = PC1.map((p) => p - 1);
  for (let r = 0; r < 16; r++) {
    const s = SHIFTS[r]!;
    const c = cd.slice(0, 28), d = cd.slice(28);
    cd = [...c.slice(s), ...c.slice(0, s), ...d.slice(s), ...d.slice(0, s)];
    rounds.push(Uint8Array.from(PC2.map((p) => cd[p - 1]!)));
  }
  return rounds;
})();

/** 16 rounds × 2 words: even S-box chunks (S1,S3,S5,S7) and odd ones (S2,S4,S6,S8), 8 bits apart. */
function desSchedule(key: Uint8Array, off: number): Int32Array {
  const ks = new Int32Array(32);
  for (let r = 0; r < 16; r++) {
    const bits = KEY_BITS[r]!;
    let even = 0, odd = 0;
    for (let chunk = 0; chunk < 8; chunk++) {
      let v = 0;
      for (let b = 0; b < 6; b++) {
        const p = bits[chunk * 6 + b]!;
        v = (v << 1) | ((key[off + (p >> 3)]! >> (7 - (p & 7))) & 1);
      }
      const shift = 26 - 8 * (chunk >> 1);
      if (chunk & 1) odd |= v << shift;
      else even |= v << shift;
    }
    ks[2 * r] = even;
    ks[2 * r + 1] = odd;
  }
  return ks;
}

function reversed(ks: Int32Array): Int32Array {
  const out = new Int32Array(32);
  for (let r = 0; r < 16; r++) {
    out[2 * r] = ks[30 - 2 * r]!;
    out[2 * r + 1] = ks[31 - 2 * r]!;
  }
  return out;
}

// Result of cryptWords (avoids allocating per block).
let outHi = 0, outLo = 0;

/** Runs one or three DES stages (keys.length 32 or 96) on the block hi‖lo; result in outHi/outLo. */
function cryptWords(keys: Int32Array, hi: number, lo: number): void {
  let l = IP_HI[hi >>> 24]! | IP_HI[256 + ((hi >>> 16) & 255)]! | IP_HI[512 + ((hi >>> 8) & 255)]! | IP_HI[768 + (hi & 255)]! |
    IP_HI[1024 + (lo >>> 24)]! | IP_HI[1280 + ((lo >>> 16) & 255)]! | IP_HI[1536 + ((lo >>> 8) & 255)]! | IP_HI[1792 + (lo & 255)]!;
  let r = IP_LO[hi >>> 24]! | IP_LO[256 + ((hi >>> 16) & 255)]! | IP_LO[512 + ((hi >>> 8) & 255)]! | IP_LO[768 + (hi & 255)]! |
    IP_LO[1024 + (lo >>> 24)]! | IP_LO[1280 + ((lo >>> 16) & 255)]! | IP_LO[1536 + ((lo >>> 8) & 255)]! | IP_LO[1792 + (lo & 255)]!;
  const n = keys.length;
  for (let k = 0; k < n; ) {
    // Two rounds per iteration, so the halves never need swapping inside a stage.
    let t = ((r >>> 1) | (r << 31)) ^ keys[k++]!;
    let u = ((r << 3) | (r >>> 29)) ^ keys[k++]!;
    l ^= SP0[t >>> 26]! ^ SP2[(t >>> 18) & 63]! ^ SP4[(t >>> 10) & 63]! ^ SP6[(t >>> 2) & 63]! ^
      SP1[u >>> 26]! ^ SP3[(u >>> 18) & 63]! ^ SP5[(u >>> 10) & 63]! ^ SP7[(u >>> 2) & 63]!;
    t = ((l >>> 1) | (l << 31)) ^ keys[k++]!;
    u = ((l << 3) | (l >>> 29)) ^ keys[k++]!;
    r ^= SP0[t >>> 26]! ^ SP2[(t >>> 18) & 63]! ^ SP4[(t >>> 10) & 63]! ^ SP6[(t >>> 2) & 63]! ^
      SP1[u >>> 26]! ^ SP3[(u >>> 18) & 63]! ^ SP5[(u >>> 10) & 63]! ^ SP7[(u >>> 2) & 63]!;
    if ((k & 31) === 0) {
      // End of a stage: the pre-output is R16‖L16, which is also the next stage's L0‖R0 once FP and IP cancel.
      const s = l;
      l = r;
      r = s;
    }
  }
  // l‖r now holds R16‖L16 of the last stage.
  outHi = FP_HI[l >>> 24]! | FP_HI[256 + ((l >>> 16) & 255)]! | FP_HI[512 + ((l >>> 8) & 255)]! | FP_HI[768 + (l & 255)]! |
    FP_HI[1024 + (r >>> 24)]! | FP_HI[1280 + ((r >>> 16) & 255)]! | FP_HI[1536 + ((r >>> 8) & 255)]! | FP_HI[1792 + (r & 255)]!;
  outLo = FP_LO[l >>> 24]! | FP_LO[256 + ((l >>> 16) & 255)]! | FP_LO[512 + ((l >>> 8) & 255)]! | FP_LO[768 + (l & 255)]! |
    FP_LO[1024 + (r >>> 24)]! | FP_LO[1280 + ((r >>> 16) & 255)]! | FP_LO[1536 + ((r >>> 8) & 255)]! | FP_LO[1792 + (r & 255)]!;
}

function readWord(b: Uint8Array, o: number): number {
  return (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
}
function writeWord(b: Uint8Array, o: number, w: number): void {
  b[o] = w >>> 24;
  b[o + 1] = w >>> 16;
  b[o + 2] = w >>> 8;
  b[o + 3] = w;
}

/** A keyed 64-bit block cipher (DES or 3DES) with its key schedule computed once. */
export interface DesCipher {
  /** Encrypts the 8 bytes at input[inOff] into output[outOff] (may be the same place). */
  encryptBlock(input: Uint8Array, inOff: number, output: Uint8Array, outOff: number): void;
  decryptBlock(input: Uint8Array, inOff: number, output: Uint8Array, outOff: number): void;
  /** CBC over whole blocks; iv defaults to 8 zero bytes. */
  cbcEncrypt(data: Uint8Array, iv?: Uint8Array): Uint8Array;
  cbcDecrypt(data: Uint8Array, iv?: Uint8Array): Uint8Array;
  /** The last CBC block only (iv defaults to zero), without allocating the whole ciphertext: the core of a CBC-MAC; a slice's result chains as the next slice's iv. */
  cbcLastBlock(data: Uint8Array, iv?: Uint8Array): Uint8Array;
  /** Zeroes the key schedule; later use yields garbage, so drop the object too. */
  wipe(): void;
}

function makeCipher(enc: Int32Array, dec: Int32Array, name: string): DesCipher {
  return {
    encryptBlock(input, inOff, output, outOff) {
      cryptWords(enc, readWord(input, inOff), readWord(input, inOff + 4));
      writeWord(output, outOff, outHi);
      writeWord(output, outOff + 4, outLo);
    },
    decryptBlock(input, inOff, output, outOff) {
      cryptWords(dec, readWord(input, inOff), readWord(input, inOff + 4));
      writeWord(output, outOff, outHi);
      writeWord(output, outOff + 4, outLo);
    },
    cbcEncrypt(data, iv) {
      checkBlocks(`${name} cbcEncrypt`, "data", data);
      const v = ivOrZero(`${name} cbcEncrypt`, iv);
      const out = new Uint8Array(data.length);
      let ch = readWord(v, 0), cl = readWord(v, 4);
      for (let o = 0; o < data.length; o += 8) {
        cryptWords(enc, readWord(data, o) ^ ch, readWord(data, o + 4) ^ cl);
        ch = outHi;
        cl = outLo;
        writeWord(out, o, ch);
        writeWord(out, o + 4, cl);
      }
      return out;
    },
    cbcDecrypt(data, iv) {
      checkBlocks(`${name} cbcDecrypt`, "data", data);
      const v = ivOrZero(`${name} cbcDecrypt`, iv);
      const out = new Uint8Array(data.length);
      let ch = readWord(v, 0), cl = readWord(v, 4);
      for (let o = 0; o < data.length; o += 8) {
        const h = readWord(data, o), l = readWord(data, o + 4);
        cryptWords(dec, h, l);
        writeWord(out, o, outHi ^ ch);
        writeWord(out, o + 4, outLo ^ cl);
        ch = h;
        cl = l;
      }
      return out;
    },
    cbcLastBlock(data, iv) {
      checkBlocks(`${name} cbcLastBlock`, "data", data);
      const v = ivOrZero(`${name} cbcLastBlock`, iv);
      let ch = readWord(v, 0), cl = readWord(v, 4);
      for (let o = 0; o < data.length; o += 8) {
        cryptWords(enc, readWord(data, o) ^ ch, readWord(data, o + 4) ^ cl);
        ch = outHi;
        cl = outLo;
      }
      const out = new Uint8Array(8);
      writeWord(out, 0, ch);
      writeWord(out, 4, cl);
      outHi = outLo = 0;
      return out;
    },
    wipe() {
      enc.fill(0);
      dec.fill(0);
    },
  };
}

function checkBytes(fn: string, arg: string, v: unknown): asserts v is Uint8Array {
  if (!(v instanceof Uint8Array)) throw new TypeError(`${fn}: ${arg} must be a Uint8Array`);
}
function checkBlocks(fn: string, arg: string, data: unknown): asserts data is Uint8Array {
  checkBytes(fn, arg, data);
  if (data.length % 8 !== 0) throw new RangeError(`${fn}: ${arg} length must be a multiple of 8, got ${data.length}`);
}
function ivOrZero(fn: string, iv: Uint8Array | undefined): Uint8Array {
  if (iv === undefined) return ZERO_IV;
  checkBytes(fn, "iv", iv);
  if (iv.length !== 8) throw new RangeError(`${fn}: iv must be 8 bytes, got ${iv.length}`);
  return iv;
}
const ZERO_IV = new Uint8Array(8);

/** Single DES with an 8-byte key (parity bits ignored). */
export function createDes(key8: Uint8Array): DesCipher {
  checkBytes("createDes", "key8", key8);
  if (key8.length !== 8) throw new RangeError(`createDes: key8 must be 8 bytes, got ${key8.length}`);
  const enc = desSchedule(key8, 0);
  return makeCipher(enc, reversed(enc), "DES");
}

/** 3DES EDE: 16-byte keys are K1‖K2 with K3 = K1 (keying option 2), 24-byte keys K1‖K2‖K3 (option 1). */
export function createTdes(key: Uint8Array): DesCipher {
  checkBytes("createTdes", "key", key);
  if (key.length !== 16 && key.length !== 24) throw new RangeError(`createTdes: key must be 16 or 24 bytes, got ${key.length}`);
  const k1 = desSchedule(key, 0), k2 = desSchedule(key, 8), k3 = key.length === 24 ? desSchedule(key, 16) : k1;
  const enc = new Int32Array(96), dec = new Int32Array(96);
  enc.set(k1, 0);
  enc.set(reversed(k2), 32);
  enc.set(k3, 64);
  dec.set(reversed(k3), 0);
  dec.set(k2, 32);
  dec.set(reversed(k1), 64);
  wipeInts(k1, k2, k3);
  return makeCipher(enc, dec, "3DES");
}

function wipeInts(...a: Int32Array[]): void {
  for (const x of a) x.fill(0);
}

function ecb(c: DesCipher, data: Uint8Array, encrypt: boolean): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let o = 0; o < data.length; o += 8) {
    if (encrypt) c.encryptBlock(data, o, out, o);
    else c.decryptBlock(data, o, out, o);
  }
  c.wipe();
  return out;
}

/** Returns a copy of key with each byte's low bit set for odd parity (FIPS 46-3 §"Key"; ICAO prints keys this way). */
export function adjustParity(key: Uint8Array): Uint8Array {
  checkBytes("adjustParity", "key", key);
  const out = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) {
    const b = key[i]! & 0xfe;
    let ones = b;
    ones ^= ones >> 4;
    ones ^= ones >> 2;
    ones ^= ones >> 1;
    out[i] = b | (~ones & 1);
  }
  return out;
}

export function desEcbEncrypt(key8: Uint8Array, data: Uint8Array): Uint8Array {
  checkBlocks("desEcbEncrypt", "data", data);
  return ecb(createDes(key8), data, true);
}

export function desEcbDecrypt(key8: Uint8Array, data: Uint8Array): Uint8Array {
  checkBlocks("desEcbDecrypt", "data", data);
  return ecb(createDes(key8), data, false);
}

export function tdesEcbEncrypt(key: Uint8Array, data: Uint8Array): Uint8Array {
  checkBlocks("tdesEcbEncrypt", "data", data);
  return ecb(createTdes(key), data, true);
}

export function tdesEcbDecrypt(key: Uint8Array, data: Uint8Array): Uint8Array {
  checkBlocks("tdesEcbDecrypt", "data", data);
  return ecb(createTdes(key), data, false);
}

/** 3DES-CBC; iv defaults to 8 zero bytes (ICAO 9303-11 §9.8.6.1 for BAC). Data must be padded already. */
export function tdesCbcEncrypt(key: Uint8Array, data: Uint8Array, iv?: Uint8Array): Uint8Array {
  checkBlocks("tdesCbcEncrypt", "data", data);
  const c = createTdes(key);
  try {
    return c.cbcEncrypt(data, iv);
  } finally {
    c.wipe();
  }
}

export function tdesCbcDecrypt(key: Uint8Array, data: Uint8Array, iv?: Uint8Array): Uint8Array {
  checkBlocks("tdesCbcDecrypt", "data", data);
  const c = createTdes(key);
  try {
    return c.cbcDecrypt(data, iv);
  } finally {
    c.wipe();
  }
}
