/**
 * One step of an ICAO 9303-12 chain: which CSCA issued a certificate, checked by signature.
 * ICAO's PKI has two levels, so there is no path building and no loop to guard against beyond
 * bounding the number of same-named candidates.
 */
import { type SignatureResult, verifySignature } from "./signature.ts";
import { type Certificate, KEY_USAGE } from "./x509.ts";

export interface TrustAnchor {
  cert: Certificate;
  /** Where it came from: a file path or "master list <path>". */
  source: string;
}

/** The issuer found for a certificate, with the result of checking its signature. */
export interface IssuerMatch {
  anchor: TrustAnchor;
  signature: SignatureResult;
}

/** At most this many same-named CSCAs are tried for one certificate (key rollovers make a few). */
export const MAX_ISSUER_CANDIDATES = 16;

/** Checks `cert`'s signature against each candidate issuer; bounded by the candidate count. */
export function findIssuerAmong(cert: Certificate, candidates: TrustAnchor[]): IssuerMatch | undefined {
  let first: IssuerMatch | undefined;
  for (const anchor of candidates.slice(0, MAX_ISSUER_CANDIDATES)) {
    const signature = verifySignature(anchor.cert.publicKey, cert.signatureAlgorithm, cert.tbs, cert.signature);
    if (signature.status === "ok") return { anchor, signature };
    first ??= { anchor, signature };
  }
  return first;
}

/** Whether a CSCA's extensions allow it to sign certificates (absent extensions allow it). */
export function isCaCertificate(cert: Certificate): boolean {
  if (cert.basicConstraintsCa === false) return false;
  if (cert.keyUsage && !cert.keyUsage.has(KEY_USAGE.keyCertSign)) return false;
  return true;
}
