/**
 * The main job for a newcomer: `bun run demo`. Uses a real reader when one holds a card
 * and an access key is given (--doc/--dob/--expiry); otherwise starts pcscd (if needed)
 * and the virtual passport, reads it through the real PC/SC stack exactly as a board
 * would, and prints the result.
 *
 * Then the fleet view: starts Mosquitto on loopback and the agent (`mrtd-agent run` with a
 * generated config), and reads the card remotely with the operator CLI (`mrtd-agent remote
 * read`): the access key sealed to the agent's key from its birth, the report sealed back to
 * a fresh operator key and checked to come from the agent.
 * Everything started here is stopped at the end. --no-service skips the fleet part.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import mqtt from "mqtt";
import { main as cli } from "../agent/cli.ts";
import { invocation } from "../agent/cli/invocation.ts";
import { PcscClient, SCARD_STATE_UNAWARE } from "../agent/transport/pcsc.ts";
import { startMosquitto, type Mosquitto } from "./support/mosquitto.ts";
import { ensurePcscd } from "./support/pcscd.ts";
import { startVirtualPassport } from "./virtual-passport/index.ts";
import { profileList } from "./virtual-passport/fixtures/index.ts";

const VIRTUAL_READER = "Virtual PCD 00 00";
/** The project's TEST-ONLY CSCA (and CRL) that signs the virtual passport's EF.SOD. */
const TEST_TRUST = resolve(import.meta.dir, "fixtures/pki");
let trust: string | undefined;
const SPECIMEN = { documentNumber: "L898902C3", dateOfBirth: "740812", dateOfExpiry: "120415" };
const args = process.argv.slice(2);

if (args.includes("--help")) {
  console.log(`Usage: ${invocation("demo", "test/demo.ts")} [--profile NAME] [--doc N --dob YYMMDD --expiry YYMMDD] [--no-service] [read options]

Reads a passport end to end through pcscd. With an access key and a card in a real
reader, reads that card; otherwise reads the virtual passport (ICAO specimen data).
Other arguments are passed to "mrtd-agent read" (e.g. --json, --trace, --files DG1).
Then starts Mosquitto on loopback and the agent service, and reads the same card
remotely over MQTT 5 with the operator CLI (mrtd-agent remote read): access key sealed
to the agent, report sealed back to a fresh operator key (skip with --no-service).

Profiles:
${profileList()}`);
  process.exit(0);
}

