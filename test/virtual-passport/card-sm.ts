/**
 * The chip's side of Basic Access Control and secure messaging, ICAO 9303-11
 * §4.3 (BAC), §9.7.1–9.7.3 (key derivation), §9.8 (secure messaging) and Appendix D:
 * 3DES after BAC (§9.8.6.1), AES after PACE or Chip Authentication (§9.8.6.2: IV = E(KSenc, SSC),
 * 8-byte AES-CMAC over the padded SSC ‖ data, 16-byte SSC).
 * Written from the spec, apart from the reader's implementation in agent/icao/, so the
 * two can check each other. Pure functions: keys and the SSC go in, results come out.
 */
import { concat, constantTimeEqual } from "../../agent/bytes.ts";
import { checkDigit } from "../../agent/icao/check-digit.ts";
import { adjustParity, tdesCbcDecrypt, tdesCbcEncrypt } from "../../agent/crypto/des.ts";
import { aesCbcDecrypt, aesCbcEncrypt, aesCmac, aesEncryptBlock } from "../../agent/crypto/aes.ts";
import { sha1, sha256 } from "../../agent/crypto/hash.ts";
import { pad, retailMac, unpad } from "../../agent/crypto/iso9797.ts";
import type { CommandApdu } from "../../agent/iso7816/apdu.ts";
import { encodeTlv, parseTlv } from "../../agent/iso7816/tlv.ts";

/** The MRZ fields that make the BAC key (9303-11 §9.7.2). Dates are YYMMDD. */
export interface MrzKey {
  documentNumber: string;
  dateOfBirth: string;
  dateOfExpiry: string;
}

export interface KeyPair3des {
  kEnc: Uint8Array;
  kMac: Uint8Array;
}

export interface SmSession extends KeyPair3des {
  /** Send sequence counter, big-endian: 8 bytes for 3DES, 16 for AES (9303-11 §9.8.2). */
  ssc: Uint8Array;
  /** Default 3DES (BAC). */
  cipher?: "3DES" | "AES";
}

/** 9303-11 §9.7.1 for every cipher: SHA-1 for 3DES (parity adjusted) and AES-128, SHA-256 for AES-192/256. */
export function deriveSessionKey(seed: Uint8Array, counter: 1 | 2 | 3, alg: "3DES" | "AES-128" | "AES-192" | "AES-256"): Uint8Array {
  const input = concat(seed, Uint8Array.of(0, 0, 0, counter));
  if (alg === "3DES") return adjustParity(sha1(input).slice(0, 16));
  if (alg === "AES-128") return sha1(input).slice(0, 16);
  return sha256(input).slice(0, alg === "AES-192" ? 24 : 32);
}

function blockOf(session: SmSession): number {
  return session.cipher === "AES" ? 16 : 8;
}

/** MAC over SSC ‖ parts (already including the SSC where the caller put it), padded to the block. */
export function sessionMac(session: SmSession, ...parts: Uint8Array[]): Uint8Array {
  if (session.cipher !== "AES") return macOver(session.kMac, ...parts);
  return aesCmac(session.kMac, pad(concat(...parts), 16)).slice(0, 8);
}

function sessionEncrypt(session: SmSession, ssc: Uint8Array, padded: Uint8Array): Uint8Array {
  if (session.cipher !== "AES") return tdesCbcEncrypt(session.kEnc, padded, ZERO_IV);
  return aesCbcEncrypt(session.kEnc, aesEncryptBlock(session.kEnc, ssc), padded);
}

function sessionDecrypt(session: SmSession, ssc: Uint8Array, data: Uint8Array): Uint8Array {
  if (session.cipher !== "AES") return tdesCbcDecrypt(session.kEnc, data, ZERO_IV);
  return aesCbcDecrypt(session.kEnc, aesEncryptBlock(session.kEnc, ssc), data);
}

const ZERO_IV = new Uint8Array(8);

/** MRZ_information: document number (padded with '<' to 9) + check digit, DOB + cd, expiry + cd. */
export function mrzInformation(key: MrzKey): string {
  const doc = key.documentNumber.toUpperCase().padEnd(9, "<");
  for (const [name, v] of [["dateOfBirth", key.dateOfBirth], ["dateOfExpiry", key.dateOfExpiry]] as const) {
    if (!/^[0-9]{6}$/.test(v)) throw new RangeError(`${name} must be 6 digits (YYMMDD)`);
  }
  return `${doc}${checkDigit(doc)}${key.dateOfBirth}${checkDigit(key.dateOfBirth)}${key.dateOfExpiry}${checkDigit(key.dateOfExpiry)}`;
}

