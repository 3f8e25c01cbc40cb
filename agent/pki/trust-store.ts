/**
 * The trust store of Passive Authentication (ICAO 9303-12 §5-7): CSCA certificates (trust
 * anchors, from files or master lists) and CRLs that revoke document signers. In memory and
 * free of I/O; trust-files.ts fills it from disk.
 *
 * ICAO's PKI has exactly two levels (CSCA -> document signer or master list signer; CSCA link
 * certificates are themselves anchors), so a chain is one step and cannot loop.
 */
import { equalBytes, hex } from "../bytes.ts";
import { type Crl, parseCrl } from "./crl.ts";
import { digest } from "./digest.ts";
import { type MasterListResult, readMasterList, verifyMasterList } from "./master-list.ts";
import { type IssuerMatch, type TrustAnchor, findIssuerAmong, isCaCertificate } from "./chain.ts";
import { verifySignature } from "./signature.ts";
import { type Certificate, parseCertificate, sameName } from "./x509.ts";

export type { IssuerMatch, TrustAnchor };

export interface CrlEntry {
  crl: Crl;
  source: string;
  /** Whether its signature was checked with a CSCA of the store (an unknown issuer leaves it unchecked but in force). */
  verified: boolean;
}

/** One line of what loading did, for the operator (no personal data here: certificates are public). */
export interface TrustLoadEntry {
  source: string;
  kind: "csca" | "master-list" | "crl" | "skipped";
  status: "loaded" | "rejected" | "duplicate";
  detail: string;
}

export class TrustStore {
  readonly anchors: TrustAnchor[] = [];
  readonly crls: CrlEntry[] = [];
  readonly log: TrustLoadEntry[] = [];
  private readonly bySubject = new Map<string, TrustAnchor[]>();
  private readonly seen = new Set<string>();

  get size(): number {
    return this.anchors.length;
  }

  /**
   * Adds a CSCA certificate: "loaded", "duplicate", or "not-ca" (refused: a document signer or other
   * end-entity certificate is no trust anchor). Throws ParseError for an unparsable one.
   */
  addCertificate(der: Uint8Array, source: string): "loaded" | "duplicate" | "not-ca" {
    const cert = parseCertificate(der);
    if (!isCaCertificate(cert)) return "not-ca";
    return this.addParsed(cert, source) ? "loaded" : "duplicate";
  }

  private addParsed(cert: Certificate, source: string): boolean {
    const id = hex(digest("sha256", cert.der));
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    const anchor = { cert, source };
    this.anchors.push(anchor);
    const key = cert.subject.folded;
    const list = this.bySubject.get(key);
    if (list) list.push(anchor);
    else this.bySubject.set(key, [anchor]);
    return true;
  }

  /**
   * Loads a CSCA master list. Its certificates are added when its signature is good and its
   * signer chains to a CSCA (one in this store, or one in the list itself), unless
   * `requireTrustedSigner` asks for a signer under a CSCA already in the store.
   */
  addMasterList(bytes: Uint8Array, source: string, opts: { requireTrustedSigner?: boolean } = {}): MasterListResult {
    const ml = readMasterList(bytes);
    const result = verifyMasterList(ml, this.anchors, source);
    const accept = result.trust === "trusted" || (result.trust === "self-signed-list" && !opts.requireTrustedSigner);
    if (accept) {
      for (const c of ml.certificates) if (this.addParsed(c, `master list ${source}`)) result.added++;
    }
    this.log.push({
      source,
      kind: "master-list",
      status: accept ? "loaded" : "rejected",
      detail: `${ml.certificates.length} CSCA certificates, ${result.added} new; signature ${result.signature}, signer ${result.trust}` +
        (ml.skipped ? `; ${ml.skipped} unparsable entries skipped` : "") + (result.detail ? `; ${result.detail}` : ""),
    });
    return result;
  }

  /**
   * Adds a CRL. Its signature is checked with a CSCA of the same name when the store has one; a
   * CRL with a bad signature is rejected (returns false).
   */
  addCrl(der: Uint8Array, source: string): boolean {
    const crl = parseCrl(der);
    const issuers = this.anchorsNamed(crl.issuer.folded);
    let verified = false;
    if (issuers.length > 0) {
      verified = issuers.some((a) => verifySignature(a.cert.publicKey, crl.signatureAlgorithm, crl.tbs, crl.signature).status === "ok");
      if (!verified) {
        this.log.push({ source, kind: "crl", status: "rejected", detail: `signature of CRL from ${crl.issuer.text} does not verify` });
        return false;
      }
    }
    this.crls.push({ crl, source, verified });
    this.log.push({
      source,
      kind: "crl",
      status: "loaded",
      detail: `${crl.revoked.size} revoked by ${crl.issuer.text}${verified ? "" : " (issuer CSCA not in the store: signature unchecked)"}`,
    });
    return true;
  }

  private anchorsNamed(folded: string): TrustAnchor[] {
    return this.bySubject.get(folded) ?? [];
  }

  /**
   * CSCAs that may have issued `cert`: same subject name as its issuer and, when both carry
   * key identifiers, the same key identifier (CSCA key rollover keeps the name).
   */
  issuerCandidates(cert: Certificate): TrustAnchor[] {
    return this.anchorsNamed(cert.issuer.folded).filter(
      (a) => sameName(a.cert.subject, cert.issuer) && (!cert.authorityKeyId || !a.cert.subjectKeyId || equalBytes(cert.authorityKeyId, a.cert.subjectKeyId)),
    );
  }

  /** The first candidate issuer whose key verifies `cert`, else the first candidate's failed result, else undefined. */
  findIssuer(cert: Certificate): IssuerMatch | undefined {
    return findIssuerAmong(cert, this.issuerCandidates(cert));
  }

  /** Revocation date of `cert` from a CRL of its issuer, or undefined. */
  revocation(cert: Certificate): { date: Date; source: string } | undefined {
    for (const e of this.crls) {
      if (!sameName(e.crl.issuer, cert.issuer)) continue;
      const date = e.crl.revoked.get(cert.serial);
      if (date) return { date, source: e.source };
    }
    return undefined;
  }
}
