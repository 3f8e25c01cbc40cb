import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import { CommandDispatcher, parseCommand } from "../../agent/service/commands.ts";
import { generateKeyPair, replyInfo, sealForRecipient } from "../../agent/service/envelope.ts";
import { MqttLink } from "../../agent/service/mqtt-link.ts";
import { Outbox } from "../../agent/service/outbox.ts";
import { cardEvent, readEvent, readerEvent } from "../../agent/service/payloads.ts";
import type { MetricsPayload, ReaderHealth } from "../../agent/service/payloads.ts";
import { agentTopics } from "../../agent/service/topics.ts";
import type { ReadSummary } from "../../agent/reading/read-result.ts";
import { startMosquitto } from "../support/mosquitto.ts";
import type { Mosquitto } from "../support/mosquitto.ts";
import { validate } from "../support/json-schema.ts";
import { observe } from "./fixtures/mqtt-observer.ts";
import type { Observer } from "./fixtures/mqtt-observer.ts";

const doc = Bun.YAML.parse(await Bun.file(resolve(import.meta.dir, "../../deploy/asyncapi.yaml")).text()) as {
  asyncapi: string;
  channels: Record<string, { address: string }>;
  components: { schemas: Record<string, unknown> };
};
const schema = (name: string) => ({ $ref: `#/components/schemas/${name}` });
function check(name: string, value: unknown): void {
  const errors = validate(schema(name), value, doc);
  if (errors.length > 0) throw new Error(`${name} payload does not match deploy/asyncapi.yaml:\n  ${errors.join("\n  ")}\n${JSON.stringify(value)}`);
}

const AGENT = "schema-agent";
const topics = agentTopics("mrtd/v1", AGENT);
let broker: Mosquitto;
let link: MqttLink;
let obs: Observer;
beforeAll(async () => {
  broker = await startMosquitto({ config: "plain" });
  obs = await observe(broker, "operator-schema");
  await obs.client.subscribeAsync(`mrtd/v1/${AGENT}/#`, { qos: 1 });
  link = new MqttLink({ url: broker.url, clientId: AGENT, topics, version: "0.1.0", readers: () => ["Virtual PCD 00 00"] });
  const dispatcher = new CommandDispatcher({ link, topics });
  dispatcher.register("read", async (cmd, ctx) => {
    await ctx.progress("bac", { attempt: 1 });
    return { outcome: "success", personalData: sealForRecipient(cmd.replyPublicKey!, new TextEncoder().encode("{}"), replyInfo(AGENT, cmd.id)) };
  });
  link.on("message", (m) => void dispatcher.handle(m));
  link.start();
  await link.waitConnected(5000);
});
afterAll(async () => {
  await obs.close();
  await broker.stop();
});

const SUMMARY: ReadSummary = {
  reader: "Virtual PCD 00 00",
  atr: "3B8880010000000000718100F9",
  documentType: "P",
  issuingState: "UTO",
  files: { COM: { bytes: 24, sha256: "00".repeat(32), apdus: 3, ms: 4.5 }, DG1: { bytes: 93, sha256: "11".repeat(32), apdus: 3, ms: 5 } },
  hashesMatchSod: true,
  apdus: 12,
  durationMs: 120.5,
  steps: [{ name: "bac", ms: 30, apdus: 3 }],
  recoveries: [{ step: "read DG1", file: "DG1", offset: 0, cause: "RF_6F00", action: "reauthenticate", apdus: 4, ms: 20 }],
  authentication: { protocol: "PACE", password: "CAN", mapping: "GM", group: "brainpoolP256r1", cipher: "AES-128", paceOffered: ["0.4.0.127.0.7.2.2.4.2.2"], parameterIdSent: true },
  link: { blockSize: 223, extendedLength: false, readBySfi: false },
};

