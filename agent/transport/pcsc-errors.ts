/**
 * PC/SC return codes (pcsc-lite pcsclite.h, PC/SC Workgroup spec part 5 "Response codes") mapped to
 * stable names, plain meanings, a retryable flag and a next step, and turned into TransportError.
 */

import { TransportError } from "../errors.ts";

export interface PcscCodeInfo {
  readonly name: string;
  readonly meaning: string;
  /** Whether the same operation may succeed later (after a reconnect, a new card, a restarted pcscd). */
  readonly retryable: boolean;
  /** What an operator or the caller should do, when there is something useful to say. */
  readonly action?: string;
}

const RESTART_PCSCD = "start it with `pcscd` or `systemctl start pcscd`";

/**
 * Every code in pcsc-lite 1.9.9's pcsclite.h, plus SCARD_P_SHUTDOWN (WinSCard). 0x8010001F is both
 * E_UNEXPECTED and E_UNSUPPORTED_FEATURE there; pcsc-lite returns it for "unsupported", hence the name.
 */
export const PCSC_CODES: ReadonlyMap<number, PcscCodeInfo> = new Map<number, PcscCodeInfo>([
  [0x00000000, { name: "SCARD_S_SUCCESS", meaning: "success", retryable: false }],
  [0x80100001, { name: "SCARD_F_INTERNAL_ERROR", meaning: "pcsc-lite internal consistency check failed", retryable: true, action: "restart pcscd if it persists" }],
  [0x80100002, { name: "SCARD_E_CANCELLED", meaning: "the wait was cancelled by SCardCancel", retryable: false }],
  [0x80100003, { name: "SCARD_E_INVALID_HANDLE", meaning: "the context or card handle is no longer valid", retryable: true, action: "reconnect to the card (pcscd may have restarted)" }],
  [0x80100004, { name: "SCARD_E_INVALID_PARAMETER", meaning: "a parameter could not be interpreted", retryable: false }],
  [0x80100005, { name: "SCARD_E_INVALID_TARGET", meaning: "registry startup information is missing or invalid", retryable: false }],
  [0x80100006, { name: "SCARD_E_NO_MEMORY", meaning: "not enough memory", retryable: true }],
  [0x80100007, { name: "SCARD_F_WAITED_TOO_LONG", meaning: "an internal consistency timer expired", retryable: true }],
  [0x80100008, { name: "SCARD_E_INSUFFICIENT_BUFFER", meaning: "the receive buffer is too small for the data", retryable: false }],
  [0x80100009, { name: "SCARD_E_UNKNOWN_READER", meaning: "the reader name is not known to pcscd", retryable: false, action: "check the reader name against the listed readers; the reader may have been unplugged" }],
  [0x8010000a, { name: "SCARD_E_TIMEOUT", meaning: "the timeout expired", retryable: true }],
  [0x8010000b, { name: "SCARD_E_SHARING_VIOLATION", meaning: "another application holds the card", retryable: true, action: "close the other application using the reader" }],
  [0x8010000c, { name: "SCARD_E_NO_SMARTCARD", meaning: "no card in the reader", retryable: true, action: "place the document on the reader" }],
  [0x8010000d, { name: "SCARD_E_UNKNOWN_CARD", meaning: "the card name is not recognised", retryable: false }],
  [0x8010000e, { name: "SCARD_E_CANT_DISPOSE", meaning: "the card cannot be disposed of as requested", retryable: false }],
  [0x8010000f, { name: "SCARD_E_PROTO_MISMATCH", meaning: "the requested protocol is not the one the card uses", retryable: false, action: "connect with protocol \"any\"" }],
  [0x80100010, { name: "SCARD_E_NOT_READY", meaning: "the reader or card is not ready", retryable: true }],
  [0x80100011, { name: "SCARD_E_INVALID_VALUE", meaning: "a parameter value could not be interpreted", retryable: false }],
  [0x80100012, { name: "SCARD_E_SYSTEM_CANCELLED", meaning: "cancelled by the system (shutdown)", retryable: false }],
  [0x80100013, { name: "SCARD_F_COMM_ERROR", meaning: "communication with pcscd failed", retryable: true, action: "check that pcscd is running; reconnect" }],
  [0x80100014, { name: "SCARD_F_UNKNOWN_ERROR", meaning: "an internal error of unknown source", retryable: true }],
  [0x80100015, { name: "SCARD_E_INVALID_ATR", meaning: "an ATR from the registry is invalid", retryable: false }],
  [0x80100016, { name: "SCARD_E_NOT_TRANSACTED", meaning: "the reader or card did not complete the exchange (often: card lost mid-command)", retryable: true, action: "keep the document still on the reader and retry" }],
  [0x80100017, { name: "SCARD_E_READER_UNAVAILABLE", meaning: "the reader is not available (unplugged or failed)", retryable: true, action: "check the reader's USB connection" }],
  [0x80100018, { name: "SCARD_P_SHUTDOWN", meaning: "the operation was aborted to let the server shut down", retryable: true }],
  [0x80100019, { name: "SCARD_E_PCI_TOO_SMALL", meaning: "the PCI receive buffer is too small", retryable: false }],
  [0x8010001a, { name: "SCARD_E_READER_UNSUPPORTED", meaning: "the reader driver does not meet minimal requirements", retryable: false }],
  [0x8010001b, { name: "SCARD_E_DUPLICATE_READER", meaning: "the reader driver did not give a unique reader name", retryable: false }],
  [0x8010001c, { name: "SCARD_E_CARD_UNSUPPORTED", meaning: "the card does not meet minimal requirements", retryable: false }],
  [0x8010001d, { name: "SCARD_E_NO_SERVICE", meaning: "pcscd is not running", retryable: true, action: RESTART_PCSCD }],
  [0x8010001e, { name: "SCARD_E_SERVICE_STOPPED", meaning: "pcscd has shut down", retryable: true, action: RESTART_PCSCD }],
  [0x8010001f, { name: "SCARD_E_UNSUPPORTED_FEATURE", meaning: "not supported by the reader or driver (also SCARD_E_UNEXPECTED)", retryable: false }],
  [0x80100020, { name: "SCARD_E_ICC_INSTALLATION", meaning: "no primary provider for the card", retryable: false }],
  [0x80100021, { name: "SCARD_E_ICC_CREATEORDER", meaning: "object creation order not supported", retryable: false }],
  [0x80100023, { name: "SCARD_E_DIR_NOT_FOUND", meaning: "directory not found on the card", retryable: false }],
  [0x80100024, { name: "SCARD_E_FILE_NOT_FOUND", meaning: "file not found on the card", retryable: false }],
  [0x80100025, { name: "SCARD_E_NO_DIR", meaning: "the path is not a card directory", retryable: false }],
  [0x80100026, { name: "SCARD_E_NO_FILE", meaning: "the path is not a card file", retryable: false }],
  [0x80100027, { name: "SCARD_E_NO_ACCESS", meaning: "access to the file is denied", retryable: false }],
  [0x80100028, { name: "SCARD_E_WRITE_TOO_MANY", meaning: "the card has not enough memory", retryable: false }],
  [0x80100029, { name: "SCARD_E_BAD_SEEK", meaning: "error setting the card file pointer", retryable: false }],
  [0x8010002a, { name: "SCARD_E_INVALID_CHV", meaning: "the PIN is incorrect", retryable: false }],
  [0x8010002b, { name: "SCARD_E_UNKNOWN_RES_MNG", meaning: "unrecognised code from a layered component", retryable: false }],
  [0x8010002c, { name: "SCARD_E_NO_SUCH_CERTIFICATE", meaning: "the certificate does not exist", retryable: false }],
  [0x8010002d, { name: "SCARD_E_CERTIFICATE_UNAVAILABLE", meaning: "the certificate could not be obtained", retryable: false }],
  [0x8010002e, { name: "SCARD_E_NO_READERS_AVAILABLE", meaning: "no reader is connected", retryable: true, action: "plug in the reader and check that its driver is installed" }],
  [0x8010002f, { name: "SCARD_E_COMM_DATA_LOST", meaning: "communication with the card failed; data may be lost", retryable: true, action: "keep the document still on the reader and retry" }],
  [0x80100030, { name: "SCARD_E_NO_KEY_CONTAINER", meaning: "the key container does not exist", retryable: false }],
  [0x80100031, { name: "SCARD_E_SERVER_TOO_BUSY", meaning: "pcscd is too busy", retryable: true }],
  [0x80100065, { name: "SCARD_W_UNSUPPORTED_CARD", meaning: "the reader cannot talk to the card (ATR conflict)", retryable: false }],
  [0x80100066, { name: "SCARD_W_UNRESPONSIVE_CARD", meaning: "the card does not answer a reset", retryable: true, action: "lift the document and place it again" }],
  [0x80100067, { name: "SCARD_W_UNPOWERED_CARD", meaning: "the card is unpowered", retryable: true, action: "reconnect to power the card" }],
  [0x80100068, { name: "SCARD_W_RESET_CARD", meaning: "the card was reset; its session state is gone", retryable: true, action: "reconnect and start the session again" }],
  [0x80100069, { name: "SCARD_W_REMOVED_CARD", meaning: "the card was removed", retryable: true, action: "place the document on the reader again" }],
  [0x8010006a, { name: "SCARD_W_SECURITY_VIOLATION", meaning: "access denied by a security violation", retryable: false }],
  [0x8010006b, { name: "SCARD_W_WRONG_CHV", meaning: "wrong PIN", retryable: false }],
  [0x8010006c, { name: "SCARD_W_CHV_BLOCKED", meaning: "PIN blocked", retryable: false }],
  [0x8010006d, { name: "SCARD_W_EOF", meaning: "end of card file reached", retryable: false }],
  [0x8010006e, { name: "SCARD_W_CANCELLED_BY_USER", meaning: "cancelled by the user", retryable: false }],
  [0x8010006f, { name: "SCARD_W_CARD_NOT_AUTHENTICATED", meaning: "no PIN was presented", retryable: false }],
]);

/** Name, meaning and flags of a return code; unknown codes get a hex name and are not retryable. */
export function pcscCodeInfo(code: number): PcscCodeInfo {
  const known = PCSC_CODES.get(code >>> 0);
  if (known) return known;
  const hexCode = (code >>> 0).toString(16).toUpperCase().padStart(8, "0");
  return { name: `SCARD_0x${hexCode}`, meaning: `unknown PC/SC return code 0x${hexCode}`, retryable: false };
}

export function pcscCodeName(code: number): string {
  return pcscCodeInfo(code).name;
}

/**
 * A TransportError for a failed PC/SC call. `operation` names the call (e.g. "SCardTransmit");
 * the message says what happened and what to do, e.g.
 * "SCardEstablishContext: pcscd is not running (SCARD_E_NO_SERVICE): start it with `pcscd` or `systemctl start pcscd`".
 */
export function pcscError(code: number, operation: string, cause?: unknown): TransportError {
  const info = pcscCodeInfo(code);
  const action = info.action ? `: ${info.action}` : "";
  return new TransportError(info.name, `${operation}: ${info.meaning} (${info.name})${action}`, {
    retryable: info.retryable,
    pcscCode: code >>> 0,
    cause,
  });
}
