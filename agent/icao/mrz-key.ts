/**
 * The BAC/PACE access key from the MRZ (ICAO 9303-11 §9.7.2, Appendix D.2; field rules from 9303-3 §4.9
 * and 9303-4/-5): MRZ_information = document number ‖ check digit ‖ date of birth ‖ check digit ‖
 * date of expiry ‖ check digit, and the BAC key seed Kseed = SHA-1(MRZ_information)[0..15].
 *
 * Errors name the field and the rule, never the value: these are personal data.
 */
import { UsageError } from "../errors.ts";
import { sha1 } from "../crypto/hash.ts";
import { checkDigit } from "./check-digit.ts";

export interface BacAccessKey {
  documentNumber: string;
  /** YYMMDD */
  dateOfBirth: string;
  /** YYMMDD */
  dateOfExpiry: string;
}

/**
 * Upper-cases, trims and removes all whitespace; strips trailing '<' fillers from the document
 * number (mrzInformation adds the fillers the MRZ needs back).
 */
export function normalizeAccessKey(k: BacAccessKey): BacAccessKey {
  const clean = (s: string) => String(s).replace(/\s+/g, "").toUpperCase();
  return {
    documentNumber: clean(k.documentNumber).replace(/<+$/, ""),
    dateOfBirth: clean(k.dateOfBirth),
    dateOfExpiry: clean(k.dateOfExpiry),
  };
}

/** Maximum document-number length: 9 in the MRZ field plus the TD1 optional-data overflow (9303-5 §4.2.4, note j). */
const MAX_DOCUMENT_NUMBER = 22;
const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

export type AccessKeyProblemCode = "MISSING_FIELD" | "BAD_FIELD" | "BAD_CHECK_DIGIT";

/**
 * An access key that breaks an MRZ rule. A UsageError (exit 2 on the command line) with a code for
 * remote replies (`BAD_FIELD`, ...). `field` and the message name the field as the caller spells it
 * (`--doc`, `accessKey.documentNumber`, `document_number`), never its value.
 */
export class AccessKeyProblem extends UsageError {
  readonly code: AccessKeyProblemCode;
  override readonly field: string;
  constructor(code: AccessKeyProblemCode, field: string, message: string) {
    super(message, field);
    this.name = "AccessKeyProblem";
    this.code = code;
    this.field = field;
  }
}

/** How each field of the key is named in messages: option names, JSON paths or config keys. */
export interface AccessKeyFieldNames {
  documentNumber: string;
  dateOfBirth: string;
  dateOfExpiry: string;
}

export const ACCESS_KEY_FIELDS: AccessKeyFieldNames = { documentNumber: "documentNumber", dateOfBirth: "dateOfBirth", dateOfExpiry: "dateOfExpiry" };

/**
 * The one check of a BAC access key (the MRZ rules of 9303-3 §4.6 and §4.9, 9303-11 §9.7.2), for
 * the CLI, the test bench key and remote commands alike: a document number of 1 to 22 characters
 * of A-Z, 0-9 and '<' that starts with a letter or digit (the MRZ field is left-aligned, '<' is
 * only a filler), dates YYMMDD with a real month and day. Expects a normalized key. Throws
 * AccessKeyProblem (BAD_FIELD) naming the first bad field.
 */
export function validateAccessKey(k: BacAccessKey, names: AccessKeyFieldNames = ACCESS_KEY_FIELDS): void {
  const doc = k.documentNumber;
  if (typeof doc !== "string" || doc.length < 1 || doc.length > MAX_DOCUMENT_NUMBER) {
    throw new AccessKeyProblem("BAD_FIELD", names.documentNumber, `${names.documentNumber} must be 1 to ${MAX_DOCUMENT_NUMBER} characters`);
  }
  if (!/^[A-Z0-9][A-Z0-9<]*$/.test(doc)) {
    throw new AccessKeyProblem("BAD_FIELD", names.documentNumber, `${names.documentNumber} may contain only A-Z, 0-9 and '<' and must start with a letter or digit`);
  }
  validateDate(k.dateOfBirth, names.dateOfBirth);
  validateDate(k.dateOfExpiry, names.dateOfExpiry);
}

function validateDate(d: string, field: string): void {
  if (typeof d !== "string" || !/^[0-9]{6}$/.test(d)) throw new AccessKeyProblem("BAD_FIELD", field, `${field} must be 6 digits YYMMDD`);
  const month = Number(d.slice(2, 4)), day = Number(d.slice(4, 6));
  if (month < 1 || month > 12) throw new AccessKeyProblem("BAD_FIELD", field, `${field} month must be 01 to 12`);
  // February allows 29: the century (hence leap year) is not known from YY.
  if (day < 1 || day > DAYS_IN_MONTH[month - 1]!) throw new AccessKeyProblem("BAD_FIELD", field, `${field} day is not valid for its month`);
}

