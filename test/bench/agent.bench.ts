/**
 * Agent benchmark (issue 5, item 9): the real `mrtd-agent run` process against Mosquitto on
 * loopback, pcscd and the virtual passport (td3 profile, card answering fast). Measures
 *   - RSS when idle and the peak during reads (/proc/<pid>/status VmRSS),
 *   - CPU when idle over 10 s (/proc/<pid>/stat utime+stime),
 *   - event-loop lag during reads (the agent's mrtd_event_loop_lag_seconds, sampled every 5 ms
 *     while a read runs; p99 as the histogram bucket bound that holds it),
 *   - remote-read latency (operator publishes the command -> final reply arrives) against a
 *     local CLI read in the same run (`mrtd-agent read` of the same files: whole process, and
 *     the in-process read time it reports).
 * Targets: RSS < 60 MB, idle CPU < 1%, lag p99 < 20 ms, remote read <= 1.1x the local read.
 * Usage: bun test/bench/agent.bench.ts [--runs N] [--idle-s S]
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { b64, generateKeyPair } from "../../agent/service/envelope.ts";
import { histogramQuantile } from "../../agent/service/metrics.ts";
import type { HistogramMetric, MetricsPayload } from "../../agent/service/payloads.ts";
import { insertPassport, SPECIMEN_KEY, startPcscd, VIRTUAL_READER } from "../support/e2e.ts";
import { startMosquitto } from "../support/mosquitto.ts";
import { observe } from "../service/fixtures/mqtt-observer.ts";
import { AgentProcess, writeAgentConfig } from "../agent-service/fixtures/agent-process.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = arg("--runs", 20);
const IDLE_S = arg("--idle-s", 10);
const ROOT = resolve(import.meta.dir, "../..");
const FILES = ["COM", "SOD", "DG1", "DG2"];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const statusKb = (pid: number, field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) / 1024;
const rssMb = (pid: number) => statusKb(pid, "VmRSS");
/** RSS = RssAnon (heap, stacks: the agent's own memory) + RssFile (pages of the executable and libraries, shared and evictable) + RssShmem. */
const rssParts = (pid: number) => ({ anon: statusKb(pid, "RssAnon"), file: statusKb(pid, "RssFile") });
const cpuTicks = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(f[11]) + Number(f[12]); // utime + stime (fields 14, 15)
};
const TICK = 100; // USER_HZ on Linux
const verdict = (ok: boolean) => (ok ? "meets target" : "MISSES target");

