/**
 * CMS signer verification (RFC 5652 §5.6): the signer's certificate from the SignedData, the
 * contentType and messageDigest signed attributes (§11.1, §11.2), and the signature over the DER
 * SET OF signed attributes or, without them, over the content itself.
 */
import { equalBytes } from "../bytes.ts";
import { ParseError } from "../errors.ts";
import { readOctetString, readOid } from "./asn1.ts";
import { type SignedData, type SignerInfo, attributeValue } from "./cms.ts";
import { digest } from "./digest.ts";
import { OID, hashNameByOid } from "./oids.ts";
import { type SignatureResult, verifySignature } from "./signature.ts";
import { type Certificate, parseCertificate, parseName, sameName } from "./x509.ts";

export type SignerCheck =
  | { status: "ok"; algorithm: string }
  | { status: "bad"; algorithm: string; reason: "MESSAGE_DIGEST_MISMATCH" | "CONTENT_TYPE_MISMATCH" | "SIGNATURE_BAD" | "ATTRIBUTES_MALFORMED"; detail?: string }
  | { status: "unsupported"; algorithm: string; detail?: string };

/** Whether `cert` is the one a SignerInfo's sid names. */
export function matchesSid(si: SignerInfo, cert: Certificate): boolean {
  if (si.sid.kind === "subject-key-id") return !!cert.subjectKeyId && equalBytes(cert.subjectKeyId, si.sid.keyId);
  if (cert.serial !== si.sid.serial) return false;
  try {
    return sameName(parseName(si.sid.issuer), cert.issuer);
  } catch {
    return false;
  }
}

/**
 * The signer's certificate: among the SignedData's certificates (and `extra`), the one the sid
 * names. Certificates that do not parse are skipped.
 */
export function findSignerCertificate(sd: SignedData, si: SignerInfo, extra: Certificate[] = []): Certificate | undefined {
  for (const der of sd.certificates) {
    let cert: Certificate;
    try {
      cert = parseCertificate(der);
    } catch {
      continue;
    }
    if (matchesSid(si, cert)) return cert;
  }
  return extra.find((c) => matchesSid(si, c));
}

export function verifySigner(sd: SignedData, si: SignerInfo, signerCert: Certificate): SignerCheck {
  const digestHash = hashNameByOid(si.digestAlgorithm.oid);
  if (!digestHash) return { status: "unsupported", algorithm: si.signatureAlgorithm.oid, detail: `digest algorithm ${si.digestAlgorithm.oid}` };
  const content = sd.eContent ?? new Uint8Array(0);
  let signed = content;
  if (si.signedAttrs) {
    try {
      const ct = attributeValue(si, OID.contentType);
      if (!ct || readOid(ct, "contentType attribute") !== sd.eContentType) {
        return { status: "bad", algorithm: si.signatureAlgorithm.oid, reason: "CONTENT_TYPE_MISMATCH" };
      }
      const md = attributeValue(si, OID.messageDigest);
      if (!md || !equalBytes(readOctetString(md, "messageDigest attribute"), digest(digestHash, content))) {
        return { status: "bad", algorithm: si.signatureAlgorithm.oid, reason: "MESSAGE_DIGEST_MISMATCH" };
      }
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      return { status: "bad", algorithm: si.signatureAlgorithm.oid, reason: "ATTRIBUTES_MALFORMED", detail: e.message };
    }
    signed = si.signedAttrs.der;
  }
  const r: SignatureResult = verifySignature(signerCert.publicKey, si.signatureAlgorithm, signed, si.signature, digestHash);
  if (r.status === "ok") return { status: "ok", algorithm: r.algorithm };
  if (r.status === "unsupported") return { status: "unsupported", algorithm: r.algorithm, detail: r.detail };
  return { status: "bad", algorithm: r.algorithm, reason: "SIGNATURE_BAD", detail: r.detail };
}
