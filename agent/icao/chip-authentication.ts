/**
 * Chip Authentication v1 (ICAO 9303-11 §6.2, BSI TR-03110-1 §3.3 / TR-03110-3 §B.1): inside the
 * running secure channel, the terminal sends an ephemeral public key on the domain parameters of
 * the chip's static CA key (DG14); both sides derive K = the shared secret and new session keys
 * KSenc = KDF(K, 1), KSmac = KDF(K, 2) with SSC 0. Only a chip holding the private key of DG14's
 * public key can continue secure messaging: the first response under the new keys that verifies
 * proves it (implicit authentication). 3DES uses MSE:Set KAT (§6.2.4.1); AES uses MSE:Set AT and
 * GENERAL AUTHENTICATE (§6.2.4.2). Randomness is a parameter.
 */
import { wipe } from "../bytes.ts";
import type { KeyAgreementGroup } from "../crypto/key-agreement.ts";
import { CardStatusError } from "../errors.ts";
import type { CommandApdu } from "../iso7816/apdu.ts";
import { encodeTlv } from "../iso7816/tlv.ts";
import { deriveKey, type KdfAlgorithm } from "./kdf.ts";
import { bsiOidBytes } from "./pace.ts";
import { smCipherFor, type SmCipher } from "./secure-messaging.ts";

/** Outcome of the chip's authentication by Chip Authentication or PACE-CAM (no key material). */
export interface ChipAuthResult {
  method: "CA" | "CAM";
  /** ok: the chip holds DG14's private key; failed: it does not (or refused); error: could not be completed. */
  status: "ok" | "failed" | "error";
  /** e.g. "CA ECDH brainpoolP256r1 AES-128", "PACE-CAM brainpoolP256r1". */
  algorithm: string;
  detail?: string;
}

/** What to run (lds/security-infos.ts chooses it from DG14). */
export interface CaParameters {
  oid: string;
  cipher: KdfAlgorithm;
  group: KeyAgreementGroup;
  /** The chip's static public key, encoded like the group's public values. */
  publicKey: Uint8Array;
  keyId: bigint | undefined;
}

function keyIdBytes(keyId: bigint): Uint8Array {
  const h = keyId.toString(16);
  const s = h.length % 2 ? `0${h}` : h;
  return Uint8Array.from(s.match(/../g)!.map((x) => parseInt(x, 16)));
}

/**
 * Runs Chip Authentication over `send` (the current secure channel). Returns the cipher for the
 * new session (SSC 0); the caller switches its channel and must then see one verified response.
 */
export async function performChipAuthentication(
  send: (cmd: CommandApdu) => Promise<{ data: Uint8Array; sw: number }>,
  choice: CaParameters,
  random: (n: number) => Uint8Array,
): Promise<{ cipher: SmCipher; algorithm: KdfAlgorithm }> {
  const group = choice.group;
  const alg = choice.cipher;
  const sk = group.randomPrivateKey(random);
  const pcdPublic = group.publicKey(sk);
  // the chip's static key is checked before use (on the curve / in the subgroup)
  const k = group.sharedSecret(sk, choice.publicKey);
  const keyRef = choice.keyId !== undefined ? encodeTlv(0x84, keyIdBytes(choice.keyId)) : new Uint8Array(0);
  try {
    if (alg === "3DES") {
      const r = await send({ cla: 0x00, ins: 0x22, p1: 0x41, p2: 0xa6, data: new Uint8Array([...encodeTlv(0x91, pcdPublic), ...keyRef]) });
      if (r.sw !== 0x9000) throw new CardStatusError(r.sw, "MSE:Set KAT (Chip Authentication)");
    } else {
      const set = await send({ cla: 0x00, ins: 0x22, p1: 0x41, p2: 0xa4, data: new Uint8Array([...encodeTlv(0x80, bsiOidBytes(choice.oid)), ...keyRef]) });
      if (set.sw !== 0x9000) throw new CardStatusError(set.sw, "MSE:Set AT (Chip Authentication)");
      const ga = await send({ cla: 0x00, ins: 0x86, p1: 0x00, p2: 0x00, data: encodeTlv(0x7c, encodeTlv(0x80, pcdPublic)), ne: 256 });
      if (ga.sw !== 0x9000) throw new CardStatusError(ga.sw, "GENERAL AUTHENTICATE (Chip Authentication)");
    }
    const ksEnc = deriveKey(k, 1, alg);
    const ksMac = deriveKey(k, 2, alg);
    const cipher = smCipherFor(alg, ksEnc, ksMac);
    wipe(ksEnc, ksMac);
    return { cipher, algorithm: alg };
  } finally {
    wipe(k);
  }
}
