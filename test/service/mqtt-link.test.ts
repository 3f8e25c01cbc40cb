import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join, resolve } from "node:path";
import { backoffDelayMs } from "../../agent/service/backoff.ts";
import { MAX_COMMAND_BYTES } from "../../agent/service/command-validation.ts";
import { MAX_INCOMING_PACKET_BYTES, MqttLink } from "../../agent/service/mqtt-link.ts";
import type { LinkEvents, MqttLinkOptions } from "../../agent/service/mqtt-link.ts";
import { EVENT_ID_PROPERTY, Outbox } from "../../agent/service/outbox.ts";
import { agentTopics } from "../../agent/service/topics.ts";
import { startMosquitto } from "../support/mosquitto.ts";
import type { Mosquitto } from "../support/mosquitto.ts";
import { observe } from "./fixtures/mqtt-observer.ts";
import { makeTempDir, removeTempDirs } from "../support/temp-dir.ts";

afterAll(removeTempDirs);

let broker: Mosquitto;
beforeAll(async () => {
  broker = await startMosquitto({ config: "plain" });
});
afterAll(async () => {
  await broker.close();
});

function linkFor(agentId: string, extra: Partial<MqttLinkOptions> = {}): MqttLink {
  return new MqttLink({ url: broker.url, clientId: agentId, topics: agentTopics("mrtd/v1", agentId), version: "1.2.3", readers: () => ["Virtual PCD 00 00"], reconnectMinMs: 100, reconnectMaxMs: 800, ...extra });
}

describe("backoff", () => {
  test("doubles from min to max with equal jitter", () => {
    expect(backoffDelayMs(1, 1000, 60000, () => 0)).toBe(500);
    expect(backoffDelayMs(1, 1000, 60000, () => 1)).toBe(1000);
    expect(backoffDelayMs(3, 1000, 60000, () => 0.5)).toBe(3000);
    expect(backoffDelayMs(20, 1000, 60000, () => 1)).toBe(60000);
    expect(backoffDelayMs(20, 1000, 60000, () => 0)).toBe(30000);
    const seen = new Set(Array.from({ length: 50 }, () => backoffDelayMs(4, 1000, 60000)));
    expect(seen.size).toBeGreaterThan(10);
    for (const d of seen) expect(d >= 4000 && d <= 8000).toBe(true);
  });
});