/** 9303-11 §9.7.1: K = SHA-1(seed ‖ counter)[0..15] with DES parity bits adjusted. */
export function deriveKey3des(seed: Uint8Array, counter: 1 | 2): Uint8Array {
  const d = sha1(concat(seed, Uint8Array.of(0, 0, 0, counter)));
  return adjustParity(d.slice(0, 16));
}

/** The document basic access keys the chip stores (9303-11 §9.7.2). */
export function documentBacKeys(key: MrzKey): KeyPair3des {
  const kSeed = sha1(new TextEncoder().encode(mrzInformation(key))).slice(0, 16);
  const keys = { kEnc: deriveKey3des(kSeed, 1), kMac: deriveKey3des(kSeed, 2) };
  kSeed.fill(0);
  return keys;
}

export function macOver(kMac: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  return retailMac(kMac, pad(concat(...parts)));
}

/**
 * EXTERNAL AUTHENTICATE on the chip (9303-11 §4.3.3.2 steps 4–6, Appendix D.3):
 * verify M.IFD, decrypt S, check the echoed RND.IC, answer E.IC ‖ M.IC and derive the
 * session keys. `null` means authentication failed (the chip answers 6300).
 */
export function chipExternalAuthenticate(
  keys: KeyPair3des,
  rndIc: Uint8Array,
  kIc: Uint8Array,
  cmdData: Uint8Array,
): { response: Uint8Array; session: SmSession } | null {
  if (cmdData.length !== 40) return null;
  const eIfd = cmdData.subarray(0, 32);
  const mIfd = cmdData.subarray(32, 40);
  if (!constantTimeEqual(macOver(keys.kMac, eIfd), mIfd)) return null;
  const s = tdesCbcDecrypt(keys.kEnc, eIfd, ZERO_IV);
  const rndIfd = s.slice(0, 8);
  const echoedRndIc = s.subarray(8, 16);
  const kIfd = s.slice(16, 32);
  if (!constantTimeEqual(echoedRndIc, rndIc)) {
    s.fill(0);
    kIfd.fill(0);
    return null;
  }
  const r = concat(rndIc, rndIfd, kIc);
  const eIc = tdesCbcEncrypt(keys.kEnc, r, ZERO_IV);
  const mIc = macOver(keys.kMac, eIc);
  const ksSeed = new Uint8Array(16);
  for (let i = 0; i < 16; i++) ksSeed[i] = kIfd[i]! ^ kIc[i]!;
  const session: SmSession = {
    kEnc: deriveKey3des(ksSeed, 1),
    kMac: deriveKey3des(ksSeed, 2),
    ssc: concat(rndIc.subarray(4, 8), rndIfd.subarray(4, 8)),
  };
  s.fill(0);
  r.fill(0);
  kIfd.fill(0);
  ksSeed.fill(0);
  return { response: concat(eIc, mIc), session };
}

/** SSC + 1 as a big-endian counter of its own length (wraps at 2^64 or 2^128). */
export function incrementSsc(ssc: Uint8Array): Uint8Array {
  const next = Uint8Array.from(ssc);
  for (let i = next.length - 1; i >= 0; i--) {
    next[i] = (next[i]! + 1) & 0xff;
    if (next[i] !== 0) break;
  }
  return next;
}

export type UnwrapResult =
  | { ok: true; ssc: Uint8Array; command: CommandApdu }
  /** 6987: expected SM data objects missing; 6988: SM data objects incorrect. */
  | { ok: false; sw: 0x6987 | 0x6988; reason: string };

/**
 * Unprotect a command (9303-11 §9.8.4/§9.8.5): CLA 0C, optional DO'87' (even INS) or
 * DO'85' (odd INS) carrying the encrypted data, optional DO'97' carrying Le, then
 * DO'8E' = MAC(SSC+1 ‖ pad(header) ‖ DO'87|85' ‖ DO'97'). The MAC is checked before
 * anything is decrypted. Returns the plain command (CLA 00) and the incremented SSC.
 */
