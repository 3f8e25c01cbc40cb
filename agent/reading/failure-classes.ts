/**
 * Failure taxonomy of a passport read: every failure gets a stable code, the layer it
 * came from, a plain explanation, likely causes and a recommended action. Layers follow the
 * stack: pcscd service → reader (PC/SC) → RF link (reader-stack pseudo status words, ISO 14443)
 * → card status words (ISO 7816-4 §5.6, ICAO 9303-10/11) → secure messaging (9303-11 §9.8) →
 * access control → data. Causes for 6F00/6F01/6600 and 6988 come from the field notes
 * (PR533 reader through CCID on an embedded board: 6F01 after 2.7 s, then "card absent").
 */
import { AccessDeniedError, CardStatusError, ConfigError, hex4, MrtdError, PaceError, ParseError, SecureMessagingError, TransportError, UsageError } from "../errors.ts";
import { isReaderStackSw, isWrongLe } from "../iso7816/status-words.ts";

export type FailureLayer = "service" | "reader" | "rf-link" | "card" | "secure-messaging" | "access" | "data" | "local";

export interface FailureClass {
  /** Stable code for logs, telemetry and --json, e.g. "RF_TIMEOUT". */
  code: string;
  layer: FailureLayer;
  /** One sentence an operator understands. */
  explanation: string;
  likelyCauses: string[];
  action: string;
  /** Whether reconnecting / re-authenticating and trying again may succeed. */
  retryable: boolean;
  /** Whether the secure-messaging session must be considered dead after it. */
  sessionDead: boolean;
}

/** A classified failure: the class plus what was observed (never data or keys). */
export interface ClassifiedFailure extends FailureClass {
  /** The raw code seen: a PC/SC name (SCARD_E_...), a status word ("6F01") or an error reason. */
  observed: string;
  /** The command that failed, by name only. */
  command?: string;
  /** How long the failed exchange took. */
  elapsedMs?: number;
  /** The reader's response timeout the elapsed time is compared with. */
  readerTimeoutMs?: number;
  /** Plain remark on elapsed vs timeout, e.g. "answered after 2712 ms, 90% of the reader's 3000 ms timeout". */
  timing?: string;
}

const C = (
  code: string,
  layer: FailureLayer,
  explanation: string,
  likelyCauses: string[],
  action: string,
  retryable: boolean,
  sessionDead: boolean,
): FailureClass => ({ code, layer, explanation, likelyCauses, action, retryable, sessionDead });

const KEEP_STILL = "keep the document flat and still on the reader; the read recovers by itself";
const RF_CAUSES = [
  "RF field too weak at this distance (antenna, metal nearby, document not flat)",
  "reader under-powered (USB port or hub cannot supply the field current: brownout)",
  "document moved or lifted during the exchange",
  "reader timeout shorter than the chip's processing time",
];

