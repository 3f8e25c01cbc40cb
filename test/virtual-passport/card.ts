/**
 * A virtual ICAO 9303 eMRTD chip (LDS1; BAC and/or PACE, 3DES or AES secure messaging, Chip
 * Authentication): the command set of ICAO 9303-10 §3.5 / 9303-11 §4.3, §4.4, §6.2, §9.8 with
 * ISO/IEC 7816-4 status words. EF.CardAccess (011C, SFI 1C) sits in the master file and is read
 * plain when the chip offers PACE. Pure logic:
 * `handle()` takes a command APDU and returns the response APDU, never throws, does no I/O.
 * Randomness comes from the options so tests can replay ICAO 9303-11 Appendix D.
 */
import { constantTimeEqual, wipe } from "../../agent/bytes.ts";
import { decodeCommand, encodeResponse, type CommandApdu } from "../../agent/iso7816/apdu.ts";
import { encodeTlv, parseTlv } from "../../agent/iso7816/tlv.ts";
import {
  chipExternalAuthenticate,
  documentBacKeys,
  maxPlaintextFor,
  unwrapCommand,
  wrapResponse,
  type KeyPair3des,
  type SmSession,
} from "./card-sm.ts";
import { aaSign, type AaPrivateKey } from "./card-aa.ts";
import { ChipCa, ChipPace, type ChipCaKey, type ChipPaceConfig } from "./card-pace.ts";
import { EMRTD_AID, EmrtdFileSystem, type ElementaryFile, type PassportFiles } from "./file-system.ts";
import { resolveCardOptions, type CardOptions, type CardOptionsInput } from "./options.ts";

interface Result {
  data?: Uint8Array;
  sw: number;
}

interface Context {
  /** BAC done and this command came through secure messaging. */
  authenticated: boolean;
  /** Most response bytes (plaintext) this command may get. */
  limit: number;
}

const EMPTY = new Uint8Array(0);

/** What a chip supports beyond its files: access control and Chip Authentication. */
export interface ChipFeatures {
  /** The chip's Active Authentication key (9303-11 §6.1); a clone's differs from DG15. */
  aaKey?: AaPrivateKey;
  /** PACE (then EF.CardAccess exists); without it the chip does BAC only. */
  pace?: ChipPaceConfig;
  /** Card access number printed on the document (PACE password 02). */
  can?: string;
  /** BAC accepted (default true); false: EXTERNAL AUTHENTICATE answers 6A88. */
  bac?: boolean;
  /** Chip Authentication key (DG14 holds its public key; a clone's differs). */
  caKey?: ChipCaKey;
}

const CARD_ACCESS_FID = 0x011c;
const CARD_ACCESS_SFI = 0x1c;

export class VirtualPassport {
  readonly options: CardOptions;
  private readonly fs: EmrtdFileSystem;
  private readonly documentKeys: KeyPair3des;
  private appletSelected = false;
  private current: ElementaryFile | undefined;
  private rndIc: Uint8Array | undefined;
  /** After a failed EXTERNAL AUTHENTICATE the chip refuses until the next GET CHALLENGE. */
  private bacFailed = false;
  private session: SmSession | undefined;
  /** Active Authentication private key (9303-11 §6.1); without it INTERNAL AUTHENTICATE is 6D00. */
  private readonly aaKey: AaPrivateKey | undefined;
  private readonly bac: boolean;
  private readonly pace: ChipPace | undefined;
  private readonly ca: ChipCa | undefined;
  private readonly cardAccess: ElementaryFile | undefined;
  /** A session that starts once the current response is out (Chip Authentication). */
  private nextSession: SmSession | undefined;

  /** `files` with the chip's features (a profile's; a clone's AA or CA key differs from DG15/DG14). */
  constructor(files: PassportFiles & ChipFeatures, opts: CardOptionsInput) {
    this.options = resolveCardOptions(opts);
    this.fs = new EmrtdFileSystem(files);
    this.aaKey = files.aaKey;
    this.bac = files.bac ?? true;
    this.documentKeys = documentBacKeys(this.options.mrzKey);
    const random = (n: number) => Uint8Array.from(this.options.random(n));
    if (files.pace) {
      this.pace = new ChipPace(files.pace, this.options.mrzKey, files.can, files.caKey, random);
      this.cardAccess = { fid: CARD_ACCESS_FID, sfi: CARD_ACCESS_SFI, name: "CardAccess", content: encodeTlv(0x31, ChipPace.cardAccessInfo(files.pace)) };
    }
    if (files.caKey) this.ca = new ChipCa(files.caKey);
  }

