/**
 * Secure messaging, ICAO 9303-11 §9.8 (worked example: Appendix D.4), ISO/IEC 7816-4 §6.
 * The send sequence counter is explicit state: protect/unprotect take the SSC and return the
 * one they used, so callers and tests see it at every step. The cipher suite is an interface:
 * 3DES after BAC (§9.8.6.1) and AES-128/192/256 after PACE or Chip Authentication (§9.8.6.2).
 *
 * Command:  CLA|0C INS P1 P2 Lc [DO'87'|DO'85'] [DO'97'] DO'8E' 00
 * Response: [DO'87'|DO'85'] DO'99' DO'8E' SW1 SW2
 */
import { concat, constantTimeEqual, forEachSlice, wipe } from "../bytes.ts";
import { aesCbcDecrypt, aesCbcEncrypt, aesEncryptBlock, createAesCmac } from "../crypto/aes.ts";
import { createTdes } from "../crypto/des.ts";
import { createRetailMac, pad, unpad } from "../crypto/iso9797.ts";
import { hex4, MrtdError, ParseError, SecureMessagingError, TransportError } from "../errors.ts";
import { commandName, encodeCommand, type CommandApdu } from "../iso7816/apdu.ts";
import { SW } from "../iso7816/status-words.ts";
import { encodeLength } from "../iso7816/tlv.ts";
import type { CardTransport } from "../transport/transport.ts";
import type { KdfAlgorithm } from "./kdf.ts";

export interface SmCipher {
  readonly name: "3DES" | "AES";
  readonly blockSize: number;
  /** Encrypts already-padded data for the DO'87'/'85' cryptogram. */
  encrypt(ssc: bigint, plain: Uint8Array): Uint8Array;
  decrypt(ssc: bigint, data: Uint8Array): Uint8Array;
  /** MAC over SSC ‖ data, padding it itself (ISO/IEC 9797-1 method 2); returns 8 bytes. */
  mac(ssc: bigint, data: Uint8Array): Uint8Array;
  /** mac() and decrypt() with the event loop running between slices of `sliceBytes` (a multiple of the block size), for large responses; without them those run in one piece. */
  macInSlices?(ssc: bigint, data: Uint8Array, sliceBytes: number): Promise<Uint8Array>;
  decryptInSlices?(ssc: bigint, data: Uint8Array, sliceBytes: number): Promise<Uint8Array>;
  /** Zeroes the key schedules. */
  wipe(): void;
}

