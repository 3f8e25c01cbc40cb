/**
 * Long-term X25519 private keys in files (the agent's `agent.key_file`, an operator's HPKE key):
 * one line of base64 (32 bytes), mode 0600. A key file readable by group or others is refused,
 * as ssh refuses such identity files (the agent's unless agent.strict_key_permissions = false). The agent creates its key on first start when the file
 * does not exist (exclusive create, mode 0600, in a directory it creates 0700).
 */
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { generateKeyPair, publicKeyOf } from "../crypto/hpke.ts";
import { b64 } from "./envelope.ts";

/** A key file problem; the message names the file and the problem, never key bytes. */
export class KeyFileError extends Error {
  readonly file: string;
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = "KeyFileError";
    this.file = file;
  }
}

export interface KeyFilePair {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  /** True when this call created the file. */
  created: boolean;
}

/** Reads a private key file: exists, a regular file, not readable by group/others, one base64 line of 32 bytes. */
export function readPrivateKeyFile(file: string, opts: { strict?: boolean } = {}): KeyFilePair {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    throw new KeyFileError(file, `cannot open the key file (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new KeyFileError(file, "is not a regular file");
    if (opts.strict !== false && (st.mode & 0o077) !== 0) throw new KeyFileError(file, `is readable or writable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
    if (st.size > 1024) throw new KeyFileError(file, "is too large for a key file");
    const text = readFileSync(fd, "utf8").trim();
    if (!/^[A-Za-z0-9+/]{43}=$/.test(text)) throw new KeyFileError(file, "must hold one line: an X25519 private key, 32 bytes in base64 (mrtd-agent remote keygen writes one)");
    const privateKey = new Uint8Array(Buffer.from(text, "base64"));
    return { privateKey, publicKey: publicKeyOf(privateKey), created: false };
  } finally {
    closeSync(fd);
  }
}

/** Creates a new private key file (refuses to overwrite). */
export function createPrivateKeyFile(file: string): KeyFilePair {
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new KeyFileError(file, `cannot create its directory (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
  const kp = generateKeyPair();
  let fd: number;
  try {
    fd = openSync(file, "wx", 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new KeyFileError(file, code === "EEXIST" ? "already exists; not overwritten" : `cannot create the key file (${code ?? "error"})`);
  }
  try {
    writeSync(fd, b64(kp.privateKey) + "\n");
  } finally {
    closeSync(fd);
  }
  return { ...kp, created: true };
}

/** The agent's key: read `file`, or create it when it does not exist. */
export function loadOrCreatePrivateKeyFile(file: string, opts: { strict?: boolean } = {}): KeyFilePair {
  try {
    return readPrivateKeyFile(file, opts);
  } catch (e) {
    if (e instanceof KeyFileError && /\(ENOENT\)/.test(e.message)) return createPrivateKeyFile(file);
    throw e;
  }
}
