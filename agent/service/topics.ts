/**
 * The one place MQTT topic names are built (documented in deploy/asyncapi.yaml; the broker
 * ACL in deploy/mosquitto/acl relies on the same layout):
 *
 *   <prefix>/<agent>/status                    retained online/offline (birth and will)
 *   <prefix>/<agent>/readers/<reader>/health   retained reader health
 *   <prefix>/<agent>/metrics                   periodic metrics
 *   <prefix>/<agent>/events                    QoS 1 events (from the outbox)
 *   <prefix>/<agent>/cmd/<command>             requests to this agent (MQTT 5 request/response)
 *   <prefix>/<agent>/reply/<requester>         the only topics replies go to: the
 *                                              requester id is one level of REQUESTER_TEXT
 *
 * Every topic the agent builds or accepts is at most MAX_TOPIC_BYTES bytes and MAX_TOPIC_LEVELS
 * levels: a longer prefix is a config error, a longer incoming topic is ignored.
 *
 * Reader names come from PC/SC ("ACS ACR122U PICC Interface 00 00") and are slugged so a
 * topic level never holds `/`, `+`, `#` or spaces (readerSlug).
 */
import { hex } from "../bytes.ts";
import { sha256 } from "../crypto/hash.ts";
import { agentIdProblem, topicPrefixProblem } from "./config.ts";

export interface AgentTopics {
  readonly prefix: string;
  readonly agentId: string;
  /** `<prefix>/<agent>` */
  readonly base: string;
  readonly status: string;
  readonly metrics: string;
  readonly events: string;
  /** Subscription filter for every command of this agent. */
  readonly cmdFilter: string;
  /** Subscription filter for every reader health topic of this agent. */
  readonly healthFilter: string;
  health(readerName: string): string;
  cmd(command: string): string;
  /** A response topic a requester named `requester` may use (the ACL lets agents write only there). */
  reply(requester: string): string;
  /** The command name of a topic under this agent's cmd/, or undefined. */
  commandOf(topic: string): string | undefined;
  /** The requester id when `topic` is exactly `<base>/reply/<requester>` with a valid id, else undefined. */
  requesterOf(topic: string): string | undefined;
}

const LEVEL = /^[A-Za-z0-9._-]{1,64}$/;
/** Longest topic the agent builds or accepts, in UTF-8 bytes (the longest it builds: prefix + 64-byte agent id + a 64-byte reader slug + 16). */
export const MAX_TOPIC_BYTES = 512;
/** Most levels in a topic the agent builds or accepts (prefix levels + agent + at most 3). */
export const MAX_TOPIC_LEVELS = 16;
/** What a requester id (the last level of a reply topic) may be. */
export const REQUESTER_TEXT = "1-64 of A-Z a-z 0-9 . _ -";

/** Why `topic` is out of bounds (too long, too many levels), or undefined. */
export function topicBoundsProblem(topic: string): string | undefined {
  const bytes = Buffer.byteLength(topic);
  if (bytes > MAX_TOPIC_BYTES) return `is ${bytes} bytes; at most ${MAX_TOPIC_BYTES}`;
  let levels = 1;
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 0x2f) levels++;
  if (levels > MAX_TOPIC_LEVELS) return `has ${levels} levels; at most ${MAX_TOPIC_LEVELS}`;
  return undefined;
}

export function agentTopics(prefix: string, agentId: string): AgentTopics {
  const problem = topicPrefixProblem(prefix);
  if (problem) throw new RangeError(`agentTopics: prefix ${problem}`);
  const idProblem = agentIdProblem(agentId);
  if (idProblem) throw new RangeError(`agentTopics: agentId ${idProblem}`);
  const base = `${prefix}/${agentId}`;
  // The longest topic built: readers/<64-byte slug>/health.
  const longest = topicBoundsProblem(`${base}/readers/${"x".repeat(64)}/health`);
  if (longest) throw new RangeError(`agentTopics: prefix too long: a health topic ${longest}`);
  const cmdBase = `${base}/cmd/`;
  const replyBase = `${base}/reply/`;
  return {
    prefix,
    agentId,
    base,
    status: `${base}/status`,
    metrics: `${base}/metrics`,
    events: `${base}/events`,
    cmdFilter: `${cmdBase}+`,
    healthFilter: `${base}/readers/+/health`,
    health: (readerName) => `${base}/readers/${readerSlug(readerName)}/health`,
    cmd: (command) => {
      if (!LEVEL.test(command)) throw new RangeError("agentTopics.cmd: command must be one safe topic level");
      return cmdBase + command;
    },
    reply: (requester) => {
      if (!LEVEL.test(requester)) throw new RangeError("agentTopics.reply: requester must be one safe topic level");
      return replyBase + requester;
    },
    commandOf: (topic) => {
      if (!topic.startsWith(cmdBase) || topicBoundsProblem(topic)) return undefined;
      const rest = topic.slice(cmdBase.length);
      return rest !== "" && !rest.includes("/") ? rest : undefined;
    },
    requesterOf: (topic) => {
      if (topic.length > replyBase.length + 64 || !topic.startsWith(replyBase)) return undefined;
      const requester = topic.slice(replyBase.length);
      return LEVEL.test(requester) ? requester : undefined;
    },
  };
}

