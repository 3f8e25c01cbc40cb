/**
 * The verdict of one document for `read`, `verify` and remote reads: Passive Authentication
 * (ICAO 9303-11 §5.1, agent/pki/verify.ts) merged with what the chip did during the read: which
 * files EF.SOD lists and the chip refused, and Active Authentication (§6.1). EF.SOD is signed,
 * EF.COM is not: what the SOD lists decides what must be read and proven; EF.COM is only
 * compared with it. Plus what the verdict proves and does not prove in plain words.
 */
import { byDataGroupNumber } from "../lds/lds-files.ts";
import type { AaResult } from "../pki/active-auth.ts";
import type { FileKey } from "../reading/read-result.ts";
import { loadTrustSources } from "../pki/trust-files.ts";
import type { AcceptedMasterList, TrustStore } from "../pki/trust-store.ts";
import { type PaPolicy, type PaVerdict, REASONS, uncheckedVerdict, verifyPassive } from "../pki/verify.ts";

export type AaVerdict = "ok" | "failed" | "not-supported" | "error" | "not-checked";

export interface DocumentVerdict extends PaVerdict {
  /** Active Authentication: ok, failed (a clone?), not-supported (EF.SOD lists no DG15), error, or not-checked. */
  aa: AaVerdict;
  activeAuthentication: AaResult | undefined;
  /** Data groups EF.SOD lists that were not read, and why. */
  notRead: { dg: number; why: "refused" | "eac" | "not-requested" | "not-read"; sw?: string }[];
  /** Where EF.COM and EF.SOD disagree (EF.COM is advisory: the SOD decides). */
  comMismatch: { onlyInSod: number[]; onlyInCom: number[] } | undefined;
  /** Each thing this verdict establishes, one short line each. */
  proven: string[];
  /** Each thing it does not establish (or found wrong), one short line each. */
  notProven: string[];
  /** The trust sources used, when any. */
  trust: { sources: string[]; cscas: number; crls: number; masterLists: AcceptedMasterList[] } | undefined;
}

/** Reason codes added to Passive Authentication's by what the chip did. */
export const CHIP_REASONS: Record<string, { fails: boolean; text: string }> = {
  DG15_REFUSED: { fails: true, text: "the chip refused DG15, which EF.SOD lists: a copied chip hiding its Active Authentication key?" },
  AA_FAILED: { fails: true, text: "the chip failed Active Authentication (its key is not DG15's: a copied chip?)" },
  AA_NOT_PERFORMED: { fails: false, text: "EF.SOD lists DG15 but Active Authentication was not performed" },
  AA_ERROR: { fails: false, text: "Active Authentication could not be completed" },
  NO_SOD: { fails: false, text: "EF.SOD was not read" },
};

/** Codes that are reported but do not change the verdict. */
export const WARNINGS: Record<string, string> = {
  COM_SOD_MISMATCH: "EF.COM and EF.SOD list different data groups (EF.SOD decides)",
  DG_NOT_READ: "a data group EF.SOD lists was not read, so it is not proven",
  CRL_STALE: "every CRL of the CSCA is past its nextUpdate: revocation not proven",
  COUNTRY_CODE_UNKNOWN: "the MRZ issuing state maps to no country code",
  SIGNING_TIME_MALFORMED: "the signingTime attribute is malformed",
  DS_NO_COUNTRY: "the document signer certificate names no country",
  CSCA_NO_COUNTRY: "the CSCA certificate names no country",
};

/** What the chip did during a read; absent for offline verification (`verify`). */
export interface ChipEvidence {
  /** Whether Active Authentication was on for the read. */
  activeAuthentication: boolean;
  /** Result of INTERNAL AUTHENTICATE; undefined when none was run. */
  aa?: AaResult;
  /** Files the chip refused or does not have, with the status word. */
  absent: { key: FileKey; sw: number }[];
  /** The caller's file list, when one was given (otherwise EF.SOD decided). */
  requested?: FileKey[];
}

