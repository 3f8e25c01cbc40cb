/**
 * Read benchmark (issue 2): the td3-17k profile (17 KB DG2, ~1.5 KB SOD) read N times
 * through pcscd + vpcd, with the card answering fast and with a realistic RF model.
 * Prints median read time, APDU count against the minimum for the profile and Le, host
 * time outside SCardTransmit, secure-messaging crypto per 231-byte APDU, and whole-process
 * time of `mrtd-agent read`. Baselines measured in the same run: a select-per-file,
 * 223-byte-block strategy (as JMRTD reads) through the same stack, and node:crypto's
 * native 3DES for the SM crypto. Usage: bun test/bench/read.bench.ts [--runs N]
 */
import { join } from "node:path";
import { createCipheriv } from "node:crypto";
import { protect, tdesSmCipher, unprotect } from "../../agent/icao/secure-messaging.ts";
import { openCard } from "../../agent/reading/card-source.ts";
import { readDocument, type DocumentRead, type ReadOptions } from "../../agent/reading/read-document.ts";
import { loadProfile } from "../virtual-passport/fixtures/index.ts";
import { wrapResponse } from "../virtual-passport/card-sm.ts";
import { insertPassport, minimumApdus, SPECIMEN_KEY, startPcscd, VIRTUAL_READER, type PassportOptions } from "../support/e2e.ts";

const runsArg = process.argv.indexOf("--runs");
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 15;
const PROFILE = "td3-17k";

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const f = (n: number, d = 1) => n.toFixed(d);

async function readMany(passport: PassportOptions, opts: Partial<ReadOptions>, runs: number): Promise<DocumentRead[]> {
  const card = await insertPassport(passport);
  const out: DocumentRead[] = [];
  try {
    const opened = await openCard({ reader: VIRTUAL_READER, waitMs: 5000 });
    try {
      await readDocument(opened.connection, { accessKey: { ...SPECIMEN_KEY }, ...opts }); // warm-up
      for (let i = 0; i < runs; i++) {
        // Each read starts on a freshly reset chip, as when a document is presented (not timed).
        await opened.connection.reconnect("reset");
        out.push(await readDocument(opened.connection, { accessKey: { ...SPECIMEN_KEY }, ...opts }));
      }
    } finally {
      await opened.close();
    }
  } finally {
    await card.stop();
  }
  for (const r of out) if (r.summary.hashesMatchSod !== true) throw new Error("benchmark read did not match EF.SOD");
  return out;
}

function report(label: string, reads: DocumentRead[]) {
  const ms = median(reads.map((r) => r.summary.durationMs));
  const apdus = median(reads.map((r) => r.summary.apdus));
  const host = median(reads.map((r) => r.summary.durationMs - (r.timing.nativeMs ?? r.timing.exchangeMs)));
  const hostPerApdu = (host / apdus) * 1000;
  console.log(
    `${label.padEnd(44)} median ${f(ms).padStart(7)} ms  ${String(apdus).padStart(3)} APDUs  host outside SCardTransmit ${f(host, 2)} ms (${f((host / ms) * 100)}%, ${f(hostPerApdu, 0)} µs/APDU)`,
  );
  return { ms, apdus, host };
}

