import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../agent/service/config.ts";
import { CommandDispatcher } from "../../agent/service/command-dispatcher.ts";
import { MqttLink, linkOptionsFromConfig } from "../../agent/service/mqtt-link.ts";
import { startMosquitto } from "../support/mosquitto.ts";
import type { Mosquitto } from "../support/mosquitto.ts";
import { observe } from "./fixtures/mqtt-observer.ts";
import type { Observer } from "./fixtures/mqtt-observer.ts";
import { makeTempDir, removeTempDirs } from "../support/temp-dir.ts";

afterAll(removeTempDirs);

// deploy/mosquitto/mosquitto.conf + acl as shipped, certificates from deploy/make-test-pki.sh.
let broker: Mosquitto;
let link: MqttLink;
let operator: Observer;

beforeAll(async () => {
  // operator-dashboard: a certificate like any name; its ACL block is the shipped file's.
  broker = await startMosquitto({ config: "tls-acl", agents: ["agent-a", "agent-b", "operator-dashboard"] });
  const c = broker.certs!;
  const dir = makeTempDir("acl");
  const file = join(dir, "agent-a.toml");
  writeFileSync(
    file,
    `[agent]\nid = "agent-a"\nstate_dir = "${dir}"\n[mqtt]\nurl = "${broker.url}"\nca = "${c.ca}"\nclient_cert = "${c.client("agent-a").cert}"\nclient_key = "${c.client("agent-a").key}"\nreconnect_min_ms = 100\n`,
  );
  const config = loadConfig(file, {});
  link = new MqttLink(linkOptionsFromConfig(config, { version: "t", readers: () => [] }));
  const dispatcher = new CommandDispatcher({ link, topics: linkOptionsFromConfig(config, { version: "t", readers: () => [] }).topics });
  link.on("message", (m) => void dispatcher.handle(m));
  operator = await observe(broker, "operator-test");
  await operator.client.subscribeAsync("mrtd/v1/#", { qos: 1 });
  link.start();
  await link.waitConnected(10000);
}, 30000);
afterAll(async () => {
  await link.stop();
  await operator.close();
  await broker.close();
});