  /** Field off: all volatile state is lost. */
  powerOff(): void {
    this.clearVolatile();
  }

  /** Warm reset: for a contactless chip the same as losing the field. */
  reset(): void {
    this.clearVolatile();
  }

  /** Whether a secure-messaging session is up (for tests and logs; no key material). */
  get authenticated(): boolean {
    return this.session !== undefined;
  }

  /** The current send sequence counter, for tests that follow it step by step. */
  get ssc(): Uint8Array | undefined {
    return this.session ? Uint8Array.from(this.session.ssc) : undefined;
  }

  handle(apdu: Uint8Array): Uint8Array {
    try {
      const r = this.dispatch(apdu);
      return r instanceof Uint8Array ? r : encodeResponse({ data: r.data ?? EMPTY, sw: r.sw });
    } catch {
      // A bug in the simulator must not kill the vpcd link; a real chip would go mute or answer 6F00.
      this.endSession();
      return encodeResponse({ data: EMPTY, sw: 0x6f00 });
    }
  }

  private dispatch(apdu: Uint8Array): Result | Uint8Array {
    if (apdu.length < 4) {
      this.endSession();
      return { sw: 0x6700 };
    }
    const cla = apdu[0]!;
    const sm = cla === 0x0c;
    // CLA 10: command chaining of PACE's GENERAL AUTHENTICATE (9303-11 §4.4.4.2)
    const chained = cla === 0x10 && apdu[1] === 0x86 && !this.session;
    if (!sm && cla !== 0x00 && !chained) {
      if (this.session && (cla === 0x04 || cla === 0x08)) {
        // SM indicated without header authentication: 9303-11 requires CLA 0C
        this.endSession();
        return { sw: 0x6988 };
      }
      this.endSession();
      return { sw: 0x6e00 };
    }
    let cmd: ReturnType<typeof decodeCommand>;
    try {
      cmd = decodeCommand(apdu);
    } catch {
      this.endSession();
      return { sw: 0x6700 };
    }
    if (cmd.extended && !this.options.extendedLength) {
      this.endSession();
      return { sw: 0x6700 };
    }
    if (!sm) {
      if (this.session) {
        // 9303-11 §9.8: a plain APDU aborts secure messaging
        this.endSession();
        return { sw: 0x6982 };
      }
      if (cmd.ins === 0x86) return this.paceAuthenticate(cmd, !chained);
      return this.execute(cmd, { authenticated: false, limit: this.options.maxLe });
    }
    return this.handleProtected(cmd);
  }

  private handleProtected(outer: CommandApdu & { extended: boolean }): Result | Uint8Array {
    const session = this.session;
    if (!session) return { sw: 0x6982 };
    const unwrapped = unwrapCommand(session, outer);
    if (!unwrapped.ok) {
      this.endSession();
      return { sw: unwrapped.sw };
    }
    session.ssc = unwrapped.ssc;
    // The protected response must fit the outer Ne (Le 00 = 256 short, 0000 = 65536 extended).
    const outerLimit = outer.ne ?? (outer.extended ? 65536 : 256);
    const limit = Math.min(this.options.maxLe, maxPlaintextFor(outerLimit, session.cipher === "AES" ? 16 : 8));
    const inner = this.execute(unwrapped.command, { authenticated: true, limit });
    if (this.session !== session) {
      // The command ended the session (cannot happen today; keep the invariant explicit).
      return inner;
    }
    const wrapped = wrapResponse(session, inner.data ?? EMPTY, inner.sw);
    session.ssc = wrapped.ssc;
    const next = this.nextSession;
    if (next) {
      // Chip Authentication: the answer went out under the old keys; the new session starts now
      this.nextSession = undefined;
      this.endSession();
      this.session = next;
    }
    return wrapped.response;
  }

  private execute(cmd: CommandApdu, ctx: Context): Result {
    switch (cmd.ins) {
      case 0xa4:
        return this.select(cmd, ctx);
      case 0xb0:
        return this.readBinary(cmd, ctx);
      case 0xb1:
        return this.readBinaryOdd(cmd, ctx);
      case 0x84:
        return this.getChallenge(cmd);
      case 0x82:
        return ctx.authenticated ? { sw: 0x6985 } : this.externalAuthenticate(cmd);
      case 0x88:
        return this.internalAuthenticate(cmd, ctx);
      case 0x22:
        return this.manageSecurityEnvironment(cmd, ctx);
      case 0x86:
        return this.caAuthenticate(cmd, ctx);
      default:
        return { sw: 0x6d00 };
    }
  }