/** Every class, by code. */
export const FAILURE_CLASSES: Readonly<Record<string, FailureClass>> = Object.freeze(
  Object.fromEntries(
    [
      // service
      C("PCSC_NO_SERVICE", "service", "pcscd (the PC/SC daemon) is not running or was restarted", ["pcscd stopped or crashed", "pcscd restarted (after an update, a USB event, systemd socket activation)"], "start pcscd (`systemctl start pcscd` or `pcscd`); the read reconnects by itself once it is back", true, true),
      C("PCSC_COMM_ERROR", "service", "communication with pcscd failed", ["pcscd crashed or restarted mid-call"], "check that pcscd is running; the read reconnects by itself", true, true),
      C("PCSC_INVALID_HANDLE", "service", "the PC/SC context or card handle is no longer valid", ["pcscd restarted", "the card was reconnected by another path"], "reconnect (done automatically)", true, true),
      C("PCSC_SHARING_VIOLATION", "service", "another application holds the card exclusively", ["a second reader program (pcsc_scan, a browser plug-in, another agent)"], "close the other application that uses the reader", true, false),
      // reader
      C("NO_READER", "reader", "no PC/SC reader is available", ["reader unplugged", "driver (CCID) missing or reader not supported", "USB power or cable fault"], "plug the reader in and check `pcsc_scan` lists it", false, true),
      C("READER_UNAVAILABLE", "reader", "the reader went away during the read", ["USB disconnect (cable, hub, power)", "reader firmware crash"], "check the USB cable and power; use a powered hub on boards", true, true),
      C("NO_CARD", "reader", "no document in the reader's field", ["document not placed, or placed outside the antenna area"], "place the document on the reader (data page on the antenna)", true, true),
      C("CARD_MUTE", "reader", "the reader sees a card that does not answer its activation", ["document not flat or only partly in the field", "weak RF field", "a non-ISO 14443-4 card"], "lift the document and place it again, flat and still", true, true),
      C("CARD_REMOVED", "reader", "the document left the reader's field", ["document moved or lifted", "field dropped (brownout) and the reader re-detected the card"], KEEP_STILL, true, true),
      C("CARD_LOST", "reader", "the document left the reader mid-read and did not come back within the wait window", ["document taken away or moved off the antenna", "the field dropped (brownout) and the reader did not re-detect the card"], "place the document back on the reader and read again; on a board, check the reader's USB power", false, true),
      C("CARD_RESET", "reader", "the card was reset by the reader or another application; its session is gone", ["another application reset the card", "the reader re-powered the field"], "nothing: the read re-authenticates by itself", true, true),
      C("CARD_UNRESPONSIVE", "reader", "the card does not answer a reset", ["document moved", "weak field"], "lift the document and place it again", true, true),
      C("PCSC_TIMEOUT", "reader", "the reader gave up waiting for the card (PC/SC timeout)", RF_CAUSES, KEEP_STILL, true, true),
      C("NOT_TRANSACTED", "reader", "the reader or card did not complete the exchange", ["card lost mid-command (field drop, document moved)", "the reader timed out"], KEEP_STILL, true, true),
      C("COMM_DATA_LOST", "reader", "communication with the card failed and data may be lost", RF_CAUSES, KEEP_STILL, true, true),
      C("NO_RESPONSE", "reader", "the reader returned no response at all (not even a status word)", ["card lost mid-command: the driver returned an empty answer (vsmartcard vpcd does this when the card leaves)"], KEEP_STILL, true, true),
      C("PCSC_OTHER", "reader", "PC/SC reported an error", ["see the PC/SC code"], "retry; if it persists, restart pcscd and replug the reader", true, true),
      // RF link: reader-stack pseudo status words
      C("RF_NO_ANSWER", "rf-link", "6F00 from the reader stack: the card did not answer or the RF exchange failed (no ICAO chip sends 6F00 to these commands)", RF_CAUSES, KEEP_STILL + "; if frequent, check the antenna position and the reader's USB power", true, true),
      C("RF_TIMEOUT", "rf-link", "6F01 from the reader stack: the card did not answer within the reader's timeout", RF_CAUSES, "if it comes close to the reader's timeout, the RF field or power is too weak: check the antenna and USB power", true, true),
      C("RF_TRANSMISSION_ERROR", "rf-link", "6600 from the reader stack: the RF transmission failed (CRC, collision or framing error)", ["interference (other readers, metal, display noise)", ...RF_CAUSES], KEEP_STILL + "; move other RF devices away", true, true),
      C("RF_OTHER", "rf-link", "a 6Fxx pseudo status word from the reader stack: the RF exchange failed", RF_CAUSES, KEEP_STILL, true, true),
      // card status words
      C("SECURITY_STATUS_NOT_SATISFIED", "card", "6982: security status not satisfied (expected before BAC/PACE; after secure messaging is up, an unprotected command has aborted the session)", ["a file read before authentication (normal for BAC-protected chips)", "the file needs EAC (DG3/DG4)"], "authenticate first; EAC-protected files cannot be read with BAC alone", false, true),
      C("SM_OUT_OF_STEP", "secure-messaging", "6987/6988: the card found the secure-messaging objects wrong: send-sequence counter or MAC out of step, the session is dead", ["a lost or repeated APDU left the SSCs out of step", "the chip lost its session (field drop)"], "nothing: the read authenticates again and resumes", true, true),
      C("SM_BAD_MAC", "secure-messaging", "a response failed MAC verification (corrupted on the way, or SSC out of step); its data was discarded", ["RF noise that the reader's CRC did not catch", "SSC out of step after a lost APDU"], "nothing: the read authenticates again and re-reads the block", true, true),
      C("SM_MALFORMED", "secure-messaging", "a response was not valid secure messaging; the session is dead", ["corrupted response", "card bug"], "nothing: the read authenticates again", true, true),
      C("SM_UNPROTECTED", "secure-messaging", "the card answered without secure messaging inside a protected session", ["the chip dropped its session (reset, field loss)"], "nothing: the read authenticates again", true, true),
      C("WRONG_LENGTH", "card", "6700/6Cxx/6282/6B00: the card rejected the requested length or offset", ["the document limits Le (Ukraine ≤ 192, Spanish ID 6282 at 256, Russian 6B00)", "the reader carries no extended-length APDUs"], "nothing: the read falls back to smaller blocks", false, false),
      C("FILE_NOT_FOUND", "card", "6A82: the card has no such file or application", ["the document does not hold this data group", "not an eMRTD"], "read only the files EF.COM lists", false, false),
      C("ACCESS_DENIED", "access", "6300/6985 at EXTERNAL AUTHENTICATE: the access key is wrong", ["document number, date of birth or expiry mistyped", "document number longer than 9 characters not handled"], "check the document number, date of birth and expiry against the MRZ", false, true),
      C("PACE_REQUIRED", "access", "6A88 during BAC: the document requires PACE", ["newer documents (many since 2020, most ID cards) support only PACE", "--auth bac forced BAC on a PACE-only document"], "read with --auth auto (PACE); give the CAN if the document has one", false, true),
      C("PACE_ACCESS_DENIED", "access", "PACE: the chip refused the password at the mutual authentication (6300/63Cx): the CAN or MRZ key is wrong", ["CAN mistyped (6 digits printed on the card face)", "document number, date of birth or expiry mistyped (the MRZ password)", "a CAN given for a document that has another"], "check the CAN or the MRZ fields against the document; after a few wrong CANs the chip suspends the CAN", false, true),
      C("PACE_PASSWORD_BLOCKED", "access", "PACE: the chip blocked or suspended this password after too many wrong attempts (6983)", ["repeated wrong CANs or MRZ keys"], "use the other password (MRZ key instead of CAN, or the reverse); a suspended CAN is resumed by the issuer's procedure", false, true),
      C("PACE_UNSUPPORTED", "access", "PACE could not run: the chip's parameters or the password type are not supported, or the chip refused MSE:Set AT", ["domain parameters this agent lacks (192/224/320-bit curves; Integrated Mapping other than AES-128)", "an ID card that accepts only the CAN (give --can) or only the MRZ key", "the chip refuses the MSE:Set AT forms tried"], "give the other password (--can or the MRZ key); if the document also allows BAC, --auth bac; report the document with --json (it lists what EF.CardAccess offers)", false, true),
      C("PACE_TOKEN_MISMATCH", "access", "PACE: the chip's authentication token did not verify: the chip did not derive the same session keys", ["a faulty or non-conforming chip", "a man-in-the-middle or relay altering the exchange"], "do not trust this document's chip; report it", false, true),
      C("PACE_PROTOCOL", "card", "PACE: a GENERAL AUTHENTICATE exchange was malformed or carried an invalid public key", ["corrupted exchange on a weak RF link", "non-conforming chip"], KEEP_STILL + "; the read retries PACE by itself", true, true),
      C("CARD_STATUS", "card", "the card answered with an unexpected status word", ["card-specific behaviour"], "check the status word against ISO 7816-4", false, false),
      // data / local
      C("PARSE_ERROR", "data", "data from the card did not parse", ["non-conforming document", "hostile or damaged chip"], "report the document type; the raw files may help", false, false),
      C("CONFIG_ERROR", "local", "invalid configuration", ["typo in the configuration file"], "fix the named key in the configuration file", false, false),
      C("USAGE_ERROR", "local", "invalid command-line input", ["missing or mistyped option"], "see --help", false, false),
      C("UNKNOWN", "local", "an unexpected error", ["a bug"], "report it with the redacted trace (--trace)", false, true),
    ].map((c) => [c.code, c]),
  ),
);