const pcscd = await startPcscd();
try {
  const profile = await loadProfile(PROFILE);
  const sizes = [profile.files.com.length, ...[...profile.files.dgs.values()].map((b) => b.length), profile.files.sod.length];
  const minShort = minimumApdus(sizes, 231);
  console.log(`profile ${PROFILE}: COM ${sizes[0]} B, DGs ${sizes.slice(1, -1).join(" + ")} B, SOD ${sizes.at(-1)} B; ${RUNS} reads each\n`);

  const fast = report("fast card, short Le (this reader)", await readMany({ profile: PROFILE, extendedLength: false }, {}, RUNS));
  const fastBase = report("fast card, short Le, SELECT + 223 B (JMRTD-like)", await readMany({ profile: PROFILE, extendedLength: false }, { sfi: false, maxShortBlock: 223 }, RUNS));
  const fastExt = report("fast card, extended length", await readMany({ profile: PROFILE, extendedLength: true }, { extendedLength: "on" }, RUNS));
  const realistic = { kind: "realistic" as const, bitRate: 424_000, turnaroundMs: 3 };
  const real = report("424 kbit/s + 3 ms turnaround, short Le", await readMany({ profile: PROFILE, extendedLength: false, latency: realistic }, {}, Math.min(RUNS, 7)));
  const realBase = report("424 kbit/s + 3 ms, SELECT + 223 B (JMRTD-like)", await readMany({ profile: PROFILE, extendedLength: false, latency: realistic }, { sfi: false, maxShortBlock: 223 }, Math.min(RUNS, 7)));

  console.log(`\nAPDUs, short Le: ${fast.apdus} (minimum for this profile and Le: ${minShort}; JMRTD-like strategy in this run: ${fastBase.apdus}; JMRTD measured elsewhere: 97)`);
  console.log(`APDUs, extended length: ${fastExt.apdus}`);
  // The signed EF.SOD decides: a chip whose EF.SOD lists DG15 costs its DG15 read and one INTERNAL AUTHENTICATE, nothing else.
  const aaProfile = await loadProfile("aa-rsa");
  const aaSizes = [aaProfile.files.com.length, ...[...aaProfile.files.dgs.values()].map((b) => b.length), aaProfile.files.sod.length];
  const aaReads = await readMany({ profile: "aa-rsa", extendedLength: false }, { activeAuthentication: true }, 3);
  if (aaReads.some((r) => r.aa?.status !== "ok")) throw new Error("aa-rsa: Active Authentication did not pass");
  const aaApdus = median(aaReads.map((r) => r.summary.apdus));
  const dg15Apdus = aaReads[0]!.summary.files.DG15?.apdus ?? 0;
  console.log(
    `APDUs, short Le, aa-rsa (EF.SOD lists DG15, AA on): ${aaApdus} = minimum for its files ${minimumApdus(aaSizes, 231)} (DG15: ${dg15Apdus}) + 1 INTERNAL AUTHENTICATE`,
  );
  console.log(`read time vs JMRTD-like strategy: fast ${f(fast.ms / fastBase.ms, 2)}x, realistic ${f(real.ms / realBase.ms, 2)}x`);
  console.log(`host overhead with realistic latency: ${f((real.host / real.ms) * 100, 2)}% of read time (target < 5%)`);

  // Secure messaging crypto per 231-byte READ BINARY: protect the command, unprotect the response.
  const ksEnc = Uint8Array.from({ length: 16 }, (_, i) => i * 7 + 1);
  const ksMac = Uint8Array.from({ length: 16 }, (_, i) => i * 11 + 3);
  const cipher = tdesSmCipher(ksEnc, ksMac);
  const plain = crypto.getRandomValues(new Uint8Array(231));
  const ssc = 0x1122334455667788n;
  const N = 20_000;
  const responses: Uint8Array[] = [];
  // The card's answers, made by the virtual passport's own (independent) SM code.
  for (let i = 0; i < 64; i++) {
    const cardSsc = ssc + 2n * BigInt(i) + 1n; // after the command; wrapResponse increments once more
    const sscBytes = new Uint8Array(8);
    new DataView(sscBytes.buffer).setBigUint64(0, cardSsc);
    responses.push(wrapResponse({ kEnc: ksEnc, kMac: ksMac, ssc: sscBytes }, plain, 0x9000).response);
  }
  let t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const p = protect({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 231 }, cipher, ssc + 2n * BigInt(i % 64));
    const u = unprotect(responses[i % 64]!, cipher, p.ssc);
    if (u.data.length !== 231) throw new Error("SM round trip lost data");
  }
  const smUs = ((performance.now() - t0) / N) * 1000;
  // Baseline: node:crypto's native 3DES-CBC over the same bytes (encrypt ~240 B + CBC-MAC ~264 B).
  const key24 = new Uint8Array(24);
  key24.set(ksEnc);
  key24.set(ksEnc.subarray(0, 8), 16);
  const buf240 = new Uint8Array(240);
  const buf264 = new Uint8Array(264);
  t0 = performance.now();
  for (let i = 0; i < N; i++) {
    createCipheriv("des-ede3-cbc", key24, new Uint8Array(8)).setAutoPadding(false).update(buf240);
    createCipheriv("des-ede3-cbc", key24, new Uint8Array(8)).setAutoPadding(false).update(buf264);
  }
  const nativeUs = ((performance.now() - t0) / N) * 1000;
  console.log(`secure messaging per 231-byte READ BINARY: ${f(smUs, 1)} µs (target < 50 µs); native 3DES over the same bytes: ${f(nativeUs, 1)} µs (ratio ${f(smUs / nativeUs, 2)}x)`);

  // Whole `read` process, start to exit, fast card.
  const card = await insertPassport({ profile: PROFILE, extendedLength: false });
  try {
    const cli = join(import.meta.dir, "../../agent/cli.ts");
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const p = Bun.spawn([process.execPath, cli, "read", "--reader", VIRTUAL_READER, "--doc", SPECIMEN_KEY.documentNumber, "--dob", SPECIMEN_KEY.dateOfBirth, "--expiry", SPECIMEN_KEY.dateOfExpiry, "--json"], { stdout: "pipe", stderr: "pipe" });
      const code = await p.exited;
      if (code !== 0) throw new Error(`read process exited ${code}: ${await new Response(p.stderr).text()}`);
      times.push(performance.now() - t);
    }
    const proc = median(times);
    console.log(`whole read process (bun agent/cli.ts read, start to exit): median ${f(proc, 0)} ms over 5 runs; JMRTD measured elsewhere ~1,040 ms (ratio ${f(proc / 1040, 2)}; target < 0.5)`);
  } finally {
    await card.stop();
  }
} finally {
  await pcscd.stop();
}
