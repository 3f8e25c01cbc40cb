/**
 * Basic Access Control, ICAO 9303-11 §4.3 and §9.7 (worked example: Appendix D.3).
 * GET CHALLENGE, then EXTERNAL AUTHENTICATE with E.IFD ‖ M.IFD; the card's E.IC ‖ M.IC is
 * MAC-checked (constant time), its echo of RND.IC and RND.IFD verified, and the session keys and
 * SSC derived. The pure steps are exported so tests can replay Appendix D byte for byte;
 * randomness is a parameter.
 */
import { concat, constantTimeEqual, wipe } from "../bytes.ts";
import { createTdes } from "../crypto/des.ts";
import { pad, retailMac } from "../crypto/iso9797.ts";
import { AccessDeniedError, CardStatusError, ParseError, SecureMessagingError } from "../errors.ts";
import { decodeResponse, encodeCommand } from "../iso7816/apdu.ts";
import { SW } from "../iso7816/status-words.ts";
import type { CardTransport } from "../transport/transport.ts";
import { deriveKey } from "./kdf.ts";

export interface BacSession {
  ksEnc: Uint8Array;
  ksMac: Uint8Array;
  /** Send sequence counter: last 4 bytes of RND.IC ‖ last 4 bytes of RND.IFD (§9.8.6.3). */
  ssc: bigint;
}

/** Kenc and Kmac from Kseed (§9.7.1, counters 1 and 2). */
export function bacKeys(keySeed: Uint8Array): { kEnc: Uint8Array; kMac: Uint8Array } {
  if (keySeed.length !== 16) throw new RangeError(`bacKeys: keySeed must be 16 bytes, got ${keySeed.length}`);
  return { kEnc: deriveKey(keySeed, 1, "3DES"), kMac: deriveKey(keySeed, 2, "3DES") };
}

function checkLen(fn: string, name: string, v: Uint8Array, n: number): void {
  if (!(v instanceof Uint8Array)) throw new TypeError(`${fn}: ${name} must be a Uint8Array`);
  if (v.length !== n) throw new RangeError(`${fn}: ${name} must be ${n} bytes, got ${v.length}`);
}

/** EXTERNAL AUTHENTICATE data: E.IFD = 3DES-CBC(Kenc, RND.IFD ‖ RND.IC ‖ K.IFD), then M.IFD = MAC(Kmac, E.IFD). */
export function buildExternalAuthenticateData(
  kEnc: Uint8Array,
  kMac: Uint8Array,
  rndIc: Uint8Array,
  rndIfd: Uint8Array,
  kIfd: Uint8Array,
): Uint8Array {
  const fn = "buildExternalAuthenticateData";
  checkLen(fn, "kEnc", kEnc, 16);
  checkLen(fn, "kMac", kMac, 16);
  checkLen(fn, "rndIc", rndIc, 8);
  checkLen(fn, "rndIfd", rndIfd, 8);
  checkLen(fn, "kIfd", kIfd, 16);
  const s = concat(rndIfd, rndIc, kIfd);
  const tdes = createTdes(kEnc);
  const eIfd = tdes.cbcEncrypt(s);
  tdes.wipe();
  wipe(s);
  const mIfd = retailMac(kMac, pad(eIfd));
  return concat(eIfd, mIfd);
}

/**
 * Checks the card's EXTERNAL AUTHENTICATE response (E.IC ‖ M.IC, 40 bytes) and derives the session.
 * Throws SecureMessagingError("bac-response") on a bad MAC or a wrong echo of RND.IC / RND.IFD.
 */
