/**
 * Passive Authentication (ICAO 9303-11 §5.1, 9303-12 §7): data-group hashes against EF.SOD, the
 * SOD's CMS signature by its document signer, and the document signer's chain to a CSCA of the
 * trust store (signature, validity, key usage, revocation, country). Produces one explained verdict.
 * Pure: no I/O; the time is a parameter.
 */
import { MrtdError } from "../errors.ts";
import { type DgHashStatus, type KnownDigests, compareHashes, parseSod } from "../lds/sod.ts";
import { caProblem } from "../pki/chain.ts";
import { signingTime as readSigningTime } from "../pki/cms.ts";
import { findSignerCertificate, verifySigner } from "../pki/cms-verify.ts";
import { countryAlpha2 } from "../pki/country-codes.ts";
import type { TrustStore } from "../pki/trust-store.ts";
import { REASONS } from "./reasons.ts";
import { type Certificate, KEY_USAGE, serialHex, validAt } from "../pki/x509.ts";

export type PaOverall = "verified" | "failed" | "unverifiable";
export type SodSignatureStatus = "ok" | "bad" | "unsupported" | "not-checked";
/** `invalid`: the DS certificate's signature or extensions are wrong (a forged or misissued signer). */
export type ChainStatus = "trusted" | "no-csca" | "invalid" | "expired" | "revoked" | "country-mismatch" | "not-checked";
/**
 * What the CRLs say about the document signer: not-revoked (a current CRL of its CSCA does not
 * list it), revoked, stale (every CRL of its CSCA is past nextUpdate: not proven), no-crl, not-checked.
 */
export type RevocationStatus = "not-revoked" | "revoked" | "stale" | "no-crl" | "not-checked";

export interface PaSigner {
  subject: string;
  issuer: string;
  /** Serial number in hex. */
  serial: string;
  notBefore: string;
  notAfter: string;
  /** The SOD signature algorithm, e.g. "RSA-2048 PKCS#1 v1.5 SHA-256". */
  algorithm: string;
}

export interface PaVerdict {
  overall: PaOverall;
  /** Reason codes, failures first (see reasons.ts). Empty when verified. */
  reasons: string[];
  /** Observations that do not change the verdict (e.g. COUNTRY_CODE_UNKNOWN). */
  warnings: string[];
  /** One human line. */
  summary: string;
  dgHashes: { dg: number; status: DgHashStatus }[];
  hashAlgorithm: string | undefined;
  sodSignature: SodSignatureStatus;
  chain: ChainStatus;
  signer: PaSigner | undefined;
  csca: { subject: string; serial: string; source: string } | undefined;
  /** signingTime signed attribute (ISO 8601), if present. */
  signingTime: string | undefined;
  revocation: RevocationStatus;
  /** CRLs of the CSCA that are past their nextUpdate, when revocation is "stale". */
  staleCrls: { source: string; nextUpdate: string }[];
}

export interface PaPolicy {
  /**
   * When certificates must be valid: at signing (the signingTime attribute, or now without it),
   * now, both (default), or not at all.
   */
  validityAt?: "signing-time" | "now" | "both" | "none";
  /** Compare the certificates' countryName with the MRZ issuing state (default true). */
  checkCountry?: boolean;
  /** Require digitalSignature in a DS KeyUsage extension (default true). */
  checkKeyUsage?: boolean;
}

export interface PassiveInput {
  /** EF.SOD as read (tag 77). */
  sod: Uint8Array;
  /** Data groups read, whole files, by DG number. */
  files: Map<number, Uint8Array>;
  /** Digests of `files` computed earlier from the same bytes (used when the SOD's algorithm matches). */
  knownDigests?: KnownDigests;
  trust?: TrustStore;
  /** MRZ issuing state ("UTO", "D<<", "NLD") or an alpha-2 code. */
  issuingState?: string;
  now?: Date;
  policy?: PaPolicy;
}

export function verifyPassive(input: PassiveInput): PaVerdict {
  const now = input.now ?? new Date();
  const policy = { validityAt: "both", checkCountry: true, checkKeyUsage: true, ...input.policy } as Required<PaPolicy>;
  const v = uncheckedVerdict();
  const { reasons } = v;
  try {
    check(input, now, policy, v);
  } catch (e) {
    // Anything malformed deep inside (a certificate, an attribute) fails the document, typed.
    if (!(e instanceof MrtdError)) throw e;
    add(reasons, "SOD_MALFORMED");
  }
  return finish(v);
}

