/**
 * The two wire forms of the command request/response contract (deploy/asyncapi.yaml), in one
 * place for the agent (command-dispatcher.ts), the operator CLI (cli/remote-command.ts) and any
 * other requester (the dashboard). Imports no MQTT client: callers hand the results to theirs.
 *
 * MQTT 5 (OASIS MQTT 5.0 §4.10): the command's Response Topic, Correlation Data and Message
 * Expiry Interval properties route the replies; replies carry the Correlation Data property.
 * A `reply` object in an MQTT 5 command's payload is ignored: the properties win.
 *
 * MQTT 3.1.1 (no properties): the command payload carries
 *   "reply": { "topic": "<prefix>/<agent>/reply/<requester>",
 *              "correlation": "<base64 of 1-64 bytes>",
 *              "expiresAt": "<RFC 3339 UTC, e.g. 2026-12-04T22:00:00Z>" }
 * and every reply payload (progress, result, error) carries "correlation": "<the same base64>".
 * expiresAt is compared with the agent's clock: a requester whose clock runs ahead of the
 * agent's gets commands that live longer than it meant; behind, they expire early (EXPIRED).
 *
 * Both forms get the same bounds: the reply topic is exactly one of this agent's reply topics
 * (topics.ts requesterOf), the correlation is at most MAX_CORRELATION_BYTES, and an expiry
 * counts for at most MAX_COMMAND_EXPIRY_S (so no timer exceeds 2^31-1 ms).
 */
import type { CommandErrorBody } from "./command-types.ts";
import { COMMAND_ID } from "./command-validation.ts";
import type { MqttProtocol } from "./mqtt-protocol.ts";
import { agentTopics, type AgentTopics } from "./topics.ts";

export { MQTT_PROTOCOLS, protocolVersion, type MqttProtocol } from "./mqtt-protocol.ts";

/** Longest correlation (MQTT 5 Correlation Data, or the decoded 3.1.1 `correlation`), in bytes. */
export const MAX_CORRELATION_BYTES = 64;

/**
 * The longest expiry a command is honoured with (24 h): a larger one counts as this. A timer
 * cannot wait longer than 2^31-1 ms (24.8 days), and no command runs anywhere near a day.
 */
export const MAX_COMMAND_EXPIRY_S = 86_400;

/** The 3.1.1 form's routing object, as it travels in the command payload. */
export interface PayloadReply {
  topic: string;
  correlation: string;
  expiresAt: string;
}

/** Where the replies to one command go. */
export interface ReplyRoute {
  protocol: MqttProtocol;
  topic: string;
  /** Correlation bytes (optional in MQTT 5, required in 3.1.1). */
  correlation: Uint8Array | undefined;
  /** Epoch ms after which the requester no longer wants a reply, if any. */
  deadline: number | undefined;
}

/** A publish for any MQTT client: topic, payload, QoS and (MQTT 5 only) properties. */
export interface WirePublish {
  topic: string;
  payload: string;
  qos: 1;
  /** MQTT 5 properties in mqtt.js's names; absent in 3.1.1. */
  properties?: { responseTopic?: string; correlationData?: Buffer; messageExpiryInterval?: number; contentType: string };
}

/** What the agent does with a command message before looking at the command itself. */
export type CommandRouting =
  /** Replies go there; the command goes on to validation. */
  | { kind: "route"; route: ReplyRoute }
  /** Refused before validation with `error`, answered on `route` (3.1.1: a bad or past expiresAt); `id`: the command's, when it has a valid one. */
  | { kind: "refuse"; route: ReplyRoute; error: CommandErrorBody; id?: string }
  /** Nowhere to answer: the caller logs `reason` (never the sender's text) and counts it. */
  | { kind: "drop"; reason: string };

/** The parts of an incoming MQTT message routing needs (mqtt-link.ts IncomingMessage has them). */
export interface CommandMessage {
  payload: Uint8Array;
  responseTopic?: string | undefined;
  correlationData?: Uint8Array | undefined;
  /** Seconds left before the message expires, as forwarded by the broker (MQTT 5). */
  messageExpiryIntervalS?: number | undefined;
  /** Local clock (ms) at arrival. */
  receivedAt: number;
}

/**
 * Builds the publish of a command to `agentId` by requester `requester`, in `protocol`'s form.
 * `body` is the command's JSON body (id, command, fields) without any `reply`; `expirySeconds`
 * is how long the requester waits (1 s to MAX_COMMAND_EXPIRY_S; a longer wait is sent as that).
 */
