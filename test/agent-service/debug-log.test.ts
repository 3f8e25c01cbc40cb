/**
 * agent.log_level = "debug" (issue 15): the real agent process logs what it does at debug
 * level (readers listed, reader state changes, command dispatch and progress, the card lock,
 * connecting to the card, read steps and files, memory after the card work), never personal
 * data; at "info" the same remote read logs none of those lines.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { insertPassport, SPECIMEN_KEY, type StartedPassport } from "../support/e2e.ts";
import { type AgentEnv, startAgentEnv } from "./fixtures/agent-env.ts";
import { AgentProcess, type LogLine, writeAgentConfig } from "./fixtures/agent-process.ts";

const PERSONAL = ["L898902C3", "740812", "120415", "ERIKSSON", "ANNA", "MARIA"];
const OPERATOR = "operator-debug";
/** The reads here send the key in clear: a test bench (sealed keys: command-channel.test.ts). */
const PLAINTEXT_TEST_BENCH = "[commands]\nallow_plaintext_access_key = true";

let env: AgentEnv | undefined;
let card: StartedPassport | undefined;

beforeAll(async () => {
  env = await startAgentEnv({
    operator: OPERATOR,
    subscribe: "mrtd/v1/+/reply/#",
    config: { agentId: "debug-agent", logLevel: "debug", extraToml: PLAINTEXT_TEST_BENCH },
    readyLog: "broker connected", // subscribed to its command topics
  });
  card = await insertPassport({ profile: "td3" });
}, 30_000);

afterAll(async () => {
  await card?.stop().catch(() => undefined);
  await env?.stop();
});

/** Sends a remote read to `agentId` and waits for its final reply. */
async function remoteRead(agentId: string, id: string): Promise<void> {
  const { op } = env!;
  const reply = `mrtd/v1/${agentId}/reply/${OPERATOR}`;
  await op.client.publishAsync(`mrtd/v1/${agentId}/cmd/read`, JSON.stringify({ id, accessKey: SPECIMEN_KEY, files: ["COM", "SOD", "DG1", "DG2"] }), {
    qos: 1,
    properties: { responseTopic: reply, correlationData: Buffer.from(id) },
  });
  await op.waitFor((m) => m.some((x) => x.topic === reply && (x.json as { id?: string; kind?: string }).id === id && (x.json as { kind?: string }).kind === "result"), 20_000, `reply to ${id}`);
}

const debugLines = (logs: LogLine[], msg: string) => logs.filter((l) => l.level === "debug" && l.msg === msg);

test("debug level: readers, reader state, command dispatch and progress, card lock, card connection, read steps and files, memory; no personal data", async () => {
  const { agent } = env!;
  await remoteRead("debug-agent", "dbg-1");
  await agent.waitForLog((l) => l.msg === "memory after card work", 5000, "memory after card work");
  const logs = agent.logs();
  expect(debugLines(logs, "readers listed")[0]?.readers).toEqual(["Virtual PCD 00 00"]);
  expect(debugLines(logs, "reader state").some((l) => l.reader === "Virtual PCD 00 00" && l.present === true)).toBe(true);
  expect(debugLines(logs, "command received")[0]).toMatchObject({ command: "read", qos: 1, retained: false });
  expect(debugLines(logs, "command progress").map((l) => l.step)).toEqual(expect.arrayContaining(["waiting-for-card", "card-present", "file-done"]));
  expect(debugLines(logs, "card lock taken")).toHaveLength(1);
  expect(debugLines(logs, "connecting to the card")[0]?.reader).toBe("Virtual PCD 00 00");
  const progress = debugLines(logs, "read progress");
  expect(progress.filter((l) => l.kind === "step").map((l) => l.step)).toEqual(expect.arrayContaining(["authenticate", "read DG2", "parse"]));
  expect(progress.filter((l) => l.kind === "file-done").map((l) => l.file)).toEqual(["COM", "SOD", "DG1", "DG2"]);
  expect(debugLines(logs, "memory after card work")[0]?.residentBytes).toBeGreaterThan(0);
  // the info lines are still there
  expect(logs.some((l) => l.level === "info" && l.msg === "read complete")).toBe(true);
  for (const p of PERSONAL) expect(agent.stdout + agent.stderr).not.toContain(p);
}, 30_000);

test("info level: the same remote read logs no debug line", async () => {
  const { broker, agent: debugAgent } = env!;
  await debugAgent.kill("SIGTERM"); // one agent at a time on the card
  const { file } = writeAgentConfig({ agentId: "info-agent", broker, logLevel: "info", extraToml: PLAINTEXT_TEST_BENCH });
  const agent = new AgentProcess(file);
  try {
    await agent.waitForLog((l) => l.msg === "broker connected", 15_000, "broker connected"); // subscribed to its command topics
    await remoteRead("info-agent", "info-1");
    await agent.waitForLog((l) => l.msg === "read complete", 5000, "read complete");
    await Bun.sleep(200); // the clean-up after the read, which logs at debug
    const logs = agent.logs();
    expect(logs.filter((l) => l.level === "debug")).toEqual([]);
    expect(logs.some((l) => l.level === "info" && l.msg === "command started")).toBe(true);
  } finally {
    await agent.kill("SIGTERM");
  }
}, 30_000);