/** PC/SC return-code names (and card-source codes) to taxonomy codes. */
const PCSC_TO_CLASS: Record<string, string> = {
  SCARD_E_NO_SERVICE: "PCSC_NO_SERVICE",
  SCARD_E_SERVICE_STOPPED: "PCSC_NO_SERVICE",
  SCARD_F_COMM_ERROR: "PCSC_COMM_ERROR",
  // SCardTransmit cut by a pcscd restart (pcsc-lite 1.9.9, measured); see apdu-meter.ts
  SCARD_W_SECURITY_VIOLATION: "PCSC_COMM_ERROR",
  // SCardTransmit/SCardConnect to a card that left and came back within one presence poll (vpcd, measured)
  SCARD_E_PROTO_MISMATCH: "CARD_REMOVED",
  SCARD_E_INVALID_HANDLE: "PCSC_INVALID_HANDLE",
  SCARD_E_SHARING_VIOLATION: "PCSC_SHARING_VIOLATION",
  SCARD_E_NO_READERS_AVAILABLE: "NO_READER",
  SCARD_E_UNKNOWN_READER: "NO_READER",
  NO_READER: "NO_READER",
  SCARD_E_READER_UNAVAILABLE: "READER_UNAVAILABLE",
  SCARD_E_NO_SMARTCARD: "NO_CARD",
  NO_CARD: "NO_CARD",
  CARD_MUTE: "CARD_MUTE",
  SCARD_W_REMOVED_CARD: "CARD_REMOVED",
  SCARD_W_RESET_CARD: "CARD_RESET",
  SCARD_W_UNRESPONSIVE_CARD: "CARD_UNRESPONSIVE",
  SCARD_W_UNPOWERED_CARD: "CARD_UNRESPONSIVE",
  SCARD_E_TIMEOUT: "PCSC_TIMEOUT",
  SCARD_E_NOT_TRANSACTED: "NOT_TRANSACTED",
  SCARD_E_COMM_DATA_LOST: "COMM_DATA_LOST",
  NO_RESPONSE: "NO_RESPONSE",
  CARD_LOST: "CARD_LOST",
};

