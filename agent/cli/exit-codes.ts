/** Process exit codes of the CLI (documented in the README). */
import { AccessDeniedError, CardStatusError, ConfigError, ParseError, SecureMessagingError, TransportError, UsageError } from "../errors.ts";

export const EXIT = {
  OK: 0,
  OTHER: 1,
  USAGE: 2,
  NO_READER_OR_CARD: 3,
  ACCESS_DENIED: 4,
  TRANSPORT: 5,
  CARD_OR_DATA: 6,
  VERIFICATION_FAILED: 7,
} as const;

/** Codes that mean "no reader" or "no card" rather than a broken link. */
const ABSENCE_CODES = new Set([
  "SCARD_E_NO_SERVICE",
  "SCARD_E_NO_READERS_AVAILABLE",
  "SCARD_E_UNKNOWN_READER",
  "SCARD_E_NO_SMARTCARD",
  "SCARD_W_REMOVED_CARD",
  "NO_READER",
  "NO_CARD",
]);

export function exitCodeFor(e: unknown): number {
  if (e instanceof UsageError || e instanceof ConfigError) return EXIT.USAGE;
  if (e instanceof AccessDeniedError) return EXIT.ACCESS_DENIED;
  if (e instanceof TransportError) return ABSENCE_CODES.has(e.code) ? EXIT.NO_READER_OR_CARD : EXIT.TRANSPORT;
  if (e instanceof SecureMessagingError) return EXIT.TRANSPORT;
  if (e instanceof CardStatusError || e instanceof ParseError) return EXIT.CARD_OR_DATA;
  return EXIT.OTHER;
}
