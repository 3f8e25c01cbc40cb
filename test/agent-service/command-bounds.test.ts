/**
 * The command channel's bounds, attacked as a red team did against the real `mrtd-agent run`
 * process, the shipped Mosquitto configuration (deploy/mosquitto: TLS client certificates,
 * ACL) and pcscd with the virtual passport. Each test is one attack that once worked:
 *
 *   client-id takeover      another agent's certificate connecting with this agent's client id
 *   oversized publish       a command far above any real one (MQTT 5 Maximum Packet Size)
 *   expiry 4294967295 s     a timer overflow that aborted every read right after BAC
 *   small-order reply key   found only after the whole card read, then answered INTERNAL
 *   retained command        run once on live delivery
 *   512 pings, long read    the idempotency cache evicted the running read; its repeat never
 *                           got an answer and the agent's stop() hung
 *
 * Run under the pcsc lock (it uses pcscd and the virtual passport). The suite runs once per MQTT
 * protocol: where 3.1.1 cannot hold a bound the same way (no Maximum Packet Size, no Retain As
 * Published) its test says what happens instead, as the README documents.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { b64 } from "../../agent/service/envelope.ts";
import { MQTT_PROTOCOLS, protocolVersion, replyCorrelation } from "../../agent/service/command-wire.ts";
import { insertPassport, SPECIMEN_KEY, type StartedPassport } from "../support/e2e.ts";
import type { Mosquitto } from "../support/mosquitto.ts";
import { observe, type Observer, type Received } from "../service/fixtures/mqtt-observer.ts";
import { type AgentEnv, startAgentEnv } from "./fixtures/agent-env.ts";
import type { AgentProcess } from "./fixtures/agent-process.ts";

const AGENT = "bounds-a";
const OTHER = "bounds-b";
const BASE = `mrtd/v1/${AGENT}`;
const STATUS = `${BASE}/status`;
const REPLY = `${BASE}/reply/operator-test`;

for (const protocol of MQTT_PROTOCOLS) describe(`MQTT ${protocol}`, () => {
  const v5 = protocol === "5";
  let env: AgentEnv | undefined;
  let broker: Mosquitto;
  let op: Observer;
  let agent: AgentProcess;
  let card: StartedPassport | undefined;

  beforeAll(async () => {
    env = await startAgentEnv({
      operator: "operator-test",
      operatorOptions: { protocolVersion: protocolVersion(protocol) },
      subscribe: "mrtd/v1/#",
      broker: { config: "tls-acl", agents: [AGENT, OTHER] },
      // The attacks here are on bounds, not on the key: reads use the test-bench form (an access
      // key in clear); command-channel.test.ts attacks the sealing with the default config.
      config: { agentId: AGENT, protocol, tls: true, extraToml: "[commands]\nallow_plaintext_access_key = true" },
      readyLog: "agent started",
    });
    ({ broker, op, agent } = env);
    await op.waitFor((m) => m.some((x) => x.topic === STATUS && (x.json as { state?: string })?.state === "online"), 10_000, "birth");
  }, 40_000);

  afterAll(async () => {
    await card?.stop().catch(() => undefined);
    await env?.stop();
  });

  const json = (m: Received) => m.json as Record<string, unknown>;
  const byCorr = (corr: Buffer) =>
    op.messages.filter((m) => {
      if (m.topic !== REPLY) return false;
      const c = replyCorrelation(protocol, { json: m.json, correlationData: m.packet.properties?.correlationData });
      return c !== undefined && Buffer.from(c).equals(corr);
    });
  let seq = 0;

  /** A command in the protocol's wire form; `props` are MQTT 5 properties (3.1.1: `expiresAt` for the payload's reply). */
  async function publish(name: string, body: object | Buffer, props: Record<string, unknown> = {}, opts: { retain?: boolean; expiresAt?: string } = {}): Promise<Buffer> {
    const corr = Buffer.from(`bounds-${++seq}`);
    if (v5) {
      await op.client.publishAsync(`${BASE}/cmd/${name}`, Buffer.isBuffer(body) ? body : JSON.stringify(body), { qos: 1, retain: opts.retain ?? false, properties: { responseTopic: REPLY, correlationData: corr, ...props } });
    } else {
      const reply = { topic: REPLY, correlation: corr.toString("base64"), expiresAt: opts.expiresAt ?? new Date(Date.now() + 120_000).toISOString() };
      await op.client.publishAsync(`${BASE}/cmd/${name}`, Buffer.isBuffer(body) ? body : JSON.stringify({ ...body, reply }), { qos: 1, retain: opts.retain ?? false });
    }
    return corr;
  }

  async function command(name: string, body: object, props: Record<string, unknown> = {}, timeoutMs = 15_000, opts: { expiresAt?: string } = {}): Promise<{ final: Record<string, unknown>; all: Record<string, unknown>[] }> {
    const corr = await publish(name, body, props, opts);
    await op.waitFor(() => byCorr(corr).some((m) => json(m).kind === "result"), timeoutMs, `reply to ${name} #${seq}`);
    const all = byCorr(corr).map(json);
    return { final: all.find((m) => m.kind === "result")!, all };
  }

  const statusChanges = (from: number) => op.messages.slice(from).filter((m) => m.topic === STATUS);

  describe("command channel bounds against the agent process and the shipped broker", () => {
    test("client-id takeover: bounds-b's certificate with client id bounds-a neither disconnects bounds-a nor gets its commands", async () => {
      const from = op.messages.length;
      const until = Date.now() + 4000;
      let connacks = 0;
      let impostorMessages = 0;
      const impostor = (async () => {
        while (Date.now() < until) {
          const imp = await observe(broker, OTHER, { clientId: AGENT, connectTimeout: 2000, protocolVersion: protocolVersion(protocol) }).catch(() => undefined);
          if (!imp) continue;
          connacks++;
          await imp.client.subscribeAsync(`${BASE}/cmd/+`, { qos: 1 }).catch(() => undefined);
          await Bun.sleep(200);
          impostorMessages += imp.messages.length;
          await imp.close();
        }
      })();
      const answers: boolean[] = [];
      for (let i = 0; i < 8; i++) {
        const r = await command("ping", { id: `takeover-${i}` }, {}, 3000);
        answers.push(r.final.ok === true);
        await Bun.sleep(300);
      }
      await impostor;
      expect(connacks).toBeGreaterThan(0);
      expect(answers).toEqual(Array(8).fill(true));
      expect(statusChanges(from)).toEqual([]); // no will (connection-lost), no new birth
      expect(impostorMessages).toBe(0);
      expect(agent.logs().filter((l) => l.msg === "broker connection lost")).toEqual([]);
    }, 30_000);

    test(v5 ? "a 512 KiB command (the broker takes up to 1 MiB) never reaches the agent: Maximum Packet Size" : "a 512 KiB command reaches the agent (3.1.1 announces no Maximum Packet Size) and is dropped unread; the agent stays connected", async () => {
      const from = agent.logs().length;
      const statusFrom = op.messages.length;
      const corr = await publish("ping", Buffer.alloc(512 * 1024, 0x20));
      const next = await command("ping", { id: "after-big" });
      expect(next.final.ok).toBe(true);
      await Bun.sleep(200);
      expect(byCorr(corr)).toEqual([]);
      // had it arrived, the dispatcher would have refused it TOO_LARGE (and logged so)
      expect(agent.logs().slice(from).filter((l) => l.code === "TOO_LARGE")).toEqual([]);
      const dropped = agent.logs().slice(from).filter((l) => l.msg === "ignored a command: nowhere to reply");
      expect(dropped.map((l) => l.why)).toEqual(v5 ? [] : ["payload larger than 32768 bytes"]);
      expect(statusChanges(statusFrom)).toEqual([]);
    });

    test("a replyPublicKey of small order is BAD_FIELD before the card is touched", async () => {
      card = await insertPassport({ profile: "td3" });
      const eventsBefore = op.on(`${BASE}/events`).length;
      const order8 = Buffer.from("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", "hex");
      const r = await command("read", { id: "low-order-1", accessKey: SPECIMEN_KEY, includePersonalData: true, replyPublicKey: b64(order8), timeoutS: 10 });
      expect(r.final).toMatchObject({ ok: false, error: { code: "BAD_FIELD" } });
      expect((r.final.error as { message: string }).message).toMatch(/^replyPublicKey .*small order/);
      expect(r.all.filter((m) => m.kind === "progress")).toEqual([]);
      await Bun.sleep(300);
      expect(op.on(`${BASE}/events`).slice(eventsBefore).filter((m) => json(m).type === "read")).toEqual([]);
    }, 20_000);

    test(`${v5 ? "message expiry 4294967295 s" : "expiresAt in the year 9999"}: the read completes (the expiry counts as 24 h)`, async () => {
      const r = await command("read", { id: "expiry-max-1", accessKey: SPECIMEN_KEY, files: ["COM", "DG1"], timeoutS: 10 }, { messageExpiryInterval: 4294967295 }, 20_000, { expiresAt: "9999-12-31T23:59:59Z" });
      expect(r.final).toMatchObject({ ok: true, result: { outcome: "success" } });
      const final = byCorr(Buffer.from(`bounds-${seq}`)).find((m) => json(m).kind === "result")!;
      if (v5) expect(final.packet.properties?.messageExpiryInterval).toBeLessThanOrEqual(86_400);
    }, 30_000);

    if (v5) test("a retained command published while the agent is connected is not run", async () => {
      const from = agent.logs().length;
      const corr = await publish("ping", { id: "retained-live-1" }, {}, { retain: true });
      await agent.waitForLog((l) => l.msg === "ignored a retained command", 5000, "the retained command dropped");
      await Bun.sleep(300);
      expect(byCorr(corr)).toEqual([]);
      expect(agent.logs().slice(from).filter((l) => l.msg === "command started")).toEqual([]);
      await op.client.publishAsync(`${BASE}/cmd/ping`, "", { qos: 1, retain: true }); // clear it
    });

    if (!v5) test("3.1.1 (documented limit): a retained command published while the agent is connected arrives unflagged and runs once", async () => {
      const corr = await publish("ping", { id: "retained-live-311" }, {}, { retain: true });
      await op.waitFor(() => byCorr(corr).some((m) => json(m).kind === "result"), 5000, "the live retained ping's reply");
      expect(agent.logs().filter((l) => l.msg === "command started" && l.id === "retained-live-311")).toHaveLength(1);
      await op.client.publishAsync(`${BASE}/cmd/ping`, "", { qos: 1, retain: true }); // clear it
    });

    test("512 pings during a long read: the read's repeat gets its reply, and the agent still stops on SIGTERM", async () => {
      await card?.stop();
      // A slow chip: every APDU 150 ms late, so the read outlasts the 512 pings.
      card = await insertPassport({ profile: "td3", intercept: async () => void (await Bun.sleep(150)) });
      const body = { id: "long-read-1", accessKey: SPECIMEN_KEY, files: ["COM", "SOD", "DG1", "DG2"], timeoutS: 20 };
      const first = await publish("read", body);
      await op.waitFor(() => byCorr(first).some((m) => json(m).step === "card-present"), 10_000, "the long read to start");
      const repeat = await publish("read", body);
      const pings = await Promise.all(Array.from({ length: 512 }, (_, i) => publish("ping", { id: `flood-${i}` })));
      await op.waitFor(() => pings.every((c) => byCorr(c).some((m) => json(m).kind === "result")), 20_000, "512 ping replies");
      const pingsAnsweredAt = op.messages.length;
      expect(byCorr(first).some((m) => json(m).kind === "result")).toBe(false); // still running: 512 cache entries came after it
      await op.waitFor(() => byCorr(first).some((m) => json(m).kind === "result"), 30_000, "the long read's reply");
      expect(op.messages.findIndex((m) => m === byCorr(first).find((x) => json(x).kind === "result"))).toBeGreaterThanOrEqual(pingsAnsweredAt);
      // the repeat joined the running read (it did not run again, nor was it refused)
      expect(agent.logs().filter((l) => l.msg === "duplicate command id" && l.id === "long-read-1").map((l) => l.answered)).toEqual([false]);
      await op.waitFor(() => byCorr(repeat).some((m) => json(m).kind === "result"), 5000, "the repeat's reply");
      const a = byCorr(first).find((m) => json(m).kind === "result")!;
      const b = byCorr(repeat).find((m) => json(m).kind === "result")!;
      expect(json(a)).toMatchObject({ id: "long-read-1", ok: true });
      // the same reply (3.1.1: each stamped with its own request's correlation)
      const { correlation: _ca, ...ra } = json(a);
      const { correlation: _cb, ...rb } = json(b);
      expect(rb).toEqual(ra);
      if (v5) expect(b.text).toBe(a.text);
      const t0 = performance.now();
      const code = await agent.kill("SIGTERM", 20_000);
      expect(code).toBe(0);
      expect(performance.now() - t0).toBeLessThan(15_000);
    }, 90_000);
  });
});
