/**
 * ISO/IEC 7816-4 §5.1 command and response APDUs: cases 1–4, short and extended length.
 * Pure codec: no I/O.
 */
import { ParseError } from "../errors.ts";

export interface CommandApdu {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  /** Command data (Nc = data.length); omitted or empty for cases 1 and 2. */
  data?: Uint8Array;
  /**
   * Ne, the maximum number of response bytes expected; omitted for cases 1 and 3.
   * 256 is encoded as Le=00 (short) and 65536 as Le=0000 (extended).
   */
  ne?: number;
  /** Force extended length even when short would fit. */
  extended?: boolean;
}

export interface ResponseApdu {
  data: Uint8Array;
  sw: number;
}

/** Whether a command needs extended length fields (Nc > 255 or Ne > 256, or forced). */
export function needsExtended(c: CommandApdu): boolean {
  const nc = c.data?.length ?? 0;
  return c.extended === true || nc > 255 || (c.ne ?? 0) > 256;
}

export function encodeCommand(c: CommandApdu): Uint8Array {
  for (const [k, v] of [["cla", c.cla], ["ins", c.ins], ["p1", c.p1], ["p2", c.p2]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 255) throw new RangeError(`encodeCommand: ${k} must be a byte, got ${v}`);
  }
  const data = c.data ?? new Uint8Array(0);
  const nc = data.length;
  const ne = c.ne;
  if (nc > 65535) throw new RangeError(`encodeCommand: data length ${nc} exceeds 65535`);
  if (ne !== undefined && (!Number.isInteger(ne) || ne < 1 || ne > 65536)) {
    throw new RangeError(`encodeCommand: ne must be 1..65536, got ${ne}`);
  }
  const ext = needsExtended(c);
  const out: number[] = [c.cla, c.ins, c.p1, c.p2];
  if (!ext) {
    if (nc > 0) out.push(nc, ...data);
    if (ne !== undefined) out.push(ne === 256 ? 0 : ne);
  } else {
    if (nc > 0) {
      out.push(0, (nc >> 8) & 0xff, nc & 0xff, ...data);
      if (ne !== undefined) out.push((ne >> 8) & 0xff, ne & 0xff);
    } else if (ne !== undefined) {
      out.push(0, (ne >> 8) & 0xff, ne & 0xff);
    }
  }
  return Uint8Array.from(out);
}

/** Parse a command APDU (as a card does). Throws ParseError on inconsistent lengths. */
export function decodeCommand(bytes: Uint8Array): CommandApdu & { extended: boolean } {
  if (bytes.length < 4) throw new ParseError(`command APDU too short: ${bytes.length} bytes`, { offset: 0 });
  const [cla, ins, p1, p2] = [bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!];
  const body = bytes.subarray(4);
  const base = { cla, ins, p1, p2 };
  if (body.length === 0) return { ...base, extended: false };
  if (body.length === 1) return { ...base, ne: body[0] === 0 ? 256 : body[0]!, extended: false };
  if (body[0] !== 0 || body.length === 1 + body[0]! || body.length === 2 + body[0]!) {
    // short: Lc data [Le]
    const lc = body[0]!;
    if (lc === 0) throw new ParseError("short Lc of zero", { offset: 4 });
    if (body.length === 1 + lc) return { ...base, data: body.slice(1), extended: false };
    if (body.length === 2 + lc) {
      const le = body[1 + lc]!;
      return { ...base, data: body.slice(1, 1 + lc), ne: le === 0 ? 256 : le, extended: false };
    }
    throw new ParseError(`short APDU length mismatch: Lc=${lc}, body ${body.length}`, { offset: 4 });
  }
  // extended: 00 then two bytes
  if (body.length === 3) {
    const le = (body[1]! << 8) | body[2]!;
    return { ...base, ne: le === 0 ? 65536 : le, extended: true };
  }
  const lc = (body[1]! << 8) | body[2]!;
  if (lc === 0) throw new ParseError("extended Lc of zero", { offset: 5 });
  if (body.length === 3 + lc) return { ...base, data: body.slice(3, 3 + lc), extended: true };
  if (body.length === 5 + lc) {
    const le = (body[3 + lc]! << 8) | body[4 + lc]!;
    return { ...base, data: body.slice(3, 3 + lc), ne: le === 0 ? 65536 : le, extended: true };
  }
  throw new ParseError(`extended APDU length mismatch: Lc=${lc}, body ${body.length}`, { offset: 4 });
}

export function decodeResponse(bytes: Uint8Array): ResponseApdu {
  if (bytes.length < 2) throw new ParseError(`response APDU too short: ${bytes.length} bytes`, { offset: 0 });
  const n = bytes.length;
  return { data: bytes.slice(0, n - 2), sw: (bytes[n - 2]! << 8) | bytes[n - 1]! };
}

export function encodeResponse(r: ResponseApdu): Uint8Array {
  const out = new Uint8Array(r.data.length + 2);
  out.set(r.data, 0);
  out[r.data.length] = (r.sw >> 8) & 0xff;
  out[r.data.length + 1] = r.sw & 0xff;
  return out;
}

/** Human name of a command for logs and errors (never includes data). */
export function commandName(ins: number): string {
  return INS_NAMES[ins] ?? `INS ${ins.toString(16).toUpperCase().padStart(2, "0")}`;
}

const INS_NAMES: Record<number, string> = {
  0xa4: "SELECT",
  0xb0: "READ BINARY",
  0xb1: "READ BINARY (odd)",
  0x84: "GET CHALLENGE",
  0x82: "EXTERNAL AUTHENTICATE",
  0x88: "INTERNAL AUTHENTICATE",
  0x86: "GENERAL AUTHENTICATE",
  0x22: "MANAGE SECURITY ENVIRONMENT",
  0xc0: "GET RESPONSE",
};