function check(input: PassiveInput, now: Date, policy: Required<PaPolicy>, v: PaVerdict): void {
  const { reasons, warnings } = v;
  const sod = parseSod(input.sod);
  v.hashAlgorithm = sod.hashAlgorithm;
  v.dgHashes = compareHashes(sod, input.files, input.knownDigests);
  if (v.dgHashes.some((d) => d.status === "mismatch")) add(reasons, "DG_HASH_MISMATCH");
  if (v.dgHashes.some((d) => d.status === "not-in-sod")) add(reasons, "DG_NOT_IN_SOD");
  if (!v.dgHashes.some((d) => d.status === "ok")) add(reasons, "NO_DG_CHECKED");

  const sd = sod.signedData;
  const si = sd.signerInfos[0]!;
  const ds = findSignerCertificate(sd, si);
  if (!ds) {
    add(reasons, "NO_DS_CERT");
    return;
  }
  // 9303-10 §4.6.2.3: signed attributes (contentType, messageDigest) are mandatory in EF.SOD
  if (!si.signedAttrs) add(reasons, "SOD_NO_SIGNED_ATTRIBUTES");
  const sig = verifySigner(sd, si, ds);
  v.signer = {
    subject: ds.subject.text,
    issuer: ds.issuer.text,
    serial: serialHex(ds.serial),
    notBefore: ds.notBefore.toISOString(),
    notAfter: ds.notAfter.toISOString(),
    algorithm: sig.algorithm,
  };
  v.sodSignature = sig.status;
  if (sig.status === "unsupported") add(reasons, "UNSUPPORTED_ALGORITHM");
  else if (sig.status === "bad") {
    add(
      reasons,
      sig.reason === "MESSAGE_DIGEST_MISMATCH"
        ? "SOD_DIGEST_MISMATCH"
        : sig.reason === "CONTENT_TYPE_MISMATCH"
          ? "SOD_CONTENT_TYPE_MISMATCH"
          : sig.reason === "ATTRIBUTES_MALFORMED"
            ? "SOD_ATTRIBUTES_MALFORMED"
            : "SOD_SIGNATURE_BAD",
    );
  }

  let signedAt: Date | undefined;
  try {
    signedAt = readSigningTime(si);
  } catch {
    warnings.push("SIGNING_TIME_MALFORMED");
  }
  v.signingTime = signedAt?.toISOString();
  v.chain = checkChain(input.trust, ds, signedAt ?? now, now, policy, input.issuingState, v);
}

