/**
 * The Active Authentication exchange (ICAO 9303-11 §6.1): INTERNAL AUTHENTICATE with a fresh
 * 8-byte challenge, sent inside the secure channel; the chip answers with a signature made with
 * the private key whose public key is DG15. Checking that signature is
 * agent/verification/active-authentication.ts's job.
 */
import type { CommandApdu } from "../iso7816/apdu.ts";

export const INS_INTERNAL_AUTHENTICATE = 0x88;
export const AA_CHALLENGE_LENGTH = 8;

/**
 * Largest signature a short-Le 3DES-protected response carries (DO'87' + DO'99' + DO'8E' within
 * 256 bytes); longer ones (RSA-2048) ask for an extended Le.
 */
const SHORT_SM_SIGNATURE_MAX = 223;

/** INTERNAL AUTHENTICATE 00 88 00 00 08 <challenge> Le (9303-11 §6.1). */
export function internalAuthenticateCommand(challenge: Uint8Array, ne = 256): CommandApdu {
  if (challenge.length !== AA_CHALLENGE_LENGTH) throw new RangeError(`challenge must be 8 bytes, got ${challenge.length}`);
  return { cla: 0x00, ins: INS_INTERNAL_AUTHENTICATE, p1: 0x00, p2: 0x00, data: challenge, ne };
}

/** Sends one command over the secure channel (or a test's script). */
export type AaSend = (cmd: CommandApdu) => Promise<{ data: Uint8Array; sw: number }>;

/**
 * Sends INTERNAL AUTHENTICATE with `challenge`, with an extended Le when a signature of
 * `signatureLength` bytes does not fit a short protected response. Returns the chip's answer;
 * errors of `send` (a lost link, a broken channel) propagate.
 */
export function internalAuthenticate(send: AaSend, challenge: Uint8Array, signatureLength: number): Promise<{ data: Uint8Array; sw: number }> {
  return send(internalAuthenticateCommand(challenge, signatureLength > SHORT_SM_SIGNATURE_MAX ? 65536 : 256));
}