/** Taxonomy code of a reader-stack pseudo status word. */
export function readerStackClass(sw: number): string {
  if (sw === 0x6f00) return "RF_NO_ANSWER";
  if (sw === 0x6f01) return "RF_TIMEOUT";
  if (sw === 0x6600) return "RF_TRANSMISSION_ERROR";
  return "RF_OTHER";
}

/** Taxonomy code of a card status word seen as a failure of `command`. */
export function statusWordClass(sw: number, command?: string): string {
  if (isReaderStackSw(sw)) return readerStackClass(sw);
  if (sw === 0x6982) return "SECURITY_STATUS_NOT_SATISFIED";
  if (sw === 0x6987 || sw === 0x6988) return "SM_OUT_OF_STEP";
  if (sw === 0x6700 || isWrongLe(sw) || sw === 0x6282 || sw === 0x6b00) return "WRONG_LENGTH";
  if (sw === 0x6a82) return "FILE_NOT_FOUND";
  if (sw === 0x6a88) return "PACE_REQUIRED";
  if ((sw === 0x6300 || sw === 0x6985) && (command === undefined || /AUTHENTICATE/i.test(command))) return "ACCESS_DENIED";
  return "CARD_STATUS";
}

export interface FailureContext {
  /** How long the failed exchange took (ms). */
  elapsedMs?: number;
  /** The reader's timeout to compare it with (pcsc-lite's CCID driver: 3000 ms). */
  readerTimeoutMs?: number;
  command?: string;
}

/** Default reader response timeout to compare elapsed times with (pcsc-lite CCID, field notes). */
export const DEFAULT_READER_TIMEOUT_MS = 3000;

