/**
 * Several broker URLs and persistent sessions, in both protocols, against a real Mosquitto with
 * persistence on: the link tries the URLs in rotation with its own backoff; a session kept by
 * the broker across a broker restart delivers the commands published while the agent was away
 * (a live one is answered, an expired one is answered EXPIRED in 3.1.1 and discarded by the
 * broker in MQTT 5); when the broker reports no session the link subscribes again.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import mqtt from "mqtt";
import { CommandDispatcher } from "../../agent/service/command-dispatcher.ts";
import { buildCommandPublish, MQTT_PROTOCOLS, protocolVersion, replyCorrelation, type MqttProtocol } from "../../agent/service/command-wire.ts";
import { MqttLink, type LinkEvents } from "../../agent/service/mqtt-link.ts";
import { agentTopics } from "../../agent/service/topics.ts";
import { freePort, startMosquitto, type Mosquitto } from "../support/mosquitto.ts";
import { observe, type Observer } from "./fixtures/mqtt-observer.ts";

let broker: Mosquitto;
beforeAll(async () => {
  broker = await startMosquitto({ config: "plain" });
});
afterAll(async () => {
  await broker.close();
});

interface Agent {
  link: MqttLink;
  dispatcher: CommandDispatcher;
  connects: Array<LinkEvents["connected"]>;
  reconnects: Array<LinkEvents["reconnecting"]>;
}

function agent(protocol: MqttProtocol, agentId: string, urls: string[]): Agent {
  const topics = agentTopics("mrtd/v1", agentId);
  const link = new MqttLink({ urls, protocol, sessionExpiryS: 600, clientId: agentId, topics, version: "t", readers: () => [], reconnectMinMs: 100, reconnectMaxMs: 400, connectTimeoutMs: 2000 });
  const dispatcher = new CommandDispatcher({ link, topics, protocol });
  const a: Agent = { link, dispatcher, connects: [], reconnects: [] };
  link.on("connected", (e) => a.connects.push(e));
  link.on("reconnecting", (e) => a.reconnects.push(e));
  link.on("error", () => {});
  link.on("message", (m) => void dispatcher.handle(m));
  return a;
}

for (const protocol of MQTT_PROTOCOLS) {
  describe(`MQTT ${protocol}: broker URLs and persistent sessions`, () => {
    let op: Observer;
    let seq = 0;
    /** (Re)connects the operator (its connection does not survive a broker restart). */
    const connectOperator = async () => {
      await op?.close().catch(() => undefined);
      op = await observe(broker, `operator-fo-${protocol.replace(/\./g, "")}`, { protocolVersion: protocolVersion(protocol) });
    };
    beforeAll(connectOperator);
    afterAll(async () => {
      await op.close();
    });

    /** Publishes a ping to `agentId` through the shared wire module; returns its correlation. */
    async function ping(agentId: string, id: string, expirySeconds: number): Promise<Buffer> {
      const correlation = Buffer.from(`fo-${protocol}-${++seq}`);
      const p = buildCommandPublish(protocol, { prefix: "mrtd/v1", agentId, command: "ping", requester: "operator-fo", body: { id }, correlation, expirySeconds });
      await op.client.publishAsync(p.topic, p.payload, { qos: 1, ...(p.properties ? { properties: p.properties } : {}) });
      return correlation;
    }
    const replyTo = (corr: Buffer) => op.messages.find((m) => {
      const c = replyCorrelation(protocol, { json: m.json, correlationData: m.packet.properties?.correlationData });
      return c !== undefined && corr.equals(Buffer.from(c)) && (m.json as { kind?: string }).kind === "result";
    });

    test("two URLs, the first dead: the next attempt, after the backoff delay, goes to the second", async () => {
      const id = `fo-urls-${protocol.replace(/\./g, "")}`;
      await op.client.subscribeAsync(`mrtd/v1/${id}/reply/#`, { qos: 1 });
      const dead = `mqtt://127.0.0.1:${await freePort()}`;
      const a = agent(protocol, id, [dead, broker.url]);
      a.link.start();
      await a.link.waitConnected(5000);
      expect(a.reconnects[0]).toMatchObject({ attempt: 1, url: broker.url });
      expect(a.reconnects[0]!.delayMs).toBeGreaterThanOrEqual(50);
      expect(a.connects).toEqual([{ attempt: 1, url: broker.url, sessionPresent: false, subscribed: true }]);
      const corr = await ping(id, "urls-1", 30);
      await op.waitFor(() => replyTo(corr) !== undefined, 5000, "ping reply");
      expect(replyTo(corr)!.json).toMatchObject({ id: "urls-1", ok: true });
      // A lost connection: the next attempt takes the next URL of the rotation (the dead one), then this one again.
      await broker.restart();
      await connectOperator();
      await Bun.sleep(200);
      await a.link.waitConnected(5000);
      expect(a.reconnects.slice(1, 3).map((r) => r.url)).toEqual([dead, broker.url]);
      await a.dispatcher.stop();
      await a.link.stop();
    }, 20_000);

    test("a broker restart while the agent is away: the kept session delivers the command published meanwhile; an expired one is never run", async () => {
      const id = `fo-sess-${protocol.replace(/\./g, "")}`;
      await op.client.subscribeAsync(`mrtd/v1/${id}/reply/#`, { qos: 1 });
      const a = agent(protocol, id, [broker.url]);
      a.link.start();
      await a.link.waitConnected(5000);
      expect(a.connects[0]).toMatchObject({ sessionPresent: false, subscribed: true });
      await a.link.stop({ publishOffline: false });
      await broker.restart(); // persistence on: sessions and their queued messages survive
      await connectOperator(); // its connection went with the restart
      await op.client.subscribeAsync(`mrtd/v1/${id}/reply/#`, { qos: 1 });
      const expired = await ping(id, "sess-expired", 1);
      const live = await ping(id, "sess-live", 60);
      // Mosquitto counts expiry in whole seconds and forwards a message in its last second without
      // the property (as if it had none): wait past that second too.
      await Bun.sleep(2600); // the first one's expiry passes while it waits in the session
      a.link.start();
      await a.link.waitConnected(5000);
      expect(a.connects[1]).toMatchObject({ sessionPresent: true, subscribed: true });
      await op.waitFor(() => replyTo(live) !== undefined, 5000, "reply to the queued command");
      expect(replyTo(live)!.json).toMatchObject({ id: "sess-live", ok: true, result: { pong: true } });
      if (protocol === "3.1.1") {
        // No broker-side expiry in 3.1.1: the agent sees it and answers EXPIRED by its own clock.
        await op.waitFor(() => replyTo(expired) !== undefined, 5000, "EXPIRED reply");
        expect(replyTo(expired)!.json).toMatchObject({ kind: "result", ok: false, error: { code: "EXPIRED" } });
      } else {
        // MQTT 5: the broker discards a message whose expiry passed (MQTT 5.0 §3.3.2.3.3).
        await Bun.sleep(300);
        expect(replyTo(expired)?.json).toBeUndefined();
      }
      expect(a.dispatcher.stats().accepted).toBe(1);
      await a.dispatcher.stop();
      await a.link.stop();
    }, 20_000);

    test("no session present at the broker: the link subscribes again and commands work", async () => {
      const id = `fo-nosess-${protocol.replace(/\./g, "")}`;
      await op.client.subscribeAsync(`mrtd/v1/${id}/reply/#`, { qos: 1 });
      const a = agent(protocol, id, [broker.url]);
      a.link.start();
      await a.link.waitConnected(5000);
      await a.link.stop({ publishOffline: false });
      // Someone connects with the agent's client id and a clean session: the kept session is gone.
      const wipe = await mqtt.connectAsync({ host: "127.0.0.1", port: broker.port, protocolVersion: protocolVersion(protocol), clientId: id, clean: true, reconnectPeriod: 0 });
      await wipe.endAsync();
      a.link.start();
      await a.link.waitConnected(5000);
      expect(a.connects[1]).toMatchObject({ sessionPresent: false, subscribed: true });
      const corr = await ping(id, "nosess-1", 30);
      await op.waitFor(() => replyTo(corr) !== undefined, 5000, "ping reply after resubscribing");
      expect(replyTo(corr)!.json).toMatchObject({ id: "nosess-1", ok: true });
      await a.dispatcher.stop();
      await a.link.stop();
    }, 20_000);
  });
}
