/**
 * Access keys as they arrive from outside (remote `read` commands, the test bench key file):
 * the BAC "MRZ information" triple (ICAO 9303-11 §4.3: document number, date of birth, date of
 * expiry) or a 6-digit CAN (9303-11 §4.4, for PACE), or an MRZ text whose check digits
 * (9303-3 §4.9) are verified. Validation messages name the field and the problem, never the
 * value: the access key is the document's secret. Pure (no Node or Bun API): the dashboard's page
 * bundles it to check a key before sealing it. The test bench key file is test-access-key.ts.
 */
import { AccessKeyProblem, accessKeyFromFields, accessKeyFromMrz } from "../icao/mrz-key.ts";

export { AccessKeyProblem, type AccessKeyProblemCode } from "../icao/mrz-key.ts";

export type AccessKey =
  | { kind: "mrz"; documentNumber: string; dateOfBirth: string; dateOfExpiry: string }
  | { kind: "can"; can: string };

const CAN = /^[0-9]{6}$/;

/**
 * Validates `{ documentNumber, dateOfBirth, dateOfExpiry }`, `{ can }` or `{ mrz }` (a TD3 second
 * line, 44 characters, or the 24-character MRZ information "number+cd dob+cd expiry+cd").
 * `path` prefixes field names in messages. The MRZ rules are icao/mrz-key.ts's, the same the
 * command line uses; this adds the forms a command or a key file may take. Throws AccessKeyProblem.
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
  const key =
    Object.hasOwn(v, "mrz")
      ? accessKeyFromMrz(v.mrz, `${path}.mrz`)
      : accessKeyFromFields(v, { documentNumber: `${path}.documentNumber`, dateOfBirth: `${path}.dateOfBirth`, dateOfExpiry: `${path}.dateOfExpiry` });
  return { kind: "mrz", ...key };
}
