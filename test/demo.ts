/**
 * The main job for a newcomer: `bun run demo`. Uses a real reader when one holds a card
 * and an access key is given (--doc/--dob/--expiry); otherwise starts pcscd (if needed)
 * and the virtual passport, reads it through the real PC/SC stack exactly as a board
 * would, and prints the result.
 *
 * Then the fleet view: starts Mosquitto on loopback and the agent (`mrtd-agent run` with a
 * generated config), sends a remote read as an operator would (MQTT 5 request/response,
 * a fresh X25519 key pair, personal data requested), decrypts the sealed reply and shows it.
 * Everything started here is stopped at the end. --no-service skips the fleet part.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import mqtt from "mqtt";
import { main as cli } from "../agent/cli.ts";
import { invocation } from "../agent/cli/invocation.ts";
import { b64, generateKeyPair, openSealed, replyInfo } from "../agent/service/envelope.ts";
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
remotely over MQTT 5 as a fleet operator would, with the reply sealed to a fresh key
(skip with --no-service).

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

    operator = mqtt.connect({ host: "127.0.0.1", port: broker.port, protocol: "mqtt", protocolVersion: 5, clientId: "operator-demo", reconnectPeriod: 0 });
    await new Promise<void>((res, rej) => (operator!.once("connect", () => res()), operator!.once("error", rej)));
    const base = `mrtd/v1/${agentId}`;
    const replyTopic = `${base}/reply/operator-demo`;
    await operator.subscribeAsync([`${base}/status`, replyTopic], { qos: 1 });
    const online = new Promise<void>((res) => {
      operator!.on("message", (topic, payload) => {
        if (topic === `${base}/status` && JSON.parse(payload.toString()).state === "online") res();
      });
    });
    await withTimeout(online, 15_000, "the agent's online status");
    console.error("demo: the agent is online (retained status on the broker)");

    const keys = generateKeyPair();
    const id = `demo-${Date.now()}`;
    const done = new Promise<Record<string, unknown>>((res) => {
      operator!.on("message", (topic, payload) => {
        if (topic !== replyTopic) return;
        const msg = JSON.parse(payload.toString()) as Record<string, unknown>;
        if (msg.id !== id) return;
        if (msg.kind === "progress") console.error(`demo:   progress: ${msg.step}${msg.detail ? " " + JSON.stringify(msg.detail) : ""}`);
        else res(msg);
      });
    });
    const t0 = performance.now();
    await operator.publishAsync(`${base}/cmd/read`, JSON.stringify({ id, accessKey, includePersonalData: true, replyPublicKey: b64(keys.publicKey), timeoutS: 20 }), {
      qos: 1,
      properties: { responseTopic: replyTopic, correlationData: Buffer.from(id), messageExpiryInterval: 60 },
    });
    console.error(`demo: operator sent read command ${id} (personal data requested, sealed to a fresh X25519 key)`);
    const reply = await withTimeout(done, 30_000, "the read reply");
    const ms = performance.now() - t0;
    if (reply.ok !== true) {
      console.log(`Remote read failed: ${JSON.stringify(reply.error)}`);
      return 1;
    }
    const result = reply.result as Record<string, unknown>;
    const { personalData, ...clear } = result;
    console.log(`\nRemote read over MQTT 5 in ${ms.toFixed(0)} ms (command to final reply)`);
    console.log(`Reply (as the broker saw it; personal data only sealed): ${JSON.stringify({ ...clear, personalData: personalData ? "<sealed envelope>" : undefined })}`);
    if (personalData) {
      const opened = JSON.parse(new TextDecoder().decode(openSealed(keys.privateKey, personalData, replyInfo(agentId, id)))) as {
        mrz?: Record<string, string>;
        face?: { format: string; width: number; height: number; image: string };
      };
      const m = opened.mrz;
      console.log("Decrypted by the operator (deploy/decrypt-reply.ts does the same from a key file):");
      if (m) console.log(`  ${m.documentCode} ${m.issuingState} ${m.documentNumber}: ${m.primaryIdentifier}, ${m.secondaryIdentifier}; born ${m.dateOfBirth}; expires ${m.dateOfExpiry}`);
      if (opened.face) console.log(`  face ${opened.face.format.toUpperCase()} ${opened.face.width}x${opened.face.height}, ${Buffer.from(opened.face.image, "base64").length} bytes`);
    }
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
