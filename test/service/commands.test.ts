import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CommandDispatcher, CommandError, IdempotencyCache, MAX_COMMAND_BYTES, parseCommand } from "../../agent/service/commands.ts";
import type { ErrorReply, ReadCommand } from "../../agent/service/commands.ts";
import { MqttLink } from "../../agent/service/mqtt-link.ts";
import { agentTopics } from "../../agent/service/topics.ts";
import { AccessDeniedError } from "../../agent/errors.ts";
import { startMosquitto } from "../support/mosquitto.ts";
import type { Mosquitto } from "../support/mosquitto.ts";
import { observe } from "./fixtures/mqtt-observer.ts";
import type { Observer } from "./fixtures/mqtt-observer.ts";

const enc = new TextEncoder();
const parse = (body: unknown, topic?: string) => parseCommand(enc.encode(typeof body === "string" ? body : JSON.stringify(body)), topic);
// ICAO 9303-3 specimen (Anna Eriksson): L898902C3, born 740812, expires 120415
const SPECIMEN = { documentNumber: "L898902C3", dateOfBirth: "740812", dateOfExpiry: "120415" };
const TD3_LINE2 = "L898902C36UTO7408122F1204159ZE184226B<<<<<10";
const PUB = Buffer.alloc(32, 9).toString("base64");

describe("command validation", () => {
  test("valid read with defaults, MRZ triple, CAN and MRZ text", () => {
    const r = parse({ id: "c1", accessKey: SPECIMEN }, "read");
    expect(r.ok).toBe(true);
    const cmd = (r as { command: ReadCommand }).command;
    expect(cmd).toMatchObject({ id: "c1", command: "read", timeoutS: 30, includePersonalData: false });
    // no file list: the signed EF.SOD decides what is read (every data group it lists, DG3/DG4 aside)
    expect(cmd.files).toBeUndefined();
    expect(cmd.accessKey).toEqual({ kind: "mrz", ...SPECIMEN });
    expect(parse({ id: "c2", command: "read", accessKey: { can: "123456" } }).ok).toBe(true);
    const m = parse({ id: "c3", accessKey: { mrz: TD3_LINE2 } }, "read");
    expect((m as { command: ReadCommand }).command.accessKey).toEqual({ kind: "mrz", ...SPECIMEN });
    const m24 = parse({ id: "c4", accessKey: { mrz: "L898902C3674081221204159" } }, "read");
    expect((m24 as { command: ReadCommand }).command.accessKey).toEqual({ kind: "mrz", ...SPECIMEN });
    const pd = parse({ id: "c5", accessKey: SPECIMEN, includePersonalData: true, replyPublicKey: PUB, files: ["DG1"] }, "read");
    expect((pd as { command: ReadCommand }).command.replyPublicKey).toEqual(new Uint8Array(32).fill(9));
  });

  test("error messages never echo access key values", () => {
    const cases = [
      { id: "x", accessKey: { ...SPECIMEN, dateOfBirth: "741399" } },
      { id: "x", accessKey: { mrz: TD3_LINE2.replace("C36", "C35") } },
      { id: "x", accessKey: { ...SPECIMEN, documentNumber: "L898902C3!" } },
      { id: "x", accessKey: { can: "12345X" } },
    ];
    for (const c of cases) {
      const r = parse(c, "read");
      expect(r.ok).toBe(false);
      const msg = JSON.stringify(r);
      for (const secret of ["L898902C3", "740812", "741399", "120415", "12345X", TD3_LINE2.slice(0, 20)]) expect(msg).not.toContain(secret);
    }
  });

  test("payload limit is checked before parsing", () => {
    const r = parseCommand(new Uint8Array(MAX_COMMAND_BYTES + 1).fill(0x20), "ping");
    expect(r).toMatchObject({ ok: false, error: { code: "TOO_LARGE" } });
  });
});