export function unwrapCommand(session: SmSession, apdu: { cla: number; ins: number; p1: number; p2: number; data?: Uint8Array }): UnwrapResult {
  if (apdu.cla !== 0x0c) return { ok: false, sw: 0x6988, reason: "class byte is not 0C" };
  const body = apdu.data ?? new Uint8Array(0);
  const oddIns = (apdu.ins & 1) === 1;
  let doData: Uint8Array | undefined;
  let dataTag = 0;
  let doLe: Uint8Array | undefined;
  let leValue: Uint8Array | undefined;
  let mac: Uint8Array | undefined;
  let p = 0;
  while (p < body.length) {
    if (mac) return { ok: false, sw: 0x6988, reason: "data after DO'8E'" };
    let tlv;
    try {
      tlv = parseTlv(body, p);
    } catch {
      return { ok: false, sw: 0x6988, reason: "malformed data object" };
    }
    const raw = body.subarray(p, tlv.end);
    p = tlv.end;
    if (tlv.tag === 0x87 || tlv.tag === 0x85) {
      if (doData || doLe) return { ok: false, sw: 0x6988, reason: "data object out of order" };
      // 9303-11 §9.8.5: odd INS carries BER-TLV data in DO'85', even INS in DO'87'
      if ((tlv.tag === 0x85) !== oddIns) return { ok: false, sw: 0x6988, reason: `DO'${tlv.tag.toString(16)}' with this INS` };
      doData = raw;
      dataTag = tlv.tag;
    } else if (tlv.tag === 0x97) {
      if (doLe) return { ok: false, sw: 0x6988, reason: "data object out of order" };
      if (tlv.value.length !== 1 && tlv.value.length !== 2) return { ok: false, sw: 0x6988, reason: "DO'97' length" };
      doLe = raw;
      leValue = tlv.value;
    } else if (tlv.tag === 0x8e) {
      if (tlv.value.length !== 8) return { ok: false, sw: 0x6988, reason: "DO'8E' length" };
      mac = tlv.value;
    } else {
      return { ok: false, sw: 0x6988, reason: `unexpected data object ${tlv.tag.toString(16)}` };
    }
  }
  if (!mac) return { ok: false, sw: 0x6987, reason: "DO'8E' missing" };

  const ssc = incrementSsc(session.ssc);
  const block = blockOf(session);
  const header = pad(Uint8Array.of(apdu.cla, apdu.ins, apdu.p1, apdu.p2), block);
  const expected = sessionMac(session, ssc, header, doData ?? new Uint8Array(0), doLe ?? new Uint8Array(0));
  if (!constantTimeEqual(expected, mac)) return { ok: false, sw: 0x6988, reason: "MAC mismatch" };

  const command: CommandApdu = { cla: 0x00, ins: apdu.ins, p1: apdu.p1, p2: apdu.p2 };
  if (doData) {
    const value = parseTlv(doData).value;
    const ct = dataTag === 0x87 ? value.subarray(1) : value;
    if (dataTag === 0x87 && value[0] !== 0x01) return { ok: false, sw: 0x6988, reason: "padding-content indicator is not 01" };
    if (ct.length === 0 || ct.length % block !== 0) return { ok: false, sw: 0x6988, reason: "cryptogram length" };
    try {
      command.data = unpad(sessionDecrypt(session, ssc, ct));
    } catch {
      return { ok: false, sw: 0x6988, reason: "cryptogram padding" };
    }
  }
  if (leValue) {
    const n = leValue.length === 1 ? leValue[0]! : (leValue[0]! << 8) | leValue[1]!;
    command.ne = n === 0 ? (leValue.length === 1 ? 256 : 65536) : n;
  }
  return { ok: true, ssc, command };
}

/**
 * Protect a response (9303-11 §9.8.6): DO'87' (padding-content indicator 01) when there
 * is data, DO'99' with the status word always, DO'8E' = MAC(SSC+1 ‖ DO'87' ‖ DO'99').
 * The outer status word repeats the inner one.
 */
export function wrapResponse(session: SmSession, data: Uint8Array, sw: number): { ssc: Uint8Array; response: Uint8Array } {
  const ssc = incrementSsc(session.ssc);
  const do87 = data.length > 0 ? encodeTlv(0x87, Uint8Array.of(0x01), sessionEncrypt(session, ssc, pad(data, blockOf(session)))) : new Uint8Array(0);
  const swBytes = Uint8Array.of(sw >> 8, sw & 0xff);
  const do99 = encodeTlv(0x99, swBytes);
  const do8e = encodeTlv(0x8e, sessionMac(session, ssc, do87, do99));
  return { ssc, response: concat(do87, do99, do8e, swBytes) };
}

/** Length of the protected response data field for `n` plaintext bytes (8-byte blocks for 3DES, 16 for AES). */
export function protectedResponseLength(n: number, block = 8): number {
  let len = 4 + 10; // DO'99' + DO'8E'
  if (n > 0) {
    const v = 1 + (Math.floor(n / block) + 1) * block;
    len += 1 + (v < 0x80 ? 1 : v < 0x100 ? 2 : v < 0x10000 ? 3 : 4) + v;
  }
  return len;
}

/** Most plaintext bytes whose protected response fits `limit` bytes (231 for a short 3DES response, 223 for AES). */
export function maxPlaintextFor(limit: number, block = 8): number {
  let n = Math.max(0, limit - 14);
  while (n > 0 && protectedResponseLength(n, block) > limit) n--;
  return n;
}