  /** SELECT (ISO 7816-4 §11.2.2): the eMRTD application by AID, EFs by FID. */
  private select(cmd: CommandApdu, ctx: Context): Result {
    const data = cmd.data ?? EMPTY;
    if (cmd.p2 !== 0x00 && cmd.p2 !== 0x04 && cmd.p2 !== 0x0c) return { sw: 0x6a86 };
    if (cmd.p1 === 0x04) {
      if (!constantTimeEqual(data, EMRTD_AID)) return { sw: 0x6a82 };
      this.appletSelected = true;
      this.current = undefined;
      if (cmd.p2 === 0x0c) return { sw: 0x9000 };
      const fcx = encodeTlv(cmd.p2 === 0x00 ? 0x6f : 0x62, encodeTlv(0x84, EMRTD_AID));
      return { data: fcx, sw: 0x9000 };
    }
    if (cmd.p1 !== 0x00 && cmd.p1 !== 0x02) return { sw: 0x6a86 };
    // P1=00 with no data or 3F00 selects the MF: a PACE chip exposes it (EF.CardAccess lives there), a BAC-only one does not.
    if (cmd.p1 === 0x00 && (data.length === 0 || (data.length === 2 && data[0] === 0x3f && data[1] === 0x00))) {
      if (!this.cardAccess) return { sw: 0x6a82 };
      this.appletSelected = false;
      this.current = undefined;
      return { sw: 0x9000 };
    }
    if (data.length !== 2) return { sw: 0x6700 };
    const fid = (data[0]! << 8) | data[1]!;
    // EF.CardAccess (011C) lives in the MF, readable without authentication; a BAC-only chip has none
    if (fid === CARD_ACCESS_FID && this.cardAccess && !this.appletSelected) {
      this.current = this.cardAccess;
      return { sw: 0x9000 };
    }
    if (!this.appletSelected) return { sw: 0x6a82 };
    if (!ctx.authenticated) return { sw: 0x6982 };
    const ef = this.fs.byFileId((data[0]! << 8) | data[1]!);
    if (!ef) return { sw: 0x6a82 };
    this.current = ef;
    if (cmd.p2 === 0x0c) return { sw: 0x9000 };
    const fcp = [encodeTlv(0x80, Uint8Array.of(ef.content.length >> 8, ef.content.length & 0xff)), encodeTlv(0x82, Uint8Array.of(0x01)), encodeTlv(0x83, data)];
    return { data: encodeTlv(cmd.p2 === 0x00 ? 0x6f : 0x62, ...fcp), sw: 0x9000 };
  }

  /** Resolves P1 with bit 8 set to a short EF identifier (ISO 7816-4 §7.2.2), selecting that file. */
  private fileBySfi(p1: number): ElementaryFile | Result {
    if ((p1 & 0x60) !== 0) return { sw: 0x6a86 };
    if ((p1 & 0x1f) === CARD_ACCESS_SFI && this.cardAccess && !this.appletSelected) {
      this.current = this.cardAccess;
      return this.cardAccess;
    }
    if (!this.appletSelected) return { sw: 0x6a82 };
    const ef = this.fs.byShortId(p1 & 0x1f);
    if (!ef) return { sw: 0x6a82 };
    this.current = ef;
    return ef;
  }

