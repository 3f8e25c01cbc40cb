/**
 * The report of a read, in one JSON form (`mrtd-agent read --json`, result.json of --out, and the
 * `report` of a remote read's sealed reply) and its human lines (`mrtd-agent read` and
 * `mrtd-agent remote read` print the same, from that JSON form).
 */
import type { DocumentRead } from "./read-document.ts";
import type { AuthenticationSummary } from "./read-result.ts";
import type { DocumentVerdict } from "../verification/verdict.ts";

/** The JSON form of a read (the shape `read --json` prints). */
export interface ReadReport {
  reader: string;
  atr: string;
  files: Record<string, { bytes: number; sha256?: string; apdus: number; ms: number }>;
  absent: Array<{ file: string; sw: string }>;
  mrz?: {
    format: string;
    documentCode: string;
    issuingState: string;
    documentNumber: string;
    nationality: string;
    primaryIdentifier: string;
    secondaryIdentifier: string;
    dateOfBirth: string;
    sex: string;
    dateOfExpiry: string;
    optionalData1?: string;
    optionalData2?: string;
    checks: Record<string, boolean | undefined>;
    valid: boolean;
  };
  face?: { format: string; bytes: number; width?: number; height?: number };
  dg11?: { fullName?: string; placeOfBirth?: string; [k: string]: unknown };
  dg12?: { issuingAuthority?: string; dateOfIssue?: string; [k: string]: unknown };
  sod?: { hashAlgorithm: string; dataGroups?: Array<{ dg: number; status: string }> };
  hashesMatchSod?: boolean;
  verification?: DocumentVerdict;
  parseErrors: Array<{ key: string; message: string }>;
  apdus: { count: number };
  durationMs: number;
  steps: unknown[];
  recoveries: Array<{ cause: string; step: string; offset?: number; action: string; apdus: number; ms: number }>;
  /** How the reader got access: PACE (mapping, password type, group, cipher) or BAC, and why. */
  authentication?: AuthenticationSummary;
  link: { blockSize: number; extendedLength: boolean; readBySfi: boolean };
  trace?: Array<{ t: number; cla: number; ins: number; p1: number; p2: number; commandBytes: number; responseBytes: number; sw?: number; error?: string; ms: number }>;
}

export function readReport(r: DocumentRead, verification?: DocumentVerdict): ReadReport {
  const s = r.summary;
  return JSON.parse(
    JSON.stringify({
      reader: s.reader,
      atr: s.atr,
      files: s.files,
      absent: r.absent.map((a) => ({ file: a.key, sw: a.sw.toString(16).toUpperCase().padStart(4, "0") })),
      mrz: r.mrz
        ? {
            format: r.mrz.format,
            documentCode: r.mrz.documentCode,
            issuingState: r.mrz.issuingState,
            documentNumber: r.mrz.documentNumber,
            nationality: r.mrz.nationality,
            primaryIdentifier: r.mrz.primaryIdentifier,
            secondaryIdentifier: r.mrz.secondaryIdentifier,
            dateOfBirth: r.mrz.dateOfBirth,
            sex: r.mrz.sex,
            dateOfExpiry: r.mrz.dateOfExpiry,
            optionalData1: r.mrz.optionalData1,
            optionalData2: r.mrz.optionalData2,
            checks: r.mrz.checks,
            valid: r.mrz.valid,
          }
        : undefined,
      face: s.face,
      dg11: r.dg11,
      dg12: r.dg12,
      sod: r.sod ? { hashAlgorithm: r.sod.hashAlgorithm, dataGroups: r.sodHashes } : undefined,
      hashesMatchSod: s.hashesMatchSod,
      verification,
      parseErrors: r.parseErrors,
      apdus: { count: s.apdus },
      durationMs: s.durationMs,
      steps: s.steps,
      recoveries: s.recoveries,
      authentication: s.authentication,
      link: s.link,
      trace: r.trace,
    }),
  ) as ReadReport;
}

