import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CommandDispatcher, MAX_COMMAND_EXPIRY_S } from "../../agent/service/command-dispatcher.ts";
import { CommandError } from "../../agent/service/command-types.ts";
import type { ErrorReply, ReadCommand } from "../../agent/service/command-types.ts";
import { MAX_COMMAND_BYTES, parseCommand } from "../../agent/service/command-validation.ts";
import { IdempotencyCache } from "../../agent/service/idempotency-cache.ts";
import { MqttLink } from "../../agent/service/mqtt-link.ts";
import { agentTopics } from "../../agent/service/topics.ts";
import { MQTT_PROTOCOLS, protocolVersion, replyCorrelation } from "../../agent/service/command-wire.ts";
import { AccessDeniedError } from "../../agent/errors.ts";
import { startMosquitto } from "../support/mosquitto.ts";
import type { Mosquitto } from "../support/mosquitto.ts";
import { observe } from "./fixtures/mqtt-observer.ts";
import type { Observer, Received } from "./fixtures/mqtt-observer.ts";

const enc = new TextEncoder();
// The field checks below use the test-bench form (accessKey in clear); the sealed form and the default refusal have their own tests.
const parse = (body: unknown, topic?: string) => parseCommand(enc.encode(typeof body === "string" ? body : JSON.stringify(body)), topic, { allowPlaintextAccessKey: true });
// ICAO 9303-3 specimen (Anna Eriksson): L898902C3, born 740812, expires 120415
const SPECIMEN = { documentNumber: "L898902C3", dateOfBirth: "740812", dateOfExpiry: "120415" };
const TD3_LINE2 = "L898902C36UTO7408122F1204159ZE184226B<<<<<10";
const PUB = Buffer.alloc(32, 9).toString("base64");
/** u-coordinates (little-endian) of points of small order on Curve25519 (RFC 7748 §6.1's all-zero check). */
const le = (n: bigint) => Buffer.from(Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 255n)));
const P25519 = 2n ** 255n - 19n;
const LOW_ORDER = {
  zero: le(0n).toString("base64"),
  one: le(1n).toString("base64"),
  order8: le(325606250916557431795983626356110631294008115727848805560023387167927233504n).toString("base64"),
  order8b: le(39382357235489614581723060781553021112529911719440698176882885853963445705823n).toString("base64"),
  minusOne: le(P25519 - 1n).toString("base64"),
  p: le(P25519).toString("base64"),
  pPlusOne: le(P25519 + 1n).toString("base64"),
};

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

  test("a replyPublicKey of small order or all zeros is BAD_FIELD at validation, before any handler runs", () => {
    for (const [name, key] of Object.entries(LOW_ORDER)) {
      const r = parse({ id: "k", accessKey: SPECIMEN, includePersonalData: true, replyPublicKey: key }, "read");
      expect(r.ok, name).toBe(false);
      expect((r as { error: { code: string; message: string } }).error.code, name).toBe("BAD_FIELD");
      expect((r as { error: { message: string } }).error.message).toStartWith("replyPublicKey ");
    }
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

  test("a plaintext accessKey is refused PLAINTEXT_ACCESS_KEY by default, before its fields are looked at", () => {
    for (const body of [{ id: "p1", accessKey: SPECIMEN }, { id: "p2", accessKey: { can: "12345X" } }, { id: "p3", accessKey: SPECIMEN, files: "DG1" }]) {
      const r = parseCommand(enc.encode(JSON.stringify(body)), "read");
      expect(r).toMatchObject({ ok: false, error: { code: "PLAINTEXT_ACCESS_KEY" } });
      expect(JSON.stringify(r)).not.toContain("L898902C3");
    }
    expect(parseCommand(enc.encode(JSON.stringify({ id: "p4" })), "read")).toMatchObject({ ok: false, error: { code: "MISSING_FIELD" } });
  });

  test("a sealed access key is opened with the replyPublicKey it came from, then validated like any other", () => {
    const seen: Array<{ id: string; from: Uint8Array }> = [];
    const opts = { openAccessKey: (id: string, from: Uint8Array) => (seen.push({ id, from }), { kind: "mrz" as const, ...SPECIMEN }) };
    const body = { id: "s1", sealedAccessKey: { alg: "x" }, replyPublicKey: PUB, includePersonalData: true };
    const r = parseCommand(enc.encode(JSON.stringify(body)), "read", opts);
    expect(r.ok).toBe(true);
    expect(seen).toEqual([{ id: "s1", from: new Uint8Array(32).fill(9) }]);
    expect(parseCommand(enc.encode(JSON.stringify({ id: "s2", sealedAccessKey: {} })), "read", opts)).toMatchObject({ ok: false, error: { code: "MISSING_FIELD" } });
    expect(parseCommand(enc.encode(JSON.stringify({ ...body, id: "s3", accessKey: SPECIMEN })), "read", opts)).toMatchObject({ ok: false, error: { code: "BAD_FIELD" } });
    // a low-order replyPublicKey is refused before anything is opened
    const zero = Buffer.alloc(32).toString("base64");
    expect(parseCommand(enc.encode(JSON.stringify({ ...body, id: "s4", replyPublicKey: zero })), "read", opts)).toMatchObject({ ok: false, error: { code: "BAD_FIELD" } });
    expect(seen.length).toBe(1);
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

  test("a running command is never evicted; when every entry runs, begin refuses", () => {
    const c = new IdempotencyCache({ maxEntries: 3 });
    expect(c.begin("long-read")).toBe(true);
    for (let i = 0; i < 512; i++) {
      expect(c.begin(`ping-${i}`)).toBe(true);
      c.finish(`ping-${i}`, "{}", { ok: true });
    }
    expect(c.get("long-read")).toMatchObject({ waiters: [] });
    expect(c.get("long-read")!.outcome).toBeUndefined();
    expect(c.size).toBe(3);
    expect(c.begin("b")).toBe(true);
    expect(c.begin("c")).toBe(true); // evicts the last answered ping
    expect(c.running).toBe(3);
    expect(c.begin("d")).toBe(false);
    expect(c.get("d")).toBeUndefined();
    c.finish("long-read", "R", { ok: true });
    expect(c.begin("d")).toBe(true); // long-read, answered now, makes room
  });

  test("waiters on a running command are bounded", () => {
    const c = new IdempotencyCache({ maxWaiters: 2 });
    c.begin("r");
    const got: string[] = [];
    expect(c.wait("r", (x) => got.push(`1:${x}`))).toBe(true);
    expect(c.wait("r", (x) => got.push(`2:${x}`))).toBe(true);
    expect(c.wait("r", (x) => got.push(`3:${x}`))).toBe(false);
    expect(c.wait("unknown", () => {})).toBe(false);
    for (const w of c.finish("r", "done", { ok: true })) w("done");
    expect(got).toEqual(["1:done", "2:done"]);
    expect(c.wait("r", () => {})).toBe(false); // answered: repeats get the held reply instead
  });
});

// ---------------------------------------------------------------------------------------------
// Through the real broker: an operator publishes commands, the dispatcher answers on the
// reply topic with the correlation, in each protocol's wire form (command-wire.ts): the same
// suite for MQTT 5 (properties) and MQTT 3.1.1 (the payload's reply object).

const AGENT = "cmd-agent";
const topics = agentTopics("mrtd/v1", AGENT);

for (const protocol of MQTT_PROTOCOLS) describe(`MQTT ${protocol}`, () => {
  const v5 = protocol === "5";
  let broker: Mosquitto;
  let link: MqttLink;
  let dispatcher: CommandDispatcher;
  let operator: Observer;
  const REPLY = topics.reply("operator-test");
  let releaseRead: (() => void) | undefined;
  let readCalls = 0;

  beforeAll(async () => {
    broker = await startMosquitto({ config: "plain" });
    link = new MqttLink({ url: broker.url, protocol, clientId: AGENT, topics, version: "t", readers: () => [] });
    // A small reply budget, so that a test can push a reply out (see "DUPLICATE" below).
    dispatcher = new CommandDispatcher({ link, topics, protocol, parse: { allowPlaintextAccessKey: true }, cache: new IdempotencyCache({ maxReplyBytes: 5000 }) });

    dispatcher.register("read", async (cmd, ctx) => {
      readCalls++;
      await ctx.progress("waiting-for-card");
      if (cmd.accessKey.kind === "can" && cmd.accessKey.can === "000000") throw new AccessDeniedError();
      if (cmd.accessKey.kind === "can" && cmd.accessKey.can === "999999") throw new CommandError("NO_READER", "no reader matches");
      if (cmd.accessKey.kind === "can" && cmd.accessKey.can === "111111") throw new Error("boom with L898902C3 inside");
      if (cmd.accessKey.kind === "can" && cmd.accessKey.can === "222222") await new Promise<void>((r) => (releaseRead = r));
      if (cmd.accessKey.kind === "can" && cmd.accessKey.can === "333333") {
        await Bun.sleep(300);
        return { abortedAfter300Ms: ctx.signal.aborted, deadlineInS: ctx.deadline === undefined ? null : Math.round((ctx.deadline - Date.now()) / 1000) };
      }
      // reader "big": a reply of some 3 KB, like a read with a sealed face image
      return { outcome: "success", files: cmd.files, ...(cmd.reader === "big" ? { pad: "p".repeat(3000) } : {}) };
    });
    link.on("message", (m) => void dispatcher.handle(m));
    link.start();
    await link.waitConnected(5000);
    operator = await observe(broker, "operator-test", { protocolVersion: protocolVersion(protocol) });
    await operator.client.subscribeAsync(`${REPLY}/#`, { qos: 1 }); // also matches REPLY itself
  });
  afterAll(async () => {
    await operator.close();
    await dispatcher.stop();
    await link.stop();
    await broker.close();
  });

  let seq = 0;
  const corrOf = (m: Received) => replyCorrelation(protocol, { json: m.json, correlationData: m.packet.properties?.correlationData });
  const objectOf = (payload: string | Uint8Array): Record<string, unknown> | undefined => {
    try {
      const v = JSON.parse(typeof payload === "string" ? payload : new TextDecoder("utf-8", { fatal: true }).decode(payload)) as unknown;
      return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  };
  /** The raw publish of a command: MQTT 5 properties, or (3.1.1) a reply object added to a JSON object payload. */
  async function publishCommand(command: string, payload: string | Uint8Array, corr: Buffer, opts: { retain?: boolean; responseTopic?: string | undefined; expiryS?: number; expiresAt?: string }): Promise<void> {
    if (v5) {
      const properties: Record<string, unknown> = { correlationData: corr };
      if (opts.responseTopic) properties.responseTopic = opts.responseTopic;
      if (opts.expiryS) properties.messageExpiryInterval = opts.expiryS;
      await operator.client.publishAsync(`${topics.base}/cmd/${command}`, Buffer.from(payload), { qos: 1, retain: opts.retain ?? false, properties });
      return;
    }
    const obj = objectOf(payload);
    let body: string | Uint8Array = payload;
    if (obj && opts.responseTopic) {
      const expiresAt = opts.expiresAt ?? new Date(Date.now() + (opts.expiryS ?? 3600) * 1000).toISOString();
      body = JSON.stringify({ ...obj, reply: { topic: opts.responseTopic, correlation: corr.toString("base64"), expiresAt } });
    }
    await operator.client.publishAsync(`${topics.base}/cmd/${command}`, Buffer.from(body), { qos: 1, retain: opts.retain ?? false });
  }
  /** Sends a raw command and resolves with the final reply for its correlation. */
  async function send(command: string, payload: string | Uint8Array, opts: { retain?: boolean; responseTopic?: string | null; expiryS?: number; expiresAt?: string } = {}): Promise<{ final: Record<string, unknown>; all: Array<Record<string, unknown>> } | undefined> {
    const corr = Buffer.from(`corr-${++seq}`);
    const responseTopic = opts.responseTopic === null ? undefined : (opts.responseTopic ?? REPLY);
    await publishCommand(command, payload, corr, { ...opts, responseTopic });
    const mine = () => operator.messages.filter((m) => {
      const c = corrOf(m);
      return c !== undefined && Buffer.from(c).equals(corr);
    });
    if (!responseTopic) return undefined;
    await operator.waitFor(() => mine().some((m) => (m.json as { kind?: string }).kind === "result"), 5000, `reply to ${command} #${seq}`);
    const all = mine().map((m) => m.json as Record<string, unknown>);
    for (const m of mine()) expect(m.topic).toBe(responseTopic);
    // 3.1.1 replies carry the correlation in the payload; the assertions below compare the rest.
    if (!v5) for (const m of all) {
      expect(m.correlation).toBe(corr.toString("base64"));
      delete m.correlation;
    }
    return { final: all.find((m) => m.kind === "result")!, all };
  }
  /** Waits until the dispatcher counted one more command with nowhere to reply. */
  async function expectDropped(before: number): Promise<void> {
    const until = Date.now() + 3000;
    while (dispatcher.stats().noResponseTopic === before && Date.now() < until) await Bun.sleep(20);
    expect(dispatcher.stats().noResponseTopic).toBe(before + 1);
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
      ["document number starting with a filler", "read", JSON.stringify({ id: "r8a", accessKey: { ...SPECIMEN, documentNumber: "<L898902C3" } }), "BAD_FIELD"],
      ["document number of fillers only", "read", JSON.stringify({ id: "r8b", accessKey: { ...SPECIMEN, documentNumber: "<<<<<<<<<" } }), "BAD_FIELD"],
      ["MRZ whose document number is fillers only", "read", JSON.stringify({ id: "r8c", accessKey: { mrz: "<<<<<<<<<074081221204159" } }), "BAD_FIELD"],
      ["files not an array", "read", JSON.stringify({ id: "r9", accessKey: SPECIMEN, files: "DG1" }), "BAD_FIELD"],
      ["unknown file", "read", JSON.stringify({ id: "r10", accessKey: SPECIMEN, files: ["DG17"] }), "BAD_FIELD"],
      ["repeated file", "read", JSON.stringify({ id: "r11", accessKey: SPECIMEN, files: ["DG1", "DG1"] }), "BAD_FIELD"],
      ["timeout not integer", "read", JSON.stringify({ id: "r12", accessKey: SPECIMEN, timeoutS: 2.5 }), "BAD_FIELD"],
      ["timeout out of range", "read", JSON.stringify({ id: "r13", accessKey: SPECIMEN, timeoutS: 100000 }), "BAD_FIELD"],
      ["includePersonalData not bool", "read", JSON.stringify({ id: "r14", accessKey: SPECIMEN, includePersonalData: "yes" }), "BAD_FIELD"],
      ["personal data without key", "read", JSON.stringify({ id: "r15", accessKey: SPECIMEN, includePersonalData: true }), "MISSING_FIELD"],
      ["reply key not 32 bytes", "read", JSON.stringify({ id: "r16", accessKey: SPECIMEN, includePersonalData: true, replyPublicKey: "AAAA" }), "BAD_FIELD"],
      ["reply key all zeros", "read", JSON.stringify({ id: "r16z", accessKey: SPECIMEN, includePersonalData: true, replyPublicKey: LOW_ORDER.zero }), "BAD_FIELD"],
      ["reply key of small order", "read", JSON.stringify({ id: "r16o", accessKey: SPECIMEN, includePersonalData: true, replyPublicKey: LOW_ORDER.order8 }), "BAD_FIELD"],
      ["empty reader", "read", JSON.stringify({ id: "r17", accessKey: SPECIMEN, reader: "" }), "BAD_FIELD"],
      ["diagnose count zero", "diagnose", JSON.stringify({ id: "d1", count: 0 }), "BAD_FIELD"],
      ["diagnose not supported yet", "diagnose", JSON.stringify({ id: "d2", count: 3 }), "NOT_SUPPORTED"],
    ];
    for (const [title, command, payload, code] of malformed) {
      const unroutable = !v5 && objectOf(payload) === undefined;
      test(`malformed: ${title} -> ${unroutable ? "dropped: no reply object (3.1.1)" : code}`, async () => {
        if (unroutable) {
          const before = dispatcher.stats().noResponseTopic;
          await send(command, payload, { responseTopic: null });
          await expectDropped(before);
          return;
        }
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
      const unroutable = v5 ? 0 : malformed.filter(([, , payload]) => objectOf(payload) === undefined).length;
      expect(Object.values(s.rejected).reduce((a, b) => a + (b ?? 0), 0)).toBeGreaterThanOrEqual(malformed.length - unroutable);
      expect(s.rejected.BAD_JSON ?? 0).toBe(v5 ? 4 : 0);
      expect(s.noResponseTopic).toBe(unroutable);
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

    test("512 pings during a long read: the read keeps its cache entry and its repeat gets its reply", async () => {
      releaseRead = undefined;
      const slow = send("read", JSON.stringify({ id: "slow-512", accessKey: { can: "222222" } }));
      await operator.waitFor(() => releaseRead !== undefined, 5000, "slow read to start");
      const joined = send("read", JSON.stringify({ id: "slow-512", accessKey: { can: "222222" } }));
      await Bun.sleep(100);
      const pings = await Promise.all(Array.from({ length: 512 }, (_, i) => send("ping", JSON.stringify({ id: `flood-${i}` }))));
      expect(pings.every((p) => p!.final.ok === true)).toBe(true);
      releaseRead!();
      const [first, second] = await Promise.all([slow, joined]);
      expect(first!.final).toMatchObject({ id: "slow-512", ok: true });
      expect(second!.final).toEqual(first!.final);
    }, 30_000);

    test(`${v5 ? "message expiry 4294967295 s (the MQTT maximum)" : "expiresAt in the year 9999"} is clamped to MAX_COMMAND_EXPIRY_S: the command is not aborted`, async () => {
      const r = await send("read", JSON.stringify({ id: "exp-max", accessKey: { can: "333333" } }), v5 ? { expiryS: 4294967295 } : { expiresAt: "9999-12-31T23:59:59Z" });
      expect(r!.final).toMatchObject({ id: "exp-max", ok: true, result: { abortedAfter300Ms: false } });
      const deadlineInS = (r!.final.result as { deadlineInS: number }).deadlineInS;
      expect(deadlineInS).toBeLessThanOrEqual(MAX_COMMAND_EXPIRY_S);
      expect(deadlineInS).toBeGreaterThan(MAX_COMMAND_EXPIRY_S - 10);
      const reply = operator.messages.find((m) => (m.json as { id?: string; kind?: string }).id === "exp-max" && (m.json as { kind?: string }).kind === "result")!;
      if (v5) expect(reply.packet.properties?.messageExpiryInterval).toBeLessThanOrEqual(MAX_COMMAND_EXPIRY_S);
      else expect(reply.packet.properties).toBeUndefined();
    });

    test(`commands without a ${v5 ? "response topic" : "reply object"} are ignored (and counted)`, async () => {
      const before = dispatcher.stats().noResponseTopic;
      await send("ping", JSON.stringify({ id: "nort-1" }), { responseTopic: null });
      await expectDropped(before);
    });

    test("a reply topic of another agent, the agent's own status, or a correlation over 64 bytes gets no reply", async () => {
      for (const [i, responseTopic] of [agentTopics("mrtd/v1", "other-agent").reply("operator-test"), topics.status, `${REPLY}/x`].entries()) {
        const before = dispatcher.stats().noResponseTopic;
        await publishCommand("ping", JSON.stringify({ id: `wrong-topic-${i}` }), Buffer.from("w"), { responseTopic });
        await expectDropped(before);
      }
      const before = dispatcher.stats().noResponseTopic;
      await publishCommand("ping", JSON.stringify({ id: "long-corr" }), Buffer.alloc(65, 7), { responseTopic: REPLY });
      await expectDropped(before);
      const at64 = await publishCommand("ping", JSON.stringify({ id: "corr-64" }), Buffer.alloc(64, 7), { responseTopic: REPLY }).then(() =>
        operator.waitFor((ms) => ms.some((m) => (m.json as { id?: string }).id === "corr-64"), 5000, "reply with a 64-byte correlation"),
      );
      expect(at64).toBeUndefined();
      expect(operator.messages.filter((m) => m.topic !== REPLY && m.topic.startsWith(topics.base)).length).toBe(0);
    });

    test("a 1,000-level response topic gets no reply, and the link stays connected", async () => {
      const before = dispatcher.stats().noResponseTopic;
      let drops = 0;
      const off = link.on("disconnected", () => drops++);
      await publishCommand("ping", JSON.stringify({ id: "deep-1" }), Buffer.from("deep"), { responseTopic: REPLY + "/l".repeat(996) });
      await expectDropped(before);
      const next = await send("ping", JSON.stringify({ id: "deep-after" }));
      expect(next!.final.ok).toBe(true);
      off();
      expect(drops).toBe(0);
    });

    test("a retained command is never executed (it would run again at every reconnect)", async () => {
      const before = dispatcher.stats();
      // Left retained while the link is down: Retain Handling 2 keeps the broker from sending it
      // when the link subscribes again.
      await link.stop({ publishOffline: false });
      await publishCommand("ping", JSON.stringify({ id: "ret-2" }), Buffer.from("r"), { retain: true, responseTopic: REPLY });
      link.start();
      await link.waitConnected(5000);
      const control = await send("ping", JSON.stringify({ id: "ret-control" })); // the link is subscribed and answering
      expect(control!.final.ok).toBe(true);
      await Bun.sleep(200);
      // MQTT 5: Retain Handling 2 keeps it back; 3.1.1: delivered at subscribe, flagged retained, and dropped.
      expect(dispatcher.stats().received).toBe(before.received + (v5 ? 1 : 2));
      expect(dispatcher.stats().ignoredRetained).toBe(before.ignoredRetained + (v5 ? 0 : 1));
      expect(dispatcher.stats().accepted).toBe(before.accepted + 1);
      expect(operator.messages.some((m) => m.topic === `${REPLY}/ret`)).toBe(false);
      await operator.client.publishAsync(`${topics.base}/cmd/ping`, "", { qos: 1, retain: true }); // clear it
    });

    if (v5) test("a retained command published while the agent is connected is not executed either (Retain As Published)", async () => {
      const before = dispatcher.stats();
      await operator.client.publishAsync(`${topics.base}/cmd/ping`, JSON.stringify({ id: "ret-live" }), { qos: 1, retain: true, properties: { responseTopic: `${REPLY}/ret-live`, correlationData: Buffer.from("r") } });
      const until = Date.now() + 3000;
      while (dispatcher.stats().ignoredRetained === before.ignoredRetained && Date.now() < until) await Bun.sleep(20);
      expect(dispatcher.stats().ignoredRetained).toBe(before.ignoredRetained + 1);
      expect(dispatcher.stats().accepted).toBe(before.accepted);
      await Bun.sleep(200);
      expect(operator.messages.some((m) => m.topic === `${REPLY}/ret-live`)).toBe(false);
      await operator.client.publishAsync(`${topics.base}/cmd/ping`, "", { qos: 1, retain: true }); // clear it
    });

    if (v5) test("message expiry: an expired request is dropped; replies carry the remaining expiry", async () => {
      const before = dispatcher.stats().expired;
      await dispatcher.handle({ topic: topics.cmd("ping"), payload: enc.encode(JSON.stringify({ id: "exp-1" })), qos: 1, retain: false, responseTopic: REPLY, messageExpiryIntervalS: 1, receivedAt: Date.now() - 2000 });
      expect(dispatcher.stats().expired).toBe(before + 1);
      const r = await send("ping", JSON.stringify({ id: "exp-2" }), { expiryS: 60 });
      expect(r!.final.ok).toBe(true);
      const msg = operator.messages.find((m) => (m.json as { id?: string }).id === "exp-2")!;
      expect(msg.packet.properties?.messageExpiryInterval).toBeGreaterThan(50);
      expect(msg.packet.properties?.messageExpiryInterval).toBeLessThanOrEqual(60);
      await Bun.sleep(200);
      expect(operator.messages.some((m) => m.topic === REPLY && (m.json as { id?: string }).id === "exp-1")).toBe(false);
    });

    if (!v5) {
      test("3.1.1: reply.expiresAt past by the agent's clock -> EXPIRED; missing -> MISSING_FIELD; not RFC 3339 UTC -> BAD_FIELD; an unknown reply field -> BAD_FIELD", async () => {
        const past = await send("ping", JSON.stringify({ id: "x-past" }), { expiresAt: new Date(Date.now() - 1000).toISOString() });
        expect(past!.final).toMatchObject({ id: "x-past", command: "ping", kind: "result", ok: false, error: { code: "EXPIRED" } });
        const cases: Array<[Record<string, unknown>, string]> = [
          [{ topic: REPLY, correlation: "bWlzc2luZw==" }, "MISSING_FIELD"],
          [{ topic: REPLY, correlation: "bG9jYWw=", expiresAt: "2099-01-01T00:00:00+02:00" }, "BAD_FIELD"],
          [{ topic: REPLY, correlation: "ZmViMzA=", expiresAt: "2099-02-30T00:00:00Z" }, "BAD_FIELD"],
          [{ topic: REPLY, correlation: "bnVt", expiresAt: 4102444800 }, "BAD_FIELD"],
          [{ topic: REPLY, correlation: "ZXh0cmE=", expiresAt: "2099-01-01T00:00:00Z", qos: 2 }, "BAD_FIELD"],
        ];
        for (const [reply, code] of cases) {
          const corr = reply.correlation as string;
          await operator.client.publishAsync(`${topics.base}/cmd/ping`, JSON.stringify({ id: `x-${corr}`, reply }), { qos: 1 });
          await operator.waitFor((ms) => ms.some((m) => (m.json as { correlation?: string }).correlation === corr), 5000, `reply ${code}`);
          const r = operator.messages.find((m) => (m.json as { correlation?: string }).correlation === corr)!;
          expect(r.topic).toBe(REPLY);
          expect(r.json).toMatchObject({ kind: "result", ok: false, error: { code } });
        }
        // a reply whose correlation is not canonical base64 has nowhere to go
        const before = dispatcher.stats().noResponseTopic;
        await operator.client.publishAsync(`${topics.base}/cmd/ping`, JSON.stringify({ id: "x-b64", reply: { topic: REPLY, correlation: "not base64!", expiresAt: "2099-01-01T00:00:00Z" } }), { qos: 1 });
        await expectDropped(before);
      });
    } else {
      test("MQTT 5: a reply object in the payload is ignored; the properties route the reply", async () => {
        const decoy = { topic: agentTopics("mrtd/v1", AGENT).reply("decoy"), correlation: "ZGVjb3k=", expiresAt: "2000-01-01T00:00:00Z" };
        const r = await send("ping", JSON.stringify({ id: "p5-decoy", reply: decoy }));
        expect(r!.final).toMatchObject({ id: "p5-decoy", ok: true });
        expect(r!.final.correlation).toBeUndefined();
        expect(operator.messages.some((m) => m.topic === decoy.topic)).toBe(false);
      });
    }
  });
});

describe("dispatcher stop", () => {
  test("returns within its grace period even when a handler ignores its abort signal", async () => {
    const topics1 = agentTopics("mrtd/v1", "stuck-agent");
    const sent: string[] = [];
    const d = new CommandDispatcher({ link: { publish: async (_t, payload) => void sent.push(payload) }, topics: topics1, parse: { allowPlaintextAccessKey: true } });
    let started = false;
    d.register("read", async () => {
      started = true;
      await new Promise(() => {}); // never settles, abort or not
    });
    const msg = (id: string) => ({ topic: topics1.cmd("read"), payload: enc.encode(JSON.stringify({ id, accessKey: SPECIMEN })), qos: 1, retain: false, responseTopic: topics1.reply("op"), receivedAt: Date.now() });
    void d.handle(msg("stuck-1"));
    void d.handle(msg("stuck-1")); // a repeat waiting on it
    while (!started) await Bun.sleep(5);
    const t0 = performance.now();
    await d.stop(300);
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(1500);
  });
});
