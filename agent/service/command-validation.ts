/**
 * Validation of a remote command's payload: size, JSON, the command name (topic and body),
 * the id and every field, before anything runs. Messages name fields and problems, never
 * values (an access key is the document's secret).
 */
import type { FileKey } from "../reading/read-result.ts";
import { AccessKeyProblem, parseAccessKey, type AccessKey } from "./access-key.ts";
import { COMMAND_NAMES, CommandError, type AgentCommand, type CommandErrorBody, type CommandName, type DiagnoseCommand, type PingCommand, type ReadCommand } from "./command-types.ts";
import { didYouMean } from "./config.ts";
import { SealedKeyProblem } from "./sealed-access-key.ts";
import { x25519PublicKeyProblem } from "./x25519-public-key.ts";

export const MAX_COMMAND_BYTES = 16 * 1024;
/**
 * The largest packet the agent takes: the largest command payload (MAX_COMMAND_BYTES) plus
 * 16 KiB for the fixed header, topic and properties (response topic, correlation data, user
 * properties) of a PUBLISH. MQTT 5: announced as the Maximum Packet Size in CONNECT.
 */
export const MAX_INCOMING_PACKET_BYTES = MAX_COMMAND_BYTES + 16 * 1024;
export const DEFAULT_READ_TIMEOUT_S = 30;
export const MAX_READ_TIMEOUT_S = 600;
export const DEFAULT_DIAGNOSE_COUNT = 10;

export type ParseResult =
  | { ok: true; command: AgentCommand }
  | { ok: false; id?: string; command?: string; error: CommandErrorBody };

/** A command id: 1-128 printable ASCII characters, no spaces. */
export const COMMAND_ID = /^[\x21-\x7e]{1,128}$/;
const FILE = /^(COM|SOD|DG([1-9]|1[0-6]))$/;
/** `reply` is the 3.1.1 form's routing (command-wire.ts reads it; ignored under MQTT 5). */
const FIELDS: Record<CommandName, readonly string[]> = {
  ping: ["id", "command", "replyPublicKey", "reply"],
  read: ["id", "command", "sealedAccessKey", "accessKey", "files", "reader", "timeoutS", "includePersonalData", "replyPublicKey", "reply"],
  diagnose: ["id", "command", "reader", "count", "replyPublicKey", "reply"],
};

/** How access keys are accepted (the agent's key opens sealed ones; plaintext only on a test bench). */
export interface ParseOptions {
  /** Opens a read's sealedAccessKey for command `id`, from the holder of `operatorPublicKey` (agent-key.ts). */
  openAccessKey?: (id: string, operatorPublicKey: Uint8Array, envelope: unknown) => AccessKey;
  /** commands.allow_plaintext_access_key: accept `accessKey` in clear (default false). */
  allowPlaintextAccessKey?: boolean;
}

/**
 * Validates a command payload. `topicCommand` is the last level of the cmd topic; when the body
 * also names a command the two must agree.
 */
export function parseCommand(payload: Uint8Array, topicCommand?: string, opts: ParseOptions = {}): ParseResult {
  if (payload.length > MAX_COMMAND_BYTES) {
    return { ok: false, error: { code: "TOO_LARGE", message: `command payload is ${payload.length} bytes; the limit is ${MAX_COMMAND_BYTES}` } };
  }
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch {
    // The parser's message quotes the input: not repeated.
    return { ok: false, error: { code: "BAD_JSON", message: "command payload is not valid UTF-8 JSON" } };
  }
  const rawId = typeof body === "object" && body !== null ? (body as Record<string, unknown>).id : undefined;
  const id = typeof rawId === "string" && COMMAND_ID.test(rawId) ? rawId : undefined;
  let name: string | undefined = topicCommand;
  try {
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw new CommandError("BAD_JSON", "command payload must be a JSON object");
    const b = body as Record<string, unknown>;
    if (topicCommand !== undefined && !isCommandName(topicCommand)) {
      throw new CommandError("UNKNOWN_COMMAND", `unknown command ${JSON.stringify(topicCommand)}${didYouMean(topicCommand, COMMAND_NAMES)}; known: ${COMMAND_NAMES.join(", ")}`);
    }
    if (b.command !== undefined) {
      if (typeof b.command !== "string") throw new CommandError("BAD_FIELD", "command must be a string");
      if (!isCommandName(b.command)) {
        throw new CommandError("UNKNOWN_COMMAND", `unknown command ${JSON.stringify(b.command.slice(0, 32))}${didYouMean(b.command, COMMAND_NAMES)}; known: ${COMMAND_NAMES.join(", ")}`);
      }
      if (topicCommand !== undefined && b.command !== topicCommand) throw new CommandError("BAD_FIELD", `command "${b.command}" does not match the topic's command "${topicCommand}"`);
      name = b.command;
    }
    if (name === undefined) throw new CommandError("MISSING_FIELD", "command is missing");
    if (b.id === undefined) throw new CommandError("MISSING_FIELD", "id is missing (a command id makes retries idempotent)");
    if (id === undefined) throw new CommandError("BAD_FIELD", "id must be a string of 1-128 printable ASCII characters without spaces");
    const cmdName = name as CommandName;
    for (const k of Object.keys(b)) {
      if (!FIELDS[cmdName].includes(k)) throw new CommandError("BAD_FIELD", `${k.slice(0, 64)} is not a field of ${cmdName}${didYouMean(k, FIELDS[cmdName])}`);
    }
    switch (cmdName) {
      case "ping": {
        const cmd: PingCommand = { id, command: "ping" };
        const key = replyKeyField(b);
        if (key) cmd.replyPublicKey = key;
        return { ok: true, command: cmd };
      }
      case "diagnose": {
        const cmd: DiagnoseCommand = { id, command: "diagnose", count: intField(b, "count", 1, 1000, DEFAULT_DIAGNOSE_COUNT) };
        const reader = readerField(b);
        if (reader !== undefined) cmd.reader = reader;
        const key = replyKeyField(b);
        if (key) cmd.replyPublicKey = key;
        return { ok: true, command: cmd };
      }
      case "read":
        return { ok: true, command: parseRead(b, id, opts) };
    }
  } catch (e) {
    const error: CommandErrorBody =
      e instanceof CommandError || e instanceof AccessKeyProblem || e instanceof SealedKeyProblem
        ? { code: e.code, message: e.message }
        : { code: "INTERNAL", message: "command validation failed unexpectedly" };
    const out: ParseResult = { ok: false, error };
    if (id !== undefined) out.id = id;
    if (name !== undefined && isCommandName(name)) out.command = name;
    return out;
  }
}