const pcscd = await startPcscd();
const broker = await startMosquitto({ config: "plain" });
const card = await insertPassport({ profile: "td3" });
const op = await observe(broker, "operator-bench");
const AGENT = "bench-agent";
const base = `mrtd/v1/${AGENT}`;
await op.client.subscribeAsync([`${base}/reply/operator-bench`, `${base}/metrics`], { qos: 1 });
const { file } = writeAgentConfig({ agentId: AGENT, broker, healthIntervalS: 3600, metricsIntervalS: 1, logLevel: "warn" });
const agent = new AgentProcess(file);
let code = 0;
try {
  await op.waitFor((m) => m.some((x) => x.topic === `${base}/metrics`), 15_000, "agent metrics");
  const pid = agent.proc.pid;

  // --- idle: settle, then CPU over IDLE_S seconds and RSS
  await Bun.sleep(2000);
  const c0 = cpuTicks(pid);
  const w0 = performance.now();
  await Bun.sleep(IDLE_S * 1000);
  const idleCpu = ((cpuTicks(pid) - c0) / TICK / ((performance.now() - w0) / 1000)) * 100;
  const idleRss = rssMb(pid);
  const idleParts = rssParts(pid);

  // --- remote reads (sealed personal data requested, as an operator would)
  const keys = generateKeyPair();
  let peakRss = idleRss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssMb(pid))), 20);
  const lagBefore = lagHistogram();
  const remote: number[] = [];
  const inAgent: number[] = [];
  for (let i = 0; i <= RUNS; i++) {
    const id = `bench-${i}`;
    const corr = Buffer.from(id);
    const t0 = performance.now();
    await op.client.publishAsync(`${base}/cmd/read`, JSON.stringify({ id, accessKey: SPECIMEN_KEY, files: FILES, includePersonalData: true, replyPublicKey: b64(keys.publicKey) }), {
      qos: 1,
      properties: { responseTopic: `${base}/reply/operator-bench`, correlationData: corr },
    });
    await op.waitFor((m) => m.some((x) => (x.json as { id?: string; kind?: string }).id === id && (x.json as { kind?: string }).kind === "result"), 15_000, `reply ${id}`);
    const ms = performance.now() - t0;
    const final = op.messages.find((x) => (x.json as { id?: string; kind?: string }).id === id && (x.json as { kind?: string }).kind === "result")!.json as {
      ok: boolean;
      result: { durationMs: number; outcome: string };
    };
    if (!final.ok || final.result.outcome !== "success") throw new Error(`remote read ${id} failed: ${JSON.stringify(final)}`);
    if (i === 0) continue; // warm-up
    remote.push(ms);
    inAgent.push(final.result.durationMs);
  }
  clearInterval(sampler);
  await Bun.sleep(1500); // next metrics publication
  const lagAfter = lagHistogram();
  const lag = diffHistogram(lagAfter, lagBefore);
  const lagP99 = lag ? histogramQuantile(lag, 0.99) : undefined;
  const lagP50 = lag ? histogramQuantile(lag, 0.5) : undefined;

  // --- local CLI reads of the same files, same card, same run
  const cliWall: number[] = [];
  const cliRead: number[] = [];
  for (let i = 0; i <= Math.min(RUNS, 10); i++) {
    const t0 = performance.now();
    // async: the virtual passport answers from this process's event loop
    const p = Bun.spawn(
      [process.execPath, join(ROOT, "agent/cli.ts"), "read", "--reader", VIRTUAL_READER, "--doc", SPECIMEN_KEY.documentNumber, "--dob", SPECIMEN_KEY.dateOfBirth, "--expiry", SPECIMEN_KEY.dateOfExpiry, "--files", FILES.join(","), "--no-aa", "--json"],
      { cwd: ROOT, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    const [out, err, exit] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    const ms = performance.now() - t0;
    if (exit !== 0) throw new Error(`CLI read failed (${exit}): ${err}`);
    if (i === 0) continue;
    cliWall.push(ms);
    cliRead.push((JSON.parse(out) as { durationMs: number }).durationMs);
  }

  const remoteMs = median(remote);
  const cliMs = median(cliWall);
  const ratioCli = remoteMs / cliMs;
  const ratioInProcess = remoteMs / median(cliRead);
  const f = (n: number, d = 1) => n.toFixed(d);
  console.log(`agent benchmark: td3 profile (${FILES.join(", ")}), ${RUNS} remote reads, ${cliWall.length} CLI reads, idle ${IDLE_S} s`);
  console.log(`RSS idle                      ${f(idleRss)} MB              target < 60 MB: ${verdict(idleRss < 60)}`);
  console.log(`RSS peak during reads         ${f(peakRss)} MB              target < 60 MB: ${verdict(peakRss < 60)}`);
  console.log(`  idle RSS parts: RssAnon ${f(idleParts.anon)} MB (heap, stacks), RssFile ${f(idleParts.file)} MB (executable and library pages, shared)`);
  console.log(`CPU idle                      ${f(idleCpu, 2)} %               target < 1%: ${verdict(idleCpu < 1)}`);
  console.log(
    `event-loop lag during reads   p50 <= ${lagP50 === undefined ? "n/a" : f(lagP50 * 1000)} ms, p99 <= ${lagP99 === undefined ? "n/a" : f(lagP99 * 1000)} ms (${lag?.count ?? 0} samples)   target p99 < 20 ms: ${verdict(lagP99 !== undefined && lagP99 < 0.02)}`,
  );
  console.log(`remote read (MQTT round trip) median ${f(remoteMs)} ms (read inside the agent ${f(median(inAgent))} ms)`);
  console.log(`local CLI read                median ${f(cliMs)} ms whole process (read itself ${f(median(cliRead))} ms)`);
  console.log(`ratio remote / local CLI      ${f(ratioCli, 2)}x            target <= 1.1x: ${verdict(ratioCli <= 1.1)}`);
  console.log(`ratio remote / in-process read ${f(ratioInProcess, 2)}x (the MQTT, connect and sealing overhead over a ${f(median(cliRead))} ms read)`);
} catch (e) {
  console.error(e);
  console.error(`agent stdout:\n${agent.stdout.slice(-3000)}\nagent stderr:\n${agent.stderr.slice(-3000)}`);
  code = 1;
} finally {
  await agent.kill("SIGTERM");
  await op.close();
  await card.stop();
  await broker.stop();
  await pcscd.stop();
}
process.exit(code);

function lagHistogram(): HistogramMetric | undefined {
  const last = op.on(`${base}/metrics`).at(-1)?.json as MetricsPayload | undefined;
  return last?.histograms.find((h) => h.name === "mrtd_event_loop_lag_seconds");
}

function diffHistogram(after: HistogramMetric | undefined, before: HistogramMetric | undefined): HistogramMetric | undefined {
  if (!after) return undefined;
  if (!before) return after;
  return { ...after, count: after.count - before.count, sum: after.sum - before.sum, buckets: after.buckets.map((b, i) => ({ le: b.le, count: b.count - before.buckets[i]!.count })) };
}
