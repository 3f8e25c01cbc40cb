/**
 * PACE, Password Authenticated Connection Establishment (ICAO 9303-11 §4.4, §9.2.1, BSI TR-03110-2
 * §3.2, worked examples: Appendix G, H), with Generic Mapping, Integrated Mapping (AES-128) and
 * Chip Authentication Mapping on ECDH and DH. Steps:
 *   MSE:Set AT (protocol OID, password reference, domain parameter id in tag 84)
 *   GENERAL AUTHENTICATE 1: encrypted nonce z        → s = D(K_π, z)
 *   GENERAL AUTHENTICATE 2: GM, CAM: mapping keys     → Ĝ = s·G + H
 *                           IM: the terminal's nonce t → Ĝ = encode(R_p(s, t))
 *   GENERAL AUTHENTICATE 3: ephemeral keys on Ĝ       → K, KSenc = KDF(K,1), KSmac = KDF(K,2)
 *   GENERAL AUTHENTICATE 4: authentication tokens     → T = MAC(KSmac, public-key data object)
 * The pure steps are exported so tests replay Appendix G value by value; randomness is a
 * parameter (private keys are drawn from it). The chip's token is checked in constant time.
 * Secure messaging afterwards starts with SSC 0 (§9.8.6.3).
 */
import { concat, constantTimeEqual, wipe } from "../bytes.ts";
import { aesCbcDecrypt, aesCmac, aesEncryptBlock } from "../crypto/aes.ts";
import { createTdes } from "../crypto/des.ts";
import { sha1 } from "../crypto/hash.ts";
import { pad, retailMac, unpad } from "../crypto/iso9797.ts";
import { InvalidPublicValueError, type KeyAgreementGroup } from "../crypto/key-agreement.ts";
import { AccessDeniedError, CardStatusError, hex4, PaceError, ParseError } from "../errors.ts";
import { decodeResponse, encodeCommand, type CommandApdu } from "../iso7816/apdu.ts";
import { SW } from "../iso7816/status-words.ts";
import { encodeTlv, parseTlv, parseTlvList } from "../iso7816/tlv.ts";
import type { CardTransport } from "../transport/transport.ts";
import { deriveKey, type KdfAlgorithm } from "./kdf.ts";
import { mrzInformation, type BacAccessKey } from "./mrz-key.ts";

/**
 * Content octets of a BSI protocol OID (PACE, CA: 0.4.0.127.0.7.2.2.x.y, TR-03110-3 §A.1.1):
 * 0.4 → 04, then 0 127 0 7 → 00 7F 00 07, and the remaining arcs, all below 128, one byte each.
 */
export function bsiOidBytes(oid: string): Uint8Array {
  const arcs = oid.split(".").map(Number);
  if (oid.slice(0, 14) !== "0.4.0.127.0.7." || arcs.slice(6).some((a) => !Number.isInteger(a) || a < 0 || a > 127)) {
    throw new RangeError(`bsiOidBytes: not a BSI protocol OID with small arcs: ${oid}`);
  }
  return Uint8Array.from([0x04, 0x00, 0x7f, 0x00, 0x07, ...arcs.slice(6)]);
}

export type PacePassword = { kind: "mrz"; key: BacAccessKey } | { kind: "can"; can: string };

/** Password reference in MSE:Set AT tag 83 (9303-11 §4.4.4.1): 01 MRZ, 02 CAN. */
export function passwordReference(p: PacePassword): number {
  return p.kind === "mrz" ? 0x01 : 0x02;
}

/** π: SHA-1(MRZ_information), all 20 bytes, for the MRZ (§9.7.3); the CAN's ASCII digits. */
export function passwordBytes(p: PacePassword): Uint8Array {
  if (p.kind === "mrz") return sha1(new TextEncoder().encode(mrzInformation(p.key)));
  if (!/^[0-9]{6}$/.test(p.can)) throw new RangeError("passwordBytes: a CAN is 6 digits");
  return new TextEncoder().encode(p.can);
}

/** The algorithm and group PACE runs with (from a PACEInfo and its domain parameters). */
export interface PaceParameters {
  oid: string;
  agreement: "DH" | "ECDH";
  mapping: "GM" | "IM" | "CAM";
  cipher: KdfAlgorithm;
  /** The standardized domain parameter id (for tag 84), when the PACEInfo names one. */
  parameterId: number | undefined;
  group: KeyAgreementGroup;
}

/** s = D(K_π, z): 3DES- or AES-CBC with a zero IV (§4.4.3.3). */
export function decryptNonce(kPi: Uint8Array, z: Uint8Array, cipher: KdfAlgorithm): Uint8Array {
  if (cipher === "3DES") {
    if (z.length === 0 || z.length % 8 !== 0) throw new PaceError("protocol", `encrypted nonce of ${z.length} bytes`);
    const t = createTdes(kPi);
    try {
      return t.cbcDecrypt(z);
    } finally {
      t.wipe();
    }
  }
  if (z.length === 0 || z.length % 16 !== 0) throw new PaceError("protocol", `encrypted nonce of ${z.length} bytes`);
  return aesCbcDecrypt(kPi, new Uint8Array(16), z);
}

