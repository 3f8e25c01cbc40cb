/**
 * CSCA master lists (ICAO 9303-12 §7.1.1.2 / Doc 9303 Part 12 Appendix: CscaMasterList, OID
 * 2.23.136.1.1.2): a CMS SignedData whose content is { version, certList SET OF Certificate },
 * signed by a master list signer whose certificate a CSCA issued.
 */
import { ParseError } from "../errors.ts";
import { expectSequence, expectTag, parseAsn1, readSmallInt } from "./asn1.ts";
import { type SignedData, parseContentInfoSignedData } from "./cms.ts";
import { findSignerCertificate, verifySigner } from "./cms-verify.ts";
import { OID } from "./oids.ts";
import { type TrustAnchor, findIssuerAmong } from "./chain.ts";
import { type Certificate, readCertificate, sameName } from "./x509.ts";

export interface MasterList {
  signedData: SignedData;
  certificates: Certificate[];
  /** Entries of certList that did not parse as certificates. */
  skipped: number;
}

export interface MasterListResult {
  source: string;
  /** CSCA certificates in the list. */
  certificates: number;
  /** How many were new to the store (0 when the list was rejected). */
  added: number;
  signature: "ok" | "bad" | "unsupported" | "no-signer";
  /**
   * trusted: signed by a signer whose certificate a CSCA already in the store issued;
   * self-signed-list: the issuing CSCA is only inside the list (trust rests on where the file came from);
   * untrusted: no CSCA verifies the signer's certificate; bad: the list's own signature failed.
   */
  trust: "trusted" | "self-signed-list" | "untrusted" | "bad";
  signer: { subject: string; issuer: string } | undefined;
  detail: string | undefined;
}

export function readMasterList(bytes: Uint8Array): MasterList {
  const signedData = parseContentInfoSignedData(bytes);
  if (signedData.eContentType !== OID.cscaMasterList) {
    throw new ParseError(`master list: content type ${signedData.eContentType} is not CscaMasterList`);
  }
  if (!signedData.eContent) throw new ParseError("master list: no content");
  const ml = expectSequence(parseAsn1(signedData.eContent), "CscaMasterList");
  const version = readSmallInt(ml.children[0], "CscaMasterList version");
  if (version !== 0) throw new ParseError(`CscaMasterList version ${version}`);
  const list = expectTag(ml.children[1], 0x31, "CscaMasterList certList");
  const certificates: Certificate[] = [];
  let skipped = 0;
  for (const c of list.children) {
    try {
      certificates.push(readCertificate(c));
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      skipped++;
    }
  }
  return { signedData, certificates, skipped };
}

/** Checks the list's signature and its signer's certificate against `anchors` and the list's own CSCAs. */
export function verifyMasterList(ml: MasterList, anchors: TrustAnchor[], source: string): MasterListResult {
  const base = { source, certificates: ml.certificates.length, added: 0 };
  const si = ml.signedData.signerInfos[0];
  if (!si || ml.signedData.signerInfos.length !== 1) {
    return { ...base, signature: "no-signer", trust: "bad", signer: undefined, detail: "expected exactly one signer" };
  }
  const signerCert = findSignerCertificate(ml.signedData, si);
  if (!signerCert) return { ...base, signature: "no-signer", trust: "bad", signer: undefined, detail: "signer certificate not in the list" };
  const signer = { subject: signerCert.subject.text, issuer: signerCert.issuer.text };
  const check = verifySigner(ml.signedData, si, signerCert);
  if (check.status !== "ok") {
    return { ...base, signature: check.status, trust: "bad", signer, detail: check.status === "bad" ? check.reason : check.detail };
  }
  const candidates = (pool: TrustAnchor[]) =>
    pool.filter((a) => sameName(a.cert.subject, signerCert.issuer));
  const fromStore = findIssuerAmong(signerCert, candidates(anchors));
  if (fromStore?.signature.status === "ok") {
    return { ...base, signature: "ok", trust: "trusted", signer, detail: `signer issued by ${fromStore.anchor.source}` };
  }
  const own = ml.certificates.map((cert) => ({ cert, source: "list" }));
  const fromList = findIssuerAmong(signerCert, candidates(own));
  if (fromList?.signature.status === "ok") return { ...base, signature: "ok", trust: "self-signed-list", signer, detail: undefined };
  return { ...base, signature: "ok", trust: "untrusted", signer, detail: "no CSCA verifies the signer's certificate" };
}
