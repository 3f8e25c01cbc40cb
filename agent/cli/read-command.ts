/**
 * `mrtd-agent read`: read a passport in a PC/SC reader and print what it holds.
 * Human output with progress per file by default, one JSON object with --json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../errors.ts";
import { parseFileList } from "../lds/lds-files.ts";
import { readDocument, readFailureReport, type DocumentRead, type ReadProgress } from "../reading/read-document.ts";
import { classifyFailure } from "../reading/failure-classes.ts";
import { openCard } from "../reading/card-source.ts";
import { formatOptions, parseOptions, type OptionSpec } from "./args.ts";
import { EXIT } from "./exit-codes.ts";
import { accessKeyFrom, canFrom } from "./access-key-options.ts";
import { asTyped } from "./invocation.ts";
import { Progress } from "./progress.ts";
import { verdictLines } from "../verification/report.ts";
import { loadTrust } from "../verification/trust.ts";
import type { DocumentVerdict } from "../verification/verdict.ts";
import { verifyRead } from "../reading/verify-read.ts";
import { MASTER_LIST_ANCHOR_HELP, takeTrustOption, TRUST_OPTION_HELP } from "./trust-option.ts";
import { fmt, readReport, reportLines, type ReadReport } from "../reading/read-report.ts";

export const READ_OPTIONS: Record<string, OptionSpec> = {
  doc: { type: "string", arg: "<number>", help: "document number as printed in the MRZ" },
  dob: { type: "string", arg: "<YYMMDD>", help: "date of birth" },
  expiry: { type: "string", arg: "<YYMMDD>", help: "date of expiry" },
  "key-file": { type: "string", arg: "<file>", help: "read document number, birth and expiry dates from a file (one line: NUMBER YYMMDD YYMMDD), keeping them out of the process list" },
  can: { type: "string", arg: "<6 digits>", help: "card access number printed on the document (PACE); with or instead of the MRZ key" },
  auth: { type: "string", arg: "<auto|pace|bac>", help: "access control: PACE when the chip offers it, else BAC (auto), or only one", default: "auto" },
  reader: { type: "string", arg: "<name part>", help: "use the first reader whose name contains this text" },
  files: { type: "string", arg: "<list>", help: "data groups to read, e.g. DG1,DG2 (default: every data group the signed EF.SOD lists except DG3/DG4; EF.COM and EF.SOD are always read, DG15 too when EF.SOD lists it and AA is on; data groups left out are reported as not proven)" },
  out: { type: "string", arg: "<dir>", help: "write the raw files, the face image and result.json to this directory" },
  json: { type: "boolean", help: "print one JSON object instead of the human report" },
  wait: { type: "number", arg: "<seconds>", help: "how long to wait for a card", default: 15 },
  extended: { type: "string", arg: "<auto|on|off>", help: "extended-length READ BINARY", default: "auto" },
  "max-block": { type: "number", arg: "<bytes>", help: "largest short READ BINARY block to start with", default: 231 },
  "no-sfi": { type: "boolean", help: "select each file by identifier instead of reading by short EF identifier" },
  trace: { type: "boolean", help: "print a redacted APDU trace (headers, lengths, status words, timing; never data)" },
  trust: { type: "string", arg: "<dir or file>", help: TRUST_OPTION_HELP },
  "master-list-anchor": { type: "string", arg: "<dir or file>", help: MASTER_LIST_ANCHOR_HELP },
  "no-aa": { type: "boolean", help: "skip Active Authentication (INTERNAL AUTHENTICATE with DG15's key); a document whose EF.SOD lists DG15 is then at best unverifiable (AA_NOT_PERFORMED)" },
  "leave-card": { type: "boolean", help: "leave the chip in our secure-messaging session afterwards instead of resetting it (the next application may then see 6982 first)" },
  "no-ca": { type: "boolean", help: "skip Chip Authentication (DG14's key) and the PACE-CAM check" },
  help: { type: "boolean", help: "show this help" },
};

export const READ_HELP = `Usage: mrtd-agent read --doc <number> --dob <YYMMDD> --expiry <YYMMDD> [options]
       mrtd-agent read --can <6 digits> [options]

Reads an ICAO 9303 passport or ID card through pcsc-lite, with PACE when the chip
offers it (EF.CardAccess) and Basic Access Control otherwise (--auth): EF.COM, EF.SOD,
then the data groups the signed EF.SOD lists (EF.COM is only compared with it); checks
every MRZ check digit, then verifies the document: Passive Authentication (data-group
hashes, the EF.SOD signature and its signed attributes, the document signer's chain to a
CSCA from --trust, certificate profiles, validity, CRLs) and that the chip is not a copy:
Chip Authentication (DG14), PACE-CAM, or Active Authentication (when EF.SOD lists DG15).
The verdict is verified, failed or unverifiable (e.g. without --trust), with its reason
codes, what was and was not proven, and which method proved the chip genuine.

Options:
${formatOptions(READ_OPTIONS)}

Exit codes: 0 read complete (verdict verified or unverifiable), 2 usage, 3 no reader
or no card, 4 access denied, 5 transport failure (card lost, reader error), 6 card or
data error, 7 read complete but the verdict is failed (altered data, bad signature,
expired or revoked signer, a certificate against the profile, a DG15 the chip refuses,
failed Chip, PACE-CAM or Active Authentication), 1 other.
(3 also when pcscd is not running.)`;

export async function readCommand(argv: string[]): Promise<number> {
  const taken = takeTrustOption(argv);
  const { options: o, positionals } = parseOptions(taken.argv, READ_OPTIONS);
  if (o.help) {
    console.log(asTyped(READ_HELP));
    return EXIT.OK;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"; see mrtd-agent read --help`);
  const can = canFrom(o);
  const accessKey = can !== undefined && o.doc === undefined && o.dob === undefined && o.expiry === undefined && o["key-file"] === undefined ? undefined : accessKeyFrom(o);
  const auth = String(o.auth);
  if (auth !== "auto" && auth !== "pace" && auth !== "bac") throw new UsageError("--auth must be auto, pace or bac", "auth");
  if (auth === "bac" && !accessKey) throw new UsageError("--auth bac needs the MRZ key (--doc/--dob/--expiry): a CAN works with PACE only", "auth");
  const files = typeof o.files === "string" ? parseFileList(o.files) : undefined;
  const extended = String(o.extended);
  if (extended !== "auto" && extended !== "on" && extended !== "off") throw new UsageError("--extended must be auto, on or off", "extended");
  const maxBlock = Number(o["max-block"]);
  if (!Number.isInteger(maxBlock) || maxBlock < 16 || maxBlock > 231) throw new UsageError("--max-block must be 16..231", "max-block");
  const waitMs = Number(o.wait) * 1000;
  if (!(waitMs >= 0)) throw new UsageError("--wait must be 0 or more seconds", "wait");
  const json = o.json === true;
  const activeAuthentication = o["no-aa"] !== true;
  // before the card: a wrong --trust path is a usage error, not a wasted read
  const trust = loadTrust(taken.trust, taken.masterListAnchors);

  const progress = new Progress(json ? undefined : process.stderr);
  const card = await openCard({
    reader: typeof o.reader === "string" ? o.reader : undefined,
    waitMs,
    disconnect: o["leave-card"] === true ? "leave" : "reset",
    onWaiting: (reader) => progress.note(`waiting up to ${o.wait} s for a card in ${reader} ...`),
  });
  let result: DocumentRead;
  try {
    if (!json) {
      console.log(`Reader    ${card.connection.reader}`);
      console.log(`ATR       ${spaced(card.connection.atr)}`);
    }
    result = await readDocument(
      card.connection,
      {
        ...(accessKey ? { accessKey } : {}),
        ...(can !== undefined ? { can } : {}),
        auth,
        files,
        extendedLength: extended,
        maxShortBlock: maxBlock,
        sfi: o["no-sfi"] !== true,
        trace: o.trace === true,
        activeAuthentication,
        chipAuthentication: o["no-ca"] !== true,
        onProgress: (p: ReadProgress) => progress.update(p),
      },
      card.reconnect,
    );
  } catch (e) {
    progress.done();
    reportFailure(e, json);
    throw e;
  } finally {
    progress.done();
    await card.close();
  }

  const verification = verifyRead(result, { trust, trustSources: taken.trust });
  if (typeof o.out === "string") writeOut(o.out, result, verification);
  if (json) console.log(JSON.stringify(toJson(result, verification), null, 2));
  else {
    printHuman(result);
    for (const line of verdictLines(verification)) console.log(line);
  }
  return verification.overall === "failed" ? EXIT.VERIFICATION_FAILED : EXIT.OK;
}

/** The JSON form of a read (reading/read-report.ts; remote reads print the same). */
export function toJson(r: DocumentRead, verification?: DocumentVerdict): ReadReport {
  return readReport(r, verification);
}