/** Classifies any error (or a bare status word) into the taxonomy. */
export function classifyFailure(e: unknown, ctx: FailureContext = {}): ClassifiedFailure {
  let code: string;
  let observed: string;
  let command = ctx.command;
  let elapsedMs = ctx.elapsedMs;
  if (typeof e === "number") {
    code = statusWordClass(e, command);
    observed = hex4(e);
  } else if (e instanceof TransportError) {
    observed = e.code;
    const rf = /^RF_([0-9A-F]{4})$/.exec(e.code);
    if (rf) code = readerStackClass(parseInt(rf[1]!, 16));
    else code = PCSC_TO_CLASS[e.code] ?? (e.code.startsWith("SCARD_") ? "PCSC_OTHER" : "UNKNOWN");
    const t = linkElapsed(e);
    if (elapsedMs === undefined && t !== undefined) elapsedMs = t;
  } else if (e instanceof SecureMessagingError) {
    observed = e.sw !== undefined ? `${e.reason} (${hex4(e.sw)})` : e.reason;
    if (e.sw === 0x6987 || e.sw === 0x6988) code = "SM_OUT_OF_STEP";
    else if (e.reason === "bad-mac" || e.reason === "bac-response") code = "SM_BAD_MAC";
    else if (e.reason === "unprotected-response" || e.reason === "missing-mac") code = e.sw === 0x6987 || e.sw === 0x6988 ? "SM_OUT_OF_STEP" : "SM_UNPROTECTED";
    else code = "SM_MALFORMED";
  } else if (e instanceof AccessDeniedError) {
    observed = e.sw !== undefined ? hex4(e.sw) : "access-denied";
    if (e.protocol === "PACE") code = e.sw === 0x6983 ? "PACE_PASSWORD_BLOCKED" : e.sw === 0x6a88 ? "PACE_UNSUPPORTED" : "PACE_ACCESS_DENIED";
    else code = e.sw === 0x6a88 ? "PACE_REQUIRED" : "ACCESS_DENIED";
  } else if (e instanceof PaceError) {
    observed = e.sw !== undefined ? `${e.reason} (${hex4(e.sw)})` : e.reason;
    code = e.reason === "unsupported" ? "PACE_UNSUPPORTED" : e.reason === "token-mismatch" ? "PACE_TOKEN_MISMATCH" : "PACE_PROTOCOL";
  } else if (e instanceof CardStatusError) {
    observed = hex4(e.sw);
    command ??= e.command;
    code = statusWordClass(e.sw, e.command);
  } else if (e instanceof ParseError) {
    observed = "parse";
    code = "PARSE_ERROR";
  } else if (e instanceof ConfigError) {
    observed = "config";
    code = "CONFIG_ERROR";
  } else if (e instanceof UsageError) {
    observed = "usage";
    code = "USAGE_ERROR";
  } else {
    observed = e instanceof MrtdError ? e.kind : ((e as Error)?.name ?? "unknown");
    code = "UNKNOWN";
  }
  const cls = FAILURE_CLASSES[code] ?? FAILURE_CLASSES.UNKNOWN!;
  const out: ClassifiedFailure = { ...cls, likelyCauses: [...cls.likelyCauses], observed };
  if (command !== undefined) out.command = command;
  if (elapsedMs !== undefined) {
    out.elapsedMs = Math.round(elapsedMs * 10) / 10;
    if (cls.layer === "rf-link" || cls.layer === "reader") {
      const timeout = ctx.readerTimeoutMs ?? DEFAULT_READER_TIMEOUT_MS;
      out.readerTimeoutMs = timeout;
      out.timing = timingRemark(elapsedMs, timeout);
    }
  }
  return out;
}

/** "after 2712 ms: 90% of the reader's 3000 ms timeout (the card was probably still working)". */
export function timingRemark(elapsedMs: number, timeoutMs: number): string {
  const pct = Math.round((elapsedMs / timeoutMs) * 100);
  const ms = Math.round(elapsedMs);
  if (pct >= 80) return `after ${ms} ms: ${pct}% of the reader's ${timeoutMs} ms timeout (the card was slow or the field too weak to power it fully)`;
  if (pct <= 10) return `after ${ms} ms: immediately (${pct}% of the reader's ${timeoutMs} ms timeout): the field or the card was lost, not slow`;
  return `after ${ms} ms (${pct}% of the reader's ${timeoutMs} ms timeout)`;
}

/** One line: "RF_TIMEOUT (rf-link, 6F01 to READ BINARY after 2712 ms ...): explanation. Action: ...". */
export function formatFailure(f: ClassifiedFailure): string {
  const where = [f.observed !== f.code ? f.observed : undefined, f.command ? `to ${f.command}` : undefined, f.timing].filter(Boolean).join(" ");
  return `${f.code} (${f.layer}${where ? `: ${where}` : ""}): ${f.explanation}. Likely: ${f.likelyCauses.join("; ")}. Action: ${f.action}`;
}

const ELAPSED = new WeakMap<object, number>();

/** Remembers how long the exchange that raised `e` took (set by the APDU meter). */
export function noteLinkElapsed(e: object, ms: number): void {
  ELAPSED.set(e, ms);
}

export function linkElapsed(e: unknown): number | undefined {
  return typeof e === "object" && e !== null ? ELAPSED.get(e) : undefined;
}
