/**
 * Signature verification by AlgorithmIdentifier, for certificates, CRLs and CMS signers:
 * sha*WithRSAEncryption (RFC 8017 §A.2.4), RSASSA-PSS with its parameters (RFC 4055 §3.1),
 * ecdsa-with-SHA* (RFC 5758 §3.2), BSI TR-03111 plain ECDSA, and, as passports' SignerInfos
 * often say, a bare rsaEncryption / ecPublicKey with the hash taken from the digestAlgorithm.
 */
import { ParseError } from "../errors.ts";
import { expectSequence, readSmallInt } from "./asn1.ts";
import { type AlgorithmIdentifier, readAlgorithmIdentifier } from "./cms.ts";
import { digest } from "./digest.ts";
import { UnsupportedCurveError, parseEcPublicKey, verifyEcdsa } from "./ecdsa.ts";
import { HASH_LABEL, type HashName, OID, hashNameByOid } from "./oids.ts";
import { type PssParams, parseRsaPublicKey, verifyPkcs1v15, verifyPss } from "./rsa.ts";
import type { SubjectPublicKeyInfo } from "./x509.ts";

export type SignatureStatus = "ok" | "bad" | "unsupported";

export interface SignatureResult {
  status: SignatureStatus;
  /** Human name of the algorithm, e.g. "RSA-2048 PKCS#1 v1.5 SHA-256", "ECDSA brainpoolP256r1 SHA-256". */
  algorithm: string;
  /** Why it is bad or unsupported (no secrets: algorithm names and structure only). */
  detail?: string;
}

type Scheme =
  | { kind: "rsa-pkcs1"; hash: HashName }
  | { kind: "rsa-pss"; params: PssParams }
  | { kind: "ecdsa"; hash: HashName; format: "der" | "plain" };

const RSA_PKCS1: Record<string, HashName> = {
  [OID.sha1WithRSA]: "sha1",
  [OID.sha224WithRSA]: "sha224",
  [OID.sha256WithRSA]: "sha256",
  [OID.sha384WithRSA]: "sha384",
  [OID.sha512WithRSA]: "sha512",
};
const ECDSA_DER: Record<string, HashName> = {
  [OID.ecdsaWithSha1]: "sha1",
  [OID.ecdsaWithSha224]: "sha224",
  [OID.ecdsaWithSha256]: "sha256",
  [OID.ecdsaWithSha384]: "sha384",
  [OID.ecdsaWithSha512]: "sha512",
};
const ECDSA_PLAIN: Record<string, HashName> = {
  [OID.ecdsaPlainSha1]: "sha1",
  [OID.ecdsaPlainSha224]: "sha224",
  [OID.ecdsaPlainSha256]: "sha256",
  [OID.ecdsaPlainSha384]: "sha384",
  [OID.ecdsaPlainSha512]: "sha512",
};

class Unsupported extends Error {}

function scheme(sigAlg: AlgorithmIdentifier, digestHash: HashName | undefined): Scheme {
  const oid = sigAlg.oid;
  if (RSA_PKCS1[oid]) return { kind: "rsa-pkcs1", hash: RSA_PKCS1[oid] };
  if (ECDSA_DER[oid]) return { kind: "ecdsa", hash: ECDSA_DER[oid], format: "der" };
  if (ECDSA_PLAIN[oid]) return { kind: "ecdsa", hash: ECDSA_PLAIN[oid], format: "plain" };
  if (oid === OID.rsassaPss) return { kind: "rsa-pss", params: pssParams(sigAlg) };
  if (oid === OID.rsaEncryption || oid === OID.ecPublicKey) {
    if (!digestHash) throw new Unsupported(`signature algorithm ${oid} without a digest algorithm`);
    return oid === OID.rsaEncryption ? { kind: "rsa-pkcs1", hash: digestHash } : { kind: "ecdsa", hash: digestHash, format: "der" };
  }
  throw new Unsupported(`signature algorithm ${oid}`);
}