  /** READ BINARY, even INS (ISO 7816-4 §11.3.3): offset in P1-P2 (15 bits) or SFI in P1 and offset in P2. */
  private readBinary(cmd: CommandApdu, ctx: Context): Result {
    const publicFile = this.cardAccess !== undefined && (this.current === this.cardAccess || ((cmd.p1 & 0x80) !== 0 && (cmd.p1 & 0x1f) === CARD_ACCESS_SFI && !this.appletSelected));
    if (!ctx.authenticated && !publicFile) return { sw: 0x6982 };
    if (cmd.data !== undefined && cmd.data.length > 0) return { sw: 0x6700 };
    let ef: ElementaryFile;
    let offset: number;
    if ((cmd.p1 & 0x80) !== 0) {
      const r = this.fileBySfi(cmd.p1);
      if (!("content" in r)) return r;
      ef = r;
      offset = cmd.p2;
    } else {
      if (!this.current) return { sw: 0x6986 };
      ef = this.current;
      offset = ((cmd.p1 & 0x7f) << 8) | cmd.p2;
    }
    if (cmd.ne === undefined) return { sw: 0x6700 };
    const remaining = ef.content.length - offset;
    if (remaining <= 0) return { sw: 0x6b00 };
    if (cmd.ne > ctx.limit) return this.leTooLarge(Math.min(ctx.limit, remaining));
    const n = Math.min(cmd.ne, remaining);
    return { data: ef.content.slice(offset, offset + n), sw: n < cmd.ne ? 0x6282 : 0x9000 };
  }

  /**
   * READ BINARY, odd INS (ISO 7816-4 §11.3.3, 9303-10 §3.5.2): offset in DO'54', data in
   * DO'53'. Ne counts the whole DO'53', header included. Needed for offsets above 32767.
   */
  private readBinaryOdd(cmd: CommandApdu, ctx: Context): Result {
    if (!ctx.authenticated) return { sw: 0x6982 };
    const data = cmd.data ?? EMPTY;
    let offset: number;
    try {
      const t = parseTlv(data);
      if (t.tag !== 0x54 || t.end !== data.length || t.value.length < 1 || t.value.length > 3) return { sw: 0x6a80 };
      offset = 0;
      for (const b of t.value) offset = offset * 256 + b;
    } catch {
      return { sw: 0x6a80 };
    }
    let ef: ElementaryFile;
    if ((cmd.p1 & 0x80) !== 0) {
      if (cmd.p2 !== 0) return { sw: 0x6a86 };
      const r = this.fileBySfi(cmd.p1);
      if (!("content" in r)) return r;
      ef = r;
    } else if (cmd.p1 === 0 && cmd.p2 === 0) {
      if (!this.current) return { sw: 0x6986 };
      ef = this.current;
    } else {
      if (!this.appletSelected) return { sw: 0x6a82 };
      const found = this.fs.byFileId((cmd.p1 << 8) | cmd.p2);
      if (!found) return { sw: 0x6a82 };
      this.current = found;
      ef = found;
    }
    if (cmd.ne === undefined || cmd.ne < 3) return { sw: 0x6700 };
    const remaining = ef.content.length - offset;
    if (remaining <= 0) return { sw: 0x6b00 };
    if (cmd.ne > ctx.limit) return this.leTooLarge(Math.min(ctx.limit, do53Length(remaining)));
    const fits = contentFitting(cmd.ne);
    const n = Math.min(fits, remaining);
    return { data: encodeTlv(0x53, ef.content.subarray(offset, offset + n)), sw: n < fits ? 0x6282 : 0x9000 };
  }

  private leTooLarge(available: number): Result {
    if (this.options.leTooLargeSw === "6Cxx" && available >= 1 && available <= 256) return { sw: 0x6c00 | (available & 0xff) };
    return { sw: 0x6700 };
  }

  /** GET CHALLENGE (9303-11 §4.3.3.2 step 1): RND.IC, 8 bytes. */
  private getChallenge(cmd: CommandApdu): Result {
    if (cmd.p1 !== 0 || cmd.p2 !== 0) return { sw: 0x6a86 };
    if ((cmd.data?.length ?? 0) > 0 || cmd.ne !== 8) return { sw: 0x6700 };
    const rnd = this.options.random(8);
    if (rnd.length !== 8) return { sw: 0x6f00 };
    this.rndIc = Uint8Array.from(rnd);
    this.bacFailed = false;
    return { data: Uint8Array.from(rnd), sw: 0x9000 };
  }

  /** EXTERNAL AUTHENTICATE (9303-11 §4.3.3.2 steps 4–6). */
  private externalAuthenticate(cmd: CommandApdu): Result {
    if (cmd.p1 !== 0 || cmd.p2 !== 0) return { sw: 0x6a86 };
    const data = cmd.data ?? EMPTY;
    if (data.length !== 40 || (cmd.ne !== undefined && cmd.ne < 40)) return { sw: 0x6700 };
    if (!this.bac) return { sw: 0x6a88 }; // PACE-only chip: no BAC keys (referenced data not found)
    if (this.bacFailed) return { sw: 0x6300 };
    const rndIc = this.rndIc;
    if (!rndIc) return { sw: 0x6985 };
    this.rndIc = undefined;
    const kIc = Uint8Array.from(this.options.random(16));
    const result = kIc.length === 16 ? chipExternalAuthenticate(this.documentKeys, rndIc, kIc, data) : null;
    wipe(kIc, rndIc);
    if (!result) {
      this.bacFailed = true;
      return { sw: 0x6300 };
    }
    this.session = result.session;
    return { data: result.response, sw: 0x9000 };
  }