function take(name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
}
function flag(name: string): boolean {
  const i = args.indexOf(name);
  if (i >= 0) args.splice(i, 1);
  return i >= 0;
}
function valueOf(name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

const profile = take("--profile") ?? "td3";
const noService = flag("--no-service");
const hasKey = args.includes("--doc");

const pcscd = await ensurePcscd();
if (pcscd.started) console.error("demo: started pcscd");
let code = 1;
let passport: Awaited<ReturnType<typeof startVirtualPassport>> | undefined;
let reader = VIRTUAL_READER;
let key = SPECIMEN;
try {
  const real = await realReaderWithCard();
  if (real && hasKey) {
    console.error(`demo: reading the card in ${real}`);
    reader = real;
    key = { documentNumber: valueOf("--doc") ?? "", dateOfBirth: valueOf("--dob") ?? "", dateOfExpiry: valueOf("--expiry") ?? "" };
    code = await cli(["read", "--reader", real, ...args]);
  } else {
    if (real) console.error(`demo: a card is in ${real}, but no access key was given (--doc, --dob, --expiry): using the virtual passport`);
    passport = await startVirtualPassport({ profile, port: 35963 });
    console.error(`demo: virtual passport "${profile}" (ICAO specimen ERIKSSON ANNA MARIA) is in ${VIRTUAL_READER}`);
    if (hasKey) key = { documentNumber: valueOf("--doc") ?? "", dateOfBirth: valueOf("--dob") ?? "", dateOfExpiry: valueOf("--expiry") ?? "" };
    const keyArgs = hasKey ? [] : ["--doc", SPECIMEN.documentNumber, "--dob", SPECIMEN.dateOfBirth, "--expiry", SPECIMEN.dateOfExpiry];
    // The virtual passport is signed under the project's TEST-ONLY CSCA: trusting it here shows
    // a complete verdict (a real document would need its country's CSCA or a master list).
    if (!args.includes("--trust")) trust = TEST_TRUST;
    code = await cli(["read", "--reader", VIRTUAL_READER, ...keyArgs, ...(trust ? ["--trust", trust] : []), ...args]);
  }
  if (!noService && (code === 0 || code === 7)) {
    const serviceCode = await remoteReadDemo(reader, key, trust);
    if (serviceCode !== 0) code = serviceCode;
  }
} finally {
  await passport?.stop();
  await pcscd.stop();
  if (pcscd.started) console.error("demo: stopped pcscd");
}
process.exit(code);

/** Mosquitto + `mrtd-agent run` + an operator's remote read with a sealed reply. */
async function remoteReadDemo(readerName: string, accessKey: typeof SPECIMEN, trustDir: string | undefined): Promise<number> {
  console.error("\ndemo: --- the fleet view: Mosquitto on loopback, the agent service, a remote read over MQTT 5 ---");
  const dir = mkdtempSync(join(tmpdir(), "mrtd-demo-"));
  let broker: Mosquitto | undefined;
  let agent: ReturnType<typeof Bun.spawn> | undefined;
  let operator: mqtt.MqttClient | undefined;
  try {
    broker = await startMosquitto({ config: "plain" });
    console.error(`demo: Mosquitto listens on ${broker.url}`);
    const agentId = "demo-board";
    const config = join(dir, "config.toml");
    writeFileSync(
      config,
      `[agent]\nid = "${agentId}"\nstate_dir = "${dir}/state"\n[mqtt]\nurl = "${broker.url}"\nreconnect_min_ms = 200\n[telemetry]\nhealth_interval_s = 30\nmetrics_interval_s = 30\n[readers]\ninclude = [${JSON.stringify(readerName)}]\n${trustDir ? `[verification]\ntrust = [${JSON.stringify(trustDir)}]\n` : ""}`,
    );
    const root = resolve(import.meta.dir, "..");
    agent = Bun.spawn([process.execPath, join(root, "agent/cli.ts"), "run", "--config", config], { cwd: root, stdin: "ignore", stdout: "pipe", stderr: "inherit" });
    let agentLog = "";
    void (async () => {
      for await (const chunk of agent.stdout as ReadableStream<Uint8Array>) agentLog += new TextDecoder().decode(chunk);
    })();
    console.error(`demo: agent "${agentId}" started (mrtd-agent run --config ${config})`);

    operator = mqtt.connect({ host: "127.0.0.1", port: broker.port, protocol: "mqtt", protocolVersion: 5, clientId: "demo-watch", reconnectPeriod: 0 });
    await new Promise<void>((res, rej) => (operator!.once("connect", () => res()), operator!.once("error", rej)));
    const base = `mrtd/v1/${agentId}`;
    await operator.subscribeAsync(`${base}/status`, { qos: 1 });
    const online = new Promise<void>((res) => {
      operator!.on("message", (topic, payload) => {
        if (topic === `${base}/status` && JSON.parse(payload.toString()).state === "online") res();
      });
    });
    await withTimeout(online, 15_000, "the agent's online status");
    console.error("demo: the agent is online (retained status on the broker)");
    await operator.endAsync(true);

    // The operator CLI, as an operator runs it; its keys and pins stay in the demo's temp dir.
    const opKey = join(dir, "operator.key");
    const known = join(dir, "known-agents");
    const saved = join(dir, "reply.json");
    const keygen = Bun.spawnSync([process.execPath, join(root, "agent/cli.ts"), "remote", "keygen", opKey], { stdout: "pipe", stderr: "inherit" });
    if (keygen.exitCode !== 0) return 1;
    console.error(`demo: operator HPKE key made (mrtd-agent remote keygen): public key ${keygen.stdout.toString().trim()}`);
    const remoteArgs = ["--agent", agentId, "--broker", broker.url, "--client-id", "operator-demo", "--operator-key", opKey, "--known-agents", known];
    const keyArgs = ["--doc", accessKey.documentNumber, "--dob", accessKey.dateOfBirth, "--expiry", accessKey.dateOfExpiry];
    console.error(`demo: $ mrtd-agent remote read ${remoteArgs.join(" ")} --doc ... --save ${saved}`);
    console.error("demo: Decrypted by the operator (the reply is opened by mrtd-agent remote with the operator's key, sender checked against the agent's pinned key):");
    const t0 = performance.now();
    const code = await cli(["remote", "read", ...remoteArgs, ...keyArgs, "--wait", "20", "--save", saved]);
    const ms = performance.now() - t0;
    if (code !== 0) {
      console.error(`demo: remote read exited ${code}`);
      return code;
    }
    console.error(`demo: Remote read over MQTT 5 in ${ms.toFixed(0)} ms (connect, birth, command, final reply)`);
    const asSeen = JSON.parse(await Bun.file(saved).text()) as { sealed?: { ct: string[] } };
    console.error(`demo: the reply as the broker saw it: ${JSON.stringify({ ...asSeen, sealed: asSeen.sealed ? `<HPKE envelope, ${asSeen.sealed.ct.length} messages>` : undefined })}`);
    const reads = agentLog.split("\n").filter((l) => l.includes('"read complete"')).length;
    console.error(`demo: agent logged ${reads} read(s); its logs are JSON lines without personal data`);
    return 0;
  } finally {
    await operator?.endAsync(true).catch(() => undefined);
    if (agent) {
      agent.kill("SIGTERM");
      await Promise.race([agent.exited, Bun.sleep(15_000)]);
      if (agent.exitCode === null) agent.kill("SIGKILL");
      console.error(`demo: agent stopped (exit ${agent.exitCode})`);
    }
    await broker?.close();
    if (broker) console.error("demo: Mosquitto stopped");
    rmSync(dir, { recursive: true, force: true });
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, Bun.sleep(ms).then(() => Promise.reject(new Error(`demo: timed out waiting for ${what}`)))]);
}

async function realReaderWithCard(): Promise<string | undefined> {
  const client = await PcscClient.open();
  try {
    const names = (await client.listReaders()).filter((n) => !n.startsWith("Virtual PCD"));
    if (names.length === 0) return undefined;
    const states = await client.getStatusChange(names.map((name) => ({ name, currentState: SCARD_STATE_UNAWARE })), 0);
    return states.find((s) => s.present)?.name;
  } finally {
    await client.close();
  }
}