/** SSC as a big-endian block of `size` bytes, modulo 2^(8·size). */
export function sscBytes(ssc: bigint, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let v = BigInt.asUintN(size * 8, ssc);
  for (let i = size - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/**
 * 3DES secure messaging after BAC (§9.8.6.1): 3DES-CBC with a zero IV, retail MAC, 64-bit SSC.
 * The keys are only read (schedules are built here): the caller may wipe ksEnc/ksMac afterwards.
 */
export function tdesSmCipher(ksEnc: Uint8Array, ksMac: Uint8Array): SmCipher {
  if (ksEnc.length !== 16) throw new RangeError(`tdesSmCipher: ksEnc must be 16 bytes, got ${ksEnc.length}`);
  if (ksMac.length !== 16) throw new RangeError(`tdesSmCipher: ksMac must be 16 bytes, got ${ksMac.length}`);
  const enc = createTdes(ksEnc);
  const mac = createRetailMac(ksMac);
  const macInput = (ssc: bigint, data: Uint8Array) => {
    const n = 8 + data.length;
    const buf = new Uint8Array(n + 8 - (n % 8));
    buf.set(sscBytes(ssc, 8), 0);
    buf.set(data, 8);
    buf[n] = 0x80;
    return buf;
  };
  return {
    name: "3DES",
    blockSize: 8,
    encrypt: (_ssc, plain) => enc.cbcEncrypt(plain),
    decrypt: (_ssc, data) => enc.cbcDecrypt(data),
    mac: (ssc, data) => mac.mac(macInput(ssc, data)),
    macInSlices: (ssc, data, sliceBytes) => mac.macInSlices(macInput(ssc, data), sliceBytes),
    async decryptInSlices(_ssc, data, sliceBytes) {
      const out = new Uint8Array(data.length);
      // CBC: each slice's IV is the previous slice's last ciphertext block.
      await forEachSlice(data.length, sliceBytes, (start, end) => {
        const part = enc.cbcDecrypt(data.subarray(start, end), start === 0 ? undefined : data.subarray(start - 8, start));
        out.set(part, start);
        wipe(part);
      });
      return out;
    },
    wipe() {
      enc.wipe();
      mac.wipe();
    },
  };
}

/**
 * AES secure messaging (§9.8.6.2, BSI TR-03110-3 §F.2): AES-CBC with IV = E(KSenc, SSC), AES-CMAC
 * truncated to 8 bytes over the padded SSC ‖ data, a 128-bit SSC. ksEnc and ksMac are copied
 * (16, 24 or 32 bytes, the same length); the caller may wipe its own.
 */
export function aesSmCipher(ksEnc: Uint8Array, ksMac: Uint8Array): SmCipher {
  for (const [name, k] of [["ksEnc", ksEnc], ["ksMac", ksMac]] as const) {
    if (!(k instanceof Uint8Array)) throw new TypeError(`aesSmCipher: ${name} must be a Uint8Array`);
    if (k.length !== 16 && k.length !== 24 && k.length !== 32) throw new RangeError(`aesSmCipher: ${name} must be 16, 24 or 32 bytes, got ${k.length}`);
  }
  if (ksEnc.length !== ksMac.length) throw new RangeError(`aesSmCipher: ksEnc (${ksEnc.length} bytes) and ksMac (${ksMac.length} bytes) differ in length`);
  const kEnc = Uint8Array.from(ksEnc);
  const cmac = createAesCmac(ksMac);
  const iv = (ssc: bigint) => aesEncryptBlock(kEnc, sscBytes(ssc, 16));
  return {
    name: "AES",
    blockSize: 16,
    encrypt: (ssc, plain) => aesCbcEncrypt(kEnc, iv(ssc), plain),
    decrypt: (ssc, data) => aesCbcDecrypt(kEnc, iv(ssc), data),
    mac(ssc, data) {
      const n = 16 + data.length;
      const buf = new Uint8Array(n + 16 - (n % 16));
      buf.set(sscBytes(ssc, 16), 0);
      buf.set(data, 16);
      buf[n] = 0x80;
      const tag = cmac.mac(buf);
      const out = tag.slice(0, 8);
      wipe(tag);
      return out;
    },
    wipe() {
      wipe(kEnc);
      cmac.wipe();
    },
  };
}

/** The secure-messaging cipher for a session's algorithm (the KDF's names: 3DES, AES-128/192/256). */
export function smCipherFor(alg: KdfAlgorithm, ksEnc: Uint8Array, ksMac: Uint8Array): SmCipher {
  return alg === "3DES" ? tdesSmCipher(ksEnc, ksMac) : aesSmCipher(ksEnc, ksMac);
}

function increment(ssc: bigint, cipher: SmCipher): bigint {
  return BigInt.asUintN(cipher.blockSize * 8, ssc + 1n);
}

/**
 * Protects a command. The SSC is incremented once before the command MAC; the returned ssc is
 * that value (the card's next response is MACed with ssc + 1).
 */
export function protect(cmd: CommandApdu, cipher: SmCipher, ssc: bigint): { apdu: Uint8Array; ssc: bigint } {
  const next = increment(ssc, cipher);
  const header = Uint8Array.of(cmd.cla | 0x0c, cmd.ins, cmd.p1, cmd.p2);
  const parts: Uint8Array[] = [];
  const data = cmd.data ?? new Uint8Array(0);
  if (data.length > 0) {
    const padded = pad(data, cipher.blockSize);
    const cryptogram = cipher.encrypt(next, padded);
    wipe(padded);
    if (cmd.ins & 1) {
      // Odd INS (e.g. READ BINARY B1): data are BER-TLV, DO'85' carries no padding-content indicator.
      parts.push(Uint8Array.of(0x85), encodeLength(cryptogram.length), cryptogram);
    } else {
      parts.push(Uint8Array.of(0x87), encodeLength(cryptogram.length + 1), Uint8Array.of(0x01), cryptogram);
    }
  }
  let extended = cmd.extended === true;
  if (cmd.ne !== undefined) {
    const ne = cmd.ne;
    if (!Number.isInteger(ne) || ne < 1 || ne > 65536) throw new RangeError(`protect: ne must be 1..65536, got ${ne}`);
    if (ne <= 256) parts.push(Uint8Array.of(0x97, 0x01, ne & 0xff)); // 256 -> 97 01 00
    else {
      parts.push(Uint8Array.of(0x97, 0x02, (ne >> 8) & 0xff, ne & 0xff)); // 65536 -> 97 02 00 00
      extended = true;
    }
  }
  const dos = concat(...parts);
  const cc = cipher.mac(next, concat(pad(header, cipher.blockSize), dos));
  const body = concat(dos, Uint8Array.of(0x8e, 0x08), cc);
  if (body.length > 255) extended = true;
  const apdu = encodeCommand({ cla: header[0]!, ins: cmd.ins, p1: cmd.p1, p2: cmd.p2, data: body, ne: extended ? 65536 : 256, extended });
  return { apdu, ssc: next };
}

export interface UnprotectedResponse {
  data: Uint8Array;
  sw: number;
  ssc: bigint;
  /** False for a plain status-only error response: the SM session is then out of step. */
  protected: boolean;
}

const SM_TAGS = new Set([0x85, 0x87, 0x99, 0x8e]);

/**
 * Responses longer than this are verified and decrypted in slices of this size by
 * SecureChannel (unprotectInSlices): ~1 ms each for 3DES in the interpreter on x64.
 */
export const SM_SLICE_BYTES = 1024;

/**
 * Verifies and decrypts a response. The SSC is incremented once before the MAC check; the
 * returned ssc is that value. A plain status-only non-9000 response (cards answer SM errors
 * 6987/6988, and some other errors, unprotected) comes back with protected: false.
 * Everything else that is not a valid protected response throws SecureMessagingError.
 */
export function unprotect(response: Uint8Array, cipher: SmCipher, ssc: bigint): UnprotectedResponse {
  const r = parseResponse(response, cipher, ssc);
  if (!("macInput" in r)) return r;
  const c = checkResponse(r, cipher.mac(r.ssc, r.macInput), cipher.blockSize);
  return decrypted(r, c === undefined ? undefined : cipher.decrypt(r.ssc, c));
}

/**
 * unprotect() with the MAC and the decryption in slices of `sliceBytes`, the event loop running
 * between them, when the cipher can (SmCipher.macInSlices/decryptInSlices): an extended-length
 * response of a face image is ~20 ms of 3DES in JavaScriptCore's interpreter. Same checks, same
 * order, same errors.
 */
export async function unprotectInSlices(response: Uint8Array, cipher: SmCipher, ssc: bigint, sliceBytes: number): Promise<UnprotectedResponse> {
  const r = parseResponse(response, cipher, ssc);
  if (!("macInput" in r)) return r;
  const expected = cipher.macInSlices ? await cipher.macInSlices(r.ssc, r.macInput, sliceBytes) : cipher.mac(r.ssc, r.macInput);
  const c = checkResponse(r, expected, cipher.blockSize);
  if (c === undefined) return decrypted(r, undefined);
  return decrypted(r, cipher.decryptInSlices ? await cipher.decryptInSlices(r.ssc, c, sliceBytes) : cipher.decrypt(r.ssc, c));
}

interface ParsedResponse {
  sw: number;
  ssc: bigint;
  /** The data objects the MAC covers. */
  macInput: Uint8Array;
  mac: Uint8Array;
  status: Uint8Array | undefined;
  cryptogram: { tag: number; value: Uint8Array } | undefined;
}

/** The strict parse of a response: [DO'85'|DO'87'] DO'99' DO'8E', nothing after DO'8E' (or a plain status-only error). */
function parseResponse(response: Uint8Array, cipher: SmCipher, ssc: bigint): ParsedResponse | UnprotectedResponse {
  const next = increment(ssc, cipher);
  if (response.length < 2) throw new SecureMessagingError("malformed", `response of ${response.length} bytes has no status word`);
  const sw = (response[response.length - 2]! << 8) | response[response.length - 1]!;
  const body = response.subarray(0, response.length - 2);
  if (body.length === 0) {
    if (sw === SW.OK) throw new SecureMessagingError("missing-mac", "unprotected 9000 response: no MAC", sw);
    return { data: new Uint8Array(0), sw, ssc: next, protected: false };
  }
  if (!SM_TAGS.has(body[0]!)) throw new SecureMessagingError("missing-mac", "response data are not secure-messaging objects: no MAC", sw);

  let cryptogram: { tag: number; value: Uint8Array } | undefined;
  let status: Uint8Array | undefined;
  let mac: Uint8Array | undefined;
  let macStart = -1;
  let p = 0;
  while (p < body.length) {
    const start = p;
    const tag = body[p++]!;
    if (p >= body.length) throw malformed(`data object ${tag.toString(16)} truncated`, sw);
    let len = body[p++]!;
    if (len > 0x80) {
      const n = len & 0x7f;
      if (n > 2 || p + n > body.length) throw malformed(`bad length field in data object ${tag.toString(16)}`, sw);
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + body[p++]!;
    } else if (len === 0x80) throw malformed("indefinite length", sw);
    if (p + len > body.length) throw malformed(`data object ${tag.toString(16)} truncated`, sw);
    const value = body.subarray(p, p + len);
    p += len;
    if (mac !== undefined) throw malformed("data after DO'8E'", sw);
    if (tag === 0x85 || tag === 0x87) {
      if (cryptogram !== undefined || status !== undefined) throw malformed("unexpected cryptogram data object", sw);
      cryptogram = { tag, value };
    } else if (tag === 0x99) {
      if (status !== undefined) throw malformed("repeated DO'99'", sw);
      status = value;
    } else if (tag === 0x8e) {
      mac = value;
      macStart = start;
    } else {
      throw malformed(`unexpected data object ${tag.toString(16)}`, sw);
    }
  }
  if (mac === undefined) throw new SecureMessagingError("missing-mac", "protected response without DO'8E'", sw);
  if (mac.length !== 8) throw malformed(`DO'8E' of ${mac.length} bytes`, sw);
  return { sw, ssc: next, macInput: body.subarray(0, macStart), mac, status, cryptogram };
}

/** Checks the MAC against `expected` (wiped), then DO'99' and the cryptogram's form; returns the ciphertext to decrypt, if any. */
function checkResponse(r: ParsedResponse, expected: Uint8Array, blockSize: number): Uint8Array | undefined {
  const { sw, status, cryptogram } = r;
  const ok = constantTimeEqual(expected, r.mac);
  wipe(expected);
  if (!ok) throw new SecureMessagingError("bad-mac", "response MAC does not verify", sw);
  if (status === undefined) throw new SecureMessagingError("missing-status", "protected response without DO'99'", sw);
  if (status.length !== 2 || ((status[0]! << 8) | status[1]!) !== sw) {
    throw new SecureMessagingError("status-mismatch", `DO'99' does not match the status word ${hex4(sw)}`, sw);
  }
  if (cryptogram === undefined) return undefined;
  const c = cryptogram.tag === 0x87 ? cryptogram.value.subarray(1) : cryptogram.value;
  if (cryptogram.tag === 0x87 && cryptogram.value[0] !== 0x01) throw malformed("DO'87' padding-content indicator is not 01", sw);
  if (c.length === 0 || c.length % blockSize !== 0) throw malformed(`cryptogram of ${c.length} bytes`, sw);
  return c;
}

/** The response with the decrypted data unpadded (`plain` is wiped). */
function decrypted(r: ParsedResponse, plain: Uint8Array | undefined): UnprotectedResponse {
  let data: Uint8Array = new Uint8Array(0);
  if (plain !== undefined) {
    try {
      data = unpad(plain);
    } catch (e) {
      if (e instanceof ParseError) throw new SecureMessagingError("bad-padding", "decrypted response has bad padding", r.sw);
      throw e;
    } finally {
      wipe(plain);
    }
  }
  return { data, sw: r.sw, ssc: r.ssc, protected: true };
}

function malformed(what: string, sw: number): SecureMessagingError {
  return new SecureMessagingError("malformed", `malformed protected response: ${what}`, sw);
}

/**
 * Largest Ne for a READ BINARY whose protected response still fits the response limit
 * (256 bytes with short Le, 65536 with extended). The response data are
 *   DO'87' tag (1) + length field (1–3) + padding indicator (1) + ciphertext (padded plaintext)
 *   + DO'99' (4) + DO'8E' (10)
 * and padding method 2 adds 1..blockSize bytes. Short: 1+2+1+232+4+10 = 250 ≤ 256 gives 231 bytes
 * for 3DES (224-byte ciphertext, 223 bytes, for AES); the next block would need 258.
 */
export function maxReadPlaintext(cipher: Pick<SmCipher, "blockSize">, extended: boolean): number {
  const limit = extended ? 65536 : 256;
  const b = cipher.blockSize;
  for (let c = Math.floor(limit / b) * b; c > 0; c -= b) {
    if (1 + encodeLength(c + 1).length + 1 + c + 4 + 10 <= limit) return c - 1;
  }
  return 0;
}

/**
 * A secure channel over a transport: protects each command, unprotects each response and keeps
 * the SSC. After any SM failure, transport failure or unprotected error response it is dead: the
 * card's SSC or security state can no longer be trusted, so later sends throw until BAC/PACE is
 * run again. close() wipes the session keys.
 */
export class SecureChannel {
  private current: bigint;
  private deadReason: string | undefined;

  constructor(
    private readonly transport: CardTransport,
    private readonly cipher: SmCipher,
    ssc: bigint,
  ) {
    this.current = ssc;
  }

  get ssc(): bigint {
    return this.current;
  }

  get dead(): boolean {
    return this.deadReason !== undefined;
  }

  async send(cmd: CommandApdu): Promise<{ data: Uint8Array; sw: number; protected: boolean }> {
    if (this.deadReason !== undefined) {
      throw new SecureMessagingError("channel-dead", `secure channel is closed or out of step (${this.deadReason}); authenticate again`);
    }
    let response: Uint8Array;
    try {
      const p = protect(cmd, this.cipher, this.current);
      this.current = p.ssc;
      response = await this.transport.transmit(p.apdu);
    } catch (e) {
      // The card may or may not have seen the command: its SSC is unknown now.
      this.deadReason = e instanceof TransportError ? `transport: ${e.code}` : `${commandName(cmd.ins)} not sent`;
      throw e;
    }
    try {
      const r = response.length > SM_SLICE_BYTES ? await unprotectInSlices(response, this.cipher, this.current, SM_SLICE_BYTES) : unprotect(response, this.cipher, this.current);
      this.current = r.ssc;
      if (!r.protected) this.deadReason = `unprotected status ${hex4(r.sw)} to ${commandName(cmd.ins)}`;
      return { data: r.data, sw: r.sw, protected: r.protected };
    } catch (e) {
      this.deadReason = e instanceof SecureMessagingError ? e.reason : e instanceof MrtdError ? e.kind : "error";
      throw e;
    }
  }

  /** Wipes the session keys; the channel cannot be used afterwards. */
  close(): void {
    this.cipher.wipe();
    this.deadReason ??= "closed";
  }
}

