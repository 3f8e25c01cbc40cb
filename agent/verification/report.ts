/**
 * The verdict in plain words: what it proves and does not prove (one short line each) and the
 * human report's lines, for `read`, `verify` and the tests that read them.
 */
import { reasonInfo, WARNINGS } from "./reasons.ts";
import type { DocumentVerdict, VerifyInput } from "./verdict.ts";

const list = (dgs: number[]) => dgs.map((d) => `DG${d}`).join(", ");

/** Fills `v.proven` and `v.notProven`: one short line per thing established or not. */
export function explain(v: DocumentVerdict, input: VerifyInput): void {
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

  // Chip Authentication / PACE-CAM: the chip proved it holds DG14's key; DG14 must be the signed one
  const ca = v.chipAuthentication;
  const caName = ca?.method === "CAM" ? "PACE Chip Authentication Mapping" : "Chip Authentication";
  if (ca?.status === "ok") {
    if (v.chipGenuine === ca.method) proven.push(`the chip holds the private key of the signed DG14: not a copy (${caName}, ${ca.algorithm})`);
    else notProven.push(`that the chip is not a copy: ${caName} passed, but DG14 itself is not authenticated by a verified EF.SOD`);
  } else if (ca?.status === "failed") notProven.push(`the chip FAILED ${caName} (${ca.algorithm}): it does not hold DG14's key, a copied chip?${ca.detail ? ` (${ca.detail})` : ""}`);
  else if (ca?.status === "error") notProven.push(`that the chip is not a copy: ${caName} could not be completed (${ca.detail ?? "error"})`);
  // With the chip proven genuine by CA or CAM, Active Authentication's absence leaves nothing unproven
  if (v.chipGenuine === "CA" || v.chipGenuine === "CAM") {
    if (v.aa === "ok") proven.push(`the chip also passed Active Authentication (${v.activeAuthentication?.algorithm})`);
    else if (v.aa === "failed") notProven.push(`the chip FAILED Active Authentication (${v.activeAuthentication?.algorithm}): its key is not DG15's`);
    return;
  }
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
      notProven.push(
        v.reasons.includes("AA_REFUSED")
          ? `that the chip is not a copy: it REFUSED Active Authentication (${aa?.detail ?? "error"}), though EF.SOD lists DG15`
          : `that the chip is not a copy: Active Authentication could not be completed (${aa?.detail ?? "error"})`,
      );
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