export interface VerifyInput {
  /** Files as read or saved, by key ("COM", "SOD", "DG1", ...). */
  files: Map<FileKey, Uint8Array>;
  /** SHA-256 of `files` computed during the read (DocumentRead.sha256), so they are not hashed again. */
  sha256?: ReadonlyMap<FileKey, Uint8Array>;
  /** Data groups EF.COM lists, when known (compared with EF.SOD's list). */
  comDataGroups?: number[];
  trust?: TrustStore;
  trustSources?: string[];
  issuingState?: string;
  chip?: ChipEvidence;
  now?: Date;
  policy?: PaPolicy;
}

/** Data groups behind Extended Access Control (fingerprints, iris): not readable after BAC alone. */
const EAC_PROTECTED = new Set([3, 4]);

function reasonInfo(code: string): { fails: boolean; text: string } {
  return REASONS[code] ?? CHIP_REASONS[code] ?? { fails: true, text: code };
}

export function verifyDocument(input: VerifyInput): DocumentVerdict {
  const dgs = byDataGroupNumber(input.files);
  const sod = input.files.get("SOD");
  const byDg = byDataGroupNumber(input.sha256 ?? []);
  const pa: PaVerdict = sod
    ? verifyPassive({ sod, files: dgs, knownDigests: { algorithm: "sha256", byDg }, trust: input.trust, issuingState: input.issuingState, now: input.now, policy: input.policy })
    : { ...uncheckedVerdict(), reasons: ["NO_SOD"] };
  const v: DocumentVerdict = {
    ...pa,
    reasons: [...pa.reasons],
    warnings: [...pa.warnings],
    aa: "not-checked",
    activeAuthentication: input.chip?.aa,
    notRead: [],
    comMismatch: undefined,
    proven: [],
    notProven: [],
    trust: input.trust
      ? { sources: input.trustSources ?? [], cscas: input.trust.size, crls: input.trust.crls.length, masterLists: [...input.trust.masterLists] }
      : undefined,
  };
  const add = (list: string[], code: string) => {
    if (!list.includes(code)) list.push(code);
  };

  // What EF.SOD lists: the signed list of the document's data groups (empty when it did not parse).
  const listed = pa.dgHashes.filter((d) => d.status !== "not-in-sod").map((d) => d.dg);
  const sodParsed = listed.length > 0;
  if (sodParsed && input.comDataGroups) {
    const com = new Set(input.comDataGroups);
    const onlyInSod = listed.filter((dg) => !com.has(dg));
    const onlyInCom = [...com].filter((dg) => !listed.includes(dg)).sort((a, b) => a - b);
    if (onlyInSod.length || onlyInCom.length) {
      v.comMismatch = { onlyInSod, onlyInCom };
      add(v.warnings, "COM_SOD_MISMATCH");
    }
  }

  const chip = input.chip;
  const refused = new Map((chip?.absent ?? []).map((a) => [a.key, a.sw]));
  for (const d of pa.dgHashes) {
    if (d.status !== "not-read") continue;
    const key = `DG${d.dg}` as FileKey;
    const sw = refused.get(key);
    if (sw !== undefined) v.notRead.push({ dg: d.dg, why: "refused", sw: sw.toString(16).toUpperCase().padStart(4, "0") });
    else if (EAC_PROTECTED.has(d.dg)) v.notRead.push({ dg: d.dg, why: "eac" });
    else if (chip?.requested && !chip.requested.includes(key)) v.notRead.push({ dg: d.dg, why: "not-requested" });
    else v.notRead.push({ dg: d.dg, why: "not-read" });
  }
  if (v.notRead.some((n) => n.dg !== 15)) add(v.warnings, "DG_NOT_READ");

  // Active Authentication: required whenever the signed EF.SOD lists DG15 and the chip is at hand.
  const sodHas15 = listed.includes(15);
  if (chip?.aa) v.aa = chip.aa.status;
  else if (chip && sodParsed && !sodHas15 && !dgs.has(15)) v.aa = "not-supported";
  if (chip) {
    if (sodHas15 && refused.has("DG15")) add(v.reasons, "DG15_REFUSED");
    else if (v.aa === "failed") add(v.reasons, "AA_FAILED");
    else if (v.aa === "error") add(v.reasons, "AA_ERROR");
    else if (sodHas15 && !chip.aa) add(v.reasons, "AA_NOT_PERFORMED");
  }

  const failing = v.reasons.filter((r) => reasonInfo(r).fails);
  const other = v.reasons.filter((r) => !reasonInfo(r).fails);
  v.reasons = [...failing, ...other];
  v.overall = failing.length ? "failed" : other.length ? "unverifiable" : "verified";
  v.summary = summarize(v, pa);
  explain(v, input);
  return v;
}