/** Constants of the pseudo-random function for 128-bit nonces (9303-11 §4.4.3.3.2). */
const IM_C0_128 = Uint8Array.from([0xa6, 0x68, 0x89, 0x2a, 0x7c, 0x41, 0xe3, 0xca, 0x73, 0x9f, 0x40, 0xb0, 0x57, 0xd8, 0x59, 0x04]);
const IM_C1_128 = Uint8Array.from([0xa4, 0xe1, 0x36, 0xac, 0x72, 0x5f, 0x73, 0x8b, 0x01, 0xc1, 0xf6, 0x02, 0x17, 0xc1, 0x88, 0xad]);

/**
 * Integrated Mapping's pseudo-random function R_p(s, t) (9303-11 §4.4.3.3.2) with AES-128:
 * key_1 = E(t, s); then, while n·128 < bitlength(p) + 64: x_n = E(key_n, c1), key_{n+1} = E(key_n, c0);
 * R_p = int(x_1 ‖ … ‖ x_n) mod p. AES-192/256 and 3DES (other nonce lengths) are not supported.
 */
export function integratedMappingPrf(s: Uint8Array, t: Uint8Array, p: bigint): bigint {
  if (s.length !== 16 || t.length !== 16) throw new PaceError("unsupported", "PACE Integrated Mapping is supported with AES-128 (16-byte nonces) only");
  let key = aesEncryptBlock(t, s);
  const bits = p.toString(2).length + 64;
  const parts: Uint8Array[] = [];
  for (let n = 0; n * 128 < bits; n++) {
    parts.push(aesEncryptBlock(key, IM_C1_128));
    const next = aesEncryptBlock(key, IM_C0_128);
    wipe(key);
    key = next;
  }
  wipe(key);
  const x = bytesToBig(concat(...parts)) % p;
  for (const part of parts) wipe(part);
  return x;
}

/** MSE:Set AT for PACE (§4.4.4.1): 80 protocol OID, 83 password reference, 84 parameter id when `withParameterId`. */
export function mseSetAt(oid: string, passwordRef: number, parameterId: number | undefined): CommandApdu {
  const parts = [encodeTlv(0x80, bsiOidBytes(oid)), encodeTlv(0x83, Uint8Array.of(passwordRef))];
  if (parameterId !== undefined) parts.push(encodeTlv(0x84, Uint8Array.of(parameterId)));
  return { cla: 0x00, ins: 0x22, p1: 0xc1, p2: 0xa4, data: concat(...parts) };
}

/** GENERAL AUTHENTICATE with dynamic authentication data 7C; chained (CLA 10) except the last. */
export function generalAuthenticate(tag: number | undefined, value: Uint8Array | undefined, last: boolean): CommandApdu {
  const inner = tag === undefined ? new Uint8Array(0) : encodeTlv(tag, value ?? new Uint8Array(0));
  return { cla: last ? 0x00 : 0x10, ins: 0x86, p1: 0x00, p2: 0x00, data: encodeTlv(0x7c, inner), ne: 256 };
}

/** Public-key data object over which tokens are computed (§4.4.3.4, TR-03110-3 §D.3.4): 7F49 { 06 OID, 86 point | 84 y }. */
export function publicKeyDataObject(oid: string, agreement: "DH" | "ECDH", publicKey: Uint8Array): Uint8Array {
  return encodeTlv(0x7f49, encodeTlv(0x06, bsiOidBytes(oid)), encodeTlv(agreement === "ECDH" ? 0x86 : 0x84, publicKey));
}

/** T = MAC(KSmac, public-key data object): AES-CMAC truncated to 8 bytes, or the 3DES retail MAC over padded data. */
export function authenticationToken(cipher: KdfAlgorithm, ksMac: Uint8Array, pkdo: Uint8Array): Uint8Array {
  if (cipher === "3DES") return retailMac(ksMac, pad(pkdo));
  const full = aesCmac(ksMac, pkdo);
  const t = full.slice(0, 8);
  wipe(full);
  return t;
}

/** Session keys from the shared secret K (§9.7.1), SSC 0. */
export function sessionKeys(k: Uint8Array, cipher: KdfAlgorithm): { ksEnc: Uint8Array; ksMac: Uint8Array } {
  return { ksEnc: deriveKey(k, 1, cipher), ksMac: deriveKey(k, 2, cipher) };
}

