/**
 * What the dashboard accepts: payloads the agent's own builders make pass; hostile ones (wrong
 * types, huge strings, markup in names, another agent's id, a reader that does not slug to
 * its topic, bad JSON) are refused with a reason that never quotes the payload.
 */
import { describe, expect, test } from "bun:test";
import { acceptPayload, MAX_STRING, PayloadRejected } from "../../agent/dashboard/contract.ts";
import { ReaderHealthTracker } from "../../agent/service/health.ts";
import { APDU_BUCKETS_S, MetricsRegistry } from "../../agent/service/metrics.ts";
import { readerEvent } from "../../agent/service/payloads.ts";
import { parseFleetTopic, readerSlug } from "../../agent/service/topics.ts";

const enc = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
const AGENT = "kiosk-7";
const READER = "ACS ACR122U PICC Interface 00 00";
const healthTopic = (reader: string) => parseFleetTopic("mrtd/v1", `mrtd/v1/${AGENT}/readers/${readerSlug(reader)}/health`)!;

function health(reader = READER) {
  const t = new ReaderHealthTracker(reader);
  t.recordRead(true, { apduMs: [5, 7] });
  return t.snapshot(AGENT);
}

function rejected(f: () => unknown): PayloadRejected {
  try {
    f();
  } catch (e) {
    if (e instanceof PayloadRejected) return e;
    throw e;
  }
  throw new Error("accepted");
}

describe("parseFleetTopic", () => {
  test("status, metrics, events and health topics; anything else is not the fleet's", () => {
    expect(parseFleetTopic("mrtd/v1", "mrtd/v1/a1/status")).toEqual({ kind: "status", agentId: "a1" });
    expect(parseFleetTopic("mrtd/v1", "mrtd/v1/a1/readers/x-12345678/health")).toEqual({ kind: "health", agentId: "a1", readerSlug: "x-12345678" });
    expect(parseFleetTopic("mrtd/v1", "mrtd/v1/a1/cmd/read")).toBeUndefined();
    expect(parseFleetTopic("mrtd/v1", "mrtd/v1/operator-x/status")).toBeUndefined();
    expect(parseFleetTopic("mrtd/v1", "other/a1/status")).toBeUndefined();
  });
});

describe("acceptPayload", () => {
  test("accepts what the agent's builders make", () => {
    expect(acceptPayload(healthTopic(READER), enc(health())).kind).toBe("health");
    const m = new MetricsRegistry();
    m.histogram("mrtd_apdu_duration_seconds", { command: "select" }, APDU_BUCKETS_S).observe(0.004);
    m.inc("mrtd_read_failures_total", { class: "RF_TIMEOUT" });
    expect(acceptPayload({ kind: "metrics", agentId: AGENT }, enc(m.snapshot(AGENT, 60, new Date().toISOString()))).kind).toBe("metrics");
    expect(acceptPayload({ kind: "events", agentId: AGENT }, enc({ ...readerEvent(AGENT, READER, "attached"), eventId: "e1" })).kind).toBe("events");
    const birth = { state: "online", agentId: AGENT, version: "0.1.0", readers: [READER], startedAt: new Date().toISOString(), connectedAt: new Date().toISOString() };
    expect(acceptPayload({ kind: "status", agentId: AGENT }, enc(birth)).kind).toBe("status");
  });

  test("markup in a reader name is accepted as text (the page renders it as text)", () => {
    const name = '<img src=x onerror="alert(1)"><script>alert(2)</script>';
    const a = acceptPayload(healthTopic(name), enc(health(name)));
    expect(a.kind === "health" && a.payload.reader).toBe(name);
  });

  test("wrong types are refused by the contract's schema", () => {
    const h = { ...health(), rfDrops: "many" };
    const e = rejected(() => acceptPayload(healthTopic(READER), enc(h)));
    expect(e.reason).toBe("schema");
    expect(e.message).toContain("rfDrops");
    expect(rejected(() => acceptPayload(healthTopic(READER), enc({ ...health(), successRate: { windowReads: 5, succeeded: 9, rate: 7 } }))).reason).toBe("schema");
    expect(rejected(() => acceptPayload(healthTopic(READER), enc({ ...health(), extra: 1 }))).reason).toBe("schema");
  });

  test("huge strings and payloads are refused without quoting them", () => {
    const long = "A".repeat(MAX_STRING + 1);
    const e = rejected(() => acceptPayload({ kind: "status", agentId: AGENT }, enc({ state: "online", agentId: AGENT, version: long, readers: [], startedAt: "2026-01-01T00:00:00Z", connectedAt: "2026-01-01T00:00:00Z" })));
    expect(e.reason).toBe("too-long");
    expect(e.message).not.toContain("AAAA");
    expect(rejected(() => acceptPayload(healthTopic(READER), enc("x".repeat(10_000)))).reason).toBe("too-large");
  });

  test("not JSON, another agent's id, a reader that is not the topic's", () => {
    expect(rejected(() => acceptPayload(healthTopic(READER), enc("{not json"))).reason).toBe("not-json");
    expect(rejected(() => acceptPayload(healthTopic(READER), new Uint8Array([0xff, 0xfe]))).reason).toBe("not-json");
    expect(rejected(() => acceptPayload(healthTopic(READER), enc({ ...health(), agentId: "kiosk-8" }))).reason).toBe("mismatch");
    expect(rejected(() => acceptPayload(healthTopic("Other reader"), enc(health()))).reason).toBe("mismatch");
  });
});