function summarize(v: DocumentVerdict, pa: PaVerdict): string {
  if (v.overall === "verified") {
    return `${pa.summary}${v.aa === "ok" ? `; chip authenticated (${v.activeAuthentication?.algorithm})` : ""}`;
  }
  const first = v.reasons[0]!;
  // Passive Authentication's own text (it names the altered data groups) when its reason leads
  const text = first === pa.reasons[0] && pa.summary ? pa.summary.replace(/^\w+: /, "").replace(/ \(\+\d+ more: .*\)$/, "") : reasonInfo(first).text;
  return `${v.overall}: ${text}` + (v.reasons.length > 1 ? ` (+${v.reasons.length - 1} more: ${v.reasons.slice(1).join(", ")})` : "");
}

const list = (dgs: number[]) => dgs.map((d) => `DG${d}`).join(", ");

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
  const notRead = (why: DocumentVerdict["notRead"][number]["why"]) => v.notRead.filter((n) => n.why === why && n.dg !== 15).map((n) => n.dg);
  const refused = v.notRead.filter((n) => n.why === "refused" && n.dg !== 15);
  if (refused.length) notProven.push(`${refused.map((n) => `DG${n.dg} (${n.sw})`).join(", ")}: listed in EF.SOD but refused by the chip, not proven`);
  if (notRead("eac").length) notProven.push(`${list(notRead("eac"))}: listed in EF.SOD, behind Extended Access Control, not read, not proven`);
  if (notRead("not-requested").length) notProven.push(`${list(notRead("not-requested"))}: listed in EF.SOD but left out of the requested files, not read, not proven`);
  if (notRead("not-read").length) notProven.push(`${list(notRead("not-read"))}: listed in EF.SOD but not read, not proven`);
  if (v.comMismatch) {
    const parts = [];
    if (v.comMismatch.onlyInSod.length) parts.push(`EF.COM omits ${list(v.comMismatch.onlyInSod)}`);
    if (v.comMismatch.onlyInCom.length) parts.push(`EF.COM lists ${list(v.comMismatch.onlyInCom)}, which EF.SOD does not`);
    notProven.push(`that EF.COM is consistent: ${parts.join("; ")} (EF.SOD decided what was read)`);
  }

  if (v.reasons.includes("SOD_NO_SIGNED_ATTRIBUTES")) notProven.push("that EF.SOD is well-formed: its signer has no signed attributes (contentType, messageDigest)");
  if (v.sodSignature === "ok") proven.push(`EF.SOD is signed by ${v.signer?.subject} (${v.signer?.algorithm})`);
  else if (v.sodSignature === "bad") notProven.push(`the EF.SOD signature does NOT verify${v.signer ? ` with ${v.signer.subject}'s key` : ""}`);
  else if (v.sodSignature === "unsupported") notProven.push(`the EF.SOD signature: algorithm not supported (${v.signer?.algorithm ?? "unknown"})`);
  else if (v.reasons.includes("NO_DS_CERT")) notProven.push("the EF.SOD signature: no document signer certificate in EF.SOD");

  const chainProblems = v.reasons.filter((r) => /^(DS_|CSCA_|COUNTRY_MISMATCH)/.test(r)).map((r) => reasonInfo(r).text);
  const viaList = input.trust?.anchors.find((a) => a.source === v.csca?.source)?.masterList;
  if (v.chain === "trusted") {
    proven.push(
      `the document signer was issued by trusted CSCA ${v.csca?.subject} (${v.csca?.source}` +
        (viaList?.trust === "operator-word" ? ", a master list taken on the operator's word: its signer chains to no master-list anchor" : viaList ? ", a master list whose signer a master-list anchor issued" : "") +
        ")",
    );
  } else if (v.reasons.includes("NO_TRUST_STORE")) notProven.push("that the document signer is genuine: no trust store (give --trust <CSCA certificates, master list, CRLs>)");
  else if (v.chain === "no-csca") notProven.push(`that the document signer is genuine: no trusted CSCA issued it (issuer ${v.signer?.issuer})`);
  for (const p of chainProblems) notProven.push(p);
  if (v.revocation === "not-revoked") proven.push("the document signer is not on its CSCA's current CRL");
  else if (v.revocation === "stale") {
    notProven.push(`that the document signer is not revoked: the CSCA's CRL is past its nextUpdate (${v.staleCrls.map((c) => `${c.source}, ${c.nextUpdate.slice(0, 10)}`).join("; ")})`);
  } else if (v.revocation === "no-crl") notProven.push("that the document signer is not revoked: no CRL of its CSCA was given");

  // "Not a copy" needs both: the chip proved it holds DG15's key, and DG15 is the one the issuer signed.
  const aa = v.activeAuthentication;
  const dg15Authentic = v.dgHashes.some((d) => d.dg === 15 && d.status === "ok") && v.sodSignature === "ok" && v.chain === "trusted";
  if (v.reasons.includes("DG15_REFUSED")) {
    const sw = v.notRead.find((n) => n.dg === 15)?.sw;
    notProven.push(`that the chip is not a copy: it REFUSED DG15 (${sw}), which EF.SOD lists, so Active Authentication could not run`);
  }
  switch (v.aa) {
    case "ok":
      if (dg15Authentic) proven.push(`the chip holds the private key of the signed DG15: not a copy (Active Authentication, ${aa?.algorithm})`);
      else {
        proven.push(`the chip holds the private key of DG15 as read (Active Authentication, ${aa?.algorithm})`);
        notProven.push("that the chip is not a copy: DG15 itself is not authenticated by a verified EF.SOD");
      }
      break;
    case "failed":
      notProven.push(`the chip FAILED Active Authentication (${aa?.algorithm}): its key is not DG15's, a copied chip?`);
      break;
    case "error":
      notProven.push(`that the chip is not a copy: Active Authentication could not be completed (${aa?.detail ?? "error"})`);
      break;
    case "not-supported":
      notProven.push("that the chip is not a copy: EF.SOD lists no DG15, so the chip offers no Active Authentication");
      break;
    case "not-checked":
      if (v.reasons.includes("DG15_REFUSED")) break;
      if (!input.chip) notProven.push(`that the chip is not a copy: Active Authentication needs the chip${input.files.has("DG15") ? " (offline check)" : ""}`);
      else if (v.reasons.includes("AA_NOT_PERFORMED")) {
        notProven.push(`that the chip is not a copy: EF.SOD lists DG15 but Active Authentication was ${input.chip.activeAuthentication ? "not performed" : "switched off"}`);
      } else notProven.push("that the chip is not a copy: Active Authentication was not run");
      break;
  }
}