export function verifyExternalAuthenticateResponse(
  kEnc: Uint8Array,
  kMac: Uint8Array,
  response: Uint8Array,
  rndIc: Uint8Array,
  rndIfd: Uint8Array,
  kIfd: Uint8Array,
): BacSession {
  const fn = "verifyExternalAuthenticateResponse";
  checkLen(fn, "kEnc", kEnc, 16);
  checkLen(fn, "kMac", kMac, 16);
  checkLen(fn, "rndIc", rndIc, 8);
  checkLen(fn, "rndIfd", rndIfd, 8);
  checkLen(fn, "kIfd", kIfd, 16);
  if (response.length !== 40) {
    throw new SecureMessagingError("bac-response", `EXTERNAL AUTHENTICATE returned ${response.length} bytes, expected 40`);
  }
  const eIc = response.subarray(0, 32);
  const mIc = response.subarray(32, 40);
  const expectedMac = retailMac(kMac, pad(eIc));
  const macOk = constantTimeEqual(expectedMac, mIc);
  wipe(expectedMac);
  if (!macOk) throw new SecureMessagingError("bac-response", "EXTERNAL AUTHENTICATE response MAC (M.IC) does not verify");
  const tdes = createTdes(kEnc);
  const r = tdes.cbcDecrypt(eIc);
  tdes.wipe();
  // Both checks run before deciding, so timing does not tell which half differed.
  const echoOk = constantTimeEqual(r.subarray(0, 8), rndIc) && constantTimeEqual(r.subarray(8, 16), rndIfd);
  if (!echoOk) {
    wipe(r);
    throw new SecureMessagingError("bac-response", "EXTERNAL AUTHENTICATE response does not echo RND.IC and RND.IFD");
  }
  const ksSeed = new Uint8Array(16);
  for (let i = 0; i < 16; i++) ksSeed[i] = kIfd[i]! ^ r[16 + i]!;
  wipe(r);
  const session: BacSession = {
    ksEnc: deriveKey(ksSeed, 1, "3DES"),
    ksMac: deriveKey(ksSeed, 2, "3DES"),
    ssc: initialSsc(rndIc, rndIfd),
  };
  wipe(ksSeed);
  return session;
}

/** SSC = last 4 bytes of RND.IC ‖ last 4 bytes of RND.IFD (§9.8.6.3). */
export function initialSsc(rndIc: Uint8Array, rndIfd: Uint8Array): bigint {
  let v = 0n;
  for (let i = 4; i < 8; i++) v = (v << 8n) | BigInt(rndIc[i]!);
  for (let i = 4; i < 8; i++) v = (v << 8n) | BigInt(rndIfd[i]!);
  return v;
}

/**
 * Status words with which cards refuse EXTERNAL AUTHENTICATE for a wrong access key:
 * 6300 per 9303-11 and BSI TR-03105; some chips answer 63Cx, 6982, 6983 (blocked) or 6985.
 */
function isAccessDenied(sw: number): boolean {
  return (
    sw === SW.VERIFICATION_FAILED ||
    (sw & 0xfff0) === 0x63c0 ||
    sw === SW.SECURITY_STATUS_NOT_SATISFIED ||
    sw === SW.AUTH_METHOD_BLOCKED ||
    sw === SW.CONDITIONS_NOT_SATISFIED
  );
}

/**
 * Runs BAC over the transport. random(n) supplies RND.IFD (8 bytes) then K.IFD (16 bytes).
 * The caller keeps ownership of keySeed; every intermediate key is wiped here.
 */
export async function performBac(
  transport: CardTransport,
  keySeed: Uint8Array,
  random: (n: number) => Uint8Array,
): Promise<BacSession> {
  const { kEnc, kMac } = bacKeys(keySeed);
  let rndIfd: Uint8Array | undefined;
  let kIfd: Uint8Array | undefined;
  try {
    const challenge = decodeResponse(await transport.transmit(encodeCommand({ cla: 0x00, ins: 0x84, p1: 0, p2: 0, ne: 8 })));
    if (challenge.sw !== SW.OK) throw new CardStatusError(challenge.sw, "GET CHALLENGE");
    if (challenge.data.length !== 8) {
      throw new ParseError(`GET CHALLENGE returned ${challenge.data.length} bytes, expected 8`);
    }
    const rndIc = challenge.data;
    rndIfd = random(8);
    kIfd = random(16);
    if (rndIfd.length !== 8 || kIfd.length !== 16) throw new RangeError("performBac: random(n) must return n bytes");
    const data = buildExternalAuthenticateData(kEnc, kMac, rndIc, rndIfd, kIfd);
    const reply = decodeResponse(
      await transport.transmit(encodeCommand({ cla: 0x00, ins: 0x82, p1: 0, p2: 0, data, ne: 40 })),
    );
    if (isAccessDenied(reply.sw)) {
      throw new AccessDeniedError(undefined, reply.sw);
    }
    if (reply.sw !== SW.OK) throw new CardStatusError(reply.sw, "EXTERNAL AUTHENTICATE");
    return verifyExternalAuthenticateResponse(kEnc, kMac, reply.data, rndIc, rndIfd, kIfd);
  } finally {
    wipe(kEnc, kMac);
    if (rndIfd) wipe(rndIfd);
    if (kIfd) wipe(kIfd);
  }
}
