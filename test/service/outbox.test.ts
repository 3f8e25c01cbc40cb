import { afterAll, describe, expect, test } from "bun:test";
import { join, resolve } from "node:path";
import { EVENT_ID_PROPERTY, Outbox } from "../../agent/service/outbox.ts";
import type { EventPublisher } from "../../agent/service/outbox.ts";
import type { PublishOptions } from "../../agent/service/mqtt-link.ts";
import { MqttLinkError } from "../../agent/service/mqtt-link.ts";
import { makeTempDir, removeTempDirs } from "../support/temp-dir.ts";

const tmp = () => join(makeTempDir("outbox"), "outbox.sqlite");
afterAll(removeTempDirs);
const T = "mrtd/v1/a/events";

/** An in-process publisher standing in for the link where the broker is not the point of the test. */
class RecordingPublisher implements EventPublisher {
  connected = true;
  sent: Array<{ topic: string; payload: string; opts: PublishOptions }> = [];
  failAfter = Infinity;
  refuse = new Set<string>();
  async publish(topic: string, payload: string, opts: PublishOptions): Promise<void> {
    if (this.sent.length >= this.failAfter) {
      this.connected = false;
      throw new MqttLinkError("CONNECTION_LOST", "gone");
    }
    const id = opts.userProperties?.[EVENT_ID_PROPERTY] ?? "";
    if (this.refuse.has(id)) throw new MqttLinkError("REFUSED", "no", 0x87);
    this.sent.push({ topic, payload, opts });
  }
}

describe("outbox", () => {
  test("ids are time-ordered UUIDv7 and travel in the payload and a user property", async () => {
    const box = new Outbox(tmp(), { maxEvents: 100 });
    const ids = [box.append(T, { n: 1 }), box.append(T, { n: 2 }), box.append(T, { n: 3 })];
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect([...ids].sort()).toEqual(ids);
    const pub = new RecordingPublisher();
    await box.drain(pub);
    expect(pub.sent.map((s) => JSON.parse(s.payload).eventId)).toEqual(ids);
    expect(pub.sent.map((s) => s.opts.userProperties?.[EVENT_ID_PROPERTY])).toEqual(ids);
    expect(pub.sent.every((s) => s.opts.qos === 1)).toBe(true);
    expect(box.stats()).toEqual({ pending: 0, dropped: 0, delivered: 3, refused: 0 });
    box.close();
  });

  test("the same event id is stored once", () => {
    const box = new Outbox(tmp(), { maxEvents: 100 });
    box.append(T, { n: 1 }, "id-1");
    box.append(T, { n: 1 }, "id-1");
    box.append(T, { n: 2 }, "id-2");
    expect(box.peek().map((e) => e.eventId)).toEqual(["id-1", "id-2"]);
    box.close();
  });

  test("bound: the oldest are dropped and the count persists across reopen", () => {
    const path = tmp();
    let box = new Outbox(path, { maxEvents: 5 });
    for (let n = 0; n < 12; n++) box.append(T, { n });
    expect(box.peek().map((e) => JSON.parse(e.payload).n)).toEqual([7, 8, 9, 10, 11]);
    expect(box.stats().dropped).toBe(7);
    box.close();
    box = new Outbox(path, { maxEvents: 5 });
    expect(box.stats()).toMatchObject({ pending: 5, dropped: 7 });
    box.append(T, { n: 12 });
    expect(box.stats().dropped).toBe(8);
    box.close();
  });

  test("a lost connection stops the drain; the rest goes after reconnect, in order, none twice", async () => {
    const path = tmp();
    const box = new Outbox(path, { maxEvents: 100 });
    for (let n = 0; n < 10; n++) box.append(T, { n });
    const pub = new RecordingPublisher();
    pub.failAfter = 4;
    await box.drain(pub);
    expect(box.stats().pending).toBe(6);
    pub.failAfter = Infinity;
    pub.connected = true;
    await box.drain(pub);
    expect(pub.sent.map((s) => JSON.parse(s.payload).n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(box.stats().pending).toBe(0);
    box.close();
  });

  test("an event the broker refuses is discarded and counted instead of blocking the queue", async () => {
    const box = new Outbox(tmp(), { maxEvents: 100 });
    box.append(T, { n: 0 }, "e0");
    box.append(T, { n: 1 }, "e1");
    box.append(T, { n: 2 }, "e2");
    const pub = new RecordingPublisher();
    pub.refuse.add("e1");
    await box.drain(pub);
    expect(pub.sent.map((s) => JSON.parse(s.payload).n)).toEqual([0, 2]);
    expect(box.stats()).toMatchObject({ pending: 0, refused: 1, delivered: 2 });
    box.close();
  });

  test("persists across close and reopen, keeping order", () => {
    const path = tmp();
    let box = new Outbox(path, { maxEvents: 100 });
    const ids = [0, 1, 2].map((n) => box.append(T, { n }));
    box.close();
    box = new Outbox(path, { maxEvents: 100 });
    expect(box.peek().map((e) => e.eventId)).toEqual(ids);
    box.close();
  });

  test("survives kill -9 of a process that was appending: every committed event is there, in order", async () => {
    const path = tmp();
    const child = Bun.spawn([process.execPath, resolve(import.meta.dir, "fixtures/outbox-appender.ts"), path], { stdout: "pipe", stderr: "inherit" });
    const reader = child.stdout.getReader();
    let text = "";
    while ((text.match(/\n/g)?.length ?? 0) < 300) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    child.kill("SIGKILL");
    await child.exited;
    expect(child.signalCode).toBe("SIGKILL");
    const committed = text.split("\n").filter((l) => l !== "").map(Number);
    expect(committed.length).toBeGreaterThanOrEqual(300);
    const box = new Outbox(path, { maxEvents: 100000 });
    const stored = box.peek(1_000_000).map((e) => JSON.parse(e.payload).n as number);
    // every number the child reported committed is stored, in order, with no gaps and no repeats
    expect(stored.slice(0, committed.length)).toEqual(committed);
    expect(stored).toEqual(stored.map((_, i) => i));
    box.close();
  });
});
