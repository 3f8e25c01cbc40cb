/**
 * What the dashboard accepts from agents: each payload parsed and checked against the schemas
 * of deploy/asyncapi.yaml (the same document and validator the agent's contract tests use),
 * plus the limits a consumer needs that the contract leaves open (payload size, string
 * lengths), and the topic's agent id and reader slug matched against the payload's. Anything
 * else is refused with a reason and counted; nothing from a payload is ever interpreted as
 * markup (the page renders text only).
 */
import asyncapi from "../../deploy/asyncapi.yaml";
import { validate } from "../service/json-schema.ts";
import type { StatusPayload } from "../service/mqtt-link.ts";
import type { AgentEvent, MetricsPayload, ReaderHealth } from "../service/payloads.ts";
import { readerSlug, type FleetTopic } from "../service/topics.ts";

/** Largest payload taken per kind (bytes); an agent's real ones are far smaller. */
export const MAX_PAYLOAD_BYTES = { status: 16_384, health: 4_096, metrics: 262_144, events: 65_536 } as const;
/** Longest string anywhere in a payload (reader names, versions, step names). */
export const MAX_STRING = 256;
/** Most readers a birth may list. */
export const MAX_READERS = 64;

const SCHEMA_OF = { status: "Status", health: "ReaderHealth", metrics: "Metrics", events: "Event" } as const;

export type Accepted =
  | { kind: "status"; agentId: string; payload: StatusPayload }
  | { kind: "health"; agentId: string; payload: ReaderHealth }
  | { kind: "metrics"; agentId: string; payload: MetricsPayload }
  | { kind: "events"; agentId: string; payload: AgentEvent & { eventId: string } };

export class PayloadRejected extends Error {
  readonly reason: "too-large" | "not-json" | "schema" | "too-long" | "mismatch";
  constructor(reason: PayloadRejected["reason"], message: string) {
    super(message);
    this.name = "PayloadRejected";
    this.reason = reason;
  }
}

const doc = asyncapi as unknown;

/** Checks one message; throws PayloadRejected (its message never quotes the payload). */
export function acceptPayload(topic: FleetTopic, bytes: Uint8Array): Accepted {
  if (bytes.byteLength > MAX_PAYLOAD_BYTES[topic.kind]) throw new PayloadRejected("too-large", `${topic.kind} payload of ${bytes.byteLength} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new PayloadRejected("not-json", `${topic.kind} payload is not UTF-8 JSON`);
  }
  const long = longString(value, 0);
  if (long) throw new PayloadRejected("too-long", `${topic.kind} payload: ${long}`);
  const errors = validate({ $ref: `#/components/schemas/${SCHEMA_OF[topic.kind]}` }, value, doc);
  if (errors.length > 0) throw new PayloadRejected("schema", `${topic.kind} payload does not match the contract: ${errors.slice(0, 3).join("; ").slice(0, 300)}`);
  const v = value as { agentId: string; reader?: string; readers?: string[] };
  if (v.agentId !== topic.agentId) throw new PayloadRejected("mismatch", `${topic.kind} payload names another agent than its topic`);
  if (topic.kind === "health" && readerSlug(v.reader!) !== topic.readerSlug) throw new PayloadRejected("mismatch", "health payload's reader does not slug to its topic");
  if (topic.kind === "status" && (v.readers?.length ?? 0) > MAX_READERS) throw new PayloadRejected("too-long", `status lists more than ${MAX_READERS} readers`);
  return { kind: topic.kind, agentId: topic.agentId, payload: value } as Accepted;
}

/** The first string (or nesting) over the limits, described without quoting it. */
function longString(v: unknown, depth: number): string | undefined {
  if (depth > 8) return "nested too deep";
  if (typeof v === "string") return v.length > MAX_STRING ? `a string of ${v.length} characters (limit ${MAX_STRING})` : undefined;
  if (Array.isArray(v)) {
    for (const x of v) {
      const p = longString(x, depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  if (typeof v === "object" && v !== null) {
    for (const [k, x] of Object.entries(v)) {
      if (k.length > MAX_STRING) return "a key over the limit";
      const p = longString(x, depth + 1);
      if (p) return p;
    }
  }
  return undefined;
}