export function buildCommandPublish(
  protocol: MqttProtocol,
  o: { prefix: string; agentId: string; command: string; requester: string; body: Record<string, unknown>; correlation: Uint8Array; expirySeconds: number; now?: number },
): WirePublish {
  if (o.correlation.length < 1 || o.correlation.length > MAX_CORRELATION_BYTES) throw new RangeError(`buildCommandPublish: correlation must be 1-${MAX_CORRELATION_BYTES} bytes, not ${o.correlation.length}`);
  if (!(o.expirySeconds > 0)) throw new RangeError("buildCommandPublish: expirySeconds must be positive");
  if (Object.hasOwn(o.body, "reply")) throw new RangeError("buildCommandPublish: body must not carry reply (it is built here)");
  const topics = agentTopics(o.prefix, o.agentId);
  const replyTopic = topics.reply(o.requester);
  const expiryS = Math.min(Math.ceil(o.expirySeconds), MAX_COMMAND_EXPIRY_S);
  if (protocol === "5") {
    return {
      topic: topics.cmd(o.command),
      payload: JSON.stringify(o.body),
      qos: 1,
      properties: { responseTopic: replyTopic, correlationData: Buffer.from(o.correlation), messageExpiryInterval: expiryS, contentType: "application/json" },
    };
  }
  const reply: PayloadReply = { topic: replyTopic, correlation: b64(o.correlation), expiresAt: new Date((o.now ?? Date.now()) + expiryS * 1000).toISOString() };
  return { topic: topics.cmd(o.command), payload: JSON.stringify({ ...o.body, reply }), qos: 1 };
}

/**
 * Reads where a command's replies go, from its properties (MQTT 5) or its payload's `reply`
 * (3.1.1), with the bounds above; `now` is the agent's clock (epoch ms). `maxPayloadBytes`:
 * a 3.1.1 payload larger than this is not even parsed for its `reply` (dropped).
 */
export function readCommandRouting(protocol: MqttProtocol, msg: CommandMessage, topics: AgentTopics, now: number, maxPayloadBytes = 32 * 1024): CommandRouting {
  if (protocol === "5") {
    if (!msg.responseTopic) return { kind: "drop", reason: "no response topic" };
    // Replies go only to <prefix>/<agent>/reply/<requester>: never to the agent's own status,
    // events or health (which the broker lets it write), another agent's topics, or a topic
    // the broker would drop the connection for.
    if (topics.requesterOf(msg.responseTopic) === undefined) return { kind: "drop", reason: "the response topic is not a reply topic of this agent" };
    if (msg.correlationData !== undefined && msg.correlationData.length > MAX_CORRELATION_BYTES) return { kind: "drop", reason: `correlation data longer than ${MAX_CORRELATION_BYTES} bytes` };
    const expiryS = msg.messageExpiryIntervalS !== undefined ? Math.min(msg.messageExpiryIntervalS, MAX_COMMAND_EXPIRY_S) : undefined;
    const deadline = expiryS !== undefined ? msg.receivedAt + expiryS * 1000 : undefined;
    return { kind: "route", route: { protocol, topic: msg.responseTopic, correlation: msg.correlationData, deadline } };
  }
  if (msg.payload.length > maxPayloadBytes) return { kind: "drop", reason: `payload larger than ${maxPayloadBytes} bytes` };
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(msg.payload));
  } catch {
    return { kind: "drop", reason: "payload is not UTF-8 JSON (no reply object to answer to)" };
  }
  if (typeof body !== "object" || body === null || Array.isArray(body) || !Object.hasOwn(body, "reply")) return { kind: "drop", reason: "no reply object in the payload (required with MQTT 3.1.1)" };
  const r = (body as Record<string, unknown>).reply;
  if (typeof r !== "object" || r === null || Array.isArray(r)) return { kind: "drop", reason: "reply is not an object" };
  const reply = r as Record<string, unknown>;
  if (typeof reply.topic !== "string" || topics.requesterOf(reply.topic) === undefined) return { kind: "drop", reason: "reply.topic is not a reply topic of this agent" };
  const correlation = typeof reply.correlation === "string" ? fromB64(reply.correlation) : undefined;
  if (correlation === undefined || correlation.length < 1 || correlation.length > MAX_CORRELATION_BYTES) return { kind: "drop", reason: `reply.correlation is not base64 of 1-${MAX_CORRELATION_BYTES} bytes` };
  const route: ReplyRoute = { protocol, topic: reply.topic, correlation, deadline: undefined };
  const rawId = (body as Record<string, unknown>).id;
  const refuse = (error: CommandErrorBody): CommandRouting => (typeof rawId === "string" && COMMAND_ID.test(rawId) ? { kind: "refuse", route, error, id: rawId } : { kind: "refuse", route, error });
  const extra = Object.keys(reply).find((k) => k !== "topic" && k !== "correlation" && k !== "expiresAt");
  if (extra !== undefined) return refuse({ code: "BAD_FIELD", message: `reply.${extra.slice(0, 64)} is not a field of reply (topic, correlation, expiresAt)` });
  if (reply.expiresAt === undefined) return refuse({ code: "MISSING_FIELD", message: "reply.expiresAt is missing (with MQTT 3.1.1 a command carries its own expiry)" });
  const expiresAt = typeof reply.expiresAt === "string" ? parseUtcTime(reply.expiresAt) : undefined;
  if (expiresAt === undefined) return refuse({ code: "BAD_FIELD", message: "reply.expiresAt must be an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SSZ)" });
  if (expiresAt <= now) return refuse({ code: "EXPIRED", message: "the request expired (reply.expiresAt is past by the agent's clock)" });
  route.deadline = Math.min(expiresAt, now + MAX_COMMAND_EXPIRY_S * 1000);
  return { kind: "route", route };
}

