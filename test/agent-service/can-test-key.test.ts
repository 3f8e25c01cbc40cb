/**
 * The service reads with a CAN from its test key file (readers.test_key_file with `can`):
 * the specimen ID card that accepts only its CAN (can-only) is read on insertion with PACE
 * through pcscd, and the read event reports success; the CAN is in no log line or event.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { insertPassport } from "../support/e2e.ts";
import { loadProfile } from "../virtual-passport/fixtures/index.ts";
import type { Observer } from "../service/fixtures/mqtt-observer.ts";
import { type AgentEnv, startAgentEnv } from "./fixtures/agent-env.ts";
import type { AgentProcess } from "./fixtures/agent-process.ts";

const AGENT = "can-agent";
const EVENTS = `mrtd/v1/${AGENT}/events`;

let env: AgentEnv | undefined;
let op: Observer;
let agent: AgentProcess;
let can: string;

beforeAll(async () => {
  can = (await loadProfile("can-only")).can!;
  env = await startAgentEnv({
    operator: "operator-can",
    subscribe: EVENTS,
    config: { agentId: AGENT, readOnInsert: true, testKey: { can } },
    readyLog: "broker connected",
  });
  ({ op, agent } = env);
}, 30_000);

afterAll(async () => {
  await env?.stop();
});

test("read on insertion with the test key file's CAN: PACE, success, the CAN never logged", async () => {
  const card = await insertPassport({ profile: "can-only" });
  try {
    await agent.waitForLog((l) => l.msg === "read complete" && l.trigger === "insert", 15_000, "read on insert");
  } finally {
    await card.stop();
  }
  await op.waitFor((m) => m.some((x) => (x.json as { type?: string }).type === "read"), 5000, "read event");
  const read = op.messages.map((m) => m.json as Record<string, unknown>).find((e) => e.type === "read")!;
  expect(read).toMatchObject({ trigger: "insert", outcome: "success", documentType: "I" });
  const everything = agent.logs().map((l) => JSON.stringify(l)).join("\n") + op.messages.map((m) => JSON.stringify(m.json)).join("\n");
  expect(everything).not.toContain(can);
}, 60_000);