export interface PaceSession {
  ksEnc: Uint8Array;
  ksMac: Uint8Array;
  cipher: KdfAlgorithm;
  ssc: bigint;
  /** Whether MSE:Set AT carried tag 84 in the form the chip accepted. */
  withParameterId: boolean;
  /** The chip's ephemeral public key (Chip Authentication and CAM use it). */
  piccEphemeralPublicKey: Uint8Array;
  /** PACE-CAM: the chip's CA data and mapping key, to check against DG14's key once the SOD vouches for it. */
  cam?: { caIc: bigint; piccMappingPublicKey: Uint8Array };
}

/**
 * PACE-CAM's chip check (9303-11 §4.4.3.5.2): PK_Map,IC = CA_IC · PK_IC, with PK_IC the Chip
 * Authentication public key of DG14 (which must be authenticated by the SOD first).
 */
export function verifyCam(group: KeyAgreementGroup, cam: NonNullable<PaceSession["cam"]>, caPublicKey: Uint8Array): boolean {
  try {
    return constantTimeEqual(group.scalarMultiply(cam.caIc, caPublicKey), cam.piccMappingPublicKey);
  } catch (e) {
    if (e instanceof InvalidPublicValueError) return false;
    throw e;
  }
}

export interface PaceOptions {
  password: PacePassword;
  parameters: PaceParameters;
  random: (n: number) => Uint8Array;
  /**
   * MSE:Set AT form: with tag 84 first (BSI TR-03110 and most readers) then without, or the
   * reverse, or only one. Chips differ: some need 84, some refuse it (gmrtd issue #108,
   * NFCPassportReader PR #269). A caller that learnt a card's form passes it here.
   */
  parameterIdForms?: boolean[];
}

/** Status words with which a chip refuses the password at the last GENERAL AUTHENTICATE (or blocks it). */
function isPasswordRefused(sw: number): boolean {
  return sw === SW.VERIFICATION_FAILED || (sw & 0xfff0) === 0x63c0 || sw === SW.SECURITY_STATUS_NOT_SATISFIED || sw === SW.AUTH_METHOD_BLOCKED;
}

function gaData(response: Uint8Array, tag: number, step: number): Uint8Array {
  try {
    const outer = parseTlv(response);
    if (outer.tag !== 0x7c) throw new ParseError("not 7C");
    const inner = parseTlvList(outer.value).find((t) => t.tag === tag);
    if (!inner) throw new ParseError(`no tag ${tag.toString(16)}`);
    return inner.value;
  } catch (e) {
    throw new PaceError("protocol", `GENERAL AUTHENTICATE step ${step}: malformed response (${(e as Error).message})`);
  }
}

