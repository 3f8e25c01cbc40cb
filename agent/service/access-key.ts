/**
 * Access keys as they arrive from outside (remote `read` commands, the test bench key file):
 * the BAC "MRZ information" triple (ICAO 9303-11 §4.3: document number, date of birth, date of
 * expiry) or a 6-digit CAN (9303-11 §4.4, for PACE), or an MRZ text whose check digits
 * (9303-3 §4.9) are verified. Validation messages name the field and the problem, never the
 * value: the access key is the document's secret.
 */
import { readFileSync } from "node:fs";
import { ConfigError } from "../errors.ts";
import { checkDigit } from "../icao/check-digit.ts";

export type AccessKey =
  | { kind: "mrz"; documentNumber: string; dateOfBirth: string; dateOfExpiry: string }
  | { kind: "can"; can: string };

export type AccessKeyProblemCode = "MISSING_FIELD" | "BAD_FIELD" | "BAD_CHECK_DIGIT";

export class AccessKeyProblem extends Error {
  readonly code: AccessKeyProblemCode;
  readonly field: string;
  constructor(code: AccessKeyProblemCode, field: string, message: string) {
    super(message);
    this.name = "AccessKeyProblem";
    this.code = code;
    this.field = field;
  }
}

const DOC_NUMBER = /^[A-Z0-9<]{1,22}$/;
const CAN = /^[0-9]{6}$/;

/**
 * Validates `{ documentNumber, dateOfBirth, dateOfExpiry }`, `{ can }` or `{ mrz }` (a TD3 second
 * line, 44 characters, or the 24-character MRZ information "number+cd dob+cd expiry+cd").
 * `path` prefixes field names in messages. Throws AccessKeyProblem.
 */
export function parseAccessKey(value: unknown, path = "accessKey"): AccessKey {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new AccessKeyProblem("BAD_FIELD", path, `${path} must be an object`);
  const v = value as Record<string, unknown>;
  const keys = Object.keys(v);
  const known = ["documentNumber", "dateOfBirth", "dateOfExpiry", "can", "mrz"];
  const unknown = keys.find((k) => !known.includes(k));
  if (unknown !== undefined) throw new AccessKeyProblem("BAD_FIELD", `${path}.${unknown}`, `${path}.${unknown} is not a known field (use documentNumber/dateOfBirth/dateOfExpiry, can, or mrz)`);
  const forms = [keys.some((k) => k === "documentNumber" || k === "dateOfBirth" || k === "dateOfExpiry"), Object.hasOwn(v, "can"), Object.hasOwn(v, "mrz")].filter(Boolean).length;
  if (forms === 0) throw new AccessKeyProblem("MISSING_FIELD", path, `${path} needs documentNumber, dateOfBirth and dateOfExpiry, or can, or mrz`);
  if (forms > 1) throw new AccessKeyProblem("BAD_FIELD", path, `${path} must use exactly one form: the MRZ triple, can, or mrz`);

  if (Object.hasOwn(v, "can")) {
    if (typeof v.can !== "string" || !CAN.test(v.can)) throw new AccessKeyProblem("BAD_FIELD", `${path}.can`, `${path}.can must be a string of 6 digits`);
    return { kind: "can", can: v.can };
  }
  if (Object.hasOwn(v, "mrz")) return fromMrzText(v.mrz, `${path}.mrz`);

  for (const f of ["documentNumber", "dateOfBirth", "dateOfExpiry"] as const) {
    if (!Object.hasOwn(v, f)) throw new AccessKeyProblem("MISSING_FIELD", `${path}.${f}`, `${path}.${f} is missing`);
    if (typeof v[f] !== "string") throw new AccessKeyProblem("BAD_FIELD", `${path}.${f}`, `${path}.${f} must be a string`);
  }
  const documentNumber = (v.documentNumber as string).toUpperCase();
  if (!DOC_NUMBER.test(documentNumber)) throw new AccessKeyProblem("BAD_FIELD", `${path}.documentNumber`, `${path}.documentNumber must be 1-22 characters of A-Z, 0-9 or <`);
  checkDate(v.dateOfBirth as string, `${path}.dateOfBirth`);
  checkDate(v.dateOfExpiry as string, `${path}.dateOfExpiry`);
  return { kind: "mrz", documentNumber, dateOfBirth: v.dateOfBirth as string, dateOfExpiry: v.dateOfExpiry as string };
}