function parseRead(b: Record<string, unknown>, id: string, opts: ParseOptions): ReadCommand {
  // Refused before anything else is looked at: a key in clear has already been seen by every
  // client allowed to read this topic, and the agent must not act as if that were fine.
  if (b.accessKey !== undefined && b.sealedAccessKey !== undefined) throw new CommandError("BAD_FIELD", "give sealedAccessKey or accessKey, not both");
  if (b.accessKey !== undefined && opts.allowPlaintextAccessKey !== true) {
    throw new CommandError(
      "PLAINTEXT_ACCESS_KEY",
      "accessKey in clear is refused (every client allowed to read the topic sees it): seal it to this agent's public key from its status birth as sealedAccessKey (mrtd-agent remote read does)",
    );
  }
  if (b.accessKey === undefined && b.sealedAccessKey === undefined) throw new CommandError("MISSING_FIELD", "sealedAccessKey is missing (the access key sealed to this agent's public key)");
  let files: FileKey[] | undefined;
  if (b.files !== undefined) {
    if (!Array.isArray(b.files) || b.files.length === 0 || b.files.length > 18) throw new CommandError("BAD_FIELD", "files must be a non-empty array of file names (COM, SOD, DG1..DG16)");
    const seen = new Set<string>();
    for (const [i, f] of b.files.entries()) {
      if (typeof f !== "string" || !FILE.test(f)) throw new CommandError("BAD_FIELD", `files[${i}] must be one of COM, SOD, DG1..DG16`);
      if (seen.has(f)) throw new CommandError("BAD_FIELD", `files[${i}] repeats ${f}`);
      seen.add(f);
    }
    files = b.files as FileKey[];
  }
  const includePersonalData = boolField(b, "includePersonalData", false);
  const timeoutS = intField(b, "timeoutS", 1, MAX_READ_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S);
  const reader = readerField(b);
  const replyPublicKey = replyKeyField(b);
  if (includePersonalData && !replyPublicKey) {
    throw new CommandError("MISSING_FIELD", "replyPublicKey is required when includePersonalData is true (personal data is only sent encrypted)");
  }
  let accessKey: AccessKey;
  if (b.sealedAccessKey !== undefined) {
    if (!replyPublicKey) throw new CommandError("MISSING_FIELD", "replyPublicKey is required with sealedAccessKey (the key it was sealed from, and the result is sealed to)");
    if (!opts.openAccessKey) throw new CommandError("NOT_SUPPORTED", "this agent has no key to open sealed access keys");
    // Last: two X25519 operations, only for a command that is otherwise valid.
    accessKey = opts.openAccessKey(id, replyPublicKey, b.sealedAccessKey);
  } else accessKey = parseAccessKey(b.accessKey, "accessKey");
  const cmd: ReadCommand = { id, command: "read", accessKey, timeoutS, includePersonalData };
  if (files) cmd.files = files;
  if (reader !== undefined) cmd.reader = reader;
  if (replyPublicKey) cmd.replyPublicKey = replyPublicKey;
  return cmd;
}

/** replyPublicKey: base64 of 32 bytes, not a point of small order (checked before any card access). */
function replyKeyField(b: Record<string, unknown>): Uint8Array | undefined {
  if (b.replyPublicKey === undefined) return undefined;
  const k = b.replyPublicKey;
  const bytes = typeof k === "string" && /^[A-Za-z0-9+/]{43}=$/.test(k) ? new Uint8Array(Buffer.from(k, "base64")) : undefined;
  if (!bytes || bytes.length !== 32) throw new CommandError("BAD_FIELD", "replyPublicKey must be a base64 X25519 public key (32 bytes)");
  // Here, not when sealing: a key nothing can be sealed to must not cost a card read first.
  const problem = x25519PublicKeyProblem(bytes);
  if (problem) throw new CommandError("BAD_FIELD", `replyPublicKey ${problem}`);
  return bytes;
}

function intField(b: Record<string, unknown>, key: string, min: number, max: number, dflt: number): number {
  const v = b[key];
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v)) throw new CommandError("BAD_FIELD", `${key} must be an integer`);
  if (v < min || v > max) throw new CommandError("BAD_FIELD", `${key} must be between ${min} and ${max}`);
  return v;
}

function boolField(b: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = b[key];
  if (v === undefined) return dflt;
  if (typeof v !== "boolean") throw new CommandError("BAD_FIELD", `${key} must be true or false`);
  return v;
}

function readerField(b: Record<string, unknown>): string | undefined {
  const v = b.reader;
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v.length === 0 || v.length > 128) throw new CommandError("BAD_FIELD", "reader must be a non-empty string of at most 128 characters");
  return v;
}

function isCommandName(name: string): name is CommandName {
  return (COMMAND_NAMES as readonly string[]).includes(name);
}
