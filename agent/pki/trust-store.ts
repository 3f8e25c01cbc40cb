/**
 * The trust store of Passive Authentication (ICAO 9303-12 §5-7): CSCA certificates (trust
 * anchors, from files or master lists) and CRLs that revoke document signers. In memory and
 * free of I/O; trust-files.ts fills it from disk.
 *
 * ICAO's PKI has exactly two levels (CSCA -> document signer or master list signer; CSCA link
 * certificates are themselves anchors), so a chain is one step and cannot loop.
 */
import { equalBytes, hex } from "../bytes.ts";
import { type Crl, crlStale, parseCrl } from "./crl.ts";
import { digest } from "./digest.ts";
import { MASTER_LIST_MAX_NODES, type MasterListResult, readMasterList, verifyMasterList } from "./master-list.ts";
import { type CaProblem, type IssuerMatch, type TrustAnchor, caProblem, findIssuerAmong } from "./chain.ts";
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
  kind: "csca" | "master-list" | "master-list-anchor" | "crl" | "skipped";
  status: "loaded" | "rejected" | "duplicate";
  detail: string;
}

/** A master list accepted into the store, and on what grounds (see MasterListResult.trust). */
export interface AcceptedMasterList {
  source: string;
  trust: "trusted" | "operator-word";
  added: number;
}

export class TrustStore {
  readonly anchors: TrustAnchor[] = [];
  /** CSCAs trusted to vouch for master lists (their signers' issuers), not for documents. */
  readonly masterListAnchors: TrustAnchor[] = [];
  readonly masterLists: AcceptedMasterList[] = [];
  readonly crls: CrlEntry[] = [];
  readonly log: TrustLoadEntry[] = [];
  private readonly bySubject = new Map<string, TrustAnchor[]>();
  private readonly seen = new Set<string>();

  get size(): number {
    return this.anchors.length;
  }

  /**
   * Adds a CSCA certificate: "loaded", "duplicate", or the reason it is no CA (RFC 5280 §4.2.1.9,
   * ICAO 9303-12 §7.1.1: a document signer or other end-entity certificate is no trust anchor).
   * Throws ParseError for an unparsable one.
   */
  addCertificate(der: Uint8Array, source: string): "loaded" | "duplicate" | CaProblem {
    const cert = parseCertificate(der);
    const problem = caProblem(cert);
    if (problem) return problem;
    return this.addParsed(cert, { cert, source }) ? "loaded" : "duplicate";
  }

  /** Adds a CSCA trusted to vouch for master lists (the same CA checks as addCertificate). */
  addMasterListAnchor(der: Uint8Array, source: string): "loaded" | CaProblem {
    const cert = parseCertificate(der);
    const problem = caProblem(cert);
    if (problem) return problem;
    this.masterListAnchors.push({ cert, source });
    return "loaded";
  }

  private addParsed(cert: Certificate, anchor: TrustAnchor): boolean {
    const id = hex(digest("sha256", cert.der));
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    this.anchors.push(anchor);
    const key = cert.subject.folded;
    const list = this.bySubject.get(key);
    if (list) list.push(anchor);
    else this.bySubject.set(key, [anchor]);
    return true;
  }

  /**
   * Loads a CSCA master list (ICAO 9303-12 §7.1.1.2). With master-list anchors, only a list whose
   * signer one of them issued is accepted ("trusted"). Without any, a list with a good signature
   * whose signer chains to a CSCA of the list or the store is accepted on the operator's word
   * ("operator-word"), and verdicts that rest on its CSCAs say so. Entries pass the same CA checks
   * as certificate files.
   */
  addMasterList(bytes: Uint8Array, source: string, now = new Date()): MasterListResult {
    const ml = readMasterList(bytes);
    const result = verifyMasterList(ml, { masterListAnchors: this.masterListAnchors, cscas: this.anchors, source, now });
    const accept = result.trust === "trusted" || (result.trust === "operator-word" && this.masterListAnchors.length === 0);
    if (accept) {
      const via = { source, trust: result.trust as AcceptedMasterList["trust"] };
      for (const c of ml.certificates) {
        if (caProblem(c)) result.notCa++;
        else if (this.addParsed(c, { cert: c, source: `master list ${source}`, masterList: via })) result.added++;
      }
      this.masterLists.push({ ...via, added: result.added });
    }
    const why = !accept && result.trust === "operator-word" ? "; its signer chains to no master-list anchor" : "";
    this.log.push({
      source,
      kind: "master-list",
      status: accept ? "loaded" : "rejected",
      detail: `${ml.certificates.length} CSCA certificates, ${result.added} new; signature ${result.signature}, signer ${result.trust}` +
        (result.notCa ? `; ${result.notCa} entries that are no CA certificate skipped` : "") +
        (ml.skipped ? `; ${ml.skipped} unparsable entries skipped` : "") + (result.detail ? `; ${result.detail}` : "") + why,
    });
    return result;
  }

  /**
   * Adds a CRL. Its signature is checked with a CSCA of the same name when the store has one; a
   * CRL with a bad signature is rejected (returns false).
   */
  addCrl(der: Uint8Array, source: string): boolean {
    const crl = parseCrl(der, { maxNodes: MASTER_LIST_MAX_NODES });
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

  /**
   * What the CRLs can say about `cert` at `now` (RFC 5280 §6.3): "current" when a CRL of its
   * issuer is within its nextUpdate, "stale" when every one of them is past it (a listed
   * revocation still counts, an absent one proves nothing), "no-crl" when there is none.
   */
  revocationStatus(cert: Certificate, now: Date): { status: "current" | "stale" | "no-crl"; stale: { source: string; nextUpdate: Date }[] } {
    const mine = this.crls.filter((e) => sameName(e.crl.issuer, cert.issuer));
    if (mine.length === 0) return { status: "no-crl", stale: [] };
    const stale = mine.filter((e) => crlStale(e.crl, now)).map((e) => ({ source: e.source, nextUpdate: e.crl.nextUpdate! }));
    return { status: stale.length === mine.length ? "stale" : "current", stale };
  }
}
