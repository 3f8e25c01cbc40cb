/**
 * Runs every test with `bun test` and ends with one line counted from the run's JUnit
 * report: `N passed, N failed, N skipped`. A test file that crashes before its tests run
 * makes bun exit non-zero without a failed test case; that is counted as one failure.
 * Extra arguments are passed to `bun test` (e.g. a path filter).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "mrtd-tests-"));
const report = join(dir, "junit.xml");
const proc = Bun.spawn([process.execPath, "test", "--timeout=60000", "--reporter=junit", `--reporter-outfile=${report}`, ...process.argv.slice(2)], {
  stdout: "inherit",
  stderr: "inherit",
  stdin: "ignore",
});
const code = await proc.exited;

let xml = "";
try {
  xml = readFileSync(report, "utf8");
} catch {
  // no report: bun died before writing it
}
rmSync(dir, { recursive: true, force: true });

let passed = 0;
let failed = 0;
let skipped = 0;
const failures: string[] = [];
for (const m of xml.matchAll(/<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g)) {
  const attrs = m[1] ?? "";
  const body = m[3] ?? "";
  if (/<(failure|error)\b/.test(body)) {
    failed++;
    const name = /name="([^"]*)"/.exec(attrs)?.[1] ?? "?";
    const file = /file="([^"]*)"/.exec(attrs)?.[1] ?? "?";
    failures.push(`${file}: ${name}`);
  } else if (/<skipped\b/.test(body)) skipped++;
  else passed++;
}
if (code !== 0 && failed === 0) {
  failed = 1;
  failures.push(`bun test exited with code ${code} without a failed test case (a test file failed to load?)`);
}
if (failures.length > 0) {
  console.log("\nFailed:");
  for (const f of failures) console.log(`  ${f}`);
}
const summary = `${passed} passed, ${failed} failed, ${skipped} skipped`;
if (process.env.MRTD_TEST_SUMMARY_FILE) writeFileSync(process.env.MRTD_TEST_SUMMARY_FILE, summary + "\n");
console.log(summary);
process.exit(failed > 0 ? 1 : 0);
