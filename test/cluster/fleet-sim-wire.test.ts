/**
 * The fleet simulator's operator side in both protocols (test/support/fleet-sim.ts `wire`):
 * MQTT 5 properties, and the 3.1.1 form with reply topic, correlation and expiry in the payload
 * and the correlation in every reply, round-tripped through the agent's own routing and reply
 * stamping (command-wire.ts, which the simulated agents use); and its loopback-only rule.
 */
import { describe, expect, test } from "bun:test";
import { readCommandRouting, stampReply } from "../../agent/service/command-wire.ts";
import { agentTopics } from "../../agent/service/topics.ts";
import { assertLoopbackUrls, SimFleet, wire } from "../support/fleet-sim.ts";

const topics = agentTopics("mrtd/v1", "agent-1");
const correlation = Buffer.from("0123456789abcdef");

describe("fleet simulator wire form", () => {
  test("MQTT 5: response topic, correlation data and expiry are properties", () => {
    const m = wire.command("5", topics, "ping", "operator-a", { id: "c1" }, correlation, 30);
    expect(m.topic).toBe("mrtd/v1/agent-1/cmd/ping");
    expect(JSON.parse(m.payload)).toEqual({ id: "c1" });
    expect(m.properties).toEqual({ responseTopic: "mrtd/v1/agent-1/reply/operator-a", correlationData: correlation, messageExpiryInterval: 30 });
    const routing = readCommandRouting("5", { payload: new TextEncoder().encode(m.payload), responseTopic: m.properties!.responseTopic, correlationData: new Uint8Array(correlation), messageExpiryIntervalS: 30, receivedAt: 1_000 }, topics, 1_000);
    expect(routing).toEqual({ kind: "route", route: { protocol: "5", topic: "mrtd/v1/agent-1/reply/operator-a", correlation: new Uint8Array(correlation), deadline: 31_000 } });
    if (routing.kind !== "route") throw new Error("no route");
    const r = stampReply(routing.route, JSON.stringify({ id: "c1", kind: "result", ok: true }), 2_000)!;
    expect(r.properties?.correlationData).toEqual(correlation);
    expect(wire.parseReply("5", Buffer.from(r.payload), r.properties)).toEqual({ reply: { id: "c1", kind: "result", ok: true }, correlation });
  });

  test("MQTT 3.1.1: reply topic, base64 correlation and RFC 3339 expiry in the payload; the correlation in every reply", () => {
    const before = Date.now();
    const m = wire.command("3.1.1", topics, "diagnose", "operator-a", { id: "c2", count: 5 }, correlation, 30);
    expect(m.properties).toBeUndefined();
    const payload = JSON.parse(m.payload) as { id: string; count: number; reply: { topic: string; correlation: string; expiresAt: string } };
    expect(payload.reply.topic).toBe("mrtd/v1/agent-1/reply/operator-a");
    expect(payload.reply.correlation).toBe(correlation.toString("base64"));
    expect(payload.reply.expiresAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(Date.parse(payload.reply.expiresAt) - before).toBeGreaterThanOrEqual(29_000);
    const routing = readCommandRouting("3.1.1", { payload: new TextEncoder().encode(m.payload), receivedAt: before }, topics, before);
    if (routing.kind !== "route") throw new Error(`no route: ${JSON.stringify(routing)}`);
    expect(routing.route.topic).toBe("mrtd/v1/agent-1/reply/operator-a");
    expect(Buffer.from(routing.route.correlation!)).toEqual(correlation);
    const r = stampReply(routing.route, JSON.stringify({ id: "c2", kind: "progress", step: "started" }), before)!;
    expect(JSON.parse(r.payload)).toEqual({ id: "c2", kind: "progress", step: "started", correlation: correlation.toString("base64") });
    expect(wire.parseReply("3.1.1", Buffer.from(r.payload), undefined)).toEqual({ reply: { id: "c2", kind: "progress", step: "started" }, correlation });
  });

  test("a command without a reply topic (3.1.1: reply object) is dropped, not answered", () => {
    const payload = new TextEncoder().encode(JSON.stringify({ id: "c3" }));
    expect(readCommandRouting("3.1.1", { payload, receivedAt: 0 }, topics, 0).kind).toBe("drop");
    expect(readCommandRouting("5", { payload, receivedAt: 0 }, topics, 0).kind).toBe("drop");
  });

  test("loopback brokers only, bounded fleets", () => {
    expect(() => assertLoopbackUrls(["mqtt://127.0.0.1:1883", "mqtt://[::1]:1884", "mqtts://localhost:8883"])).not.toThrow();
    expect(() => assertLoopbackUrls(["mqtt://10.0.0.5:1883"])).toThrow(RangeError);
    expect(() => assertLoopbackUrls(["mqtt://broker.example.net:1883"])).toThrow(/loopback/);
    expect(() => assertLoopbackUrls(["http://127.0.0.1:1883"])).toThrow(RangeError);
    expect(() => assertLoopbackUrls([])).toThrow(RangeError);
    expect(() => new SimFleet({ urls: ["mqtt://127.0.0.1:1"], protocol: "5", ids: Array.from({ length: 12_001 }, (_, i) => `a${i}`) })).toThrow(/at most 12000/);
    expect(() => new SimFleet({ urls: ["mqtt://127.0.0.1:1"], protocol: "5", ids: ["a"], lifetimeS: 3600 })).toThrow(/lifetime/);
  });
});
