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
import { type Certificate, KEY_USAGE, readCertificate, sameName, validAt } from "./x509.ts";

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
  /** Entries that are no CA certificate (the same checks as a certificate file: caProblem). */
  notCa: number;
  signature: "ok" | "bad" | "unsupported" | "no-signer";
  /**
   * trusted: the signer's certificate was issued by a master-list anchor (a CSCA the operator
   * trusts to vouch for other CSCAs);
   * operator-word: the signature is good and its signer chains to a CSCA in the list or the
   * store, but to no master-list anchor: the list is only as good as where the file came from;
   * untrusted: no CSCA verifies the signer's certificate;
   * bad: the list's own signature, its signed attributes or its signer certificate failed.
   */
  trust: "trusted" | "operator-word" | "untrusted" | "bad";
  signer: { subject: string; issuer: string } | undefined;
  detail: string | undefined;
}

/** Trust files are the operator's: a national master list holds hundreds of CSCAs (about 100 elements each). */
export const MASTER_LIST_MAX_NODES = 4_000_000;

export function readMasterList(bytes: Uint8Array): MasterList {
  const signedData = parseContentInfoSignedData(bytes, { maxNodes: MASTER_LIST_MAX_NODES });
  if (signedData.eContentType !== OID.cscaMasterList) {
    throw new ParseError(`master list: content type ${signedData.eContentType} is not CscaMasterList`);
  }
  if (!signedData.eContent) throw new ParseError("master list: no content");
  const ml = expectSequence(parseAsn1(signedData.eContent, { maxNodes: MASTER_LIST_MAX_NODES }), "CscaMasterList");
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

/**
 * Why a master list signer's certificate is unusable at `now` (ICAO 9303-12 §7.1.1.2: extended
 * key usage id-icao-cscaMasterListSigningKey, digitalSignature, within its validity), or undefined.
 */
export function masterListSignerProblem(cert: Certificate, now: Date): string | undefined {
  if (!cert.extKeyUsage?.includes(OID.ekuMasterListSigner)) return "signer certificate lacks the master list signer extended key usage (2.23.136.1.1.3)";
  if (cert.keyUsage && !cert.keyUsage.has(KEY_USAGE.digitalSignature)) return "signer certificate does not allow digitalSignature";
  if (cert.basicConstraintsCa === true) return "signer certificate is a CA certificate";
  if (cert.unknownCriticalExtensions.length) return `signer certificate has an unknown critical extension ${cert.unknownCriticalExtensions[0]}`;
  if (!validAt(cert, now)) return `signer certificate is not valid now (${cert.notBefore.toISOString().slice(0, 10)} to ${cert.notAfter.toISOString().slice(0, 10)})`;
  return undefined;
}

/**
 * Checks the list's signature (signed attributes required, as for EF.SOD), its signer's
 * certificate, and who issued that certificate: a master-list anchor (trusted), else a CSCA of
 * the store or of the list itself (operator-word).
 */
export function verifyMasterList(ml: MasterList, opts: { masterListAnchors: TrustAnchor[]; cscas: TrustAnchor[]; source: string; now: Date }): MasterListResult {
  const base = { source: opts.source, certificates: ml.certificates.length, added: 0, notCa: 0 };
  const si = ml.signedData.signerInfos[0];
  if (!si || ml.signedData.signerInfos.length !== 1) {
    return { ...base, signature: "no-signer", trust: "bad", signer: undefined, detail: "expected exactly one signer" };
  }
  const signerCert = findSignerCertificate(ml.signedData, si);
  if (!signerCert) return { ...base, signature: "no-signer", trust: "bad", signer: undefined, detail: "signer certificate not in the list" };
  const signer = { subject: signerCert.subject.text, issuer: signerCert.issuer.text };
  if (!si.signedAttrs) return { ...base, signature: "bad", trust: "bad", signer, detail: "no signed attributes (ICAO 9303-12 requires contentType and messageDigest)" };
  const check = verifySigner(ml.signedData, si, signerCert);
  if (check.status !== "ok") {
    return { ...base, signature: check.status, trust: "bad", signer, detail: check.status === "bad" ? check.reason : check.detail };
  }
  const problem = masterListSignerProblem(signerCert, opts.now);
  if (problem) return { ...base, signature: "ok", trust: "bad", signer, detail: problem };
  const candidates = (pool: TrustAnchor[]) => pool.filter((a) => sameName(a.cert.subject, signerCert.issuer));
  const fromAnchor = findIssuerAmong(signerCert, candidates(opts.masterListAnchors));
  if (fromAnchor?.signature.status === "ok") {
    return { ...base, signature: "ok", trust: "trusted", signer, detail: `signer issued by master-list anchor ${fromAnchor.anchor.source}` };
  }
  const own = ml.certificates.map((cert) => ({ cert, source: "list" }));
  const fromCsca = findIssuerAmong(signerCert, candidates([...opts.cscas, ...own]));
  if (fromCsca?.signature.status === "ok") {
    return { ...base, signature: "ok", trust: "operator-word", signer, detail: `signer issued by ${fromCsca.anchor.source === "list" ? "a CSCA inside the list" : fromCsca.anchor.source}, not by a master-list anchor` };
  }
  return { ...base, signature: "ok", trust: "untrusted", signer, detail: "no CSCA verifies the signer's certificate" };
}
