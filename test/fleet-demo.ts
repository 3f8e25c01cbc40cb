/**
 * `npm run fleet`: the dashboard with a fleet to show. Starts Mosquitto (the shipped TLS + ACL
 * configuration, a test PKI), a real agent (`mrtd-agent run`) reading the virtual passport
 * through pcscd when the machine's PC/SC lock (/tmp/mrtd-pcsc.lock) is free within --lock-wait s, a few dozen simulated agents speaking the
 * real topic contract through the agent's own link and payload builders (reads succeed or fail
 * at each one's own rate, health every few seconds, metrics every 15 s), and the dashboard.
 * Prints the URL and the demo logins; Ctrl-C stops everything it started.
 *
 *   npm run fleet -- [--agents 36] [--no-real-agent] [--lock-wait 30]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { AgentProcess, writeAgentConfig } from "./agent-service/fixtures/agent-process.ts";
import { DashboardProcess, USERS } from "./dashboard/fixtures/dashboard-process.ts";
import { SimAgent } from "./dashboard/fixtures/sim-agent.ts";
import { insertPassport, SPECIMEN_KEY, VIRTUAL_READER, type StartedPassport } from "./support/e2e.ts";
import { startMosquitto } from "./support/mosquitto.ts";
import { ensurePcscd, type PcscdHandle } from "./support/pcscd.ts";

const PCSC_LOCK = "/tmp/mrtd-pcsc.lock";
const args = process.argv.slice(2);
const count = Number(args[args.indexOf("--agents") + 1]) || 36;
const wantReal = !args.includes("--no-real-agent");
const lockWaitS = Number(args[args.indexOf("--lock-wait") + 1]) || 30;
const READERS = ["ACS ACR122U PICC Interface 00 00", "Identiv uTrust 3700 F CL Reader 00 00", "HID OMNIKEY 5022 Smart Card Reader 00 00", "NXP PR533 00 00"];
const FAILURES = ["RF_TIMEOUT", "RF_NO_ANSWER", "CARD_LOST", "CARD_REMOVED", "SM_BAD_MAC", "ACCESS_DENIED"];

const stops: Array<() => Promise<unknown>> = [];
const stopAll = async () => {
  for (const s of stops.reverse()) await s().catch(() => undefined);
  stops.length = 0;
};

async function main(): Promise<void> {
  const simIds = Array.from({ length: count }, (_, i) => `kiosk-${String(i + 1).padStart(3, "0")}`);
  const broker = await startMosquitto({ config: "tls-acl", agents: [...simIds, "board-virtual"] });
  stops.push(() => broker.stop());
  // History samples every 10 s so the agent pages' trend charts fill while you watch.
  const dash = await DashboardProcess.start(broker, { sampleIntervalS: 10 });
  stops.push(() => dash.stop());

  const real = wantReal ? await startRealAgent(broker).then(() => true, (e) => (console.log(`fleet: no real agent (${(e as Error).message})`), false)) : false;

  const sims: Array<{ sim: SimAgent; failRate: number; apduMs: number[] }> = [];
  for (const [i, id] of simIds.entries()) {
    const readers = READERS.slice(0, 1 + (i % 3 === 0 ? 1 : 0)).map((r, k) => READERS[(i + k) % READERS.length]!);
    const sim = new SimAgent(broker, id, readers, i % 5 === 0 ? "0.1.0" : "0.2.0");
    await sim.start();
    stops.push(() => sim.stop());
    const failRate = i % 11 === 0 ? 0.5 : i % 4 === 0 ? 0.15 : 0.03;
    // APDU round trips differ by reader model and link quality.
    const apduMs = [2 + (i % 5), 4 + (i % 7), 8 + ((i * 3) % 20), failRate > 0.1 ? 40 + (i % 30) : 12];
    for (const r of readers) await sim.reads(r, outcomes(6, failRate), apduMs);
    await sim.publishMetrics();
    sims.push({ sim, failRate, apduMs });
  }
  // Reads keep coming; one simulated agent stops after 10 s, so the offline count moves.
  const tick = setInterval(() => {
    const pick = sims[Math.floor(Math.random() * sims.length)]!;
    const reader = [...pick.sim.readers.keys()][0]!;
    void (async () => {
      await pick.sim.card(reader, "inserted");
      await pick.sim.reads(reader, outcomes(1 + Math.floor(Math.random() * 3), pick.failRate), pick.apduMs);
      await pick.sim.card(reader, "removed");
    })().catch(() => undefined);
  }, 300);
  const metrics = setInterval(() => {
    for (const s of sims) void s.sim.publishMetrics().catch(() => undefined);
  }, 15_000);
  stops.push(async () => {
    clearInterval(tick);
    clearInterval(metrics);
  });
  const last = sims[sims.length - 1];
  if (last) setTimeout(() => void last.sim.stop(), 10_000);

  console.log(`
fleet: ${count} simulated agents${real ? " and the real agent board-virtual" : ""}, Mosquitto ${broker.url}
fleet: dashboard ${dash.url}
fleet: log in as ${USERS.operator.name} / ${USERS.operator.password} (operator) or ${USERS.viewer.name} / ${USERS.viewer.password} (viewer)
fleet: Prometheus metrics at ${dash.url}/metrics${real ? `
fleet: remote read from the page: ${dash.url}/#/agent/board-virtual with the ICAO specimen's MRZ key (README, Dashboard)` : ""}
fleet: Ctrl-C stops everything`);
}

function outcomes(n: number, failRate: number): Array<true | string> {
  return Array.from({ length: n }, () => (Math.random() < failRate ? FAILURES[Math.floor(Math.random() * FAILURES.length)]! : true));
}

/** The real agent on the virtual passport, only while this process holds the PC/SC lock. */
async function startRealAgent(broker: Awaited<ReturnType<typeof startMosquitto>>): Promise<void> {
  // Wait for the lock (other runs hold it only for one test command), then hold it until the demo
  // stops: flock holds it while its child (a sleep whose pid the child prints) lives; -o keeps the
  // lock out of the child, so ending the child releases it, and a Ctrl-C while waiting ends flock.
  const lock: Subprocess<"ignore", "pipe", "ignore"> = Bun.spawn(["flock", "-o", "-w", String(lockWaitS), PCSC_LOCK, "sh", "-c", "echo $$; exec sleep infinity"], { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
  stops.push(async () => {
    if (holder) process.kill(holder, "SIGTERM");
    lock.kill();
    await lock.exited;
  });
  let holder: number | undefined;
  const got = (await lock.stdout.getReader().read()).value;
  holder = got ? Number(new TextDecoder().decode(got).trim()) || undefined : undefined;
  if (!holder) throw new Error(`${PCSC_LOCK} stayed busy for ${lockWaitS} s`);
  const pcscd: PcscdHandle = await ensurePcscd();
  stops.push(() => pcscd.stop());
  const dir = mkdtempSync(join(tmpdir(), "mrtd-fleet-agent-"));
  stops.push(async () => rmSync(dir, { recursive: true, force: true }));
  const { file } = writeAgentConfig({ agentId: "board-virtual", broker, dir, tls: true, readOnInsert: true, testKey: { ...SPECIMEN_KEY }, include: [VIRTUAL_READER], healthIntervalS: 5, metricsIntervalS: 10 });
  const agent = new AgentProcess(file);
  stops.push(() => agent.kill("SIGTERM"));
  await agent.waitForLog((l) => l.msg === "agent started", 20_000, "agent started");
  // Put the passport on the reader now and then: each insert is a real read through pcscd.
  let card: StartedPassport | undefined = await insertPassport({ profile: "td3" });
  const cycle = setInterval(() => {
    void (async () => {
      if (card) {
        await card.stop();
        card = undefined;
      } else card = await insertPassport({ profile: "td3" });
    })().catch(() => undefined);
  }, 8000);
  stops.push(async () => {
    clearInterval(cycle);
    await card?.stop();
  });
  console.log(`fleet: real agent board-virtual reads the virtual passport in "${VIRTUAL_READER}" every 16 s`);
}

let stopping = false;
const onSignal = () => {
  if (stopping) return;
  stopping = true;
  console.log("\nfleet: stopping");
  void stopAll().then(() => process.exit(0));
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
main().catch(async (e) => {
  console.error(`fleet: ${(e as Error).message}`);
  await stopAll();
  process.exit(1);
});