describe("mqtt link against Mosquitto", () => {
  test("retained birth with version, readers and start time; clean stop publishes offline", async () => {
    const link = linkFor("birth-1");
    link.start();
    await link.waitConnected(5000);
    const obs = await observe(broker, "obs-birth");
    await obs.client.subscribeAsync("mrtd/v1/birth-1/status", { qos: 1 });
    await obs.waitFor((m) => m.length >= 1);
    const birth = obs.messages[0]!;
    expect(birth.packet.retain).toBe(true); // delivered as a retained message to a late subscriber
    expect(birth.json).toMatchObject({ state: "online", agentId: "birth-1", version: "1.2.3", readers: ["Virtual PCD 00 00"], startedAt: link.startedAt });
    await link.stop();
    await obs.waitFor((m) => m.length >= 2);
    expect(obs.messages[1]!.json).toMatchObject({ state: "offline", reason: "shutdown", agentId: "birth-1" });
    await obs.close();
  });

  test("status refresh: a retained status lost or replaced at the broker is published again (same birth, current readers); never after the offline status", async () => {
    let readers = ["Virtual PCD 00 00"];
    const link = linkFor("refresh-1", { statusRefreshMs: 300, readers: () => readers });
    link.start();
    await link.waitConnected(5000);
    const obs = await observe(broker, "obs-refresh");
    await obs.client.subscribeAsync("mrtd/v1/refresh-1/status", { qos: 1 });
    await obs.waitFor((m) => m.length >= 1);
    const birth = obs.messages[0]!.json as { connectedAt: string };
    // What NATS 2.9 did while a node was down: the retained copy is gone (here: cleared by
    // another client), although the agent's birth was acknowledged.
    await obs.client.publishAsync("mrtd/v1/refresh-1/status", "", { qos: 1, retain: true });
    readers = ["Virtual PCD 00 00", "Virtual PCD 00 01"];
    await Bun.sleep(800);
    const late = await observe(broker, "obs-refresh-late");
    await late.client.subscribeAsync("mrtd/v1/refresh-1/status", { qos: 1 });
    await late.waitFor((m) => m.length >= 1);
    expect(late.messages[0]!.packet.retain).toBe(true);
    expect(late.messages[0]!.json).toMatchObject({ state: "online", agentId: "refresh-1", connectedAt: birth.connectedAt, readers });
    await link.stop();
    await obs.waitFor((m) => m.some((x) => (x.json as { state?: string } | undefined)?.state === "offline"));
    const n = obs.messages.length;
    await Bun.sleep(800);
    expect(obs.messages.length).toBe(n); // no birth after the offline status
    expect((obs.messages.at(-1)!.json as { state: string }).state).toBe("offline");
    await obs.close();
    await late.close();
  });

  test("Last Will: offline (retained) when the agent process is killed with -9; no deprecation warning", async () => {
    const obs = await observe(broker, "obs-will");
    await obs.client.subscribeAsync("mrtd/v1/will-1/status", { qos: 1 });
    const child = Bun.spawn([process.execPath, resolve(import.meta.dir, "fixtures/link-child.ts"), broker.url, "will-1"], { stdout: "pipe", stderr: "pipe" });
    const reader = child.stdout.getReader();
    const { value } = await reader.read();
    expect(new TextDecoder().decode(value)).toContain("connected");
    await obs.waitFor((m) => m.some((x) => (x.json as { state?: string })?.state === "online"));
    child.kill("SIGKILL");
    await child.exited;
    await obs.waitFor((m) => m.some((x) => (x.json as { state?: string })?.state === "offline"), 5000, "the will");
    const will = obs.messages.find((x) => (x.json as { state?: string })?.state === "offline")!;
    expect(will.json).toMatchObject({ state: "offline", reason: "connection-lost", agentId: "will-1" });
    // and it is retained: a new subscriber sees offline
    const late = await observe(broker, "obs-will-late");
    await late.client.subscribeAsync("mrtd/v1/will-1/status", { qos: 1 });
    await late.waitFor((m) => m.length >= 1);
    expect(late.messages[0]!.json).toMatchObject({ state: "offline", reason: "connection-lost" });
    expect(late.messages[0]!.packet.retain).toBe(true);
    const stderr = await new Response(child.stderr).text();
    expect(stderr).not.toMatch(/DeprecationWarning|url\.parse/);
    await obs.close();
    await late.close();
  });

  test("Maximum Packet Size: a broker without a cap never delivers the link a command larger than MAX_INCOMING_PACKET_BYTES", async () => {
    const link = linkFor("maxpkt-1");
    const got: number[] = [];
    link.on("message", (m) => got.push(m.payload.length));
    let drops = 0;
    link.on("disconnected", () => drops++);
    link.start();
    await link.waitConnected(5000);
    const op = await observe(broker, "op-maxpkt");
    const cmd = agentTopics("mrtd/v1", "maxpkt-1").cmd("ping");
    // 16 MB once took the agent's RSS from 39 to 222 MB; the broker (plain test config, no max_packet_size) accepts it
    await op.client.publishAsync(cmd, Buffer.alloc(16 * 1024 * 1024, 0x20), { qos: 1 });
    await op.client.publishAsync(cmd, Buffer.alloc(MAX_INCOMING_PACKET_BYTES, 0x20), { qos: 1 }); // with its headers, just over
    await op.client.publishAsync(cmd, Buffer.alloc(MAX_COMMAND_BYTES, 0x20), { qos: 1 }); // the largest command fits
    await op.client.publishAsync(cmd, "{}", { qos: 1 });
    const until = Date.now() + 5000;
    while (got.length < 2 && Date.now() < until) await Bun.sleep(20);
    await Bun.sleep(200);
    expect(got).toEqual([MAX_COMMAND_BYTES, 2]);
    expect(drops).toBe(0);
    expect(link.connected).toBe(true);
    await op.close();
    await link.stop();
  });

  test("publish carries QoS, expiry, user properties, correlation data and response topic", async () => {
    const link = linkFor("props-1");
    link.start();
    await link.waitConnected(5000);
    const obs = await observe(broker, "obs-props");
    await obs.client.subscribeAsync("mrtd/v1/props-1/reply/x", { qos: 1 });
    await link.publish("mrtd/v1/props-1/reply/x", '{"a":1}', {
      qos: 1,
      messageExpiryIntervalS: 30,
      userProperties: { "event-id": "e-1" },
      correlationData: new Uint8Array([1, 2, 3]),
      responseTopic: "mrtd/v1/props-1/reply/y",
      contentType: "application/json",
    });
    await obs.waitFor((m) => m.length >= 1);
    const p = obs.messages[0]!.packet;
    expect(p.qos).toBe(1);
    expect(p.properties?.messageExpiryInterval).toBeGreaterThan(25);
    expect(p.properties?.messageExpiryInterval).toBeLessThanOrEqual(30);
    expect(p.properties?.userProperties).toEqual({ "event-id": "e-1" });
    expect([...p.properties!.correlationData!]).toEqual([1, 2, 3]);
    expect(p.properties?.responseTopic).toBe("mrtd/v1/props-1/reply/y");
    expect(p.properties?.contentType).toBe("application/json");
    await link.stop();
    await obs.close();
    // offline publish rejects at once
    await expect(link.publish("mrtd/v1/props-1/metrics", "x")).rejects.toMatchObject({ code: "OFFLINE" });
  });

  test("reconnects with growing, jittered delays after a broker outage, and births again", async () => {
    const link = linkFor("recon-1");
    const events: Array<LinkEvents["reconnecting"]> = [];
    let connects = 0;
    let disconnects = 0;
    link.on("reconnecting", (e) => events.push(e));
    link.on("connected", () => connects++);
    link.on("disconnected", () => disconnects++);
    link.on("error", () => {});
    link.start();
    await link.waitConnected(5000);
    await broker.stop();
    const t0 = Date.now();
    while (events.length < 4 && Date.now() - t0 < 10000) await Bun.sleep(20);
    expect(link.connected).toBe(false);
    expect(disconnects).toBe(1);
    expect(events.map((e) => e.attempt).slice(0, 4)).toEqual([1, 2, 3, 4]);
    for (const e of events) {
      const step = Math.min(800, 100 * 2 ** (e.attempt - 1));
      expect(e.delayMs).toBeGreaterThanOrEqual(step / 2);
      expect(e.delayMs).toBeLessThanOrEqual(step);
    }
    await broker.restart();
    await link.waitConnected(5000);
    expect(connects).toBe(2);
    const obs = await observe(broker, "obs-recon");
    await obs.client.subscribeAsync("mrtd/v1/recon-1/status", { qos: 1 });
    await obs.waitFor((m) => m.length >= 1);
    expect(obs.messages[0]!.json).toMatchObject({ state: "online", agentId: "recon-1" });
    await link.stop();
    await obs.close();
  }, 20000);

  test("outbox: events from before and during a broker outage are delivered once each, in order", async () => {
    const agentId = "outage-1";
    const topics = agentTopics("mrtd/v1", agentId);
    // the consumer keeps a persistent session so it misses nothing while both are cut off
    const obs = await observe(broker, "obs-outage", { clean: false, properties: { sessionExpiryInterval: 600 } });
    await obs.client.subscribeAsync(topics.events, { qos: 1 });
    const outbox = new Outbox(join(makeTempDir("ob"), "o.sqlite"), { maxEvents: 1000 });
    const link = linkFor(agentId);
    link.on("error", () => {});
    link.on("connected", () => void outbox.drain(link));
    link.start();
    await link.waitConnected(5000);
    for (let n = 0; n < 5; n++) outbox.append(topics.events, { type: "reader", n });
    await outbox.drain(link);
    await obs.waitFor((m) => m.length >= 5);
    await obs.client.endAsync(true);

    await broker.stop();
    for (let n = 5; n < 25; n++) outbox.append(topics.events, { type: "reader", n }); // while offline
    await outbox.drain(link); // returns at once: offline
    expect(outbox.stats().pending).toBe(20);
    await Bun.sleep(300);
    await broker.restart();
    await link.waitConnected(5000);
    const until = Date.now() + 5000;
    while (outbox.stats().pending > 0 && Date.now() < until) await Bun.sleep(20);
    expect(outbox.stats().pending).toBe(0);

    const back = await observe(broker, "obs-outage", { clean: false, properties: { sessionExpiryInterval: 600 } });
    await back.waitFor((m) => m.length >= 20, 5000, "queued events");
    await Bun.sleep(300); // room for any duplicate to show up
    const all = [...obs.messages, ...back.messages].map((m) => ({ n: (m.json as { n: number }).n, id: (m.json as { eventId: string }).eventId, prop: m.packet.properties?.userProperties?.[EVENT_ID_PROPERTY] }));
    expect(all.map((x) => x.n)).toEqual(Array.from({ length: 25 }, (_, i) => i));
    expect(new Set(all.map((x) => x.id)).size).toBe(25);
    for (const x of all) expect(x.prop).toBe(x.id);
    await back.close();
    await link.stop();
    outbox.close();
  }, 30000);
});