/** RSASSA-PSS-params (RFC 4055 §3.1) with their SHA-1 / MGF1-SHA-1 / 20 / 1 defaults. */
export function pssParams(sigAlg: AlgorithmIdentifier): PssParams {
  const out: PssParams = { hash: "sha1", mgfHash: "sha1", saltLength: 20 };
  const p = sigAlg.params;
  if (!p || p.tag === 0x05) return out;
  for (const field of expectSequence(p, "RSASSA-PSS-params").children) {
    const inner = field.children[0];
    switch (field.tag) {
      case 0xa0: {
        const h = hashNameByOid(readAlgorithmIdentifier(inner, "PSS hashAlgorithm").oid);
        if (!h) throw new Unsupported("PSS hash algorithm");
        out.hash = h;
        break;
      }
      case 0xa1: {
        const mgf = readAlgorithmIdentifier(inner, "PSS maskGenAlgorithm");
        if (mgf.oid !== OID.mgf1) throw new Unsupported(`PSS mask generation ${mgf.oid}`);
        const h = hashNameByOid(readAlgorithmIdentifier(mgf.params, "MGF1 hash").oid);
        if (!h) throw new Unsupported("MGF1 hash algorithm");
        out.mgfHash = h;
        break;
      }
      case 0xa2:
        out.saltLength = readSmallInt(inner, "PSS saltLength");
        if (out.saltLength < 0 || out.saltLength > 1024) throw new ParseError(`PSS saltLength ${out.saltLength}`);
        break;
      case 0xa3:
        if (readSmallInt(inner, "PSS trailerField") !== 1) throw new Unsupported("PSS trailer field other than 1");
        break;
      default:
        throw new ParseError(`RSASSA-PSS-params: unexpected field ${field.tag.toString(16)}`);
    }
  }
  return out;
}

/**
 * Verifies `signature` over `data` with `key`. `digestHash` supplies the hash when the signature
 * algorithm is a bare key algorithm (CMS SignerInfo digestAlgorithm). Never throws for bad input:
 * a malformed key or signature is "bad", an unknown algorithm or curve is "unsupported".
 */
export function verifySignature(
  key: SubjectPublicKeyInfo,
  sigAlg: AlgorithmIdentifier,
  data: Uint8Array,
  signature: Uint8Array,
  digestHash?: HashName,
): SignatureResult {
  let algorithm = sigAlg.oid;
  try {
    const s = scheme(sigAlg, digestHash);
    const keyOid = key.algorithm.oid;
    if (s.kind === "ecdsa") {
      if (keyOid !== OID.ecPublicKey) return { status: "bad", algorithm, detail: "ECDSA signature with a non-EC key" };
      const ec = parseEcPublicKey(key.algorithm.params, key.key);
      algorithm = `ECDSA ${ec.curveName} ${HASH_LABEL[s.hash]}${s.format === "plain" ? " (plain)" : ""}`;
      const ok = verifyEcdsa(ec, digest(s.hash, data), signature, s.format);
      return { status: ok ? "ok" : "bad", algorithm };
    }
    if (keyOid !== OID.rsaEncryption && keyOid !== OID.rsassaPss) {
      return { status: "bad", algorithm, detail: "RSA signature with a non-RSA key" };
    }
    const rsa = parseRsaPublicKey(key.key);
    if (s.kind === "rsa-pkcs1") {
      algorithm = `RSA-${rsa.bits} PKCS#1 v1.5 ${HASH_LABEL[s.hash]}`;
      return { status: verifyPkcs1v15(rsa, s.hash, data, signature) ? "ok" : "bad", algorithm };
    }
    algorithm = `RSA-${rsa.bits} PSS ${HASH_LABEL[s.params.hash]} MGF1-${HASH_LABEL[s.params.mgfHash]} salt ${s.params.saltLength}`;
    return { status: verifyPss(rsa, s.params, data, signature) ? "ok" : "bad", algorithm };
  } catch (e) {
    if (e instanceof Unsupported || e instanceof UnsupportedCurveError) return { status: "unsupported", algorithm, detail: e.message };
    if (e instanceof ParseError) return { status: "bad", algorithm, detail: e.message };
    throw e;
  }
}