/**
 * Normalizes and validates the three fields as typed (strings of unknown shape from a command or
 * a file): the access key to use, or AccessKeyProblem (MISSING_FIELD for an absent field,
 * BAD_FIELD for a non-string or a broken rule).
 */
export function accessKeyFromFields(fields: { documentNumber?: unknown; dateOfBirth?: unknown; dateOfExpiry?: unknown }, names: AccessKeyFieldNames = ACCESS_KEY_FIELDS): BacAccessKey {
  for (const f of ["documentNumber", "dateOfBirth", "dateOfExpiry"] as const) {
    if (fields[f] === undefined) throw new AccessKeyProblem("MISSING_FIELD", names[f], `${names[f]} is missing`);
    if (typeof fields[f] !== "string") throw new AccessKeyProblem("BAD_FIELD", names[f], `${names[f]} must be a string`);
  }
  const key = normalizeAccessKey(fields as BacAccessKey);
  validateAccessKey(key, names);
  return key;
}

/**
 * The access key from MRZ text: a TD3 second line (44 characters, 9303-4 §4.2.2) or the
 * 24-character MRZ information (number ‖ cd ‖ birth ‖ cd ‖ expiry ‖ cd). Check digits are
 * verified (BAD_CHECK_DIGIT); then the same rules as accessKeyFromFields.
 */
export function accessKeyFromMrz(value: unknown, field: string): BacAccessKey {
  if (typeof value !== "string") throw new AccessKeyProblem("BAD_FIELD", field, `${field} must be a string`);
  const text = value.replace(/\s+/g, "").toUpperCase();
  if (!/^[A-Z0-9<]+$/.test(text)) throw new AccessKeyProblem("BAD_FIELD", field, `${field} may only hold A-Z, 0-9 and <`);
  let doc: string, docCd: string, dob: string, dobCd: string, doe: string, doeCd: string;
  if (text.length === 44) {
    // number 0-8, cd 9, nationality 10-12, birth 13-18, cd 19, sex 20, expiry 21-26, cd 27
    [doc, docCd, dob, dobCd, doe, doeCd] = [text.slice(0, 9), text[9]!, text.slice(13, 19), text[19]!, text.slice(21, 27), text[27]!];
  } else if (text.length === 24) {
    [doc, docCd, dob, dobCd, doe, doeCd] = [text.slice(0, 9), text[9]!, text.slice(10, 16), text[16]!, text.slice(17, 23), text[23]!];
  } else {
    throw new AccessKeyProblem("BAD_FIELD", field, `${field} must be a TD3 second line (44 characters) or the 24-character MRZ information`);
  }
  const names = { documentNumber: `${field} (document number)`, dateOfBirth: `${field} (date of birth)`, dateOfExpiry: `${field} (date of expiry)` };
  const key = normalizeAccessKey({ documentNumber: doc, dateOfBirth: dob, dateOfExpiry: doe });
  validateAccessKey(key, names);
  const bad = (
    [
      ["document number", doc, docCd],
      ["date of birth", dob, dobCd],
      ["date of expiry", doe, doeCd],
    ] as const
  ).find(([, f, cd]) => String(checkDigit(f)) !== cd);
  if (bad) throw new AccessKeyProblem("BAD_CHECK_DIGIT", field, `${field}: the check digit of the ${bad[0]} does not match`);
  return key;
}

/**
 * MRZ_information (ICAO 9303-11 §9.7.2). Document numbers shorter than 9 characters are padded
 * with '<' to the 9-character MRZ field before the check digit (e.g. Swedish 8-character numbers;
 * leaving the fillers out gives a wrong key: NFCPassportReader issue #73). Longer numbers (TD1
 * overflow into the optional data, Appendix D.2 second example "D23145890734") are used in full,
 * followed by the check digit over the full number, as the chip computes it.
 */
export function mrzInformation(k: BacAccessKey): string {
  const n = normalizeAccessKey(k);
  validateAccessKey(n);
  const doc = n.documentNumber.length < 9 ? n.documentNumber.padEnd(9, "<") : n.documentNumber;
  return `${doc}${checkDigit(doc)}${n.dateOfBirth}${checkDigit(n.dateOfBirth)}${n.dateOfExpiry}${checkDigit(n.dateOfExpiry)}`;
}

/** Kseed = first 16 bytes of SHA-1(MRZ_information) (ICAO 9303-11 §9.7.2). */
export function bacKeySeed(k: BacAccessKey): Uint8Array {
  const digest = sha1(new TextEncoder().encode(mrzInformation(k)));
  const seed = digest.slice(0, 16);
  digest.fill(0);
  return seed;
}
