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
  /** The master list it came from, and whether that list's signer chains to a master-list anchor. */
  masterList?: { source: string; trust: "trusted" | "operator-word" };
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

/** Why a certificate cannot act as a CA, or undefined when it can. */
export type CaProblem = "NOT_CA" | "KEY_USAGE" | "CRITICAL_EXTENSION";

/**
 * RFC 5280 §4.2.1.9 / §4.2.1.3 and ICAO 9303-12 §7.1.1 (CSCA profile): basicConstraints with
 * cA TRUE, a keyUsage allowing keyCertSign, and no critical extension left unprocessed.
 */
export function caProblem(cert: Certificate): CaProblem | undefined {
  if (cert.basicConstraintsCa !== true) return "NOT_CA";
  if (!cert.keyUsage || !cert.keyUsage.has(KEY_USAGE.keyCertSign)) return "KEY_USAGE";
  if (cert.unknownCriticalExtensions.length > 0) return "CRITICAL_EXTENSION";
  return undefined;
}

export function isCaCertificate(cert: Certificate): boolean {
  return caProblem(cert) === undefined;
}