/** Human lines for the report: the verdict, then what is and is not proven, warnings, trust. */
export function verdictLines(v: DocumentVerdict): string[] {
  const [head, ...rest] = v.summary.split(": ");
  const lines = [`Verdict   ${head!.toUpperCase()}: ${rest.join(": ")}`];
  if (v.reasons.length) lines.push(`          reasons:    ${v.reasons.join(", ")}`);
  for (const p of v.proven) lines.push(`          proven:     ${p}`);
  for (const p of v.notProven) lines.push(`          NOT proven: ${p}`);
  for (const w of v.warnings) lines.push(`          warnings:   ${w}${WARNINGS[w] ? ` (${WARNINGS[w]})` : ""}`);
  if (v.trust) {
    lines.push(`          trust:      ${v.trust.cscas} CSCA certificate${v.trust.cscas === 1 ? "" : "s"}, ${v.trust.crls} CRL${v.trust.crls === 1 ? "" : "s"} from ${v.trust.sources.join(", ")}`);
    for (const ml of v.trust.masterLists) {
      lines.push(
        ml.trust === "operator-word"
          ? `          trust:      master list ${ml.source} taken on the operator's word (its signer chains to no master-list anchor; give --master-list-anchor)`
          : `          trust:      master list ${ml.source} signed under a master-list anchor`,
      );
    }
  }
  return lines;
}

/** Loads the trust sources (ConfigError, exit 2, for a path that does not exist). */
export function loadTrust(paths: string[], masterListAnchors: string[] = []): TrustStore | undefined {
  return paths.length ? loadTrustSources(paths, undefined, { masterListAnchors }) : undefined;
}
