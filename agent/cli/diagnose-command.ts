/**
 * `mrtd-agent diagnose`: tests the reader (and the document on it) without reading personal
 * data: reader name, vendor and firmware, ATR/ATS decoded, extended-length pass-through, a
 * stability loop with latency percentiles and failures by class, and a verdict with advice.
 */
import { UsageError } from "../errors.ts";
import { diagnoseReader, type ReaderDiagnosis } from "../diagnostics/reader-diagnostics.ts";
import { formatOptions, parseOptions, type OptionSpec } from "./args.ts";
import { EXIT } from "./exit-codes.ts";
import { asTyped } from "./invocation.ts";

export const DIAGNOSE_OPTIONS: Record<string, OptionSpec> = {
  reader: { type: "string", arg: "<name part>", help: "use the first reader whose name contains this text" },
  count: { type: "number", arg: "<N>", help: "exchanges in the stability loop", default: 200 },
  wait: { type: "number", arg: "<seconds>", help: "how long to wait for a card (at the start and after it left)", default: 15 },
  "reader-timeout": { type: "number", arg: "<ms>", help: "the reader's response timeout, to read failure times against", default: 3000 },
  json: { type: "boolean", help: "print one JSON object" },
  "leave-card": { type: "boolean", help: "leave the card as it is afterwards instead of resetting it" },
  help: { type: "boolean", help: "show this help" },
};

export const DIAGNOSE_HELP = `Usage: mrtd-agent diagnose [--reader <name part>] [--count N] [--json] [--leave-card]

Tests the reader with the document on it, without an access key and without reading
personal data: reader vendor, model and firmware (PC/SC attributes), the card's ATR and
ATS decoded, whether extended-length APDUs pass the reader, then N exchanges (SELECT,
GET CHALLENGE) with latency min/p50/p95/p99/max, failures by class, card-presence flaps,
and a verdict (good, marginal, unreliable, unusable) with advice.

Options:
${formatOptions(DIAGNOSE_OPTIONS)}

Exit codes: 0 verdict good or marginal, 5 unreliable or unusable, 2 usage, 3 no reader or no card.`;

export async function diagnoseCommand(argv: string[]): Promise<number> {
  const { options: o, positionals } = parseOptions(argv, DIAGNOSE_OPTIONS);
  if (o.help) {
    console.log(asTyped(DIAGNOSE_HELP));
    return EXIT.OK;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"; see mrtd-agent diagnose --help`);
  const count = Number(o.count);
  if (!Number.isInteger(count) || count < 1 || count > 100_000) throw new UsageError("--count must be 1..100000", "count");
  const waitMs = Number(o.wait) * 1000;
  if (!(waitMs >= 0)) throw new UsageError("--wait must be 0 or more seconds", "wait");
  const readerTimeoutMs = Number(o["reader-timeout"]);
  if (!(readerTimeoutMs > 0)) throw new UsageError("--reader-timeout must be a positive number of ms", "reader-timeout");
  const json = o.json === true;
  let lastShown = 0;
  const d = await diagnoseReader({
    reader: typeof o.reader === "string" ? o.reader : undefined,
    count,
    waitMs,
    readerTimeoutMs,
    disconnect: o["leave-card"] === true ? "leave" : "reset",
    onProgress: json || !process.stderr.isTTY
      ? undefined
      : (done, total) => {
          if (done === total || performance.now() - lastShown > 200) {
            lastShown = performance.now();
            process.stderr.write(`\r  stability loop ${done}/${total}${done === total ? "\n" : ""}`);
          }
        },
  });
  if (json) console.log(JSON.stringify(d, null, 2));
  else printDiagnosis(d);
  return d.verdict === "good" || d.verdict === "marginal" ? EXIT.OK : EXIT.TRANSPORT;
}

/** The human diagnosis report (also `mrtd-agent remote diagnose`, from the reply's JSON). */
export function printDiagnosis(d: ReaderDiagnosis): void {
  const r = d.reader;
  console.log(`Reader    ${r.name}`);
  const ids = [r.vendor && `vendor ${r.vendor}`, r.model && `model ${r.model}`, r.firmware && `firmware ${r.firmware}`, r.serial && `serial ${r.serial}`].filter(Boolean);
  console.log(`          ${ids.length ? ids.join(", ") : "the driver reports no vendor, model or firmware"}${r.maxInput ? `; max input ${r.maxInput} B` : ""}`);
  if (r.missing.length) console.log(`          not reported by the driver: ${r.missing.join(", ")}`);
  const c = d.card;
  console.log(`ATR       ${spaced(c.atr)}${c.contactless ? " (contactless, PC/SC part 3)" : ""}`);
  console.log(`          historical bytes ${spaced(c.historical) || "-"}: ${c.historicalDecoded.join("; ")}`);
  if (c.ats) console.log(`ATS       ${spaced(c.ats.hex)}: max frame ${c.ats.maxFrameBytes ?? "?"} B, frame waiting time ${c.ats.fwtMs ?? "?"} ms`);
  else console.log(`ATS       ${c.atsNote}`);
  const pace = d.accessControl.pace.map((p) => `${p.protocol}${p.supported ? " (used)" : ""}`).join(", ");
  console.log(`Access    ${pace ? `${pace}: ` : ""}${d.accessControl.note}`);
  console.log(`Extended  ${d.extendedApdu.passes === true ? "passes the reader" : d.extendedApdu.passes === false ? "does NOT pass the reader" : "undetermined"}: Le ${d.extendedApdu.le}; Lc ${d.extendedApdu.lc}`);
  const s = d.stability;
  const l = s.latencyMs;
  console.log(`Stability ${s.ok}/${s.exchanges} exchanges ok, ${s.failed} failed, ${s.presenceFlaps} presence flap(s), ${s.relinks} reconnect(s)`);
  if (l) console.log(`Latency   min ${l.min} ms, p50 ${l.p50} ms, p95 ${l.p95} ms, p99 ${l.p99} ms, max ${l.max} ms`);
  for (const f of s.failures) {
    const seen = Object.entries(f.observed).map(([k, n]) => `${k} ×${n}`).join(", ");
    console.log(`Failure   ${f.code} (${f.layer}) ${f.count}× = ${f.percent}%, median ${f.medianElapsedMs} ms, max ${f.maxElapsedMs} ms [${seen}]: ${f.explanation}`);
  }
  console.log(`Verdict   ${d.verdict.toUpperCase()}`);
  for (const a of d.advice) console.log(`  - ${a}`);
}

function spaced(h: string): string {
  return h.replace(/(..)(?=.)/g, "$1 ").toUpperCase();
}