function checkChain(
  trust: TrustStore | undefined,
  ds: Certificate,
  signedAt: Date,
  now: Date,
  policy: Required<PaPolicy>,
  issuingState: string | undefined,
  v: PaVerdict,
): ChainStatus {
  const { reasons, warnings } = v;
  const found = new Set<ChainStatus>();
  const times: Date[] =
    policy.validityAt === "none" ? [] : policy.validityAt === "now" ? [now] : policy.validityAt === "signing-time" ? [signedAt] : [signedAt, now];
  const checkValidity = (cert: Certificate, who: "DS" | "CSCA") => {
    for (const t of times) {
      if (validAt(cert, t)) continue;
      add(reasons, t < cert.notBefore ? `${who}_NOT_YET_VALID` : `${who}_EXPIRED`);
      found.add("expired");
    }
  };

  // Checks that need only the DS certificate (9303-12 §7.1.1 document signer profile, RFC 5280 §4.2).
  checkValidity(ds, "DS");
  if (policy.checkKeyUsage && ds.keyUsage && !ds.keyUsage.has(KEY_USAGE.digitalSignature)) {
    add(reasons, "DS_KEY_USAGE");
    found.add("invalid");
  }
  if (ds.basicConstraintsCa === true) {
    add(reasons, "DS_IS_CA");
    found.add("invalid");
  }
  if (ds.unknownCriticalExtensions.length > 0) {
    add(reasons, "DS_CRITICAL_EXTENSION");
    found.add("invalid");
  }
  const expected = issuingState !== undefined && policy.checkCountry ? countryAlpha2(issuingState) : undefined;
  if (issuingState !== undefined && policy.checkCountry && !expected) warnings.push("COUNTRY_CODE_UNKNOWN");
  const checkCountry = (cert: Certificate, who: string) => {
    if (!cert.subject.country) warnings.push(`${who}_NO_COUNTRY`);
    else if (expected && cert.subject.country !== expected) {
      add(reasons, "COUNTRY_MISMATCH");
      found.add("country-mismatch");
    }
  };
  if (policy.checkCountry) checkCountry(ds, "DS");

  if (!trust) {
    add(reasons, "NO_TRUST_STORE");
    return pick(found, "not-checked");
  }
  if (trust.revocation(ds)) {
    add(reasons, "DS_REVOKED");
    found.add("revoked");
    v.revocation = "revoked";
  } else {
    const r = trust.revocationStatus(ds, now);
    v.revocation = r.status === "current" ? "not-revoked" : r.status;
    if (r.status === "stale") {
      warnings.push("CRL_STALE");
      v.staleCrls = r.stale.map((c) => ({ source: c.source, nextUpdate: c.nextUpdate.toISOString() }));
    }
  }
  const issuer = trust.findIssuer(ds);
  if (!issuer) {
    add(reasons, "NO_CSCA");
    return pick(found, "no-csca");
  }
  const csca = issuer.anchor.cert;
  v.csca = { subject: csca.subject.text, serial: serialHex(csca.serial), source: issuer.anchor.source };
  if (issuer.signature.status === "unsupported") {
    add(reasons, "UNSUPPORTED_ALGORITHM");
    return pick(found, "not-checked");
  }
  if (issuer.signature.status === "bad") {
    add(reasons, "DS_CERT_SIGNATURE_BAD");
    found.add("invalid");
  }
  const notCa = caProblem(csca);
  if (notCa) {
    add(reasons, `CSCA_${notCa}`);
    found.add("invalid");
  }
  checkValidity(csca, "CSCA");
  if (trust.revocation(csca)) {
    add(reasons, "CSCA_REVOKED");
    found.add("revoked");
  }
  if (policy.checkCountry) {
    checkCountry(csca, "CSCA");
    // 9303-12 §7.1.1: a document signer belongs to its CSCA's country, whatever the MRZ says
    if (ds.subject.country && csca.subject.country && ds.subject.country !== csca.subject.country) {
      add(reasons, "COUNTRY_MISMATCH");
      found.add("country-mismatch");
    }
  }
  return pick(found, "trusted");
}

const CHAIN_PRIORITY: ChainStatus[] = ["revoked", "invalid", "expired", "country-mismatch"];

function pick(found: Set<ChainStatus>, otherwise: ChainStatus): ChainStatus {
  return CHAIN_PRIORITY.find((s) => found.has(s)) ?? otherwise;
}

function add(reasons: string[], code: string): void {
  if (!reasons.includes(code)) reasons.push(code);
}

function finish(v: PaVerdict): PaVerdict {
  const failing = v.reasons.filter((r) => REASONS[r]?.fails ?? true);
  const other = v.reasons.filter((r) => !(REASONS[r]?.fails ?? true));
  v.reasons.splice(0, v.reasons.length, ...failing, ...other);
  v.overall = failing.length ? "failed" : other.length ? "unverifiable" : "verified";
  if (v.overall === "verified") {
    const n = v.dgHashes.filter((d) => d.status === "ok").length;
    v.summary = `verified: ${n} data group${n === 1 ? "" : "s"} match the SOD, signed by ${v.signer?.subject} (${v.signer?.algorithm}) under CSCA ${v.csca?.subject}`;
  } else {
    const mismatched = v.dgHashes.filter((d) => d.status === "mismatch").map((d) => `DG${d.dg}`);
    const first = v.reasons[0]!;
    const text = first === "DG_HASH_MISMATCH" ? `${mismatched.join(", ")} ${mismatched.length === 1 ? "does" : "do"} not match the SOD` : REASONS[first]?.text ?? first;
    v.summary = `${v.overall}: ${text}` + (v.reasons.length > 1 ? ` (+${v.reasons.length - 1} more: ${v.reasons.slice(1).join(", ")})` : "");
  }
  return v;
}

/** A verdict before any check has run: unverifiable, nothing checked. */
export function uncheckedVerdict(): PaVerdict {
  return {
    overall: "unverifiable",
    reasons: [],
    warnings: [],
    summary: "",
    dgHashes: [],
    hashAlgorithm: undefined,
    sodSignature: "not-checked",
    chain: "not-checked",
    signer: undefined,
    csca: undefined,
    signingTime: undefined,
    revocation: "not-checked",
    staleCrls: [],
  };
}
