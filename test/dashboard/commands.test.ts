/**
 * The dashboard's command relay (agent/dashboard/commands.ts) on a scripted link: what it
 * publishes (topic, response topic, correlation data, expiry), which replies it passes on (its
 * correlation data, its agent's reply topic, its command id), how a command ends (the final
 * reply, the timeout, the dashboard stopping), and a broker's refusal. The real broker path is
 * actions-e2e.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { CommandRelay, type CheckedCommand, type CommandLink } from "../../agent/dashboard/commands.ts";

interface Published {
  topic: string;
  payload: string;
  opts: { responseTopic?: string; correlationData?: Uint8Array; messageExpiryIntervalS?: number };
}

function scriptedLink(refuse = false, protocol?: "5" | "3.1.1") {
  const published: Published[] = [];
  const filters: string[] = [];
  let deliver: ((topic: string, payload: Uint8Array, cd: Uint8Array | undefined) => void) | undefined;
  const link: CommandLink = {
    ...(protocol ? { protocol } : {}),
    async publish(topic, payload, opts) {
      if (refuse) throw new Error("broker refused the publish (reason code 0x87)");
      published.push({ topic, payload, opts });
    },
    async subscribeReplies(filter, onMessage) {
      filters.push(filter);
      deliver = onMessage;
    },
  };
  const reply = (topic: string, body: unknown, cd: Uint8Array | undefined) => deliver!(topic, new TextEncoder().encode(JSON.stringify(body)), cd);
  return { link, published, filters, reply };
}

const cmd = (over: Partial<CheckedCommand> = {}): CheckedCommand => ({ id: "ping-1", name: "ping", reader: null, body: { id: "ping-1", command: "ping" }, timeoutS: 5, ...over });

describe("command relay", () => {
  test("publishes with response topic, correlation data and expiry; passes on only its own replies, ends on the final one", async () => {
    const s = scriptedLink();
    const relay = new CommandRelay(s.link, "mrtd/v1", "operator-dashboard");
    const got: string[] = [];
    const sent = await relay.send("kiosk-1", cmd({ id: "read-1", name: "read", timeoutS: 120 }), (t) => got.push(t));
    expect(s.filters).toEqual(["mrtd/v1/+/reply/operator-dashboard"]);
    expect(s.published).toHaveLength(1);
    const p = s.published[0]!;
    expect(p.topic).toBe("mrtd/v1/kiosk-1/cmd/read");
    expect(p.opts.responseTopic).toBe("mrtd/v1/kiosk-1/reply/operator-dashboard");
    expect(p.opts.messageExpiryIntervalS).toBe(120);
    const corr = p.opts.correlationData!;
    expect(corr.length).toBe(16);
    expect(relay.running).toBe(1);

    const mine = "mrtd/v1/kiosk-1/reply/operator-dashboard";
    s.reply(mine, { id: "read-1", kind: "progress", step: "waiting-for-card" }, corr);
    s.reply(mine, { id: "read-1", kind: "progress", step: "other" }, new Uint8Array(16)); // another command's correlation
    s.reply("mrtd/v1/kiosk-2/reply/operator-dashboard", { id: "read-1", kind: "result", ok: true }, corr); // another agent's topic
    s.reply(mine, { id: "read-2", kind: "result", ok: true }, corr); // another command id
    s.reply(mine, { id: "read-1", kind: "progress", step: "card-present" }, undefined); // no correlation data
    s.reply(mine, { id: "read-1", kind: "result", ok: false, error: { code: "ACCESS_DENIED", message: "x" } }, corr);
    s.reply(mine, { id: "read-1", kind: "progress", step: "late" }, corr); // after the end: dropped
    expect(await sent.ended).toEqual({ kind: "final", ok: false, code: "ACCESS_DENIED" });
    expect(got.map((t) => (JSON.parse(t) as { step?: string; kind: string }).step ?? "result")).toEqual(["waiting-for-card", "result"]);
    expect(relay.running).toBe(0);
    // A second command reuses the one subscription.
    await relay.send("kiosk-1", cmd({ id: "ping-2" }), () => undefined);
    expect(s.filters).toHaveLength(1);
    relay.stop();
  });

  test("MQTT 3.1.1: the reply routing travels in the payload (reply.topic, correlation, expiresAt), as the operator CLI sends it", async () => {
    const s = scriptedLink(false, "3.1.1");
    const relay = new CommandRelay(s.link, "mrtd/v1", "operator-dashboard");
    const before = Date.now();
    const sent = await relay.send("kiosk-1", cmd({ timeoutS: 30 }), () => undefined);
    const p = s.published[0]!;
    expect(p.topic).toBe("mrtd/v1/kiosk-1/cmd/ping");
    const body = JSON.parse(p.payload) as { id: string; command: string; reply: { topic: string; correlation: string; expiresAt: string } };
    expect(body.id).toBe("ping-1");
    expect(body.command).toBe("ping");
    expect(body.reply.topic).toBe("mrtd/v1/kiosk-1/reply/operator-dashboard");
    expect(Buffer.from(body.reply.correlation, "base64")).toEqual(Buffer.from(p.opts.correlationData!));
    const expires = Date.parse(body.reply.expiresAt);
    expect(expires).toBeGreaterThanOrEqual(before + 30_000 - 1000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 31_000);
    s.reply("mrtd/v1/kiosk-1/reply/operator-dashboard", { id: "ping-1", kind: "result", ok: true, correlation: body.reply.correlation }, p.opts.correlationData);
    expect(await sent.ended).toEqual({ kind: "final", ok: true, code: null });
  });

  test("no final reply within the timeout ends it; stop() ends what runs; a refused publish leaves nothing running", async () => {
    const s = scriptedLink();
    const relay = new CommandRelay(s.link, "mrtd/v1", "operator-dashboard");
    const slow = await relay.send("kiosk-1", cmd({ timeoutS: 0.05 }), () => undefined);
    expect(await slow.ended).toEqual({ kind: "timeout" });
    const running = await relay.send("kiosk-1", cmd({ id: "ping-3" }), () => undefined);
    relay.stop();
    expect(await running.ended).toEqual({ kind: "stopped" });

    const refused = new CommandRelay(scriptedLink(true).link, "mrtd/v1", "operator-dashboard");
    await expect(refused.send("kiosk-1", cmd(), () => undefined)).rejects.toThrow(/0x87/);
    expect(refused.running).toBe(0);
  });

  test("the requester id is one topic level of the agent's charset", () => {
    const s = scriptedLink();
    expect(() => new CommandRelay(s.link, "mrtd/v1", "operator dashboard")).toThrow(RangeError);
    expect(() => new CommandRelay(s.link, "mrtd/v1", "a".repeat(65))).toThrow(RangeError);
    expect(() => new CommandRelay(s.link, "mrtd/v1", "op/+")).toThrow(RangeError);
  });
});
