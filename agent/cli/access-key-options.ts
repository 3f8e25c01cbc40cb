/**
 * The access key options that `read` and `remote read` share: --doc/--dob/--expiry or --key-file
 * (the MRZ key) and --can, checked by the MRZ rules of icao/mrz-key.ts. Errors are UsageErrors
 * (exit 2) that name the option, never its value.
 */
import { readFileSync } from "node:fs";
import { UsageError } from "../errors.ts";
import { accessKeyFromFields, type BacAccessKey } from "../icao/mrz-key.ts";

/** --can: the 6-digit card access number (never echoed in errors). */
export function canFrom(o: Record<string, unknown>): string | undefined {
  if (o.can === undefined) return undefined;
  const can = String(o.can).replace(/\s+/g, "");
  if (!/^[0-9]{6}$/.test(can)) throw new UsageError("--can must be the 6 digits printed on the document", "can");
  return can;
}

/** The MRZ key from --key-file or --doc/--dob/--expiry. */
export function accessKeyFrom(o: Record<string, unknown>): BacAccessKey {
  if (typeof o["key-file"] === "string") {
    if (o.doc !== undefined || o.dob !== undefined || o.expiry !== undefined) throw new UsageError("use either --key-file or --doc/--dob/--expiry", "key-file");
    let text: string;
    try {
      text = readFileSync(o["key-file"], "utf8");
    } catch (e) {
      throw new UsageError(`cannot read --key-file: ${(e as NodeJS.ErrnoException).code ?? "error"}`, "key-file");
    }
    const parts = text.trim().split(/\s+/);
    if (parts.length !== 3) throw new UsageError("--key-file must hold one line: DOCUMENT-NUMBER YYMMDD YYMMDD", "key-file");
    return accessKeyFromFields(
      { documentNumber: parts[0], dateOfBirth: parts[1], dateOfExpiry: parts[2] },
      { documentNumber: "--key-file's document number", dateOfBirth: "--key-file's date of birth", dateOfExpiry: "--key-file's date of expiry" },
    );
  }
  for (const k of ["doc", "dob", "expiry"] as const) {
    if (typeof o[k] !== "string") throw new UsageError(`missing --${k}: the access key is the document number, date of birth and date of expiry (see --help)`, k);
  }
  return accessKeyFromFields({ documentNumber: o.doc, dateOfBirth: o.dob, dateOfExpiry: o.expiry }, { documentNumber: "--doc", dateOfBirth: "--dob", dateOfExpiry: "--expiry" });
}