  /** INTERNAL AUTHENTICATE (9303-11 §6.1): sign the 8-byte challenge with the AA key. */
  private internalAuthenticate(cmd: CommandApdu, ctx: Context): Result {
    if (!this.aaKey) return { sw: 0x6d00 };
    if (!ctx.authenticated) return { sw: 0x6982 };
    if (cmd.p1 !== 0 || cmd.p2 !== 0) return { sw: 0x6a86 };
    if (cmd.data?.length !== 8 || cmd.ne === undefined) return { sw: 0x6700 };
    const signature = aaSign(this.aaKey, cmd.data, (n) => Uint8Array.from(this.options.random(n)));
    if (signature.length > ctx.limit || signature.length > cmd.ne) return { sw: 0x6700 };
    return { data: signature, sw: 0x9000 };
  }

  /** MSE (ISO 7816-4 §11.5.11): Set AT for PACE (C1A4, unauthenticated) or CA (41A4), Set KAT for CA (41A6). */
  private manageSecurityEnvironment(cmd: CommandApdu, ctx: Context): Result {
    const data = cmd.data ?? EMPTY;
    const p = (cmd.p1 << 8) | cmd.p2;
    if (p === 0xc1a4 && !ctx.authenticated) return this.pace ? this.pace.mseSetAt(data) : { sw: 0x6a80 };
    if (!ctx.authenticated) return { sw: 0x6982 };
    if (!this.ca) return { sw: 0x6a80 };
    if (p === 0x41a4) return this.ca.mseSetAt(data);
    if (p === 0x41a6) return this.takeSession(this.ca.mseSetKat(data));
    return { sw: 0x6a86 };
  }

  /** GENERAL AUTHENTICATE of PACE (plain, chained with CLA 10 until the last step). */
  private paceAuthenticate(cmd: CommandApdu, last: boolean): Result {
    if (!this.pace) return { sw: 0x6d00 };
    if (cmd.p1 !== 0 || cmd.p2 !== 0) return { sw: 0x6a86 };
    const r = this.pace.generalAuthenticate(cmd.data ?? EMPTY, last);
    if (r.session) {
      this.endSession();
      this.appletSelected = false;
      this.current = undefined;
      this.session = r.session;
    }
    return { data: r.data, sw: r.sw };
  }

  /** GENERAL AUTHENTICATE of Chip Authentication (inside secure messaging). */
  private caAuthenticate(cmd: CommandApdu, ctx: Context): Result {
    if (!ctx.authenticated || !this.ca) return { sw: 0x6982 };
    return this.takeSession(this.ca.generalAuthenticate(cmd.data ?? EMPTY));
  }

  private takeSession(r: { data?: Uint8Array; sw: number; session?: SmSession }): Result {
    if (r.session) this.nextSession = r.session;
    return { data: r.data, sw: r.sw };
  }

  private endSession(): void {
    if (this.session) {
      wipe(this.session.kEnc, this.session.kMac);
      this.session = undefined;
    }
    if (this.nextSession) {
      wipe(this.nextSession.kEnc, this.nextSession.kMac);
      this.nextSession = undefined;
    }
  }

  private clearVolatile(): void {
    this.endSession();
    this.appletSelected = false;
    this.current = undefined;
    if (this.rndIc) wipe(this.rndIc);
    this.rndIc = undefined;
    this.bacFailed = false;
    this.pace?.reset();
    this.ca?.reset();
  }
}

/** Bytes of a DO'53' holding n content bytes. */
function do53Length(n: number): number {
  return n + (n < 0x80 ? 2 : n < 0x100 ? 3 : n < 0x10000 ? 4 : 5);
}

/** Most content bytes whose DO'53' fits ne bytes. */
function contentFitting(ne: number): number {
  let n = ne - 2;
  while (n > 0 && do53Length(n) > ne) n--;
  return Math.max(0, n);
}