describe("deploy/asyncapi.yaml", () => {
  test("is AsyncAPI 3 and its channel addresses are the ones topics.ts builds", () => {
    expect(doc.asyncapi).toBe("3.0.0");
    const fill = (a: string) => a.replace("{agentId}", AGENT).replace("{readerSlug}", "virtual-pcd-00-00").replace("{command}", "read").replace("{requester}", "operator-test");
    expect(fill(doc.channels.status!.address)).toBe(topics.status);
    expect(fill(doc.channels.readerHealth!.address)).toBe(topics.health("Virtual PCD 00 00"));
    expect(fill(doc.channels.metrics!.address)).toBe(topics.metrics);
    expect(fill(doc.channels.events!.address)).toBe(topics.events);
    expect(fill(doc.channels.command!.address)).toBe(topics.cmd("read"));
    expect(fill(doc.channels.reply!.address)).toBe(topics.reply("operator-test"));
  });

  test("the validator is strict: wrong payloads fail", () => {
    expect(validate(schema("Status"), { state: "online", agentId: AGENT }, doc).length).toBeGreaterThan(0);
    expect(validate(schema("Event"), { ...readerEvent(AGENT, "r", "attached"), eventId: "e", extra: 1 }, doc).length).toBeGreaterThan(0);
    expect(validate(schema("Event"), { ...readEvent(AGENT, SUMMARY, { trigger: "insert" }), eventId: "e", files: { DG1: { bytes: 1, apdus: 1, ms: 1, sha256: "x" } } }, doc).length).toBeGreaterThan(0);
    // the access facts carry no key: an extra field (e.g. a CAN) is refused by the schema
    expect(validate(schema("Event"), { ...readEvent(AGENT, SUMMARY, { trigger: "insert" }), eventId: "e", access: { protocol: "PACE", cipher: "AES-128", can: "123456" } }, doc).length).toBeGreaterThan(0);
    expect(readEvent(AGENT, SUMMARY, { trigger: "insert" }).access).toEqual({ protocol: "PACE", password: "CAN", mapping: "GM", group: "brainpoolP256r1", cipher: "AES-128" });
  });

  test("status birth and offline as published", async () => {
    await obs.waitFor((m) => m.some((x) => x.topic === topics.status));
    check("Status", obs.on(topics.status)[0]!.json);
    await link.stop();
    await obs.waitFor((m) => m.filter((x) => x.topic === topics.status).length >= 2);
    check("Status", obs.on(topics.status)[1]!.json);
    check("Status", { state: "offline", agentId: AGENT, reason: "connection-lost", startedAt: link.startedAt }); // the will, as mqtt-link builds it
    link.start();
    await link.waitConnected(5000);
  });

  test("events from the outbox, as delivered", async () => {
    const outbox = new Outbox(":memory:", { maxEvents: 10 });
    outbox.append(topics.events, { ...readEvent(AGENT, SUMMARY, { trigger: "command", commandId: "c-1", verdict: "verified" }) });
    outbox.append(topics.events, { ...readEvent(AGENT, SUMMARY, { trigger: "insert", failureClass: "rf-lost" }) });
    outbox.append(topics.events, { ...readerEvent(AGENT, "Virtual PCD 00 00", "detached") });
    outbox.append(topics.events, { ...cardEvent(AGENT, "Virtual PCD 00 00", "inserted", SUMMARY.atr) });
    await outbox.drain(link);
    await obs.waitFor((m) => m.filter((x) => x.topic === topics.events).length >= 4);
    const events = obs.on(topics.events);
    for (const e of events) check("Event", e.json);
    const text = JSON.stringify(events.map((e) => e.json));
    expect(text).not.toContain("11".repeat(32)); // no DG1 hash in events
    outbox.close();
  });

  test("reader health and metrics payload shapes", () => {
    const health: ReaderHealth = { agentId: AGENT, reader: "Virtual PCD 00 00", at: new Date().toISOString(), connected: true, cardPresent: false, lastFailureClass: null, successRate: { windowReads: 0, succeeded: 0, rate: null }, rfDrops: 0, recoveries: 0, apduLatencyMs: { mean: null, p95: null } };
    check("ReaderHealth", health);
    const metrics: MetricsPayload = {
      agentId: AGENT,
      at: new Date().toISOString(),
      intervalS: 60,
      histograms: [{ name: "mrtd_apdu_duration_seconds", labels: { command: "READ BINARY" }, buckets: [{ le: 0.005, count: 3 }, { le: 0.05, count: 9 }, { le: "+Inf", count: 10 }], sum: 0.2, count: 10 }],
      counters: [{ name: "mrtd_status_words_total", labels: { sw: "9000" }, value: 10 }],
    };
    check("Metrics", metrics);
  });

  test("commands accepted by the validator match the Command schema; replies as published match Reply", async () => {
    const { publicKey } = generateKeyPair();
    const good = [
      { id: "s-ping" },
      { id: "s-read", command: "read", accessKey: { documentNumber: "L898902C3", dateOfBirth: "740812", dateOfExpiry: "120415" }, files: ["DG1"], includePersonalData: true, replyPublicKey: Buffer.from(publicKey).toString("base64") },
      { id: "s-diag", command: "diagnose", count: 3 },
    ];
    for (const g of good) {
      expect(parseCommand(new TextEncoder().encode(JSON.stringify(g)), g.command ?? "ping").ok).toBe(true);
      check("Command", g);
    }
    const send = (cmd: string, body: unknown, corr: string) =>
      obs.client.publishAsync(topics.cmd(cmd), JSON.stringify(body), { qos: 1, properties: { responseTopic: `${topics.reply("operator-schema")}/${corr}`, correlationData: Buffer.from(corr) } });
    await send("ping", good[0], "a");
    await send("read", good[1], "b");
    await send("diagnose", good[2], "c"); // NOT_SUPPORTED here
    await send("read", { id: "s-bad" }, "d");
    await obs.waitFor((m) => m.filter((x) => x.topic.includes("/reply/") && (x.json as { kind?: string }).kind === "result").length >= 4, 5000, "replies");
    const replies = obs.messages.filter((x) => x.topic.includes("/reply/"));
    expect(replies.some((r) => (r.json as { kind: string }).kind === "progress")).toBe(true);
    for (const r of replies) check("Reply", r.json);
    const sealed = replies.find((r) => (r.json as { id?: string }).id === "s-read" && (r.json as { kind: string }).kind === "result")!;
    check("SealedEnvelope", (sealed.json as { result: { personalData: unknown } }).result.personalData);
  });
});
