/**
 * The agent's typed errors. Each carries data for classification and telemetry,
 * never secrets: no MRZ, access key, session key or data-group content may be
 * placed in a message or a field here.
 */

export type ErrorKind =
  | "transport"
  | "card-status"
  | "secure-messaging"
  | "access-denied"
  | "parse"
  | "config"
  | "usage"
  | "verification";

export abstract class MrtdError extends Error {
  abstract readonly kind: ErrorKind;
  /** Whether retrying the operation (after reconnecting if needed) may succeed. */
  abstract readonly retryable: boolean;
}

/** The link to the card failed: PC/SC error, reader-stack pseudo status word, lost card. */
export class TransportError extends MrtdError {
  readonly kind = "transport";
  readonly retryable: boolean;
  /** Stable code, e.g. "SCARD_E_NO_SERVICE", "SCARD_W_REMOVED_CARD", "RF_6F01". */
  readonly code: string;
  /** The PC/SC return code when the failure came from pcsc-lite. */
  readonly pcscCode: number | undefined;
  constructor(code: string, message: string, opts: { retryable: boolean; pcscCode?: number; cause?: unknown }) {
    super(message, { cause: opts.cause });
    this.name = "TransportError";
    this.code = code;
    this.retryable = opts.retryable;
    this.pcscCode = opts.pcscCode;
  }
}

/** The card answered with a status word that is not success for this command. */
export class CardStatusError extends MrtdError {
  readonly kind = "card-status";
  readonly retryable = false;
  readonly sw: number;
  /** What was sent, by name only (e.g. "READ BINARY"); never the command data. */
  readonly command: string;
  constructor(sw: number, command: string, message?: string) {
    super(message ?? `${command} failed with status ${hex4(sw)}`);
    this.name = "CardStatusError";
    this.sw = sw;
    this.command = command;
  }
}

/** Secure messaging is broken (bad MAC, missing DO, SSC out of step): the session is dead. */
export class SecureMessagingError extends MrtdError {
  readonly kind = "secure-messaging";
  readonly retryable = true;
  readonly reason: string;
  readonly sw: number | undefined;
  constructor(reason: string, message: string, sw?: number) {
    super(message);
    this.name = "SecureMessagingError";
    this.reason = reason;
    this.sw = sw;
  }
}

/** The card refused the access key. Carries no key material. */
export class AccessDeniedError extends MrtdError {
  readonly kind = "access-denied";
  readonly retryable = false;
  readonly sw: number | undefined;
  /** Which access control refused the key. */
  readonly protocol: "BAC" | "PACE";
  constructor(message = "access denied: check document number, date of birth and expiry", sw?: number, protocol: "BAC" | "PACE" = "BAC") {
    super(message);
    this.name = "AccessDeniedError";
    this.sw = sw;
    this.protocol = protocol;
  }
}

/**
 * PACE could not run or the chip failed it (ICAO 9303-11 §4.4): "unsupported" (no PACEInfo this
 * agent supports, or MSE:Set AT refused in both forms: BAC may still work), "token-mismatch"
 * (the chip's authentication token does not verify), "protocol" (a malformed GENERAL
 * AUTHENTICATE exchange or an invalid public value). Carries no key material.
 */
export class PaceError extends MrtdError {
  readonly kind = "card-status";
  readonly retryable: boolean;
  readonly reason: "unsupported" | "token-mismatch" | "protocol";
  readonly sw: number | undefined;
  constructor(reason: PaceError["reason"], message: string, sw?: number) {
    super(message);
    this.name = "PaceError";
    this.reason = reason;
    this.sw = sw;
    // a garbled exchange on a noisy link may pass on a second attempt; the others will not
    this.retryable = reason === "protocol";
  }
}

/** Malformed data from the card or a file. */
export class ParseError extends MrtdError {
  readonly kind = "parse";
  readonly retryable = false;
  readonly offset: number | undefined;
  readonly tag: number | undefined;
  constructor(message: string, opts: { offset?: number; tag?: number; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = "ParseError";
    this.offset = opts.offset;
    this.tag = opts.tag;
  }
}

/** Invalid configuration: names the file and key, never a secret value. */
export class ConfigError extends MrtdError {
  readonly kind = "config";
  readonly retryable = false;
  readonly file: string | undefined;
  readonly key: string | undefined;
  constructor(message: string, opts: { file?: string; key?: string } = {}) {
    super(message);
    this.name = "ConfigError";
    this.file = opts.file;
    this.key = opts.key;
  }
}

/** Invalid command-line or command input. */
export class UsageError extends MrtdError {
  readonly kind = "usage";
  readonly retryable = false;
  readonly field: string | undefined;
  constructor(message: string, field?: string) {
    super(message);
    this.name = "UsageError";
    this.field = field;
  }
}

export function hex4(sw: number): string {
  return sw.toString(16).toUpperCase().padStart(4, "0");
}