/**
 * The publish of one reply (`json`: a reply object's JSON text) on `route`: in 3.1.1 with
 * `"correlation"` added to the payload, in MQTT 5 with the Correlation Data property and a
 * Message Expiry Interval of the time left. Undefined when the route's deadline has passed
 * (the requester stopped waiting: a late reply would only clutter the broker).
 */
export function stampReply(route: ReplyRoute, json: string, now: number): WirePublish | undefined {
  let expiryS: number | undefined;
  if (route.deadline !== undefined) {
    const left = (route.deadline - now) / 1000;
    if (left <= 0) return undefined;
    expiryS = Math.max(1, Math.ceil(left));
  }
  if (route.protocol === "5") {
    const properties: NonNullable<WirePublish["properties"]> = { contentType: "application/json" };
    if (route.correlation) properties.correlationData = Buffer.from(route.correlation);
    if (expiryS !== undefined) properties.messageExpiryInterval = expiryS;
    return { topic: route.topic, payload: json, qos: 1, properties };
  }
  if (!json.startsWith("{") || !route.correlation) throw new RangeError("stampReply: a 3.1.1 reply needs a JSON object and a correlation");
  // First member: the reply's own fields stay as built (a cached reply is stamped as it is).
  const rest = json.slice(1).trimStart();
  const payload = `{"correlation":${JSON.stringify(b64(route.correlation))}${rest.startsWith("}") ? "" : ","}${rest}`;
  return { topic: route.topic, payload, qos: 1 };
}

/**
 * A requester's view of one reply: its correlation bytes, from the Correlation Data property
 * (MQTT 5) or the payload's `correlation` (3.1.1), or undefined when it has none.
 */
export function replyCorrelation(protocol: MqttProtocol, reply: { json: unknown; correlationData?: Uint8Array | undefined }): Uint8Array | undefined {
  if (protocol === "5") return reply.correlationData;
  const j = reply.json;
  if (typeof j !== "object" || j === null) return undefined;
  const c = (j as Record<string, unknown>).correlation;
  return typeof c === "string" ? fromB64(c) : undefined;
}

/** Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (RFC 3339, UTC only) to epoch ms; undefined if invalid. */
export function parseUtcTime(text: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?Z$/.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, s, m[7] ? Math.floor(Number(m[7]) * 1000) : 0);
  // Date.UTC rolls over (Feb 30 -> Mar 2): refuse what does not come back as given.
  const back = new Date(ms);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || back.getUTCHours() !== h || back.getUTCMinutes() !== mi || back.getUTCSeconds() !== s) return undefined;
  return ms;
}

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64");
}

/** Canonical base64 (padding included) to bytes, or undefined. */
function fromB64(text: string): Uint8Array | undefined {
  if (text.length > 4 * Math.ceil(MAX_CORRELATION_BYTES / 3) + 4 || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) return undefined;
  const bytes = new Uint8Array(Buffer.from(text, "base64"));
  return b64(bytes) === text ? bytes : undefined;
}