describe("idempotency cache", () => {
  const ok = { ok: true };
  test("bounded and expiring", () => {
    let now = 0;
    const c = new IdempotencyCache({ maxEntries: 3, ttlMs: 1000, now: () => now });
    for (const id of ["a", "b", "c", "d"]) {
      c.begin(id);
      c.finish(id, JSON.stringify({ id, command: "ping", kind: "result", ok: true, result: null }), ok);
    }
    expect(c.size).toBe(3);
    expect(c.get("a")).toBeUndefined();
    expect(c.get("d")?.reply).toBeDefined();
    now = 2000;
    expect(c.get("d")).toBeUndefined();
  });

  test("replies are held within a byte budget; past it the oldest keep only their outcome", () => {
    const c = new IdempotencyCache({ maxReplyBytes: 250 });
    const reply = (n: number) => "x".repeat(n);
    c.begin("a");
    c.finish("a", reply(100), ok);
    c.begin("b");
    c.finish("b", reply(100), { ok: false, code: "TIMEOUT" });
    expect(c.replyBytes).toBe(200);
    c.begin("c");
    c.finish("c", reply(100), ok); // 300 > 250: a's reply goes
    expect(c.replyBytes).toBe(200);
    expect(c.get("a")).toMatchObject({ outcome: { ok: true } });
    expect(c.get("a")!.reply).toBeUndefined();
    expect(c.get("b")).toMatchObject({ reply: reply(100), outcome: { ok: false, code: "TIMEOUT" } });
    // a reply bigger than the whole budget is never held, and evicts nothing
    c.begin("huge");
    c.finish("huge", reply(251), ok);
    expect(c.get("huge")!.reply).toBeUndefined();
    expect(c.get("c")!.reply).toBe(reply(100));
    expect(c.replyBytes).toBe(200);
    // forgetting and evicting give the bytes back
    c.forget("b");
    expect(c.replyBytes).toBe(100);
    const small = new IdempotencyCache({ maxEntries: 1 });
    small.begin("p");
    small.finish("p", reply(10), ok);
    small.begin("q");
    expect(small.replyBytes).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Through the real broker: an operator publishes commands, the dispatcher answers on the
// response topic with the correlation data.

const AGENT = "cmd-agent";
const topics = agentTopics("mrtd/v1", AGENT);
let broker: Mosquitto;
let link: MqttLink;
let dispatcher: CommandDispatcher;
let operator: Observer;
const REPLY = topics.reply("operator-test");
let releaseRead: (() => void) | undefined;
let readCalls = 0;

beforeAll(async () => {
  broker = await startMosquitto({ config: "plain" });
  link = new MqttLink({ url: broker.url, clientId: AGENT, topics, version: "t", readers: () => [] });
  // A small reply budget, so that a test can push a reply out (see "DUPLICATE" below).
  dispatcher = new CommandDispatcher({ link, topics, cache: new IdempotencyCache({ maxReplyBytes: 5000 }) });

  dispatcher.register("read", async (cmd, ctx) => {
    readCalls++;
    await ctx.progress("waiting-for-card");
    if (cmd.accessKey.kind === "can" && cmd.accessKey.can === "000000") throw new AccessDeniedError();
    if (cmd.accessKey.kind === "can" && cmd.accessKey.can === "999999") throw new CommandError("NO_READER", "no reader matches");
    if (cmd.accessKey.kind === "can" && cmd.accessKey.can === "111111") throw new Error("boom with L898902C3 inside");
    if (cmd.accessKey.kind === "can" && cmd.accessKey.can === "222222") await new Promise<void>((r) => (releaseRead = r));
    // reader "big": a reply of some 3 KB, like a read with a sealed face image
    return { outcome: "success", files: cmd.files, ...(cmd.reader === "big" ? { pad: "p".repeat(3000) } : {}) };
  });
  link.on("message", (m) => void dispatcher.handle(m));
  link.start();
  await link.waitConnected(5000);
  operator = await observe(broker, "operator-test");
  await operator.client.subscribeAsync(`${REPLY}/#`, { qos: 1 });
});
afterAll(async () => {
  await operator.close();
  await dispatcher.stop();
  await link.stop();
  await broker.stop();
});

let seq = 0;
/** Sends a raw command and resolves with the final reply for its correlation data. */
async function send(command: string, payload: string | Uint8Array, opts: { retain?: boolean; responseTopic?: string | null; expiryS?: number } = {}): Promise<{ final: Record<string, unknown>; all: Array<Record<string, unknown>> } | undefined> {
  const corr = Buffer.from(`corr-${++seq}`);
  const responseTopic = opts.responseTopic === null ? undefined : (opts.responseTopic ?? `${REPLY}/${seq}`);
  const properties: Record<string, unknown> = { correlationData: corr };
  if (responseTopic) properties.responseTopic = responseTopic;
  if (opts.expiryS) properties.messageExpiryInterval = opts.expiryS;
  await operator.client.publishAsync(`${topics.base}/cmd/${command}`, Buffer.from(payload), { qos: 1, retain: opts.retain ?? false, properties });
  const mine = () => operator.messages.filter((m) => m.packet.properties?.correlationData && Buffer.from(m.packet.properties.correlationData).equals(corr));
  if (!responseTopic) return undefined;
  await operator.waitFor(() => mine().some((m) => (m.json as { kind?: string }).kind === "result"), 5000, `reply to ${command} #${seq}`);
  const all = mine().map((m) => m.json as Record<string, unknown>);
  for (const m of mine()) expect(m.topic).toBe(responseTopic);
  return { final: all.find((m) => m.kind === "result")!, all };
}

describe("dispatcher through Mosquitto", () => {
  test("ping answers with the correlation data on the response topic", async () => {
    const r = await send("ping", JSON.stringify({ id: "p-1" }));
    expect(r!.final).toEqual({ id: "p-1", command: "ping", kind: "result", ok: true, result: { pong: true, agentId: AGENT } });
  });

  const malformed: Array<[string, string, string | Uint8Array, string]> = [
    ["not JSON", "ping", "{id:", "BAD_JSON"],
    ["JSON array", "ping", "[1,2]", "BAD_JSON"],
    ["JSON string", "ping", '"ping"', "BAD_JSON"],
    ["invalid UTF-8", "ping", new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), "BAD_JSON"],
    ["oversized", "ping", JSON.stringify({ id: "big", pad: "x".repeat(MAX_COMMAND_BYTES) }), "TOO_LARGE"],
    ["unknown command topic", "reboot", JSON.stringify({ id: "u1" }), "UNKNOWN_COMMAND"],
    ["unknown command in body", "ping", JSON.stringify({ id: "u2", command: "pong" }), "UNKNOWN_COMMAND"],
    ["body/topic mismatch", "ping", JSON.stringify({ id: "u3", command: "read" }), "BAD_FIELD"],
    ["missing id", "ping", JSON.stringify({}), "MISSING_FIELD"],
    ["id not a string", "ping", JSON.stringify({ id: 7 }), "BAD_FIELD"],
    ["id too long", "ping", JSON.stringify({ id: "x".repeat(200) }), "BAD_FIELD"],
    ["unknown field", "ping", JSON.stringify({ id: "f1", extra: 1 }), "BAD_FIELD"],
    ["read without accessKey", "read", JSON.stringify({ id: "r1" }), "MISSING_FIELD"],
    ["accessKey not an object", "read", JSON.stringify({ id: "r2", accessKey: "L898902C3" }), "BAD_FIELD"],
    ["accessKey missing date of expiry", "read", JSON.stringify({ id: "r3", accessKey: { documentNumber: "L898902C3", dateOfBirth: "740812" } }), "MISSING_FIELD"],
    ["accessKey bad date", "read", JSON.stringify({ id: "r4", accessKey: { ...SPECIMEN, dateOfExpiry: "121315" } }), "BAD_FIELD"],
    ["accessKey two forms", "read", JSON.stringify({ id: "r5", accessKey: { ...SPECIMEN, can: "123456" } }), "BAD_FIELD"],
    ["CAN not 6 digits", "read", JSON.stringify({ id: "r6", accessKey: { can: "12345" } }), "BAD_FIELD"],
    ["MRZ bad check digit", "read", JSON.stringify({ id: "r7", accessKey: { mrz: TD3_LINE2.replace("7408122", "7408123") } }), "BAD_CHECK_DIGIT"],
    ["MRZ wrong length", "read", JSON.stringify({ id: "r8", accessKey: { mrz: "L898902C3" } }), "BAD_FIELD"],
    ["files not an array", "read", JSON.stringify({ id: "r9", accessKey: SPECIMEN, files: "DG1" }), "BAD_FIELD"],
    ["unknown file", "read", JSON.stringify({ id: "r10", accessKey: SPECIMEN, files: ["DG17"] }), "BAD_FIELD"],
    ["repeated file", "read", JSON.stringify({ id: "r11", accessKey: SPECIMEN, files: ["DG1", "DG1"] }), "BAD_FIELD"],
    ["timeout not integer", "read", JSON.stringify({ id: "r12", accessKey: SPECIMEN, timeoutS: 2.5 }), "BAD_FIELD"],
    ["timeout out of range", "read", JSON.stringify({ id: "r13", accessKey: SPECIMEN, timeoutS: 100000 }), "BAD_FIELD"],
    ["includePersonalData not bool", "read", JSON.stringify({ id: "r14", accessKey: SPECIMEN, includePersonalData: "yes" }), "BAD_FIELD"],
    ["personal data without key", "read", JSON.stringify({ id: "r15", accessKey: SPECIMEN, includePersonalData: true }), "MISSING_FIELD"],
    ["reply key not 32 bytes", "read", JSON.stringify({ id: "r16", accessKey: SPECIMEN, includePersonalData: true, replyPublicKey: "AAAA" }), "BAD_FIELD"],
    ["empty reader", "read", JSON.stringify({ id: "r17", accessKey: SPECIMEN, reader: "" }), "BAD_FIELD"],
    ["diagnose count zero", "diagnose", JSON.stringify({ id: "d1", count: 0 }), "BAD_FIELD"],
    ["diagnose not supported yet", "diagnose", JSON.stringify({ id: "d2", count: 3 }), "NOT_SUPPORTED"],
  ];
  for (const [title, command, payload, code] of malformed) {
    test(`malformed: ${title} -> ${code}`, async () => {
      const r = await send(command, payload);
      const f = r!.final as unknown as ErrorReply;
      expect(f.ok).toBe(false);
      expect(f.error.code as string).toBe(code);
      expect(f.error.message.length).toBeGreaterThan(0);
      const text = JSON.stringify(r!.all);
      for (const secret of ["L898902C3", "740812", "120415"]) expect(text).not.toContain(secret);
    });
  }

  test("the agent is still alive and counted every refusal", async () => {
    const r = await send("ping", JSON.stringify({ id: "p-alive" }));
    expect(r!.final.ok).toBe(true);
    const s = dispatcher.stats();
    expect(Object.values(s.rejected).reduce((a, b) => a + (b ?? 0), 0)).toBeGreaterThanOrEqual(malformed.length);
    expect(s.rejected.BAD_JSON).toBe(4);
  });

  test("a read runs the registered handler, with progress, and maps typed errors without leaking", async () => {
    const ok = await send("read", JSON.stringify({ id: "read-ok", accessKey: SPECIMEN, files: ["DG1"] }));
    expect(ok!.all.map((m) => m.kind)).toEqual(["progress", "result"]);
    expect(ok!.all[0]).toMatchObject({ id: "read-ok", command: "read", step: "waiting-for-card" });
    expect(ok!.final).toMatchObject({ id: "read-ok", ok: true, result: { outcome: "success", files: ["DG1"] } });
    const denied = await send("read", JSON.stringify({ id: "read-denied", accessKey: { can: "000000" } }));
    expect(denied!.final).toMatchObject({ ok: false, error: { code: "ACCESS_DENIED" } });
    const noReader = await send("read", JSON.stringify({ id: "read-nr", accessKey: { can: "999999" } }));
    expect(noReader!.final).toMatchObject({ ok: false, error: { code: "NO_READER", message: "no reader matches" } });
    const boom = await send("read", JSON.stringify({ id: "read-boom", accessKey: { can: "111111" } }));
    expect(boom!.final).toMatchObject({ ok: false, error: { code: "INTERNAL", message: "internal error (Error)" } });
    expect(JSON.stringify(boom)).not.toContain("L898902C3");
  });

  test("idempotent by id: a repeated command gets the same reply without running again", async () => {
    const before = readCalls;
    const a = await send("read", JSON.stringify({ id: "idem-1", accessKey: SPECIMEN }));
    const b = await send("read", JSON.stringify({ id: "idem-1", accessKey: SPECIMEN }));
    expect(b!.final).toEqual(a!.final);
    expect(readCalls).toBe(before + 1);
    expect(dispatcher.stats().duplicates).toBeGreaterThanOrEqual(1);
  });

  test("a repeated id whose reply was dropped (reply budget) is answered DUPLICATE, never run again", async () => {
    const before = readCalls;
    const cmd = (id: string) => JSON.stringify({ id, accessKey: SPECIMEN, reader: "big" });
    const first = await send("read", cmd("dup-1"));
    expect(first!.final).toMatchObject({ id: "dup-1", ok: true, result: { outcome: "success" } });
    const second = await send("read", cmd("dup-2")); // pushes dup-1's reply out of the 5,000-byte budget
    expect(second!.final).toMatchObject({ ok: true });
    const again1 = await send("read", cmd("dup-1"));
    expect(again1!.final).toMatchObject({ id: "dup-1", command: "read", ok: false, error: { code: "DUPLICATE" } });
    expect((again1!.final.error as { message: string }).message).toMatch(/^command dup-1 already ran \(succeeded\) at \d{4}-.*; its reply is no longer held$/);
    const again2 = await send("read", cmd("dup-2"));
    expect(again2!.final).toEqual(second!.final);
    expect(readCalls).toBe(before + 2);
  });

  test("a second card command while one runs is refused BUSY; the same id joins the running one", async () => {
    const slow = send("read", JSON.stringify({ id: "slow-1", accessKey: { can: "222222" } }));
    await operator.waitFor(() => releaseRead !== undefined, 5000, "slow read to start");
    const busy = await send("read", JSON.stringify({ id: "other-1", accessKey: SPECIMEN }));
    expect(busy!.final).toMatchObject({ id: "other-1", ok: false, error: { code: "BUSY" } });
    const ping = await send("ping", JSON.stringify({ id: "p-during" }));
    expect(ping!.final.ok).toBe(true);
    const joined = send("read", JSON.stringify({ id: "slow-1", accessKey: { can: "222222" } }));
    await Bun.sleep(100);
    releaseRead!();
    const [first, second] = await Promise.all([slow, joined]);
    expect(first!.final).toMatchObject({ id: "slow-1", ok: true });
    expect(second!.final).toEqual(first!.final);
    // BUSY was not cached: the same id now runs
    const retry = await send("read", JSON.stringify({ id: "other-1", accessKey: SPECIMEN }));
    expect(retry!.final).toMatchObject({ id: "other-1", ok: true });
  });

  test("commands without a response topic are ignored (and counted)", async () => {
    const before = dispatcher.stats().noResponseTopic;
    await send("ping", JSON.stringify({ id: "nort-1" }), { responseTopic: null });
    const until = Date.now() + 3000;
    while (dispatcher.stats().noResponseTopic === before && Date.now() < until) await Bun.sleep(20);
    expect(dispatcher.stats().noResponseTopic).toBe(before + 1);
  });

  test("a retained command is never executed (it would run again at every reconnect)", async () => {
    const before = dispatcher.stats();
    // A retained message reaches a subscriber flagged as retained only when it subscribes
    // after the fact: take the link down, leave the command retained, bring the link back.
    await link.stop({ publishOffline: false });
    await operator.client.publishAsync(`${topics.base}/cmd/ping`, JSON.stringify({ id: "ret-2" }), { qos: 1, retain: true, properties: { responseTopic: `${REPLY}/ret`, correlationData: Buffer.from("r") } });
    link.start();
    await link.waitConnected(5000);
    const until = Date.now() + 3000;
    while (dispatcher.stats().ignoredRetained === before.ignoredRetained && Date.now() < until) await Bun.sleep(20);
    expect(dispatcher.stats().ignoredRetained).toBe(before.ignoredRetained + 1);
    expect(dispatcher.stats().accepted).toBe(before.accepted);
    await Bun.sleep(200);
    expect(operator.messages.some((m) => m.topic === `${REPLY}/ret`)).toBe(false);
    await operator.client.publishAsync(`${topics.base}/cmd/ping`, "", { qos: 1, retain: true }); // clear it
  });

  test("message expiry: an expired request is dropped; replies carry the remaining expiry", async () => {
    const before = dispatcher.stats().expired;
    await dispatcher.handle({ topic: topics.cmd("ping"), payload: enc.encode(JSON.stringify({ id: "exp-1" })), qos: 1, retain: false, responseTopic: `${REPLY}/exp`, messageExpiryIntervalS: 1, receivedAt: Date.now() - 2000 });
    expect(dispatcher.stats().expired).toBe(before + 1);
    const r = await send("ping", JSON.stringify({ id: "exp-2" }), { expiryS: 60 });
    expect(r!.final.ok).toBe(true);
    const msg = operator.messages.find((m) => (m.json as { id?: string }).id === "exp-2")!;
    expect(msg.packet.properties?.messageExpiryInterval).toBeGreaterThan(50);
    expect(msg.packet.properties?.messageExpiryInterval).toBeLessThanOrEqual(60);
    await Bun.sleep(200);
    expect(operator.messages.some((m) => m.topic === `${REPLY}/exp`)).toBe(false);
  });
});
