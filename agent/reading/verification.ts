/**
 * The verdict of one document for `read` and `verify`: Passive Authentication (ICAO 9303-11
 * §5.1, agent/pki/verify.ts) merged with the chip's authentication: Chip Authentication (§6.2),
 * PACE-CAM (§4.4.3.5) or Active Authentication (§6.1, agent/pki/active-auth.ts),
 * plus what it proves and does not prove in plain words, and the --trust option
 * (repeatable, comma-separated) that selects the trust sources.
 */
import { byDataGroupNumber } from "../lds/lds-files.ts";
import type { AaResult } from "../pki/active-auth.ts";
import type { ChipAuthResult } from "../icao/chip-authentication.ts";
import type { FileKey } from "../reading/read-result.ts";
import { loadTrustSources } from "../pki/trust-files.ts";
import type { TrustStore } from "../pki/trust-store.ts";
import { type PaPolicy, type PaVerdict, REASONS, uncheckedVerdict, verifyPassive } from "../pki/verify.ts";

export type AaVerdict = "ok" | "failed" | "not-supported" | "error" | "not-checked";

export interface DocumentVerdict extends Omit<PaVerdict, "aa"> {
  /** Active Authentication: ok, failed (a clone?), not-supported (no DG15), error, or not-checked (offline / not requested). */
  aa: AaVerdict;
  activeAuthentication: AaResult | undefined;
  /** Chip Authentication or PACE-CAM, when run. */
  chipAuthentication: ChipAuthResult | undefined;
  /** How the chip proved it is not a copy: CA, CAM or AA (the first that succeeded); undefined when none did. */
  chipGenuine: "CA" | "CAM" | "AA" | undefined;
  /** Each thing this verdict establishes, one short line each. */
  proven: string[];
  /** Each thing it does not establish (or found wrong), one short line each. */
  notProven: string[];
  /** The trust sources used, when any. */
  trust: { sources: string[]; cscas: number; crls: number } | undefined;
}

const AA_REASONS: Record<string, { fails: boolean; text: string }> = {
  AA_FAILED: { fails: true, text: "the chip failed Active Authentication (its key is not DG15's: a copied chip?)" },
  AA_ERROR: { fails: false, text: "Active Authentication could not be completed" },
  CA_FAILED: { fails: true, text: "the chip failed Chip Authentication (it does not hold DG14's key: a copied chip?)" },
  CAM_FAILED: { fails: true, text: "the chip failed PACE Chip Authentication Mapping (its data do not match DG14's key: a copied chip?)" },
  CA_ERROR: { fails: false, text: "Chip Authentication could not be completed" },
  NO_SOD: { fails: false, text: "EF.SOD was not read" },
};

export interface VerifyInput {
  /** Files as read or saved, by key ("COM", "SOD", "DG1", ...). */
  files: Map<FileKey, Uint8Array>;
  /** SHA-256 of `files` computed during the read (DocumentRead.sha256), so they are not hashed again. */
  sha256?: ReadonlyMap<FileKey, Uint8Array>;
  /** Data groups EF.COM lists, when known (tells "no DG15" from "DG15 not read"). */
  comDataGroups?: number[];
  trust?: TrustStore;
  trustSources?: string[];
  issuingState?: string;
  /** Result of INTERNAL AUTHENTICATE during the read; undefined when none was run. */
  aa?: AaResult;
  /** Whether AA was attempted during a read (false offline). */
  aaAttempted: boolean;
  /** Chip Authentication or PACE-CAM result of the read. */
  chipAuth?: ChipAuthResult;
  now?: Date;
  policy?: PaPolicy;
}

function reasonInfo(code: string): { fails: boolean; text: string } {
  return REASONS[code] ?? AA_REASONS[code] ?? { fails: true, text: code };
}

