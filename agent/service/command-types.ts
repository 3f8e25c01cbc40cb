/**
 * The remote commands and their replies, as the agent and its requesters see them
 * (deploy/asyncapi.yaml): command names and fields, reply shapes and the error codes a
 * reply can carry. Validation is in command-validation.ts, routing in command-dispatcher.ts.
 */
import type { AccessKey } from "./access-key.ts";
import type { SealedEnvelope } from "./envelope.ts";
import type { FileKey } from "../reading/read-result.ts";

export const COMMAND_NAMES = ["read", "diagnose", "ping"] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

/** Reply error codes (deploy/asyncapi.yaml's CommandErrorCode is generated from this list). */
export const COMMAND_ERROR_CODES = [
  "BAD_JSON",
  "TOO_LARGE",
  "UNKNOWN_COMMAND",
  "MISSING_FIELD",
  "BAD_FIELD",
  "BAD_CHECK_DIGIT",
  "PLAINTEXT_ACCESS_KEY",
  "BUSY",
  "DUPLICATE",
  "EXPIRED",
  "NOT_SUPPORTED",
  "TIMEOUT",
  "NO_READER",
  "ACCESS_DENIED",
  "CARD_ERROR",
  "TRANSPORT",
  "INTERNAL",
] as const;
export type ErrorCode = (typeof COMMAND_ERROR_CODES)[number];

interface CommandBase {
  id: string;
  /** The requester's X25519 public key: the result is sealed to it (and a sealed access key must come from it). */
  replyPublicKey?: Uint8Array;
}
export interface PingCommand extends CommandBase {
  command: "ping";
}
export interface ReadCommand extends CommandBase {
  command: "read";
  accessKey: AccessKey;
  /** Data groups to read; absent: every data group the signed EF.SOD lists (DG3/DG4 aside). */
  files?: FileKey[];
  /** Part of a reader name (case-insensitive); any selected reader when absent. */
  reader?: string;
  timeoutS: number;
  includePersonalData: boolean;
}
export interface DiagnoseCommand extends CommandBase {
  command: "diagnose";
  reader?: string;
  count: number;
}
export type AgentCommand = PingCommand | ReadCommand | DiagnoseCommand;

export interface CommandErrorBody {
  code: ErrorCode;
  message: string;
}

/** Thrown by validation and by handlers to answer with a specific code. */
export class CommandError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = "CommandError";
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------
// Replies

export interface ProgressReply {
  id: string;
  command: CommandName;
  kind: "progress";
  step: string;
  at: string;
  detail?: Record<string, unknown>;
}
export interface ResultReply {
  id: string;
  command: CommandName;
  kind: "result";
  ok: true;
  /** In clear: only for a command without replyPublicKey. */
  result?: unknown;
  /** The result sealed to the command's replyPublicKey by the agent's key (envelope.ts, kind "reply"). */
  sealed?: SealedEnvelope;
}
export interface ErrorReply {
  id?: string;
  command?: CommandName;
  kind: "result";
  ok: false;
  error: CommandErrorBody;
}
export type FinalReply = ResultReply | ErrorReply;
