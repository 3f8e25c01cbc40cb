/** The two wire forms of the command contract (agent/service/command-wire.ts), both directions. */
import { describe, expect, test } from "bun:test";
import { buildCommandPublish, MAX_COMMAND_EXPIRY_S, parseUtcTime, readCommandRouting, replyCorrelation, stampReply } from "../../agent/service/command-wire.ts";
import { agentTopics } from "../../agent/service/topics.ts";

const topics = agentTopics("mrtd/v1", "wire-agent");
const NOW = Date.UTC(2026, 11, 4, 22, 0, 0);
const corr = new Uint8Array([1, 2, 3, 250]);
const base = { prefix: "mrtd/v1", agentId: "wire-agent", command: "ping", requester: "operator-x", body: { id: "w1", command: "ping" }, correlation: corr, expirySeconds: 30, now: NOW };
const incoming = (p: ReturnType<typeof buildCommandPublish>, receivedAt = NOW) => ({
  payload: new TextEncoder().encode(p.payload),
  responseTopic: p.properties?.responseTopic,
  correlationData: p.properties?.correlationData ? new Uint8Array(p.properties.correlationData) : undefined,
  messageExpiryIntervalS: p.properties?.messageExpiryInterval,
  receivedAt,
});

describe("a command built by a requester reads back at the agent with the same routing", () => {
  test("MQTT 5: properties; the body unchanged", () => {
    const p = buildCommandPublish("5", base);
    expect(p.topic).toBe("mrtd/v1/wire-agent/cmd/ping");
    expect(JSON.parse(p.payload)).toEqual(base.body);
    expect(p.properties).toMatchObject({ responseTopic: "mrtd/v1/wire-agent/reply/operator-x", messageExpiryInterval: 30, contentType: "application/json" });
    const r = readCommandRouting("5", incoming(p), topics, NOW);
    expect(r).toEqual({ kind: "route", route: { protocol: "5", topic: topics.reply("operator-x"), correlation: corr, deadline: NOW + 30_000 } });
  });

  test("3.1.1: a reply object in the payload, no properties", () => {
    const p = buildCommandPublish("3.1.1", base);
    expect(p.properties).toBeUndefined();
    expect(JSON.parse(p.payload)).toEqual({ ...base.body, reply: { topic: "mrtd/v1/wire-agent/reply/operator-x", correlation: "AQID+g==", expiresAt: "2026-12-04T22:00:30.000Z" } });
    const r = readCommandRouting("3.1.1", incoming(p), topics, NOW);
    expect(r).toEqual({ kind: "route", route: { protocol: "3.1.1", topic: topics.reply("operator-x"), correlation: corr, deadline: NOW + 30_000 } });
  });

  test("expiry bounds: a longer wait is sent as MAX_COMMAND_EXPIRY_S; a far expiresAt counts as it", () => {
    expect(buildCommandPublish("5", { ...base, expirySeconds: 10 ** 9 }).properties!.messageExpiryInterval).toBe(MAX_COMMAND_EXPIRY_S);
    const far = { payload: new TextEncoder().encode(JSON.stringify({ id: "f", reply: { topic: topics.reply("op"), correlation: "AA==", expiresAt: "9999-12-31T23:59:59Z" } })), receivedAt: NOW };
    const r = readCommandRouting("3.1.1", far, topics, NOW);
    expect(r.kind === "route" && r.route.deadline).toBe(NOW + MAX_COMMAND_EXPIRY_S * 1000);
    const r5 = readCommandRouting("5", { payload: new Uint8Array(), responseTopic: topics.reply("op"), messageExpiryIntervalS: 4294967295, receivedAt: NOW }, topics, NOW);
    expect(r5.kind === "route" && r5.route.deadline).toBe(NOW + MAX_COMMAND_EXPIRY_S * 1000);
  });

  test("bad arguments are RangeErrors", () => {
    expect(() => buildCommandPublish("5", { ...base, correlation: new Uint8Array(65) })).toThrow(RangeError);
    expect(() => buildCommandPublish("5", { ...base, correlation: new Uint8Array(0) })).toThrow(RangeError);
    expect(() => buildCommandPublish("3.1.1", { ...base, body: { id: "x", reply: {} } })).toThrow(RangeError);
    expect(() => buildCommandPublish("5", { ...base, requester: "a/b" })).toThrow(RangeError);
  });
});