export function verifyDocument(input: VerifyInput): DocumentVerdict {
  const dgs = byDataGroupNumber(input.files);
  const sod = input.files.get("SOD");
  const byDg = byDataGroupNumber(input.sha256 ?? []);
  const pa: PaVerdict = sod
    ? verifyPassive({ sod, files: dgs, knownDigests: { algorithm: "sha256", byDg }, trust: input.trust, issuingState: input.issuingState, now: input.now, policy: input.policy })
    : { ...uncheckedVerdict(), reasons: ["NO_SOD"], summary: `unverifiable: ${AA_REASONS.NO_SOD!.text}` };

  const hasDg15 = dgs.has(15);
  const comHas15 = input.comDataGroups?.includes(15);
  let aa: AaVerdict;
  if (input.aa) aa = input.aa.status;
  else if (!input.aaAttempted || hasDg15 || comHas15) aa = "not-checked";
  else aa = "not-supported";

  const v: DocumentVerdict = {
    ...pa,
    reasons: [...pa.reasons],
    aa,
    activeAuthentication: input.aa,
    chipAuthentication: input.chipAuth,
    chipGenuine: undefined,
    proven: [],
    notProven: [],
    trust: input.trust ? { sources: input.trustSources ?? [], cscas: input.trust.size, crls: input.trust.crls.length } : undefined,
  };
  if (aa === "failed") v.reasons.push("AA_FAILED");
  if (aa === "error") v.reasons.push("AA_ERROR");
  const ca = input.chipAuth;
  if (ca?.status === "failed") v.reasons.push(ca.method === "CAM" ? "CAM_FAILED" : "CA_FAILED");
  if (ca?.status === "error") v.reasons.push("CA_ERROR");
  // DG14's key counts only when EF.SOD's signature vouches for DG14 (a forged DG14 proves nothing)
  const dg14Signed = pa.sodSignature === "ok" && pa.dgHashes.some((d) => d.dg === 14 && d.status === "ok");
  if (ca?.status === "ok" && dg14Signed) v.chipGenuine = ca.method;
  else if (aa === "ok") v.chipGenuine = "AA";
  const failing = v.reasons.filter((r) => reasonInfo(r).fails);
  const other = v.reasons.filter((r) => !reasonInfo(r).fails);
  v.reasons = [...failing, ...other];
  v.overall = failing.length ? "failed" : other.length ? "unverifiable" : "verified";
  if (v.reasons.length !== pa.reasons.length) {
    // Active Authentication added a reason: the PA summary's text stays when its reason still leads
    const first = v.reasons[0]!;
    const text = first === pa.reasons[0] ? pa.summary.replace(/^\w+: /, "").replace(/ \(\+\d+ more: .*\)$/, "") : reasonInfo(first).text;
    v.summary = `${v.overall}: ${text}` + (v.reasons.length > 1 ? ` (+${v.reasons.length - 1} more: ${v.reasons.slice(1).join(", ")})` : "");
  } else if (v.overall === "verified" && v.chipGenuine) {
    v.summary = `${pa.summary}; chip genuine by ${v.chipGenuine} (${v.chipGenuine === "AA" ? input.aa?.algorithm : ca?.algorithm})`;
  }
  explain(v, input);
  return v;
}