/** Runs PACE. The caller keeps the password; every intermediate secret is wiped here. */
export async function performPace(transport: CardTransport, opts: PaceOptions): Promise<PaceSession> {
  const { parameters: prm, random } = opts;
  if (prm.mapping === "IM" && prm.cipher !== "AES-128") throw new PaceError("unsupported", `PACE Integrated Mapping is supported with AES-128 only, not ${prm.cipher}`);
  if (prm.mapping === "CAM" && (prm.agreement !== "ECDH" || prm.cipher === "3DES")) throw new PaceError("unsupported", "PACE-CAM needs ECDH and AES");
  const send = async (cmd: CommandApdu) => decodeResponse(await transport.transmit(encodeCommand(cmd)));
  const ref = passwordReference(opts.password);

  // MSE:Set AT, in the forms asked for; the first the chip accepts is used
  const forms = opts.parameterIdForms ?? (prm.parameterId !== undefined ? [true, false] : [false]);
  let withParameterId: boolean | undefined;
  let lastSw = 0;
  for (const withId of forms) {
    if (withId && prm.parameterId === undefined) continue;
    const r = await send(mseSetAt(prm.oid, ref, withId ? prm.parameterId : undefined));
    lastSw = r.sw;
    // 63Cx: accepted, x tries left for this password (TR-03110-3 §B.11.1)
    if (r.sw === SW.OK || (r.sw & 0xfff0) === 0x63c0) {
      withParameterId = withId;
      break;
    }
    if (r.sw === SW.AUTH_METHOD_BLOCKED) throw new AccessDeniedError("PACE refused: the password is blocked or suspended (too many wrong attempts)", r.sw, "PACE");
  }
  if (withParameterId === undefined) throw new PaceError("unsupported", `MSE:Set AT refused with ${hex4(lastSw)} for ${prm.oid}`, lastSw);

  const pi = passwordBytes(opts.password);
  const kPi = deriveKey(pi, 3, prm.cipher);
  wipe(pi);
  let s: Uint8Array | undefined;
  let ksEnc: Uint8Array | undefined;
  let ksMac: Uint8Array | undefined;
  try {
    const r1 = await send(generalAuthenticate(undefined, undefined, false));
    if (r1.sw !== SW.OK) throw new CardStatusError(r1.sw, "GENERAL AUTHENTICATE (nonce)");
    s = decryptNonce(kPi, gaData(r1.data, 0x80, 1), prm.cipher);

    const group = prm.group;
    let mapped: KeyAgreementGroup;
    let piccMapping: Uint8Array = new Uint8Array(0);
    if (prm.mapping === "IM") {
      // 9303-11 §4.4.3.3.2: the terminal's nonce t goes to the chip; both map R_p(s, t) to the generator
      const t = random(16);
      if (t.length !== 16) throw new RangeError("performPace: random(n) must return n bytes");
      const r2 = await send(generalAuthenticate(0x81, t, false));
      if (r2.sw !== SW.OK) throw new CardStatusError(r2.sw, "GENERAL AUTHENTICATE (mapping)");
      const x = integratedMappingPrf(s, t, group.prime);
      wipe(t);
      mapped = checked(() => group.mapIntegrated(x));
    } else {
      const mapSk = group.randomPrivateKey(random);
      const r2 = await send(generalAuthenticate(0x81, group.publicKey(mapSk), false));
      if (r2.sw !== SW.OK) throw new CardStatusError(r2.sw, "GENERAL AUTHENTICATE (mapping)");
      piccMapping = gaData(r2.data, 0x82, 2);
      mapped = checked(() => group.mapGeneric(bytesToBig(s!), mapSk, piccMapping));
    }

    const ephSk = mapped.randomPrivateKey(random);
    const pcdEph = mapped.publicKey(ephSk);
    const r3 = await send(generalAuthenticate(0x83, pcdEph, false));
    if (r3.sw !== SW.OK) throw new CardStatusError(r3.sw, "GENERAL AUTHENTICATE (key agreement)");
    const piccEph = gaData(r3.data, 0x84, 3);
    // 9303-11 §4.4.3.3.2 step 3: the chip's ephemeral key must differ from ours
    if (constantTimeEqual(piccEph, pcdEph)) throw new PaceError("protocol", "the chip returned our own ephemeral public key");
    const k = checked(() => mapped.sharedSecret(ephSk, piccEph));
    ({ ksEnc, ksMac } = sessionKeys(k, prm.cipher));
    wipe(k);

    const tPcd = authenticationToken(prm.cipher, ksMac, publicKeyDataObject(prm.oid, prm.agreement, piccEph));
    const r4 = await send(generalAuthenticate(0x85, tPcd, true));
    if (isPasswordRefused(r4.sw)) throw new AccessDeniedError(`PACE refused the ${opts.password.kind === "can" ? "CAN" : "MRZ key"} (${hex4(r4.sw)}): check it against the document`, r4.sw, "PACE");
    if (r4.sw !== SW.OK) throw new CardStatusError(r4.sw, "GENERAL AUTHENTICATE (mutual authentication)");
    const tPicc = gaData(r4.data, 0x86, 4);
    const expected = authenticationToken(prm.cipher, ksMac, publicKeyDataObject(prm.oid, prm.agreement, pcdEph));
    const ok = constantTimeEqual(expected, tPicc);
    wipe(expected);
    if (!ok) throw new PaceError("token-mismatch", "the chip's PACE authentication token does not verify");
    const session: PaceSession = { ksEnc, ksMac, cipher: prm.cipher, ssc: 0n, withParameterId, piccEphemeralPublicKey: piccEph };
    if (prm.mapping === "CAM") {
      // A_IC = E(KSenc, CA_IC) in CBC mode with IV = E(KSenc, -1) (9303-11 §4.4.3.5.1, TR-03110-2 §3.4.2)
      const aIc = gaData(r4.data, 0x8a, 4);
      if (aIc.length === 0 || aIc.length % 16 !== 0) throw new PaceError("protocol", `encrypted chip authentication data of ${aIc.length} bytes`);
      const plain = aesCbcDecrypt(ksEnc, aesEncryptBlock(ksEnc, new Uint8Array(16).fill(0xff)), aIc);
      let caIc: Uint8Array;
      try {
        caIc = unpad(plain);
      } catch {
        throw new PaceError("protocol", "encrypted chip authentication data: bad padding");
      }
      session.cam = { caIc: bytesToBig(caIc), piccMappingPublicKey: piccMapping };
    }
    ksEnc = ksMac = undefined;
    return session;
  } finally {
    wipe(kPi);
    if (s) wipe(s);
    if (ksEnc) wipe(ksEnc);
    if (ksMac) wipe(ksMac);
  }
}

function checked<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof InvalidPublicValueError) throw new PaceError("protocol", `invalid public value from the chip: ${e.message}`);
    throw e;
  }
}

export function bytesToBig(b: Uint8Array): bigint {
  let x = 0n;
  for (const v of b) x = (x << 8n) | BigInt(v);
  return x;
}
