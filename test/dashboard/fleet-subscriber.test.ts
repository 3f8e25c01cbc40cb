/**
 * The dashboard's fleet subscriber on more than one broker: mqtt.urls (a cluster's nodes, the
 * next one at each reconnect) and mqtt.session_expiry_s (events published while it reconnects
 * wait for it), against real Mosquitto brokers on loopback; and their configuration errors.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import mqtt from "mqtt";
import { parseDashboardConfig, type DashboardConfig } from "../../agent/dashboard/config.ts";
import { subscribeFleet, type FleetMessage, type FleetSubscriber } from "../../agent/dashboard/fleet-subscriber.ts";
import { freePort, startMosquitto, type Mosquitto } from "../support/mosquitto.ts";

let a: Mosquitto;
let b: Mosquitto;
beforeAll(async () => {
  [a, b] = await Promise.all([startMosquitto({ config: "plain" }), startMosquitto({ config: "plain" })]);
});
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
});

function cfg(over: Partial<DashboardConfig["mqtt"]>): DashboardConfig["mqtt"] {
  return { url: over.urls?.[0] ?? a.url, urls: [a.url], sessionExpiryS: 0, protocol: "5", prefix: "mrtd/v1", clientId: "operator-dashboard-test", ...over };
}

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

async function publishEvent(url: string, agent: string, n: number): Promise<void> {
  const c = await mqtt.connectAsync(url, { clientId: `pub-${agent}-${n}`, protocolVersion: 5 });
  await c.publishAsync(`mrtd/v1/${agent}/events`, JSON.stringify({ n }), { qos: 1 });
  await c.endAsync();
}

describe("dashboard fleet subscriber on several brokers", () => {
  test("mqtt.urls: with the first broker down it takes the next, and moves on again when that one goes", async () => {
    const dead = `mqtt://127.0.0.1:${await freePort()}`;
    const got: FleetMessage[] = [];
    const states: boolean[] = [];
    let sub: FleetSubscriber | undefined;
    try {
      sub = await subscribeFleet(cfg({ urls: [dead, a.url, b.url], clientId: "operator-dash-urls" }), (m) => got.push(m), (s) => states.push(s.connected));
      await until(() => sub!.connected, 15_000, "a connection past the dead first URL");
      await Bun.sleep(300); // its subscriptions
      await publishEvent(a.url, "agent-u1", 1);
      await until(() => got.some((m) => m.topic.agentId === "agent-u1"), 5000, "the event through broker a");
      const before = states.length;
      await a.stop(); // broker a goes: the subscriber moves on to b (the next URL)
      await until(() => states.slice(before).includes(false) && states.at(-1) === true, 20_000, "a reconnect after broker a stopped");
      await Bun.sleep(300);
      await publishEvent(b.url, "agent-u2", 2);
      await until(() => got.some((m) => m.topic.agentId === "agent-u2"), 5000, "the event through broker b");
    } finally {
      await sub?.close();
      await a.restart();
    }
  }, 60_000);

  test("mqtt.urls: when every broker refuses, the start fails naming each", async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const err = await subscribeFleet(cfg({ urls: [`mqtt://127.0.0.1:${p1}`, `mqtt://127.0.0.1:${p2}`], clientId: "operator-dash-none" }), () => undefined, () => undefined).then(
      (s) => (void s.close(), undefined),
      (e: Error) => e,
    );
    expect(err?.message).toContain("cannot connect to any of the brokers");
    expect(err?.message).toContain(`127.0.0.1:${p1}`);
    expect(err?.message).toContain(`127.0.0.1:${p2}`);
  }, 30_000);

  test("mqtt.session_expiry_s: events published while the dashboard is away are delivered when it is back (MQTT 5 and 3.1.1)", async () => {
    for (const protocol of ["5", "3.1.1"] as const) {
      const c = cfg({ urls: [b.url], url: b.url, protocol, sessionExpiryS: 600, clientId: `operator-dash-persist-${protocol === "5" ? "v5" : "v311"}` });
      const first: FleetMessage[] = [];
      const s1 = await subscribeFleet(c, (m) => first.push(m), () => undefined);
      await until(() => s1.connected, 10_000, "the first connection");
      await Bun.sleep(300);
      await s1.close();
      await publishEvent(b.url, `agent-away-${protocol === "5" ? "v5" : "v311"}`, 3);
      const second: FleetMessage[] = [];
      const s2 = await subscribeFleet(c, (m) => second.push(m), () => undefined);
      try {
        await until(() => second.some((m) => m.topic.kind === "events"), 10_000, `the queued event (${protocol})`);
      } finally {
        await s2.close();
      }
      // and without a session nothing waits: the control
      const clean = { ...c, sessionExpiryS: 0, clientId: `${c.clientId}-clean` };
      const s3 = await subscribeFleet(clean, () => undefined, () => undefined);
      await until(() => s3.connected, 10_000, "the clean connection");
      await Bun.sleep(300);
      await s3.close();
      await publishEvent(b.url, "agent-away-clean", 4);
      const third: FleetMessage[] = [];
      const s4 = await subscribeFleet(clean, (m) => third.push(m), () => undefined);
      await until(() => s4.connected, 10_000, "the clean reconnection");
      await Bun.sleep(800);
      await s4.close();
      expect(third.filter((m) => m.topic.kind === "events")).toEqual([]);
    }
  }, 60_000);

  test("configuration: mqtt.urls and mqtt.session_expiry_s, and what is refused", () => {
    const c = parseDashboardConfig(`[mqtt]\nurls = ["mqtts://n1:8883", "mqtts://n2:8883"]\nsession_expiry_s = 3600\n`, "d.toml");
    expect(c.mqtt.urls).toEqual(["mqtts://n1:8883", "mqtts://n2:8883"]);
    expect(c.mqtt.url).toBe("mqtts://n1:8883");
    expect(c.mqtt.sessionExpiryS).toBe(3600);
    const d = parseDashboardConfig(`[mqtt]\nurl = "mqtts://one:8883"\n`, "d.toml");
    expect([d.mqtt.urls, d.mqtt.sessionExpiryS]).toEqual([["mqtts://one:8883"], 0]);
    expect(() => parseDashboardConfig(`[mqtt]\nurl = "mqtts://a:8883"\nurls = ["mqtts://b:8883"]\n`, "d.toml")).toThrow("d.toml: mqtt.urls: give mqtt.url or mqtt.urls, not both");
    expect(() => parseDashboardConfig(`[mqtt]\nurls = ["mqtts://a:8883", "mqtt://b:1883"]\n`, "d.toml")).toThrow("mqtt.urls: all brokers must use the same scheme");
    expect(() => parseDashboardConfig(`[mqtt]\nurls = []\n`, "d.toml")).toThrow("mqtt.urls: must be a list of 1 to 16 non-empty strings");
    expect(() => parseDashboardConfig(`[mqtt]\nurls = ["http://a"]\n`, "d.toml")).toThrow("mqtt.urls: scheme must be mqtts or mqtt");
    expect(() => parseDashboardConfig(`[mqtt]\nsession_expiry_s = -1\n`, "d.toml")).toThrow("mqtt.session_expiry_s: must be between 0");
  });
});
