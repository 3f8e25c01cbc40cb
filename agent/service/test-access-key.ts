/**
 * The test bench access key file (`readers.test_key_file`), checked by the rules of
 * access-key.ts. Kept apart from access-key.ts, which the dashboard's page bundles for the browser.
 */
import { readFileSync } from "node:fs";
import { ConfigError } from "../errors.ts";
import { AccessKeyProblem, parseAccessKey, type AccessKey } from "./access-key.ts";

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
    const toSnake = (name: string) => name.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
    const snake = toSnake(e.field.replace(/^key\.?/, ""));
    const message = e.message.replace(/^key\.?/, "").replace(/^(documentNumber|dateOfBirth|dateOfExpiry)\b/, toSnake);
    throw new ConfigError(`${file}: ${message}`, { file, key: snake || undefined });
  }
}