describe("the agent's routing refuses or drops what it cannot answer safely", () => {
  const msg = (reply: unknown) => ({ payload: new TextEncoder().encode(JSON.stringify({ id: "x", reply })), receivedAt: NOW });
  const good = { topic: topics.reply("op"), correlation: "AQID", expiresAt: "2026-12-04T22:01:00Z" };
  test("3.1.1 drops: no reply, not an object, another agent's or own status topic, bad or oversized correlation, oversized payload", () => {
    const drops: unknown[] = [
      undefined,
      "x",
      [good],
      { ...good, topic: agentTopics("mrtd/v1", "other").reply("op") },
      { ...good, topic: topics.status },
      { ...good, topic: `${topics.reply("op")}/deeper` },
      { ...good, correlation: "" },
      { ...good, correlation: "AQI" }, // not padded
      { ...good, correlation: "AQJ=" }, // not canonical
      { ...good, correlation: Buffer.alloc(65).toString("base64") },
      { ...good, correlation: 7 },
    ];
    for (const d of drops) expect(readCommandRouting("3.1.1", msg(d), topics, NOW).kind).toBe("drop");
    expect(readCommandRouting("3.1.1", { payload: new TextEncoder().encode("{nope"), receivedAt: NOW }, topics, NOW).kind).toBe("drop");
    expect(readCommandRouting("3.1.1", { payload: new Uint8Array(40_000).fill(0x20), receivedAt: NOW }, topics, NOW, 32_768)).toMatchObject({ kind: "drop", reason: "payload larger than 32768 bytes" });
    expect(readCommandRouting("3.1.1", msg({ ...good, correlation: Buffer.alloc(64).toString("base64") }), topics, NOW).kind).toBe("route");
  });

  test("3.1.1 refusals answered on the route: EXPIRED, MISSING_FIELD, BAD_FIELD", () => {
    const code = (reply: unknown) => {
      const r = readCommandRouting("3.1.1", msg(reply), topics, NOW);
      return r.kind === "refuse" ? r.error.code : r.kind;
    };
    expect(code({ ...good, expiresAt: "2026-12-04T21:59:59Z" })).toBe("EXPIRED");
    expect(code({ ...good, expiresAt: "2026-12-04T22:00:00Z" })).toBe("EXPIRED"); // not after now
    expect(code({ topic: good.topic, correlation: good.correlation })).toBe("MISSING_FIELD");
    expect(code({ ...good, expiresAt: "2026-12-04 22:01:00Z" })).toBe("BAD_FIELD");
    expect(code({ ...good, expiresAt: "2026-12-04T22:01:00+00:00" })).toBe("BAD_FIELD");
    expect(code({ ...good, expiresAt: 1 })).toBe("BAD_FIELD");
    expect(code({ ...good, extra: true })).toBe("BAD_FIELD");
    expect(code(good)).toBe("route");
    // the refusal names the command's id when it has a valid one
    expect(readCommandRouting("3.1.1", msg({ ...good, expiresAt: "2000-01-01T00:00:00Z" }), topics, NOW)).toMatchObject({ kind: "refuse", id: "x" });
    const noId = { payload: new TextEncoder().encode(JSON.stringify({ id: "has space", reply: { ...good, expiresAt: "2000-01-01T00:00:00Z" } })), receivedAt: NOW };
    expect((readCommandRouting("3.1.1", noId, topics, NOW) as { id?: string }).id).toBeUndefined();
  });

  test("MQTT 5 drops: no response topic, not this agent's reply topic, correlation data over 64 bytes", () => {
    const m = (responseTopic: string | undefined, correlationData?: Uint8Array) => ({ payload: new Uint8Array(), responseTopic, correlationData, receivedAt: NOW });
    expect(readCommandRouting("5", m(undefined), topics, NOW).kind).toBe("drop");
    expect(readCommandRouting("5", m(topics.events), topics, NOW).kind).toBe("drop");
    expect(readCommandRouting("5", m(topics.reply("op"), new Uint8Array(65)), topics, NOW).kind).toBe("drop");
    expect(readCommandRouting("5", m(topics.reply("op"), new Uint8Array(64)), topics, NOW).kind).toBe("route");
    expect(readCommandRouting("5", m(topics.reply("op")), topics, NOW)).toMatchObject({ kind: "route", route: { correlation: undefined, deadline: undefined } });
  });

  test("MQTT 5: a reply object in the payload is ignored", () => {
    const payload = new TextEncoder().encode(JSON.stringify({ id: "x", reply: { topic: topics.reply("decoy"), correlation: "AA==", expiresAt: "2000-01-01T00:00:00Z" } }));
    expect(readCommandRouting("5", { payload, responseTopic: topics.reply("op"), receivedAt: NOW }, topics, NOW)).toMatchObject({ kind: "route", route: { topic: topics.reply("op") } });
  });
});

describe("replies", () => {
  const route = { topic: topics.reply("op"), correlation: corr, deadline: NOW + 10_500 };
  test("3.1.1: correlation stamped into the payload (also of a cached reply text), no properties; the requester reads it back", () => {
    const w = stampReply({ ...route, protocol: "3.1.1" }, JSON.stringify({ id: "w1", kind: "result", ok: true, result: null }), NOW)!;
    expect(w.properties).toBeUndefined();
    expect(JSON.parse(w.payload)).toEqual({ correlation: "AQID+g==", id: "w1", kind: "result", ok: true, result: null });
    expect(replyCorrelation("3.1.1", { json: JSON.parse(w.payload) })).toEqual(corr);
    expect(JSON.parse(stampReply({ ...route, protocol: "3.1.1" }, "{}", NOW)!.payload)).toEqual({ correlation: "AQID+g==" });
  });

  test("MQTT 5: Correlation Data and the time left as Message Expiry Interval; the payload unchanged", () => {
    const json = JSON.stringify({ id: "w1", kind: "progress", step: "s", at: "t" });
    const w = stampReply({ ...route, protocol: "5" }, json, NOW)!;
    expect(w.payload).toBe(json);
    expect(w.properties).toMatchObject({ messageExpiryInterval: 11, contentType: "application/json" });
    expect(replyCorrelation("5", { json: JSON.parse(w.payload), correlationData: w.properties!.correlationData })).toEqual(corr);
  });

  test("past the deadline nothing is sent", () => {
    expect(stampReply({ ...route, protocol: "5" }, "{}", NOW + 10_500)).toBeUndefined();
    expect(stampReply({ ...route, protocol: "3.1.1" }, "{}", NOW + 11_000)).toBeUndefined();
  });
});

test("parseUtcTime: RFC 3339 UTC only, no rolled-over dates", () => {
  expect(parseUtcTime("2026-12-04T22:00:00Z")).toBe(NOW);
  expect(parseUtcTime("2026-12-04T22:00:00.250Z")).toBe(NOW + 250);
  for (const bad of ["2026-02-30T00:00:00Z", "2026-12-04T24:00:00Z", "2026-12-04T22:00:00", "2026-12-04", "x"]) expect(parseUtcTime(bad)).toBeUndefined();
});
