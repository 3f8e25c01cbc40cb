/**
 * Broker failover as the agent process does it, in both protocols, against Mosquitto with
 * persistence on: mqtt.urls with a dead first broker; the agent's kept session across its own
 * restart and a broker restart, so a command published while it was away is answered when it
 * is back, and one that expired meanwhile never runs (3.1.1: answered EXPIRED; MQTT 5: the
 * broker discards it). The agent reads no card here: pcscd may or may not run.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildCommandPublish, MQTT_PROTOCOLS, protocolVersion, replyCorrelation } from "../../agent/service/command-wire.ts";
import { freePort, startMosquitto, type Mosquitto } from "../support/mosquitto.ts";
import { removeTempDir } from "../support/temp-dir.ts";
import { observe, type Observer } from "../service/fixtures/mqtt-observer.ts";
import { AgentProcess, writeAgentConfig } from "./fixtures/agent-process.ts";

for (const protocol of MQTT_PROTOCOLS) {
  describe(`MQTT ${protocol}: the agent process with two broker URLs and a kept session`, () => {
    const AGENT = `fo-agent-${protocol === "5" ? "5" : "311"}`;
    let broker: Mosquitto;
    let agent: AgentProcess | undefined;
    let op: Observer | undefined;
    let dir: string;
    let file: string;
    let dead: string;

    beforeAll(async () => {
      broker = await startMosquitto({ config: "plain" });
      dead = `mqtt://127.0.0.1:${await freePort()}`;
      ({ file, dir } = writeAgentConfig({ agentId: AGENT, broker, protocol, urls: [dead, broker.url], sessionExpiryS: 600, include: ["no reader here"] }));
    });
    afterAll(async () => {
      await op?.close().catch(() => undefined);
      await agent?.kill("SIGKILL");
      await broker.close();
      removeTempDir(dir);
    });

    const connectOperator = async () => {
      await op?.close().catch(() => undefined);
      op = await observe(broker, "operator-fo", { protocolVersion: protocolVersion(protocol) });
      await op.client.subscribeAsync(`mrtd/v1/${AGENT}/reply/#`, { qos: 1 });
    };
    let seq = 0;
    async function ping(id: string, expirySeconds: number): Promise<Buffer> {
      const correlation = Buffer.from(`fo-${++seq}`);
      const p = buildCommandPublish(protocol, { prefix: "mrtd/v1", agentId: AGENT, command: "ping", requester: "operator-fo", body: { id }, correlation, expirySeconds });
      await op!.client.publishAsync(p.topic, p.payload, { qos: 1, ...(p.properties ? { properties: p.properties } : {}) });
      return correlation;
    }
    const replyTo = (corr: Buffer) =>
      op!.messages.find((m) => {
        const c = replyCorrelation(protocol, { json: m.json, correlationData: m.packet.properties?.correlationData });
        return c !== undefined && corr.equals(Buffer.from(c)) && (m.json as { kind?: string }).kind === "result";
      });

    test("the first URL dead: the agent connects to the second after one backoff step, and answers", async () => {
      agent = new AgentProcess(file);
      const connected = await agent.waitForLog((l) => l.msg === "broker connected", 15_000, "broker connected");
      expect(connected).toMatchObject({ url: broker.url, protocol, attempt: 1, sessionPresent: false, subscribed: true });
      expect(agent.logs().find((l) => l.msg === "reconnecting to the broker")).toMatchObject({ attempt: 1, url: broker.url });
      await connectOperator();
      const corr = await ping("fo-1", 30);
      await op!.waitFor(() => replyTo(corr) !== undefined, 5000, "ping reply");
      expect(replyTo(corr)!.json).toMatchObject({ id: "fo-1", ok: true, result: { pong: true, agentId: AGENT } });
    }, 30_000);

    test("the agent stops, the broker restarts (persistence on), commands are published meanwhile: the one still valid is answered once the agent is back, the expired one never runs", async () => {
      expect(await agent!.kill("SIGTERM")).toBe(0);
      await broker.restart();
      await connectOperator();
      const expired = await ping("fo-expired", 1);
      const live = await ping("fo-live", 60);
      // Mosquitto counts expiry in whole seconds and forwards a message in its last second without
      // the property (as if it had none): wait past that second too.
      await Bun.sleep(2600);
      agent = new AgentProcess(file);
      const connected = await agent.waitForLog((l) => l.msg === "broker connected", 15_000, "broker connected again");
      expect(connected).toMatchObject({ url: broker.url, sessionPresent: true, subscribed: true });
      await op!.waitFor(() => replyTo(live) !== undefined, 5000, "reply to the command sent while the agent was away");
      expect(replyTo(live)!.json).toMatchObject({ id: "fo-live", ok: true, result: { pong: true } });
      if (protocol === "3.1.1") {
        await op!.waitFor(() => replyTo(expired) !== undefined, 5000, "EXPIRED reply");
        expect(replyTo(expired)!.json).toMatchObject({ kind: "result", ok: false, error: { code: "EXPIRED" } });
      } else {
        await Bun.sleep(300);
        expect(replyTo(expired)).toBeUndefined();
      }
      expect(agent.logs().filter((l) => l.msg === "command started").map((l) => l.id)).toEqual(["fo-live"]);
    }, 40_000);
  });
}
