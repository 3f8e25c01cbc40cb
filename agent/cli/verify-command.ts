/**
 * `mrtd-agent verify <dir>`: offline verification of files saved by `read --out` (COM.bin,
 * SOD.bin, DGn.bin): Passive Authentication (ICAO 9303-11 §5.1) against the --trust sources.
 * Active Authentication needs the chip, so it is reported as not checked.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { hex } from "../bytes.ts";
import { sha256 } from "../crypto/hash.ts";
import { UsageError } from "../errors.ts";
import { parseEfCom } from "../lds/ef-com.ts";
import { parseDg1 } from "../lds/mrz.ts";
import type { FileKey } from "../reading/read-result.ts";
import { formatOptions, parseOptions, type OptionSpec } from "./args.ts";
import { EXIT } from "./exit-codes.ts";
import { verdictLines } from "../verification/report.ts";
import { loadTrust } from "../verification/trust.ts";
import { verifyDocument } from "../verification/verdict.ts";
import { MASTER_LIST_ANCHOR_HELP, takeTrustOption, TRUST_OPTION_HELP } from "./trust-option.ts";

export const VERIFY_OPTIONS: Record<string, OptionSpec> = {
  trust: { type: "string", arg: "<dir or file>", help: TRUST_OPTION_HELP },
  "master-list-anchor": { type: "string", arg: "<dir or file>", help: MASTER_LIST_ANCHOR_HELP },
  json: { type: "boolean", help: "print one JSON object instead of the human report" },
  help: { type: "boolean", help: "show this help" },
};

export const VERIFY_HELP = `Usage: mrtd-agent verify <dir> [--trust <dir or file>]... [--json]

Verifies, offline, the files a previous "mrtd-agent read --out <dir>" saved (COM.bin,
SOD.bin, DG1.bin, DG2.bin, ...): every data-group hash against EF.SOD, the EF.SOD
signature, and the document signer's chain to a CSCA from --trust (validity, CRLs,
country). Active Authentication needs the chip and is reported as not checked.

Options:
${formatOptions(VERIFY_OPTIONS)}

Exit codes: 0 verified or unverifiable (e.g. no --trust), 7 failed (altered data, bad
signature, expired or revoked signer), 2 usage (no such directory, no saved files), 1 other.`;

const FILE_RE = /^(COM|SOD|DG([1-9]|1[0-6]))\.bin$/;

export async function verifyCommand(argv: string[]): Promise<number> {
  const taken = takeTrustOption(argv);
  const { options: o, positionals } = parseOptions(taken.argv, VERIFY_OPTIONS);
  if (o.help) {
    console.log(VERIFY_HELP);
    return EXIT.OK;
  }
  if (positionals.length !== 1) throw new UsageError("give one directory written by read --out; see mrtd-agent verify --help");
  const dir = positionals[0]!;
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`not a directory: ${dir}`);
  const trust = loadTrust(taken.trust, taken.masterListAnchors);

  const files = new Map<FileKey, Uint8Array>();
  for (const name of readdirSync(dir).sort()) {
    const m = FILE_RE.exec(name);
    if (m) files.set(m[1] as FileKey, new Uint8Array(readFileSync(join(dir, name))));
  }
  if (files.size === 0) throw new UsageError(`no saved files (COM.bin, SOD.bin, DGn.bin) in ${dir}`);
  const com = tryOr(() => (files.has("COM") ? parseEfCom(files.get("COM")!) : undefined));
  const mrz = tryOr(() => (files.has("DG1") ? parseDg1(files.get("DG1")!) : undefined));
  const verification = verifyDocument({
    files,
    comDataGroups: com?.dataGroups,
    trust,
    trustSources: taken.trust,
    issuingState: mrz?.issuingState,
  });

  if (o.json === true) {
    const summary: Record<string, { bytes: number; sha256: string }> = {};
    for (const [k, v] of files) summary[k] = { bytes: v.length, sha256: hex(sha256(v)).toLowerCase() };
    console.log(JSON.stringify({ directory: dir, files: summary, documentType: mrz?.documentCode, issuingState: mrz?.issuingState, verification }, null, 2));
  } else {
    console.log(`Files     ${[...files.keys()].join(", ")} from ${dir}`);
    if (mrz) console.log(`Document  ${mrz.documentCode} ${mrz.format}, issued by ${mrz.issuingState}`);
    for (const line of verdictLines(verification)) console.log(line);
  }
  return verification.overall === "failed" ? EXIT.VERIFICATION_FAILED : EXIT.OK;
}

function tryOr<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}