function printHuman(r: DocumentRead): void {
  for (const line of reportLines(readReport(r))) console.log(line);
}

function writeOut(dir: string, r: DocumentRead, verification: DocumentVerdict): void {
  mkdirSync(dir, { recursive: true });
  for (const [k, v] of r.files) writeFileSync(join(dir, `${k}.bin`), v);
  const face = r.dg2?.faces[0];
  if (face) writeFileSync(join(dir, face.format === "jpeg2000" ? "face.jp2" : face.format === "jpeg" ? "face.jpg" : "face.bin"), face.imageBytes);
  writeFileSync(join(dir, "result.json"), JSON.stringify(toJson(r, verification), null, 2) + "\n");
}

export function spaced(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).toUpperCase().padStart(2, "0")).join(" ");
}

export { fmt };

/**
 * Explains a failed read: the failure class (layer, plain explanation, likely causes, what to
 * do, timing against the reader's timeout) and every recovery tried. With --json it is one
 * object on stdout ({ ok: false, ... }); otherwise lines on stderr before the error line.
 * Never carries data or keys: the classes hold codes and status words only.
 */
function reportFailure(e: unknown, json: boolean): void {
  const report = readFailureReport(e);
  const failure = report?.failure ?? classifyFailure(e);
  if (json) {
    console.log(JSON.stringify({ ok: false, ...report, failure }, null, 2));
    return;
  }
  const where = report ? ` during ${report.step}${report.file ? ` (${report.file} at offset ${report.offset ?? 0})` : ""}` : "";
  console.error(`Failure   ${failure.code} [${failure.layer}]${where}: ${failure.explanation}`);
  if (failure.timing) console.error(`          ${failure.timing}`);
  if (failure.likelyCauses.length) console.error(`          likely: ${failure.likelyCauses.join("; ")}`);
  console.error(`          do: ${failure.action}`);
  if (report?.recoveries.length) {
    console.error(`          ${report.recoveries.length} recoveries tried${report.stoppedBecause ? `, stopped: ${report.stoppedBecause}` : ""}`);
  }
}