function fromMrzText(value: unknown, field: string): AccessKey {
  if (typeof value !== "string") throw new AccessKeyProblem("BAD_FIELD", field, `${field} must be a string`);
  const text = value.toUpperCase();
  if (!/^[A-Z0-9<]+$/.test(text)) throw new AccessKeyProblem("BAD_FIELD", field, `${field} may only hold A-Z, 0-9 and <`);
  let doc: string, docCd: string, dob: string, dobCd: string, doe: string, doeCd: string;
  if (text.length === 44) {
    // TD3 line 2 (9303-4 §4.2.2): number 0-8, cd 9, nationality 10-12, birth 13-18, cd 19, sex 20, expiry 21-26, cd 27.
    [doc, docCd, dob, dobCd, doe, doeCd] = [text.slice(0, 9), text[9]!, text.slice(13, 19), text[19]!, text.slice(21, 27), text[27]!];
  } else if (text.length === 24) {
    [doc, docCd, dob, dobCd, doe, doeCd] = [text.slice(0, 9), text[9]!, text.slice(10, 16), text[16]!, text.slice(17, 23), text[23]!];
  } else {
    throw new AccessKeyProblem("BAD_FIELD", field, `${field} must be a TD3 second line (44 characters) or the 24-character MRZ information`);
  }
  checkDate(dob, `${field} (date of birth)`);
  checkDate(doe, `${field} (date of expiry)`);
  const bad = (
    [
      ["document number", doc, docCd],
      ["date of birth", dob, dobCd],
      ["date of expiry", doe, doeCd],
    ] as const
  ).find(([, f, cd]) => String(checkDigit(f)) !== cd);
  if (bad) throw new AccessKeyProblem("BAD_CHECK_DIGIT", field, `${field}: the check digit of the ${bad[0]} does not match`);
  return { kind: "mrz", documentNumber: doc.replace(/<+$/, "") || doc, dateOfBirth: dob, dateOfExpiry: doe };
}

function checkDate(value: string, field: string): void {
  const m = /^([0-9]{2})([0-9]{2})([0-9]{2})$/.exec(value);
  if (!m) throw new AccessKeyProblem("BAD_FIELD", field, `${field} must be YYMMDD (6 digits)`);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const days = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  if (days === undefined || day < 1 || day > days) throw new AccessKeyProblem("BAD_FIELD", field, `${field} is not a calendar date (YYMMDD)`);
}

/**
 * Loads the test bench access key (`readers.test_key_file`): a TOML file with either
 * `document_number`, `date_of_birth`, `date_of_expiry`, or `can`, or `mrz`. Errors name the
 * file and key, never the value.
 */
export function loadTestAccessKey(file: string): AccessKey {
  let doc: Record<string, unknown>;
  try {
    doc = Bun.TOML.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(`${file}: ${code ? `cannot read the test key file (${code})` : "not valid TOML"}`, { file });
  }
  const map: Record<string, string> = { document_number: "documentNumber", date_of_birth: "dateOfBirth", date_of_expiry: "dateOfExpiry", can: "can", mrz: "mrz" };
  const value: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc)) {
    const name = Object.hasOwn(map, k) ? map[k] : undefined; // not `constructor`, `toString`, ...
    if (!name) throw new ConfigError(`${file}: ${k}: unknown key (expected document_number, date_of_birth, date_of_expiry, can or mrz)`, { file, key: k });
    value[name] = v;
  }
  try {
    return parseAccessKey(value, "key");
  } catch (e) {
    if (!(e instanceof AccessKeyProblem)) throw e;
    const snake = e.field.replace(/^key\.?/, "").replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
    throw new ConfigError(`${file}: ${e.message.replace(/^key\.?/, "")}`, { file, key: snake || undefined });
  }
}