/** The report without personal data: no MRZ fields, DG11 or DG12 (sizes, checks and the verdict stay). */
export function withoutPersonalData(r: ReadReport): ReadReport {
  const { mrz: _m, dg11: _a, dg12: _b, ...rest } = r;
  return rest;
}

/** The human report's document lines (after "Reader" and "ATR", before the verdict). */
export function reportLines(j: ReadReport): string[] {
  const out: string[] = [];
  const m = j.mrz;
  if (m) {
    out.push(`Document  ${m.documentCode} ${m.format}, issued by ${m.issuingState}, number ${m.documentNumber}`);
    out.push(`Holder    ${m.primaryIdentifier}, ${m.secondaryIdentifier}; born ${m.dateOfBirth}; sex ${m.sex}; nationality ${m.nationality}; expires ${m.dateOfExpiry}`);
    const bad = Object.entries(m.checks).filter(([, ok]) => ok === false).map(([k]) => k);
    out.push(`MRZ       ${m.valid ? "all check digits valid" : `check digits WRONG: ${bad.join(", ")}`}`);
  }
  if (j.face) out.push(`Face      ${j.face.format.toUpperCase()} ${j.face.width}x${j.face.height}, ${fmt(j.face.bytes)} bytes`);
  if (j.dg11?.fullName) {
    out.push(`DG11      full name ${fillers(j.dg11.fullName)}${j.dg11.placeOfBirth ? `; place of birth ${fillers(j.dg11.placeOfBirth)}` : ""}`);
  }
  if (j.dg12?.issuingAuthority) out.push(`DG12      issued by ${j.dg12.issuingAuthority}${j.dg12.dateOfIssue ? ` on ${j.dg12.dateOfIssue}` : ""}`);
  if (j.sod?.dataGroups) {
    const list = j.sod.dataGroups.map((h) => `DG${h.dg} ${h.status}`).join(", ");
    const verdict = j.hashesMatchSod ? "data-group hashes match EF.SOD" : "data-group hashes DO NOT match EF.SOD";
    out.push(`SOD       ${verdict} (${j.sod.hashAlgorithm.toUpperCase()}): ${list}`);
  }
  for (const a of j.absent) out.push(`Absent    ${a.file} (card answered ${a.sw.replace(/^0+(?=.)/, "")})`);
  for (const p of j.parseErrors) out.push(`Unparsed  ${p.key}: ${p.message}`);
  for (const rec of j.recoveries) out.push(`Recovered ${rec.cause} in ${rec.step} at offset ${rec.offset ?? 0}: ${rec.action} (${rec.apdus} APDUs, ${rec.ms} ms)`);
  const a = j.authentication;
  if (a) {
    const how = a.protocol === "PACE" ? `PACE-${a.mapping} with the ${a.password} (${a.group}, ${a.cipher})` : `BAC (3DES)${a.fallbackReason ? `: ${a.fallbackReason}` : a.paceOffered.length === 0 ? ", the chip offers no PACE" : ""}`;
    out.push(`Access    ${how}`);
  }
  const l = j.link;
  out.push(`Total     ${j.apdus.count} APDUs in ${j.durationMs} ms (block ${l.blockSize} B, extended length ${l.extendedLength ? "yes" : "no"}, read by SFI ${l.readBySfi ? "yes" : "no"})`);
  if (j.trace) {
    out.push("Trace (redacted: header, lengths, status word, ms)");
    for (const t of j.trace) {
      const h = [t.cla, t.ins, t.p1, t.p2].map((b) => b.toString(16).toUpperCase().padStart(2, "0")).join(" ");
      out.push(`  ${t.t.toFixed(1).padStart(8)} ms  ${h}  cmd ${t.commandBytes} B  resp ${t.responseBytes} B  ${t.sw?.toString(16).toUpperCase() ?? t.error ?? "-"}  ${t.ms} ms`);
    }
  }
  return out;
}

export function fmt(n: number): string {
  return n.toLocaleString("en-US");
}

/** ICAO 9303-10 DG11 text uses '<<' between name parts or place components and '<' for a space. */
function fillers(text: string): string {
  return text.replace(/<</g, ", ").replace(/</g, " ").trim();
}
