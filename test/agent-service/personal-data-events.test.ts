/**
 * telemetry.include_personal_data (issue 5: "read results without personal data by default"):
 * the real agent process reads the virtual passport on insertion; its read event carries the
 * MRZ fields sealed to the configured fleet key by the agent's key (HPKE auth mode, from its
 * birth), which the test opens, and nothing in clear. A remote read's reply never carries the
 * event's envelope (here a test-bench read: commands.allow_plaintext_access_key, no reply key,
 * so no personal data at all). An unusable key stops the agent at start with a configuration error.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import { b64, generateKeyPair, open, parsePublicKey } from "../../agent/service/envelope.ts";
import { insertPassport, SPECIMEN_KEY, type StartedPassport } from "../support/e2e.ts";
import type { Mosquitto } from "../support/mosquitto.ts";
import { validate } from "../support/json-schema.ts";
import type { Observer } from "../service/fixtures/mqtt-observer.ts";
import { type AgentEnv, startAgentEnv } from "./fixtures/agent-env.ts";
import { AgentProcess, writeAgentConfig } from "./fixtures/agent-process.ts";
import { removeTempDir } from "../support/temp-dir.ts";

const asyncapi = Bun.YAML.parse(await Bun.file(resolve(import.meta.dir, "../../deploy/asyncapi.yaml")).text()) as object;
const AGENT = "pd-agent";
const EVENTS = `mrtd/v1/${AGENT}/events`;
const PERSONAL = ["L898902C3", "740812", "120415", "ERIKSSON", "ANNA", "MARIA"];
const fleet = generateKeyPair();

let env: AgentEnv | undefined;
let broker: Mosquitto;
let op: Observer;
let agent: AgentProcess;
let card: StartedPassport | undefined;

beforeAll(async () => {
  env = await startAgentEnv({
    operator: "operator-pd",
    subscribe: "mrtd/v1/#",
    config: { agentId: AGENT, readOnInsert: true, testKey: { ...SPECIMEN_KEY }, personalDataPublicKey: b64(fleet.publicKey), extraToml: "[commands]\nallow_plaintext_access_key = true" },
    readyLog: "agent started",
  });
  ({ broker, op, agent } = env);
}, 30_000);

afterAll(async () => {
  await card?.stop().catch(() => undefined);
  await env?.stop();
});

describe("personal data in read events, sealed to the fleet key", () => {
  test("the read event's envelope opens with the fleet key to the MRZ fields, no face; nothing in clear", async () => {
    card = await insertPassport({ profile: "td3" });
    await op.waitFor((m) => m.some((x) => x.topic === EVENTS && (x.json as { type?: string }).type === "read"), 20_000, "read event");
    const ev = op.on(EVENTS).find((x) => (x.json as { type?: string }).type === "read")!;
    const body = ev.json as { eventId: string; outcome: string; personalData: unknown };
    expect(body.outcome).toBe("success");
    expect(validate({ $ref: "#/components/schemas/ReadEvent" }, body, asyncapi)).toEqual([]);
    const birth = op.on(`mrtd/v1/${AGENT}/status`).map((m) => m.json as { state: string; hpke?: { publicKey: string } }).find((b) => b.state === "online")!;
    const agentKey = parsePublicKey(birth.hpke!.publicKey, "birth");
    const expect_ = { kind: "event" as const, agentId: AGENT, id: body.eventId };
    const plain = JSON.parse(new TextDecoder().decode(open({ key: fleet.privateKey, from: agentKey, envelope: body.personalData, expect: expect_ }))) as {
      mrz: { documentNumber: string; primaryIdentifier: string; dateOfBirth: string };
      face?: unknown;
    };
    expect(plain.mrz).toMatchObject({ documentNumber: "L898902C3", primaryIdentifier: "ERIKSSON", dateOfBirth: "740812" });
    expect(plain.face).toBeUndefined();
    // bound to its event: the envelope does not open as another event's
    expect(() => open({ key: fleet.privateKey, from: agentKey, envelope: body.personalData, expect: { ...expect_, id: "another-event" } })).toThrow("sealed for another event id");
    // and only the agent's key sealed it
    expect(() => open({ key: fleet.privateKey, from: generateKeyPair().publicKey, envelope: body.personalData, expect: expect_ })).toThrow("authentication failed");
    const published = op.messages.map((m) => m.text).join("\n");
    for (const p of PERSONAL) {
      expect(published).not.toContain(p);
      expect(agent.stdout + agent.stderr).not.toContain(p);
    }
  }, 30_000);

  test("a remote read's reply does not carry the event's envelope", async () => {
    const reply = `mrtd/v1/${AGENT}/reply/operator-pd`;
    await op.client.publishAsync(`mrtd/v1/${AGENT}/cmd/read`, JSON.stringify({ id: "pd-1", accessKey: SPECIMEN_KEY, files: ["COM", "SOD", "DG1"] }), {
      qos: 1,
      properties: { responseTopic: reply, correlationData: Buffer.from("pd-1") },
    });
    await op.waitFor((m) => m.some((x) => x.topic === reply && (x.json as { kind?: string }).kind === "result"), 20_000, "reply");
    const final = op.on(reply).find((x) => (x.json as { kind?: string }).kind === "result")!.json as { ok: boolean; result: Record<string, unknown> };
    expect(final.ok).toBe(true);
    expect(final.result.personalData).toBeUndefined();
    for (const p of PERSONAL) expect(JSON.stringify(final.result)).not.toContain(p);
    // while its event carries one
    await op.waitFor((m) => m.some((x) => x.topic === EVENTS && (x.json as { commandId?: string }).commandId === "pd-1"), 10_000, "event of pd-1");
    const ev = op.on(EVENTS).find((x) => (x.json as { commandId?: string }).commandId === "pd-1")!.json as { personalData?: unknown };
    expect(ev.personalData).toBeDefined();
  }, 30_000);
});

test("a low-order public key stops the agent at start: exit 2 naming the file and key", async () => {
  // u = 0 is a point of small order: every shared secret with it is zero.
  const { file, dir } = writeAgentConfig({
    agentId: "pd-bad",
    broker,
    personalDataPublicKey: b64(new Uint8Array(32)),
  });
  const bad = new AgentProcess(file);
  let code: number | null;
  try {
    await bad.proc.exited;
    code = await bad.kill(); // already exited: this only drains its output
  } finally {
    removeTempDir(dir);
  }
  expect(code).toBe(2);
  expect(bad.stderr).toContain(`${file}: telemetry.personal_data_public_key: not a usable X25519 public key`);
}, 30_000);
