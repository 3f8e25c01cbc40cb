/**
 * The README's consumer, checked: mosquitto_sub as the README runs it reads reader health and
 * metrics from a real Mosquitto, published by the agent's own builders (ReaderHealthTracker,
 * MetricsRegistry) over its MqttLink with the service's QoS and retain; then the inputs of
 * deploy/telegraf/mrtd-agent.conf are applied to those messages.
 *
 * Telegraf is not packaged in Debian 12, so it is not run: its mqtt_consumer topic matching and
 * topic_parsing, and its `json` data format (plugins/parsers/json: json_query, flattening with
 * "_", tag_keys and json_string_fields globs, json_name_key, json_time_key, fieldexclude), are
 * followed here for the options the configuration uses; any other option fails the test.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ReaderHealthTracker } from "../../agent/service/health.ts";
import { METRIC_CATALOG, MetricsRegistry } from "../../agent/service/metrics.ts";
import { MqttLink } from "../../agent/service/mqtt-link.ts";
import { agentTopics } from "../../agent/service/topics.ts";
import { startMosquitto, type Mosquitto } from "../support/mosquitto.ts";

const ROOT = resolve(import.meta.dir, "../..");
const conf = Bun.TOML.parse(readFileSync(resolve(ROOT, "deploy/telegraf/mrtd-agent.conf"), "utf8")) as { inputs: { mqtt_consumer: Input[] } };
const README = readFileSync(resolve(ROOT, "README.md"), "utf8");

interface Input {
  servers: string[];
  topics: string[];
  qos: number;
  client_id: string;
  tls_ca?: string;
  tls_cert?: string;
  tls_key?: string;
  topic_tag?: string;
  name_override?: string;
  data_format: string;
  json_query?: string;
  json_name_key?: string;
  tag_keys?: string[];
  json_string_fields?: string[];
  json_time_key?: string;
  json_time_format?: string;
  fieldexclude?: string[];
  topic_parsing?: Array<{ topic: string; tags: string }>;
}
interface Point {
  name: string;
  tags: Record<string, string>;
  fields: Record<string, number | string | boolean>;
  time?: string;
}

const OPTIONS = new Set(["servers", "topics", "qos", "client_id", "tls_ca", "tls_cert", "tls_key", "topic_tag", "name_override", "data_format", "json_query", "json_name_key", "tag_keys", "json_string_fields", "json_time_key", "json_time_format", "fieldexclude", "topic_parsing"]);
const RFC3339 = "2006-01-02T15:04:05Z07:00";

/** MQTT topic filter matching (+ one level, # the rest). */
function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

