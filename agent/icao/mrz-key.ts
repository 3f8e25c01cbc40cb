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

/** Throws UsageError(message, field) for the first field breaking its rule. Expects a normalized key. */
export function validateAccessKey(k: BacAccessKey): void {
  const doc = k.documentNumber;
  if (typeof doc !== "string" || doc.length < 1 || doc.length > MAX_DOCUMENT_NUMBER) {
    throw new UsageError(`documentNumber must be 1 to ${MAX_DOCUMENT_NUMBER} characters`, "documentNumber");
  }
  if (!/^[A-Z0-9][A-Z0-9<]*$/.test(doc)) {
    throw new UsageError("documentNumber may contain only A-Z, 0-9 and '<' and must start with a letter or digit", "documentNumber");
  }
  validateDate(k.dateOfBirth, "dateOfBirth");
  validateDate(k.dateOfExpiry, "dateOfExpiry");
}

function validateDate(d: string, field: "dateOfBirth" | "dateOfExpiry"): void {
  if (typeof d !== "string" || !/^[0-9]{6}$/.test(d)) throw new UsageError(`${field} must be 6 digits YYMMDD`, field);
  const month = Number(d.slice(2, 4)), day = Number(d.slice(4, 6));
  if (month < 1 || month > 12) throw new UsageError(`${field} month must be 01 to 12`, field);
  // February allows 29: the century (hence leap year) is not known from YY.
  if (day < 1 || day > DAYS_IN_MONTH[month - 1]!) throw new UsageError(`${field} day is not valid for its month`, field);
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
