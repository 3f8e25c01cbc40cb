/**
 * The verdict policy for one document (`read`, `verify`, remote reads): Passive Authentication
 * (passive-authentication.ts) merged with what the chip did during the read: which files EF.SOD
 * lists and the chip refused, Chip Authentication (§6.2) or PACE-CAM (§4.4.3.5), and Active
 * Authentication (ICAO 9303-11 §6.1); the first of them that succeeds with a key the signed
 * EF.SOD vouches for makes the chip genuine. EF.SOD is signed,
 * EF.COM is not: what the SOD lists decides what must be read and proven; EF.COM is only
 * compared with it. The plain-words explanation is report.ts's.
 */
import { describeSw } from "../iso7816/status-words.ts";
import { byDataGroupNumber, type FileKey } from "../lds/lds-files.ts";
import type { AcceptedMasterList, TrustStore } from "../pki/trust-store.ts";
import type { ChipAuthResult } from "../icao/chip-authentication.ts";
import type { AaResult } from "./active-authentication.ts";
import { type PaPolicy, type PaVerdict, uncheckedVerdict, verifyPassive } from "./passive-authentication.ts";
import { reasonInfo } from "./reasons.ts";
import { explain } from "./report.ts";


export type AaVerdict = "ok" | "failed" | "not-supported" | "error" | "not-checked";

export interface DocumentVerdict extends PaVerdict {
  /** Active Authentication: ok, failed (a clone?), not-supported (EF.SOD lists no DG15), error, or not-checked. */
  aa: AaVerdict;
  activeAuthentication: AaResult | undefined;
  /** Chip Authentication or PACE-CAM, when run. */
  chipAuthentication: ChipAuthResult | undefined;
  /** How the chip proved it is not a copy: CA, CAM or AA, with a key EF.SOD vouches for; undefined when none did. */
  chipGenuine: "CA" | "CAM" | "AA" | undefined;
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

/** What the chip did during a read; absent for offline verification (`verify`). */
export interface ChipEvidence {
  /** Whether Active Authentication was on for the read. */
  activeAuthentication: boolean;
  /** Result of INTERNAL AUTHENTICATE; undefined when none was run. */
  aa?: AaResult;
  /** Chip Authentication or PACE-CAM result; undefined when none was run. */
  chipAuth?: ChipAuthResult;
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
    chipAuthentication: input.chip?.chipAuth,
    chipGenuine: undefined,
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
    // a chip that answers INTERNAL AUTHENTICATE with a status word is refusing, not failing to be
    // reached: a clone would rather be "unverifiable" than "failed", so it is failed. Length and
    // reader-stack status words (6700, 6Cxx, 6Fxx, 6600) say the exchange did not get through.
    else if (v.aa === "error" && chip.aa?.sw !== undefined && sodHas15 && isRefusal(chip.aa.sw)) add(v.reasons, "AA_REFUSED");
    else if (v.aa === "error") add(v.reasons, "AA_ERROR");
    else if (sodHas15 && !chip.aa && !chipGenuineBy(v, chip)) add(v.reasons, "AA_NOT_PERFORMED");
    const ca = chip.chipAuth;
    if (ca?.status === "failed") add(v.reasons, ca.method === "CAM" ? "CAM_FAILED" : "CA_FAILED");
    if (ca?.status === "error") add(v.reasons, "CA_ERROR");
    v.chipGenuine = chipGenuineBy(v, chip);
  }

  const failing = v.reasons.filter((r) => reasonInfo(r).fails);
  const other = v.reasons.filter((r) => !reasonInfo(r).fails);
  v.reasons = [...failing, ...other];
  v.overall = failing.length ? "failed" : other.length ? "unverifiable" : "verified";
  v.summary = summarize(v, pa);
  explain(v, input);
  return v;
}

/**
 * Which method proved the chip genuine: Chip Authentication or PACE-CAM with DG14's key, or
 * Active Authentication with DG15's, each only when a signed EF.SOD vouches for that data group
 * (a key from an unauthenticated data group proves nothing).
 */
function chipGenuineBy(v: PaVerdict & { aa: AaVerdict }, chip: ChipEvidence): DocumentVerdict["chipGenuine"] {
  const vouched = (dg: number) => v.sodSignature === "ok" && v.dgHashes.some((d) => d.dg === dg && d.status === "ok");
  if (chip.chipAuth?.status === "ok" && vouched(14)) return chip.chipAuth.method;
  if (v.aa === "ok" && vouched(15)) return "AA";
  return undefined;
}

function isRefusal(sw: number): boolean {
  const category = describeSw(sw).category;
  return category !== "length" && category !== "reader-stack";
}

function summarize(v: DocumentVerdict, pa: PaVerdict): string {
  if (v.overall === "verified") {
    const by = v.chipGenuine;
    if (by === "CA" || by === "CAM") return `${pa.summary}; chip authenticated by ${by} (${v.chipAuthentication?.algorithm})`;
    return `${pa.summary}${v.aa === "ok" ? `; chip authenticated (${v.activeAuthentication?.algorithm})` : ""}`;
  }
  const first = v.reasons[0]!;
  // Passive Authentication's own text (it names the altered data groups) when its reason leads
  const text = first === pa.reasons[0] && pa.summary ? pa.summary.replace(/^\w+: /, "").replace(/ \(\+\d+ more: .*\)$/, "") : reasonInfo(first).text;
  return `${v.overall}: ${text}` + (v.reasons.length > 1 ? ` (+${v.reasons.length - 1} more: ${v.reasons.slice(1).join(", ")})` : "");
}