/** Hex digits of the name's hash that end every reader slug. */
export const READER_SLUG_HASH_DIGITS = 8;
const READABLE_MAX = 64 - 1 - READER_SLUG_HASH_DIGITS;

/**
 * A reader name as one topic level: a readable part, "-", and the first 8 hex digits of the
 * SHA-256 of the exact name (UTF-8). The readable part is the name lower-cased, accents
 * dropped, runs of anything but a-z 0-9 . _ - made one "-", trimmed of "-" and ".", at most 55
 * characters ("reader" when nothing is left). Slugging alone loses case, punctuation and
 * everything past 55 characters, so two PC/SC names could slug alike ("ACS ACR122U 00 00" and
 * "ACS-ACR122U 00 00"); the hash of the exact name keeps their topics apart. The exact name is
 * in every health payload's `reader`.
 */
export function readerSlug(name: string): string {
  const readable = name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "") // drop combining accents: "Ü" -> "U"
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[-.]+|[-.]+$/g, "")
    .slice(0, READABLE_MAX)
    .replace(/[-.]+$/, "");
  const digest = hex(sha256(new TextEncoder().encode(name))).slice(0, READER_SLUG_HASH_DIGITS).toLowerCase();
  return `${readable || "reader"}-${digest}`;
}

/**
 * True when `topic` is a valid MQTT topic name to publish to (no wildcards, not $-reserved,
 * within MAX_TOPIC_BYTES and MAX_TOPIC_LEVELS: far above any topic of the layout, far below
 * what makes a broker drop the connection; Mosquitto 2.0 refuses more than 200 levels with a
 * protocol error, which costs the agent its connection and publishes its will).
 */
export function isPublishableTopic(topic: string): boolean {
  return topic.length > 0 && topicBoundsProblem(topic) === undefined && !/[+#\u0000]/.test(topic) && !topic.startsWith("$");
}

/** What a consumer of the whole fleet (the dashboard) subscribes to, under one prefix. */
export function fleetFilters(prefix: string): { status: string; health: string; metrics: string; events: string } {
  const problem = topicPrefixProblem(prefix);
  if (problem) throw new RangeError(`fleetFilters: prefix ${problem}`);
  return { status: `${prefix}/+/status`, health: `${prefix}/+/readers/+/health`, metrics: `${prefix}/+/metrics`, events: `${prefix}/+/events` };
}

export type FleetTopic =
  | { kind: "status" | "metrics" | "events"; agentId: string }
  | { kind: "health"; agentId: string; readerSlug: string };

/**
 * The agent and kind of a topic the agent publishes on (the inverse of agentTopics for status,
 * health, metrics and events), or undefined for anything else, including an agent id that
 * breaks the agent id rule.
 */
export function parseFleetTopic(prefix: string, topic: string): FleetTopic | undefined {
  if (!topic.startsWith(prefix + "/")) return undefined;
  const levels = topic.slice(prefix.length + 1).split("/");
  const agentId = levels[0]!;
  if (agentIdProblem(agentId)) return undefined;
  if (levels.length === 2 && (levels[1] === "status" || levels[1] === "metrics" || levels[1] === "events")) return { kind: levels[1], agentId };
  if (levels.length === 4 && levels[1] === "readers" && levels[3] === "health" && LEVEL.test(levels[2]!)) return { kind: "health", agentId, readerSlug: levels[2]! };
  return undefined;
}