function explain(v: DocumentVerdict, input: VerifyInput): void {
  const { proven, notProven } = v;
  const ok = v.dgHashes.filter((d) => d.status === "ok").map((d) => `DG${d.dg}`);
  const bad = v.dgHashes.filter((d) => d.status === "mismatch").map((d) => `DG${d.dg}`);
  const uncovered = v.dgHashes.filter((d) => d.status === "not-in-sod").map((d) => `DG${d.dg}`);
  const alg = v.hashAlgorithm?.toUpperCase().replace("SHA", "SHA-");
  if (v.reasons.includes("NO_SOD")) notProven.push("anything about the data: EF.SOD was not read");
  if (v.reasons.includes("SOD_MALFORMED")) notProven.push("anything about the data: EF.SOD is malformed");
  if (ok.length) proven.push(`${ok.join(", ")} match${ok.length === 1 ? "es" : ""} ${ok.length === 1 ? "its hash" : "their hashes"} in EF.SOD (${alg})`);
  if (bad.length) notProven.push(`${bad.join(", ")} ${bad.length === 1 ? "does" : "do"} NOT match EF.SOD: altered after signing`);
  if (uncovered.length) notProven.push(`${uncovered.join(", ")} ${uncovered.length === 1 ? "is" : "are"} not covered by EF.SOD`);

  if (v.sodSignature === "ok") proven.push(`EF.SOD is signed by ${v.signer?.subject} (${v.signer?.algorithm})`);
  else if (v.sodSignature === "bad") notProven.push(`the EF.SOD signature does NOT verify${v.signer ? ` with ${v.signer.subject}'s key` : ""}`);
  else if (v.sodSignature === "unsupported") notProven.push(`the EF.SOD signature: algorithm not supported (${v.signer?.algorithm ?? "unknown"})`);
  else if (v.reasons.includes("NO_DS_CERT")) notProven.push("the EF.SOD signature: no document signer certificate in EF.SOD");

  const chainProblems = v.reasons.filter((r) => /^(DS_|CSCA_|COUNTRY_MISMATCH)/.test(r)).map((r) => reasonInfo(r).text);
  if (v.chain === "trusted") proven.push(`the document signer was issued by trusted CSCA ${v.csca?.subject} (${v.csca?.source})`);
  else if (v.reasons.includes("NO_TRUST_STORE")) notProven.push("that the document signer is genuine: no trust store (give --trust <CSCA certificates, master list, CRLs>)");
  else if (v.chain === "no-csca") notProven.push(`that the document signer is genuine: no trusted CSCA issued it (issuer ${v.signer?.issuer})`);
  for (const p of chainProblems) notProven.push(p);

  const ca = v.chipAuthentication;
  const caName = ca?.method === "CAM" ? "PACE Chip Authentication Mapping" : "Chip Authentication";
  if (ca?.status === "ok") {
    if (v.chipGenuine === ca.method) proven.push(`the chip holds the private key of DG14's Chip Authentication key: not a copy (${caName}, ${ca.algorithm})`);
    else notProven.push(`that the chip is not a copy: ${caName} passed, but EF.SOD does not vouch for DG14 (its signature or hash did not verify)`);
  } else if (ca?.status === "failed") notProven.push(`the chip FAILED ${caName} (${ca.algorithm}): it does not hold DG14's key, a copied chip?${ca.detail ? ` (${ca.detail})` : ""}`);
  else if (ca?.status === "error") notProven.push(`that the chip is not a copy: ${caName} could not be completed (${ca.detail ?? "error"})`);
  // AA's "not proven" lines only matter when nothing else proved the chip genuine
  const chipProven = v.chipGenuine !== undefined && v.chipGenuine !== "AA";
  const aa = v.activeAuthentication;
  switch (v.aa) {
    case "ok":
      proven.push(`the chip holds DG15's private key: not a copy (Active Authentication, ${aa?.algorithm})`);
      break;
    case "failed":
      notProven.push(`the chip FAILED Active Authentication (${aa?.algorithm}): its key is not DG15's, a copied chip?`);
      break;
    case "error":
      notProven.push(`that the chip is not a copy: Active Authentication could not be completed (${aa?.detail ?? "error"})`);
      break;
    case "not-supported":
      if (!chipProven && !ca) notProven.push("that the chip is not a copy: it offers no Active Authentication (no DG15)");
      break;
    case "not-checked":
      if (chipProven) break;
      notProven.push(
        input.aaAttempted
          ? "that the chip is not a copy: DG15 was not read, so Active Authentication was not run"
          : `that the chip is not a copy: Active Authentication needs the chip${input.files.has("DG15") ? " (offline check)" : ""}`,
      );
      break;
  }
}

/** Human lines for the report: the verdict, then what is and is not proven. */
export function verdictLines(v: DocumentVerdict): string[] {
  const [head, ...rest] = v.summary.split(": ");
  const lines = [`Verdict   ${head!.toUpperCase()}: ${rest.join(": ")}`];
  for (const p of v.proven) lines.push(`          proven:     ${p}`);
  for (const p of v.notProven) lines.push(`          NOT proven: ${p}`);
  if (v.warnings.length) lines.push(`          warnings:   ${v.warnings.join(", ")}`);
  if (v.trust) lines.push(`          trust:      ${v.trust.cscas} CSCA certificate${v.trust.cscas === 1 ? "" : "s"}, ${v.trust.crls} CRL${v.trust.crls === 1 ? "" : "s"} from ${v.trust.sources.join(", ")}`);
  return lines;
}

/** Loads the trust sources (ConfigError, exit 2, for a path that does not exist). */
export function loadTrust(paths: string[]): TrustStore | undefined {
  return paths.length ? loadTrustSources(paths) : undefined;
}
