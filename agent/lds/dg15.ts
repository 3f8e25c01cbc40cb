/**
 * DG15, the Active Authentication public key (ICAO 9303-10 §4.7.15, 9303-11 §6.1): tag 6F
 * wrapping an X.509 SubjectPublicKeyInfo, RSA (rsaEncryption) or EC (id-ecPublicKey).
 */
import { ParseError } from "../errors.ts";
import { parseAsn1 } from "../pki/asn1.ts";
import { type EcPublicKey, UnsupportedCurveError, parseEcPublicKey } from "../pki/ecdsa.ts";
import { OID } from "../pki/oids.ts";
import { type RsaPublicKey, parseRsaPublicKey } from "../pki/rsa.ts";
import { readSpki, type SubjectPublicKeyInfo } from "../pki/x509.ts";

export const DG15_TAG = 0x6f;

export type AaPublicKey = { kind: "rsa"; rsa: RsaPublicKey } | { kind: "ec"; ec: EcPublicKey } | { kind: "unsupported"; algorithm: string };

export interface Dg15 {
  spki: SubjectPublicKeyInfo;
  key: AaPublicKey;
  /** e.g. "RSA-1024", "ECDSA P-256". */
  label: string;
}

/**
 * Parses DG15. Throws ParseError when malformed (including an RSA modulus or EC point that is
 * not a usable key); an algorithm or curve we do not support gives kind "unsupported".
 */
export function parseDg15(bytes: Uint8Array): Dg15 {
  const outer = parseAsn1(bytes, { allowTrailing: true });
  if (outer.tag !== DG15_TAG) throw new ParseError(`DG15: tag ${outer.tag.toString(16)} instead of 6F`, { tag: outer.tag });
  const inner = outer.children[0];
  if (!inner || outer.children.length !== 1) throw new ParseError("DG15: expected one SubjectPublicKeyInfo");
  const spki = readSpki(inner);
  const oid = spki.algorithm.oid;
  if (oid === OID.rsaEncryption) {
    const rsa = parseRsaPublicKey(spki.key);
    return { spki, key: { kind: "rsa", rsa }, label: `RSA-${rsa.bits}` };
  }
  if (oid === OID.ecPublicKey) {
    try {
      const ec = parseEcPublicKey(spki.algorithm.params, spki.key);
      return { spki, key: { kind: "ec", ec }, label: `ECDSA ${ec.curveName}` };
    } catch (e) {
      if (!(e instanceof UnsupportedCurveError)) throw e;
      return { spki, key: { kind: "unsupported", algorithm: (e as Error).message }, label: "EC (unsupported curve)" };
    }
  }
  return { spki, key: { kind: "unsupported", algorithm: oid }, label: `key algorithm ${oid}` };
}