describe("TLS client certificates + pattern ACL (deploy/mosquitto)", () => {
  test("the agent connects with its certificate and its birth reaches operators", async () => {
    await operator.waitFor((m) => m.some((x) => x.topic === "mrtd/v1/agent-a/status"), 5000, "birth");
    expect(operator.on("mrtd/v1/agent-a/status")[0]!.json).toMatchObject({ state: "online", agentId: "agent-a" });
  });

  test("an agent cannot publish under another agent's id: PUBACK 0x87 and nothing arrives", async () => {
    await expect(link.publish("mrtd/v1/agent-b/status", JSON.stringify({ state: "online", agentId: "agent-b" }), { qos: 1, retain: true })).rejects.toMatchObject({ code: "REFUSED", reasonCode: 0x87 });
    await expect(link.publish("mrtd/v1/agent-b/events", "{}", { qos: 1 })).rejects.toMatchObject({ reasonCode: 0x87 });
    await link.publish("mrtd/v1/agent-a/events", JSON.stringify({ marker: "own" }), { qos: 1 });
    await operator.waitFor((m) => m.some((x) => x.topic === "mrtd/v1/agent-a/events"), 5000, "own event");
    expect(operator.messages.filter((m) => m.topic.startsWith("mrtd/v1/agent-b/"))).toEqual([]);
  });

  test("agents cannot send commands, to others or themselves; operators can", async () => {
    await expect(link.publish("mrtd/v1/agent-b/cmd/ping", JSON.stringify({ id: "x" }), { qos: 1 })).rejects.toMatchObject({ reasonCode: 0x87 });
    await expect(link.publish("mrtd/v1/agent-a/cmd/ping", JSON.stringify({ id: "x" }), { qos: 1 })).rejects.toMatchObject({ reasonCode: 0x87 });
    await operator.client.publishAsync("mrtd/v1/agent-a/cmd/ping", JSON.stringify({ id: "op-1" }), {
      qos: 1,
      properties: { responseTopic: "mrtd/v1/agent-a/reply/operator-test", correlationData: Buffer.from("c1") },
    });
    await operator.waitFor((m) => m.some((x) => x.topic === "mrtd/v1/agent-a/reply/operator-test"), 5000, "ping reply");
    expect(operator.on("mrtd/v1/agent-a/reply/operator-test")[0]!.json).toMatchObject({ id: "op-1", ok: true });
  });

  test("the dashboard's identity (operator-dashboard, shipped ACL) sends a command and reads its reply", async () => {
    const dash = await observe(broker, "operator-dashboard");
    const granted = await dash.client.subscribeAsync("mrtd/v1/+/reply/operator-dashboard", { qos: 1 });
    expect(granted[0]!.qos).toBe(1);
    await dash.client.publishAsync("mrtd/v1/agent-a/cmd/ping", JSON.stringify({ id: "dash-1" }), {
      qos: 1,
      properties: { responseTopic: "mrtd/v1/agent-a/reply/operator-dashboard", correlationData: Buffer.from("d1") },
    });
    await dash.waitFor((m) => m.some((x) => x.topic === "mrtd/v1/agent-a/reply/operator-dashboard"), 5000, "ping reply to the dashboard");
    expect(dash.on("mrtd/v1/agent-a/reply/operator-dashboard")[0]!.json).toMatchObject({ id: "dash-1", ok: true });
    await dash.close();
  });

  test("another agent cannot read this agent's commands or replies", async () => {
    const b = await observe(broker, "agent-b");
    await b.client.subscribeAsync(["mrtd/v1/agent-a/cmd/+", "mrtd/v1/agent-a/reply/#"], { qos: 1 });
    await operator.client.publishAsync("mrtd/v1/agent-a/cmd/ping", JSON.stringify({ id: "op-2" }), {
      qos: 1,
      properties: { responseTopic: "mrtd/v1/agent-a/reply/operator-test", correlationData: Buffer.from("c2") },
    });
    await operator.waitFor((m) => m.some((x) => (x.json as { id?: string })?.id === "op-2" && x.topic.includes("/reply/")), 5000, "reply op-2");
    await Bun.sleep(200);
    expect(b.messages).toEqual([]);
    await b.close();
  });

  test("a certificate cannot take another client's id: agent-b's certificate with client id agent-a does not disconnect agent-a", async () => {
    let drops = 0;
    const offDrop = link.on("disconnected", () => drops++);
    const birthsBefore = operator.on("mrtd/v1/agent-a/status").length;
    // The impostor connects again and again for 3 s, as an attacker would to keep agent-a off.
    const until = Date.now() + 3000;
    let connacks = 0;
    let impostorCmds = 0;
    const impostorLoop = (async () => {
      while (Date.now() < until) {
        const imp = await observe(broker, "agent-b", { clientId: "agent-a" }).catch(() => undefined);
        if (imp) {
          connacks++;
          // Had it become agent-a, the ACL pattern (%u is still agent-b) would not give it agent-a's commands either.
          await imp.client.subscribeAsync("mrtd/v1/agent-a/cmd/+", { qos: 1 });
          await Bun.sleep(150);
          impostorCmds += imp.messages.length;
          await imp.close();
        }
      }
    })();
    let answered = 0;
    for (let i = 0; i < 6; i++) {
      const corr = Buffer.from(`takeover-${i}`);
      await operator.client.publishAsync("mrtd/v1/agent-a/cmd/ping", JSON.stringify({ id: `takeover-${i}` }), {
        qos: 1,
        properties: { responseTopic: "mrtd/v1/agent-a/reply/operator-test", correlationData: corr },
      });
      await operator.waitFor((m) => m.some((x) => x.packet.properties?.correlationData && Buffer.from(x.packet.properties.correlationData).equals(corr)), 3000, `ping ${i}`);
      answered++;
      await Bun.sleep(400);
    }
    await impostorLoop;
    offDrop();
    expect(connacks).toBeGreaterThan(0); // the impostor got in, as agent-b
    expect(answered).toBe(6);
    expect(drops).toBe(0);
    expect(link.connected).toBe(true);
    expect(impostorCmds).toBe(0);
    // no will, no new birth: agent-a's session was never taken over
    expect(operator.on("mrtd/v1/agent-a/status").length).toBe(birthsBefore);
    // the broker names the impostor by its certificate, not by the id it asked for
    expect(broker.log()).toMatch(/New client connected from 127\.0\.0\.1:\d+ as agent-b /);
  }, 20_000);

  test("a client without a certificate from the fleet CA is refused", async () => {
    await expect(observe({ ...broker, certs: undefined }, "anonymous", { protocol: "mqtts", rejectUnauthorized: false, connectTimeout: 3000 })).rejects.toBeDefined();
  });
});
