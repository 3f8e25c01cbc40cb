/**
 * Status words (ISO/IEC 7816-4 §5.6, ICAO 9303-10/11) and the pseudo status words
 * that reader stacks generate when the card did not answer.
 */
import { hex4 } from "../errors.ts";

export const SW = {
  OK: 0x9000,
  END_OF_FILE: 0x6282, // fewer bytes than Ne available before end of file
  WRONG_LENGTH: 0x6700,
  SECURITY_STATUS_NOT_SATISFIED: 0x6982,
  AUTH_METHOD_BLOCKED: 0x6983,
  CONDITIONS_NOT_SATISFIED: 0x6985,
  SM_DATA_OBJECTS_MISSING: 0x6987,
  SM_DATA_OBJECTS_INCORRECT: 0x6988,
  WRONG_DATA: 0x6a80,
  FUNCTION_NOT_SUPPORTED: 0x6a81,
  FILE_NOT_FOUND: 0x6a82,
  INCORRECT_P1P2: 0x6a86,
  REFERENCED_DATA_NOT_FOUND: 0x6a88,
  WRONG_P1P2: 0x6b00, // offset beyond end of file
  INS_NOT_SUPPORTED: 0x6d00,
  CLA_NOT_SUPPORTED: 0x6e00,
  NO_PRECISE_DIAGNOSIS: 0x6f00,
  VERIFICATION_FAILED: 0x6300,
} as const;

export type SwCategory =
  | "ok"
  | "warning"
  | "length"
  | "security"
  | "secure-messaging"
  | "not-found"
  | "unsupported"
  | "reader-stack"
  | "other";

export interface SwInfo {
  sw: number;
  category: SwCategory;
  meaning: string;
}

/** 6Cxx: wrong Le, xx = exact length available. */
export function isWrongLe(sw: number): boolean {
  return (sw & 0xff00) === 0x6c00;
}

/** 61xx: more data available with GET RESPONSE. */
export function isMoreData(sw: number): boolean {
  return (sw & 0xff00) === 0x6100;
}

/**
 * Status words no ICAO chip sends: reader/driver stacks produce them when the RF
 * exchange failed (lost field, brownout, document moved, reader timeout).
 */
export function isReaderStackSw(sw: number): boolean {
  return sw === 0x6f00 || sw === 0x6f01 || sw === 0x6600 || ((sw & 0xff00) === 0x6f00 && sw !== 0x6f00);
}

/** Whether `sw` is one of the status words listed in this module's table. */
export function isListedSw(sw: number): boolean {
  return TABLE[sw] !== undefined;
}

export function describeSw(sw: number): SwInfo {
  const known = TABLE[sw];
  if (known) return { sw, category: known[0], meaning: known[1] };
  if (isWrongLe(sw)) return { sw, category: "length", meaning: `wrong Le: ${sw & 0xff} bytes available` };
  if (isMoreData(sw)) return { sw, category: "warning", meaning: `${sw & 0xff || 256} more bytes available` };
  if ((sw & 0xfff0) === 0x63c0) return { sw, category: "security", meaning: `verification failed, ${sw & 0xf} tries left` };
  if (isReaderStackSw(sw)) return { sw, category: "reader-stack", meaning: "the card did not answer or the RF exchange failed (reader stack)" };
  return { sw, category: "other", meaning: `status ${hex4(sw)}` };
}

const TABLE: Record<number, [SwCategory, string]> = {
  0x9000: ["ok", "success"],
  0x6282: ["warning", "end of file reached before Ne bytes"],
  0x6300: ["security", "verification failed (wrong access key?)"],
  0x6700: ["length", "wrong length"],
  0x6881: ["unsupported", "logical channel not supported"],
  0x6882: ["secure-messaging", "secure messaging not supported"],
  0x6982: ["security", "security status not satisfied"],
  0x6983: ["security", "authentication method blocked"],
  0x6984: ["security", "reference data not usable"],
  0x6985: ["security", "conditions of use not satisfied"],
  0x6986: ["security", "command not allowed (no current EF)"],
  0x6987: ["secure-messaging", "expected secure messaging data objects missing"],
  0x6988: ["secure-messaging", "secure messaging data objects incorrect"],
  0x6a80: ["other", "incorrect parameters in the data field"],
  0x6a81: ["unsupported", "function not supported"],
  0x6a82: ["not-found", "file or application not found"],
  0x6a86: ["other", "incorrect parameters P1-P2"],
  0x6a88: ["not-found", "referenced data not found"],
  0x6b00: ["length", "wrong parameters P1-P2 (offset beyond end of file)"],
  0x6d00: ["unsupported", "instruction not supported"],
  0x6e00: ["unsupported", "class not supported"],
  0x6f00: ["reader-stack", "no precise diagnosis: the card did not answer or the RF exchange failed"],
  0x6f01: ["reader-stack", "the card did not answer in time (reader stack)"],
  0x6600: ["reader-stack", "RF transmission error (reader stack)"],
};
