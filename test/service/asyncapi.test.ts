/**
 * deploy/asyncapi.yaml as a contract: it parses with the reference parser (@asyncapi/parser) with
 * no errors and no warnings, every operation states its MQTT QoS and retain, the sections
 * generated from the code's tables are current, every message has examples that match its
 * schema, channel addresses are the topics topics.ts builds, and the payloads the agent's own
 * builders make (status through a real Mosquitto, events through the outbox, health, metrics,
 * replies through the command dispatcher) match the schemas. test/agent-service/agent.test.ts
 * checks everything a running agent publishes against the same document.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";
import { ASYNCAPI_FILE, generateAsyncApi, rfDropClasses } from "../../deploy/gen-asyncapi-enums.ts";
import { FAILURE_CLASSES } from "../../agent/reading/failure-classes.ts";
import { COMMAND_NAMES } from "../../agent/service/command-types.ts";
import { CommandDispatcher } from "../../agent/service/command-dispatcher.ts";
import { parseCommand } from "../../agent/service/command-validation.ts";
import { AgentKey } from "../../agent/service/agent-key.ts";
import { generateKeyPair } from "../../agent/service/envelope.ts";
import { buildCommandPublish, readCommandRouting, stampReply } from "../../agent/service/command-wire.ts";
import { sealAccessKey } from "../../agent/service/sealed-access-key.ts";
import { ReaderHealthTracker, SUCCESS_WINDOW } from "../../agent/service/health.ts";
import { METRIC_CATALOG, MetricsRegistry } from "../../agent/service/metrics.ts";
import { MqttLink } from "../../agent/service/mqtt-link.ts";
import { Outbox } from "../../agent/service/outbox.ts";
import { cardEvent, readEvent, readerEvent } from "../../agent/service/payloads.ts";
import { agentTopics, readerSlug } from "../../agent/service/topics.ts";
import type { ReadSummary } from "../../agent/reading/read-result.ts";
import { startMosquitto } from "../support/mosquitto.ts";
import type { Mosquitto } from "../support/mosquitto.ts";
import { unknownKeywords, validate } from "../support/json-schema.ts";
import { observe } from "./fixtures/mqtt-observer.ts";
import type { Observer } from "./fixtures/mqtt-observer.ts";

const text = readFileSync(ASYNCAPI_FILE, "utf8");
type Example = { name: string; payload: unknown };
type Message = { payload: unknown; examples?: Example[] };
const doc = Bun.YAML.parse(text) as {
  asyncapi: string;
  channels: Record<string, { address: string; messages: Record<string, Message> }>;
  operations: Record<string, { action: string; channel: { $ref: string }; bindings?: { mqtt?: { qos?: number; retain?: boolean } } }>;
  components: { schemas: Record<string, unknown>; messages: Record<string, Message> };
};
const schema = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const errorsOf = (name: string, value: unknown) => validate(schema(name), value, doc);
function check(name: string, value: unknown): void {
  const errors = errorsOf(name, value);
  if (errors.length > 0) throw new Error(`${name} payload does not match deploy/asyncapi.yaml:\n  ${errors.join("\n  ")}\n${JSON.stringify(value)}`);
}

const AGENT = "schema-agent";
const READER = "Virtual PCD 00 00";
const topics = agentTopics("mrtd/v1", AGENT);
const agentKeys = generateKeyPair();
const agentKey = new AgentKey(AGENT, agentKeys.privateKey, agentKeys.publicKey);
let broker: Mosquitto;
let link: MqttLink;
let obs: Observer;
beforeAll(async () => {
  broker = await startMosquitto({ config: "plain" });
  obs = await observe(broker, "operator-schema");
  await obs.client.subscribeAsync(`mrtd/v1/${AGENT}/#`, { qos: 1 });
  link = new MqttLink({ url: broker.url, clientId: AGENT, topics, version: "0.1.0", readers: () => ["Virtual PCD 00 00"], hpke: agentKey.birth });
  const dispatcher = new CommandDispatcher({ link, topics, sealer: agentKey, parse: { openAccessKey: (id, from, env) => agentKey.openAccessKey(id, from, env) } });
  dispatcher.register("read", async (_cmd, ctx) => {
    await ctx.progress("card-present", { reader: "Virtual PCD 00 00" });
    return { outcome: "success" };
  });
  link.on("message", (m) => void dispatcher.handle(m));
  link.start();
  await link.waitConnected(5000);
});
afterAll(async () => {
  await link.stop({ publishOffline: false });
  await obs.close();
  await broker.close();
});

const SUMMARY: ReadSummary = {
  reader: READER,
  atr: "3B8880010000000000718100F9",
  documentType: "P",
  issuingState: "UTO",
  files: { COM: { bytes: 24, sha256: "00".repeat(32), apdus: 3, ms: 4.5 }, DG1: { bytes: 93, sha256: "11".repeat(32), apdus: 3, ms: 5 } },
  hashesMatchSod: true,
  apdus: 12,
  durationMs: 120.5,
  steps: [{ name: "authenticate", ms: 30, apdus: 3 }],
  recoveries: [{ step: "read DG1", file: "DG1", offset: 0, cause: "RF_TIMEOUT", layer: "rf-link", action: "reauthenticate", apdus: 4, ms: 20 }],
  authentication: { protocol: "PACE", password: "CAN", mapping: "GM", group: "brainpoolP256r1", cipher: "AES-128", paceOffered: ["0.4.0.127.0.7.2.2.4.2.2"], parameterIdSent: true },
  link: { blockSize: 223, extendedLength: false, readBySfi: false },
};

describe("deploy/asyncapi.yaml, the document", () => {
  test("parses with @asyncapi/parser: 0 errors, 0 warnings; every operation has MQTT bindings with qos and retain", async () => {
    const { document, diagnostics } = await new Parser().parse(text);
    const serious = diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.code}: ${d.message} at ${d.path.join(".")}`);
    expect(serious).toEqual([]);
    expect(document).toBeDefined();
    const ops = document!.operations().all();
    expect(ops.length).toBe(Object.keys(doc.operations).length);
    for (const op of ops) {
      const mqtt = op.bindings().get("mqtt")?.value() as { qos?: number; retain?: boolean } | undefined;
      expect({ op: op.id(), qos: [0, 1].includes(mqtt?.qos ?? -1), retain: typeof mqtt?.retain }).toEqual({ op: op.id(), qos: true, retain: "boolean" });
    }
  });

  test("QoS and retain per operation are what the agent uses", () => {
    const binding = (op: string) => doc.operations[op]!.bindings!.mqtt!;
    // mqtt-link.ts (birth, will, stop), service.ts (health, metrics), outbox.ts (events), commands.ts (replies)
    expect(binding("sendStatus")).toMatchObject({ qos: 1, retain: true });
    expect(binding("sendReaderHealth")).toMatchObject({ qos: 1, retain: true });
    expect(binding("sendMetrics")).toMatchObject({ qos: 0, retain: false });
    expect(binding("sendEvents")).toMatchObject({ qos: 1, retain: false });
    expect(binding("sendReply")).toMatchObject({ qos: 1, retain: false });
    for (const c of COMMAND_NAMES) expect(binding(`receive${c[0]!.toUpperCase()}${c.slice(1)}Command`)).toMatchObject({ qos: 1, retain: false });
  });

  test("the generated sections are what deploy/gen-asyncapi-enums.ts makes from the code's tables", () => {
    expect(generateAsyncApi(text)).toBe(text);
    const s = doc.components.schemas as Record<string, { enum?: string[]; pattern?: string; properties?: Record<string, { maximum?: number }> }>;
    expect(s.FailureClass!.enum).toEqual(Object.keys(FAILURE_CLASSES));
    expect(s.RfDropClass!.enum).toEqual(rfDropClasses());
    expect(s.RfDropClass!.enum).toContain("RF_NO_ANSWER");
    expect(s.CommandName!.enum).toEqual([...COMMAND_NAMES]);
    expect(s.SuccessRate!.properties!.windowReads!.maximum).toBe(SUCCESS_WINDOW);
    // a table changed in the code shows up as a difference
    expect(generateAsyncApi(text.replace("- RF_TIMEOUT (rf-link)", "- RF_TIMEOUT (rf)"))).toBe(text);
    expect(generateAsyncApi(text.replace("enum: [RF_NO_ANSWER, RF_TIMEOUT,", "enum: [RF_NO_ANSWER,"))).toBe(text);
    expect(() => generateAsyncApi(text.replace("# END GENERATED StatusWord", ""))).toThrow(/no END line/);
  });

  test("every schema uses only keywords the validator checks (a YAML slip makes unknown keys)", () => {
    expect(Object.entries(doc.components.schemas).flatMap(([name, sch]) => unknownKeywords(sch, name))).toEqual([]);
  });

  test("the agent id rule is the configuration's", () => {
    for (const [id, ok] of [["board-7", true], ["B.7_x", true], ["-board", false], [".x", false], ["operator-1", false], ["a".repeat(64), true], ["a".repeat(65), false], ["a/b", false]] as const) {
      expect({ id, ok: errorsOf("AgentId", id).length === 0 }).toEqual({ id, ok });
      expect({ id, ok: (() => { try { agentTopics("mrtd/v1", id); return true; } catch { return false; } })() }).toEqual({ id, ok });
    }
  });

  test("channel addresses are the topics topics.ts builds, for any prefix", () => {
    for (const prefix of ["mrtd/v1", "site-a/mrtd/v1"]) {
      const t = agentTopics(prefix, AGENT);
      const fill = (name: string) =>
        doc.channels[name]!.address.replace("{prefix}", prefix).replace("{agentId}", AGENT).replace("{readerSlug}", readerSlug(READER)).replace("{requester}", "operator-test");
      expect(fill("status")).toBe(t.status);
      expect(fill("readerHealth")).toBe(t.health(READER));
      expect(fill("metrics")).toBe(t.metrics);
      expect(fill("events")).toBe(t.events);
      for (const c of COMMAND_NAMES) expect(fill(`${c}Command`)).toBe(t.cmd(c));
      expect(fill("reply")).toBe(t.reply("operator-test"));
    }
  });

  test("the reader slugs the document shows are the ones readerSlug makes", () => {
    for (const name of ["Virtual PCD 00 00", "ACS ACR122U 00 00", "ACS-ACR122U 00 00", "ACS ACR122U PICC Interface 00 00"]) expect(text).toContain(readerSlug(name));
    const shown = [...text.matchAll(/\b[a-z0-9][a-z0-9._-]*-[0-9a-f]{8}\b/g)].map((m) => m[0]).filter((s) => /-00-[0-9a-f]{8}$/.test(s));
    expect(shown.length).toBeGreaterThanOrEqual(4);
    const made = new Set(["Virtual PCD 00 00", "ACS ACR122U 00 00", "ACS-ACR122U 00 00", "ACS ACR122U PICC Interface 00 00"].map(readerSlug));
    for (const s of shown) expect({ s, made: made.has(s) }).toEqual({ s, made: true });
  });

  test("every message has examples, and every example matches its message's schema", () => {
    const messages = Object.entries(doc.components.messages);
    expect(messages.length).toBe(15);
    let n = 0;
    for (const [name, m] of messages) {
      expect({ name, examples: (m.examples ?? []).length > 0 }).toEqual({ name, examples: true });
      for (const ex of m.examples ?? []) {
        expect({ name, example: ex.name, errors: validate(m.payload, ex.payload, doc) }).toEqual({ name, example: ex.name, errors: [] });
        n++;
      }
    }
    const names = (msg: string) => doc.components.messages[msg]!.examples!.map((e) => e.name);
    expect(names("readEvent")).toEqual(expect.arrayContaining(["success", "failure"]));
    expect(names("statusOffline")).toEqual(["lastWill", "shutdown"]);
    expect(n).toBeGreaterThan(25);
  });

  test("the validator and the schemas are strict: wrong payloads fail", () => {
    // the access facts carry no key: an extra field (e.g. a CAN) is refused by the schema
    expect(validate(schema("Event"), { ...readEvent(AGENT, SUMMARY, { trigger: "insert" }), eventId: "e", access: { protocol: "PACE", cipher: "AES-128", can: "123456" } }, doc).length).toBeGreaterThan(0);
    expect(readEvent(AGENT, SUMMARY, { trigger: "insert" }).access).toEqual({ protocol: "PACE", password: "CAN", mapping: "GM", group: "brainpoolP256r1", cipher: "AES-128" });
    expect(errorsOf("Status", { state: "online", agentId: AGENT }).length).toBeGreaterThan(0);
    expect(errorsOf("Event", { ...readerEvent(AGENT, "r", "attached"), eventId: "e", extra: 1 }).length).toBeGreaterThan(0);
    const ok = { ...readEvent(AGENT, SUMMARY, { trigger: "insert" }), eventId: "e" };
    expect(errorsOf("Event", ok)).toEqual([]);
    expect(errorsOf("Event", { ...ok, files: { DG1: { bytes: 1, apdus: 1, ms: 1, sha256: "x" } } }).length).toBeGreaterThan(0);
    // failureClass: required on failure, absent on success, one of the taxonomy's codes
    expect(errorsOf("Event", { ...ok, outcome: "failure" }).length).toBeGreaterThan(0);
    expect(errorsOf("Event", { ...ok, failureClass: "RF_TIMEOUT" }).length).toBeGreaterThan(0);
    expect(errorsOf("Event", { ...ok, outcome: "failure", failureClass: "rf-lost" }).length).toBeGreaterThan(0);
    expect(errorsOf("Event", { ...ok, outcome: "failure", failureClass: "RF_TIMEOUT" })).toEqual([]);
    // metrics: a gauge is not a counter, an unknown series is refused
    const metrics = { agentId: AGENT, at: ok.at, startedAt: ok.at, intervalS: 60, histograms: [], counters: [], gauges: [] };
    expect(errorsOf("Metrics", metrics)).toEqual([]);
    expect(errorsOf("Metrics", { ...metrics, counters: [{ name: "mrtd_outbox_pending", labels: {}, value: 1 }] }).length).toBeGreaterThan(0);
    expect(errorsOf("Metrics", { ...metrics, gauges: [{ name: "mrtd_outbox_dropped_total", labels: {}, value: 1 }] }).length).toBeGreaterThan(0);
    expect(errorsOf("Metrics", { ...metrics, counters: [{ name: "mrtd_read_failures_total", labels: { class: "nope" }, value: 1 }] }).length).toBeGreaterThan(0);
    expect(errorsOf("Metrics", { ...metrics, counters: [{ name: "mrtd_apdu_status_total", labels: { sw: "6f01" }, value: 1 }] }).length).toBeGreaterThan(0);
    expect(errorsOf("ReaderHealth", { ...new ReaderHealthTracker(READER).snapshot(AGENT), lastFailureClass: "rf-lost" }).length).toBeGreaterThan(0);
  });
});

describe("payloads the agent makes match the document", () => {
  test("status birth and offline, as published through Mosquitto", async () => {
    await obs.waitFor((m) => m.some((x) => x.topic === topics.status));
    check("StatusOnline", obs.on(topics.status)[0]!.json);
    await link.stop();
    await obs.waitFor((m) => m.filter((x) => x.topic === topics.status).length >= 2);
    check("StatusOffline", obs.on(topics.status)[1]!.json);
    check("StatusOffline", { state: "offline", agentId: AGENT, reason: "connection-lost", startedAt: link.startedAt }); // the will, as mqtt-link builds it
    link.start();
    await link.waitConnected(5000);
  });

  test("events from the outbox, as delivered: success and failure reads, reader and card events", async () => {
    const outbox = new Outbox(":memory:", { maxEvents: 10 });
    outbox.append(topics.events, { ...readEvent(AGENT, SUMMARY, { trigger: "command", commandId: "c-1", verdict: "verified" }) });
    outbox.append(topics.events, { ...readEvent(AGENT, SUMMARY, { trigger: "insert", failureClass: "RF_TIMEOUT" }) });
    outbox.append(topics.events, { ...readerEvent(AGENT, READER, "detached") });
    outbox.append(topics.events, { ...cardEvent(AGENT, READER, "inserted", SUMMARY.atr) });
    await outbox.drain(link);
    await obs.waitFor((m) => m.filter((x) => x.topic === topics.events).length >= 4);
    const events = obs.on(topics.events);
    for (const e of events) check("Event", e.json);
    expect(events.map((e) => (e.json as { outcome?: string }).outcome)).toEqual(["success", "failure", undefined, undefined]);
    const text = JSON.stringify(events.map((e) => e.json));
    expect(text).not.toContain("11".repeat(32)); // no DG1 hash in events
    outbox.close();
  });

  test("reader health from the tracker: before reads, after reads with RF drops and failures", () => {
    const h = new ReaderHealthTracker(READER);
    h.connected = true;
    check("ReaderHealth", h.snapshot(AGENT));
    const rf = { step: "read DG2", cause: "RF_TIMEOUT", layer: "rf-link", action: "reconnect", apdus: 4, ms: 30 };
    const lost = { step: "read DG2", cause: "CARD_REMOVED", layer: "reader", action: "wait for the card", apdus: 4, ms: 900 };
    for (let i = 0; i < SUCCESS_WINDOW + 5; i++) h.recordRead(i % 4 !== 0, { ...(i % 4 === 0 ? { failureClass: "CARD_LOST" } : {}), recoveries: [rf, lost], apduMs: [12.5, 30] });
    const s = h.snapshot(AGENT);
    check("ReaderHealth", s);
    expect(s.successRate.windowReads).toBe(SUCCESS_WINDOW);
    // cumulative since start, not per window: 25 reads, each one RF drop and one card loss
    expect(s.rfDrops).toBe(SUCCESS_WINDOW + 5);
    expect(s.recoveries).toBe(2 * (SUCCESS_WINDOW + 5));
  });

  test("metrics: every series of the catalog, as the registry snapshots it", () => {
    const m = new MetricsRegistry();
    const sample = (spec: (typeof METRIC_CATALOG)[string]) =>
      Object.fromEntries(
        Object.entries(spec.labels).map(([k, v]) => [k, "enum" in v ? v.enum[0]! : "failureClass" in v ? "RF_TIMEOUT" : "statusWord" in v ? "6F01" : "read_binary"]),
      );
    for (const [name, spec] of Object.entries(METRIC_CATALOG)) {
      if (spec.type === "histogram") m.histogram(name, sample(spec), [0.01, 0.1]).observe(0.02);
      else if (spec.type === "counter" && Object.keys(spec.labels).length > 0) m.inc(name, sample(spec));
      else if (spec.type === "counter") m.counterFrom(name, () => 3);
      else m.gauge(name, () => 42.5);
    }
    m.inc("mrtd_apdu_status_total", { sw: "none" });
    const snap = m.snapshot(AGENT, 60, link.startedAt);
    check("Metrics", snap);
    expect(snap.histograms.length + snap.counters.length + snap.gauges.length).toBe(Object.keys(METRIC_CATALOG).length + 1);
    expect(() => m.inc("mrtd_made_up_total")).toThrow(RangeError);
    expect(() => m.inc("mrtd_reads_total", { outcome: "success" })).toThrow(RangeError); // a label missing
  });

  test("commands accepted by the validator match the Command schema; replies as published match Reply", async () => {
    const operator = generateKeyPair();
    const sealedAccessKey = sealAccessKey({
      agentId: AGENT,
      commandId: "s-read",
      agentPublicKey: agentKey.publicKey,
      operatorPrivateKey: operator.privateKey,
      accessKey: { documentNumber: "L898902C3", dateOfBirth: "740812", dateOfExpiry: "120415" },
      expiresAt: Math.floor(Date.now() / 1000) + 60,
    });
    const replyPublicKey = Buffer.from(operator.publicKey).toString("base64");
    const good = [
      { id: "s-ping" },
      { id: "s-read", command: "read", sealedAccessKey, files: ["DG1"], includePersonalData: true, replyPublicKey },
      { id: "s-diag", command: "diagnose", count: 3 },
      { id: "s-ping2", command: "ping", replyPublicKey },
    ];
    const parseOpts = { openAccessKey: (id: string, from: Uint8Array, env: unknown) => agentKey.openAccessKey(id, from, env) };
    for (const g of good) {
      expect(parseCommand(new TextEncoder().encode(JSON.stringify(g)), g.command ?? "ping", parseOpts).ok).toBe(true);
      check("Command", g);
      // the MQTT 3.1.1 form of the same command (its reply object in the payload), and a reply stamped for it
      const wire = buildCommandPublish("3.1.1", { prefix: "mrtd/v1", agentId: AGENT, command: g.command ?? "ping", requester: "operator-schema", body: g, correlation: new Uint8Array([1, 2, 3]), expirySeconds: 60 });
      const as311 = JSON.parse(wire.payload) as Record<string, unknown>;
      expect(parseCommand(new TextEncoder().encode(wire.payload), g.command ?? "ping", parseOpts).ok).toBe(true);
      check("Command", as311);
      const routing = readCommandRouting("3.1.1", { payload: new TextEncoder().encode(wire.payload), receivedAt: Date.now() }, topics, Date.now());
      expect(routing.kind).toBe("route");
      if (routing.kind === "route") check("Reply", JSON.parse(stampReply(routing.route, JSON.stringify({ id: g.id, command: g.command ?? "ping", kind: "progress", step: "s", at: new Date().toISOString() }), Date.now())!.payload));
    }
    const send = (cmd: string, body: unknown, corr: string) =>
      obs.client.publishAsync(topics.cmd(cmd), JSON.stringify(body), { qos: 1, properties: { responseTopic: topics.reply("operator-schema"), correlationData: Buffer.from(corr) } });
    await send("ping", good[0], "a");
    await send("read", good[1], "b");
    await send("diagnose", good[2], "c"); // NOT_SUPPORTED here
    await send("read", { id: "s-bad" }, "d");
    await send("ping", good[3], "e");
    await obs.waitFor((m) => m.filter((x) => x.topic.includes("/reply/") && (x.json as { kind?: string }).kind === "result").length >= 5, 5000, "replies");
    const replies = obs.messages.filter((x) => x.topic.includes("/reply/"));
    expect(replies.some((r) => (r.json as { kind: string }).kind === "progress")).toBe(true);
    for (const r of replies) check("Reply", r.json);
    for (const id of ["s-read", "s-ping2"]) {
      const sealed = replies.find((r) => (r.json as { id?: string }).id === id && (r.json as { kind: string }).kind === "result")!;
      expect((sealed.json as { result?: unknown }).result).toBeUndefined();
      check("SealedEnvelope", (sealed.json as { sealed: unknown }).sealed);
    }
  });
});