const glob = (pattern: string) => new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`);
const anyGlob = (patterns: string[] | undefined, name: string) => (patterns ?? []).some((p) => glob(p).test(name));

/** Telegraf's JSON flattener: nested keys joined with "_", array items by index; null dropped. */
function flatten(prefix: string, v: unknown, into: Record<string, number | string | boolean>): void {
  if (v === null) return;
  if (Array.isArray(v)) v.forEach((x, i) => flatten(prefix === "" ? String(i) : `${prefix}_${i}`, x, into));
  else if (typeof v === "object") for (const [k, x] of Object.entries(v)) flatten(prefix === "" ? k : `${prefix}_${k}`, x, into);
  else into[prefix] = v as number | string | boolean;
}

/** What one mqtt_consumer input makes of one message, or undefined when it does not subscribe to the topic. */
function consume(input: Input, topic: string, payload: string): Point[] | undefined {
  for (const k of Object.keys(input)) if (!OPTIONS.has(k)) throw new Error(`telegraf emulation: option ${k} not followed here`);
  if (!input.topics.some((f) => topicMatches(f, topic))) return undefined;
  if (input.data_format !== "json") throw new Error(`telegraf emulation: data_format ${input.data_format}`);
  let doc: unknown = JSON.parse(payload);
  if (input.json_query !== undefined) {
    if (!/^[A-Za-z0-9_]+$/.test(input.json_query)) throw new Error(`telegraf emulation: json_query ${input.json_query} is more than a key`);
    doc = (doc as Record<string, unknown>)[input.json_query];
    if (typeof doc !== "object" || doc === null) throw new Error(`query path must lead to a JSON object or array of objects`);
  }
  const objects = Array.isArray(doc) ? doc : [doc];
  return objects.map((o) => {
    const fields: Point["fields"] = {};
    flatten("", o, fields);
    const point: Point = { name: input.name_override ?? "mqtt_consumer", tags: {}, fields };
    if (input.json_name_key !== undefined) {
      point.name = String(fields[input.json_name_key]);
      delete fields[input.json_name_key];
    }
    if (input.json_time_key !== undefined) {
      if (input.json_time_format !== RFC3339) throw new Error(`telegraf emulation: json_time_format ${input.json_time_format}`);
      const t = fields[input.json_time_key];
      if (typeof t !== "string" || Number.isNaN(Date.parse(t))) throw new Error(`time: ${String(t)} does not parse`);
      point.time = new Date(t).toISOString();
      delete fields[input.json_time_key];
    }
    for (const [k, v] of Object.entries(fields)) {
      if (anyGlob(input.tag_keys, k)) {
        point.tags[k] = String(v);
        delete fields[k];
      } else if ((typeof v === "string" || typeof v === "boolean") && !anyGlob(input.json_string_fields, k)) delete fields[k];
      else if (anyGlob(input.fieldexclude, k)) delete fields[k];
    }
    if (input.topic_tag !== "") point.tags[input.topic_tag ?? "topic"] = topic;
    for (const tp of input.topic_parsing ?? []) {
      if (!topicMatches(tp.topic, topic)) continue;
      const levels = topic.split("/");
      const names = tp.tags.split("/");
      if (names.length !== levels.length) throw new Error(`topic_parsing ${tp.topic}: tags has ${names.length} levels, the topic ${levels.length}`);
      names.forEach((n, i) => n !== "_" && (point.tags[n] = levels[i]!));
    }
    return point;
  });
}

const AGENT = "gate-3-board-12";
const READER = "ACS ACR122U PICC Interface 00 00";
let broker: Mosquitto;
let link: MqttLink;
let lines: Array<{ topic: string; payload: string }> = [];

beforeAll(async () => {
  broker = await startMosquitto({ config: "plain" });
  const topics = agentTopics("mrtd/v1", AGENT);
  link = new MqttLink({ url: broker.url, clientId: AGENT, topics, version: "0.1.0", readers: () => [READER] });
  link.start();
  await link.waitConnected(5000);
  // Reader health, retained, as the service publishes it (service.ts #publishHealth).
  const h = new ReaderHealthTracker(READER);
  h.connected = true;
  h.recordRead(true, { recoveries: [{ step: "read DG2", cause: "RF_TIMEOUT", layer: "rf-link", action: "reconnect", apdus: 4, ms: 2900 }], apduMs: [12, 14, 30] });
  h.recordRead(false, { failureClass: "CARD_LOST", apduMs: [15] });
  await link.publish(topics.health(READER), JSON.stringify(h.snapshot(AGENT)), { qos: 1, retain: true, contentType: "application/json" });

  // The README's mosquitto_sub, on the test broker without TLS; it exits after 2 messages.
  const sub = Bun.spawn(["mosquitto_sub", "-h", "127.0.0.1", "-p", String(broker.port), "-V", "mqttv5", "-q", "1", "-v", "-t", "mrtd/v1/+/readers/+/health", "-t", "mrtd/v1/+/metrics", "-C", "2", "-W", "10"], { stdout: "pipe", stderr: "pipe" });
  await Bun.sleep(300); // subscribed (the retained health arrives first)
  const m = new MetricsRegistry();
  m.histogram("mrtd_read_duration_seconds", { outcome: "success" }, [1, 3]).observe(2.38);
  m.inc("mrtd_reads_total", { outcome: "success", trigger: "command" });
  m.inc("mrtd_apdu_status_total", { sw: "9000" }, 86);
  m.inc("mrtd_read_failures_total", { class: "CARD_LOST" });
  m.counterFrom("mrtd_outbox_delivered_total", () => 4);
  m.gauge("mrtd_outbox_pending", () => 0);
  m.gauge("mrtd_process_resident_bytes", () => 44490752);
  await link.publish(topics.metrics, JSON.stringify(m.snapshot(AGENT, 60, link.startedAt)), { qos: 0, contentType: "application/json" });
  const out = await new Response(sub.stdout).text();
  expect(await sub.exited).toBe(0);
  lines = out.trim().split("\n").map((l) => ({ topic: l.slice(0, l.indexOf(" ")), payload: l.slice(l.indexOf(" ") + 1) }));
});

afterAll(async () => {
  await link.stop({ publishOffline: false });
  await broker.stop();
});

describe("consuming the fleet's data (README, deploy/telegraf/mrtd-agent.conf)", () => {
  test("the README shows the mosquitto_sub and the Telegraf configuration tested here", () => {
    expect(README).toContain("## Consuming the fleet's data");
    expect(README).toContain("-t 'mrtd/v1/+/readers/+/health' -t 'mrtd/v1/+/metrics'");
    expect(README).toContain("deploy/telegraf/mrtd-agent.conf");
  });

  test("mosquitto_sub reads the retained health and the metrics", () => {
    expect(lines.map((l) => l.topic)).toEqual([agentTopics("mrtd/v1", AGENT).health(READER), `mrtd/v1/${AGENT}/metrics`]);
  });

  test("every input subscribes to a topic of the document and has its own client id", () => {
    const inputs = conf.inputs.mqtt_consumer;
    expect(inputs.length).toBe(4);
    expect(new Set(inputs.map((i) => i.client_id)).size).toBe(4);
    for (const i of inputs) {
      expect(i.client_id.startsWith("operator-")).toBe(true);
      expect(i.topics.every((t) => t === "mrtd/v1/+/readers/+/health" || t === "mrtd/v1/+/metrics")).toBe(true);
    }
  });

  test("reader health becomes one point per reader with its tags, numbers, booleans and time", () => {
    const [health] = lines;
    const points = conf.inputs.mqtt_consumer.flatMap((i) => consume(i, health!.topic, health!.payload) ?? []);
    expect(points).toHaveLength(1);
    const p = points[0]!;
    expect(p.name).toBe("mrtd_reader_health");
    expect(p.tags).toEqual({ agentId: AGENT, reader: READER });
    expect(p.time).toBe((JSON.parse(health!.payload) as { at: string }).at);
    expect(p.fields).toEqual({
      connected: true,
      cardPresent: false,
      lastFailureClass: "CARD_LOST",
      successRate_windowReads: 2,
      successRate_succeeded: 1,
      successRate_rate: 0.5,
      rfDrops: 1,
      recoveries: 1,
      apduLatencyMs_mean: 17.75,
      apduLatencyMs_p95: 30,
    });
  });

  test("metrics become one point per series: counters and gauges with their value, histograms with sum and count", () => {
    const metrics = lines[1]!;
    const points = conf.inputs.mqtt_consumer.flatMap((i) => consume(i, metrics.topic, metrics.payload) ?? []);
    const byName = (n: string) => points.filter((p) => p.name === n);
    expect(byName("mrtd_reads_total")).toEqual([{ name: "mrtd_reads_total", tags: { labels_outcome: "success", labels_trigger: "command", agent_id: AGENT }, fields: { value: 1 } }]);
    expect(byName("mrtd_apdu_status_total")[0]!.tags.labels_sw).toBe("9000");
    expect(byName("mrtd_read_failures_total")[0]!.tags.labels_class).toBe("CARD_LOST");
    expect(byName("mrtd_outbox_delivered_total")[0]!.fields).toEqual({ value: 4 });
    expect(byName("mrtd_process_resident_bytes")).toEqual([{ name: "mrtd_process_resident_bytes", tags: { agent_id: AGENT }, fields: { value: 44490752 } }]);
    expect(byName("mrtd_read_duration_seconds")).toEqual([{ name: "mrtd_read_duration_seconds", tags: { labels_outcome: "success", agent_id: AGENT }, fields: { sum: 2.38, count: 1 } }]);
    // every point is a catalogued metric: no measurement named after something else
    for (const p of points) expect(Object.keys(METRIC_CATALOG)).toContain(p.name);
    expect(points).toHaveLength(7);
  });
});
