/**
 * The agent's TOML configuration (deploy/config.example.toml is the commented reference):
 * parsed with Bun's TOML parser, checked key by key at start, with a ConfigError naming
 * the file, the key and the problem. Unknown keys are refused (with a did-you-mean) so a
 * typo never silently falls back to a default. Secrets (broker password, test bench access
 * key) come from files or the environment, are held in a {@link Secret} that prints as
 * "[redacted]", and are never part of an error message.
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { x25519PublicKeyProblem } from "./x25519-public-key.ts";
import { MQTT_PROTOCOLS, type MqttProtocol } from "./mqtt-protocol.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

export const DEFAULT_CONFIG_FILE = "/etc/mrtd-agent/config.toml";

/** Documented defaults (deploy/config.example.toml repeats them; a test keeps the two in step). */
export const DEFAULTS = {
  agent: { stateDir: "/var/lib/mrtd-agent", logLevel: "info" as LogLevel, keyFileName: "agent-hpke.key", strictKeyPermissions: true },
  mqtt: {
    url: "mqtts://localhost:8883",
    protocol: "5" as MqttProtocol,
    sessionExpiryS: 3600,
    statusRefreshS: 300,
    prefix: "mrtd/v1",
    keepaliveS: 30,
    reconnectMinMs: 1000,
    reconnectMaxMs: 60000,
    connectTimeoutMs: 10000,
  },
  telemetry: { healthIntervalS: 60, metricsIntervalS: 60, includePersonalData: false },
  readers: { include: [] as string[], exclude: [] as string[], readOnInsert: false, disconnect: "reset" as "reset" | "leave" },
  outbox: { maxEvents: 10000, fileName: "outbox.sqlite" },
  verification: { trust: [] as string[], masterListAnchors: [] as string[], activeAuthentication: true },
  memory: { trimExecutablePages: true, jitThresholdScale: 1000 },
  commands: { allowPlaintextAccessKey: false },
} as const;

/** A secret value: shows as "[redacted]" when logged, stringified or inspected. */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return "[redacted]";
  }
  toJSON(): string {
    return "[redacted]";
  }
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return "[redacted]";
  }
}

export interface AgentConfig {
  /** The file the configuration came from (for messages). */
  file: string;
  /**
   * keyFile: the agent's long-term X25519 private key (HPKE), created on first start when absent.
   * strictKeyPermissions: private files (mqtt.client_key, mqtt.password_file,
   * readers.test_key_file, agent.key_file) that group or others may access are refused, as ssh does.
   */
  agent: { id: string; stateDir: string; logLevel: LogLevel; keyFile: string; strictKeyPermissions: boolean };
  /**
   * urls: the brokers, tried in rotation (mqtt.url or mqtt.urls); url: the first of them.
   * sessionExpiryS: how long the broker keeps the session after a disconnect; 0: clean sessions.
   * statusRefreshS: how often the retained birth is published again while connected; 0: never.
   */
  mqtt: {
    url: string;
    urls: string[];
    protocol: MqttProtocol;
    sessionExpiryS: number;
    statusRefreshS: number;
    prefix: string;
    ca?: string;
    clientCert?: string;
    clientKey?: string;
    username?: string;
    password?: Secret;
    /** Where the password came from, when from a file (checked as a private file). */
    passwordFile?: string;
    keepaliveS: number;
    reconnectMinMs: number;
    reconnectMaxMs: number;
    connectTimeoutMs: number;
  };
  telemetry: {
    healthIntervalS: number;
    metricsIntervalS: number;
    /** Read events carry the MRZ fields (and DG11/DG12), sealed to personalDataPublicKey. */
    includePersonalData: boolean;
    /** X25519 public key (32 bytes, base64) the personal data in events is sealed to. */
    personalDataPublicKey?: string;
  };
  /** `disconnect`: how a card is left after a read or diagnosis ("reset" ends the chip's session; "leave" keeps it). */
  readers: { include: string[]; exclude: string[]; readOnInsert: boolean; testKeyFile?: string; disconnect: "reset" | "leave" };
  outbox: { maxEvents: number; path: string };
  /**
   * Trust sources for Passive Authentication (CSCA certificates, master lists, CRLs), the CSCAs
   * trusted to vouch for master lists, and whether reads run Active Authentication.
   */
  verification: { trust: string[]; masterListAnchors: string[]; activeAuthentication: boolean };
  /**
   * Memory settings for small boards: release the executable's start-up pages
   * (memory-trim.ts), and JavaScriptCore's JIT tier-up thresholds times jitThresholdScale
   * (1 = its normal policy).
   */
  memory: { trimExecutablePages: boolean; jitThresholdScale: number };
  /** allowPlaintextAccessKey: a test bench may send `accessKey` in clear; default refused (PLAINTEXT_ACCESS_KEY). */
  commands: { allowPlaintextAccessKey: boolean };
}

type Kind = "string" | "integer" | "boolean" | "string[]";
interface KeySpec {
  kind: Kind;
  min?: number;
  max?: number;
  oneOf?: readonly string[];
  pattern?: RegExp;
  patternText?: string;
}

/** Every accepted key, by section. TOML names are snake_case. */
const SCHEMA: Record<string, Record<string, KeySpec>> = {
  agent: {
    id: { kind: "string" }, // checked by agentIdProblem
    state_dir: { kind: "string" },
    log_level: { kind: "string", oneOf: LOG_LEVELS },
    key_file: { kind: "string" },
    strict_key_permissions: { kind: "boolean" },
  },
  mqtt: {
    url: { kind: "string" },
    urls: { kind: "string[]" },
    protocol: { kind: "string", oneOf: MQTT_PROTOCOLS },
    session_expiry_s: { kind: "integer", min: 0, max: 4294967295 },
    status_refresh_s: { kind: "integer", min: 0, max: 86400 },
    prefix: { kind: "string" },
    ca: { kind: "string" },
    client_cert: { kind: "string" },
    client_key: { kind: "string" },
    username: { kind: "string" },
    password_file: { kind: "string" },
    password_env: { kind: "string", pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, patternText: "an environment variable name" },
    keepalive_s: { kind: "integer", min: 5, max: 65535 },
    reconnect_min_ms: { kind: "integer", min: 10, max: 600000 },
    reconnect_max_ms: { kind: "integer", min: 10, max: 3600000 },
    connect_timeout_ms: { kind: "integer", min: 100, max: 600000 },
  },
  telemetry: {
    health_interval_s: { kind: "integer", min: 1, max: 86400 },
    metrics_interval_s: { kind: "integer", min: 1, max: 86400 },
    include_personal_data: { kind: "boolean" },
    personal_data_public_key: { kind: "string", pattern: /^[A-Za-z0-9+/]{43}=$/, patternText: "an X25519 public key: 32 bytes in base64 (44 characters), as `mrtd-agent remote keygen` prints" },
  },
  readers: {
    include: { kind: "string[]" },
    exclude: { kind: "string[]" },
    read_on_insert: { kind: "boolean" },
    test_key_file: { kind: "string" },
    disconnect: { kind: "string", oneOf: ["reset", "leave"] },
  },
  outbox: {
    max_events: { kind: "integer", min: 1, max: 10_000_000 },
    path: { kind: "string" },
  },
  verification: {
    trust: { kind: "string[]" },
    master_list_anchors: { kind: "string[]" },
    active_authentication: { kind: "boolean" },
  },
  memory: {
    trim_executable_pages: { kind: "boolean" },
    jit_threshold_scale: { kind: "integer", min: 1, max: 100000 },
  },
  commands: {
    allow_plaintext_access_key: { kind: "boolean" },
  },
};

/** Keys that look like inline secrets: refused with a pointer to the file/env form. */
const INLINE_SECRETS: Record<string, string> = {
  "mqtt.password": "put the password in a file (mqtt.password_file) or an environment variable (mqtt.password_env)",
  "readers.test_key": "put the access key in a file and name it in readers.test_key_file",
};

/** Most broker URLs in mqtt.urls. */
export const MAX_BROKER_URLS = 16;

/** Reads and validates a config file. `env` supplies password_env lookups. */
export function loadConfig(file: string, env: Record<string, string | undefined> = process.env): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`${file}: cannot read the configuration file (${(e as NodeJS.ErrnoException).code ?? "error"})`, { file });
  }
  return parseConfig(text, file, env);
}

/** Validates configuration text; `file` is only used in messages and to resolve nothing else. */
export function parseConfig(text: string, file: string, env: Record<string, string | undefined> = process.env): AgentConfig {
  let doc: unknown;
  try {
    doc = Bun.TOML.parse(text);
  } catch (e) {
    // Bun's message quotes the offending token (which could be part of a secret typed inline):
    // keep the problem, drop the token, and locate the line ourselves (Bun reports no position).
    const problem = (e instanceof Error ? e.message : "").replace(/^TOML Parse error:\s*/, "").replace(/'[^']*'|"[^"]*"/g, "a token");
    throw new ConfigError(`${file}: not valid TOML at line ${tomlErrorLine(text)}${problem ? ` (${problem})` : ""}`, { file });
  }
  const root = doc as Record<string, unknown>;
  const fail = (key: string, problem: string): never => {
    throw new ConfigError(`${file}: ${key}: ${problem}`, { file, key });
  };

  const values: Record<string, Record<string, unknown>> = {};
  for (const [section, body] of Object.entries(root)) {
    // Own properties only, here and below: a section or key named `constructor` or `toString`
    // must not find Object.prototype's.
    const spec = own(SCHEMA, section);
    if (!spec) fail(section, `unknown section${didYouMean(section, Object.keys(SCHEMA))}`);
    if (typeof body !== "object" || body === null || Array.isArray(body)) fail(section, "must be a table ([" + section + "])");
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
      const full = `${section}.${key}`;
      const inline = own(INLINE_SECRETS, full);
      if (inline) fail(full, `secrets are not accepted inline: ${inline}`);
      const ks = own(spec!, key);
      if (!ks) fail(full, `unknown key${didYouMean(key, Object.keys(spec!), section + ".")}`);
      out[key] = checkValue(full, value, ks!, fail);
    }
    values[section] = out;
  }
  const get = <T>(section: string, key: string): T | undefined => {
    const s = own(values, section);
    return s === undefined ? undefined : (own(s, key) as T | undefined);
  };

  const givenId = get<string>("agent", "id");
  const agentId = givenId ?? sanitizeHostname(hostname());
  const idProblem = agentIdProblem(agentId);
  if (idProblem) fail("agent.id", givenId === undefined ? `the host name does not make a valid agent id; set agent.id (${AGENT_ID_RULE})` : idProblem);
  const stateDir = get<string>("agent", "state_dir") ?? DEFAULTS.agent.stateDir;

  const givenUrl = get<string>("mqtt", "url");
  const givenUrls = get<string[]>("mqtt", "urls");
  if (givenUrl !== undefined && givenUrls !== undefined) fail("mqtt.urls", "give mqtt.url (one broker) or mqtt.urls (several), not both");
  if (givenUrls !== undefined && (givenUrls.length === 0 || givenUrls.length > MAX_BROKER_URLS)) fail("mqtt.urls", `must list 1-${MAX_BROKER_URLS} broker URLs`);
  const urls = givenUrls ?? [givenUrl ?? DEFAULTS.mqtt.url];
  const parsedUrls = urls.map((u, i) => {
    const key = givenUrls !== undefined ? `mqtt.urls[${i}]` : "mqtt.url";
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      return fail(key, "not a URL (expected mqtts://host:8883 or mqtt://host:1883)");
    }
    if (parsed.protocol !== "mqtts:" && parsed.protocol !== "mqtt:") fail(key, `scheme must be mqtts or mqtt, not ${parsed.protocol.replace(/:$/, "")}`);
    if (parsed.username || parsed.password) fail(key, "must not carry credentials; use mqtt.username and mqtt.password_file");
    if (!parsed.hostname) fail(key, "has no host");
    if (urls.indexOf(u) !== i) fail(key, "repeats an earlier URL");
    return { key, parsed };
  });
  const url = urls[0]!;
  const prefix = get<string>("mqtt", "prefix") ?? DEFAULTS.mqtt.prefix;
  const prefixProblem = topicPrefixProblem(prefix);
  if (prefixProblem) fail("mqtt.prefix", prefixProblem);

  const ca = get<string>("mqtt", "ca");
  const clientCert = get<string>("mqtt", "client_cert");
  const clientKey = get<string>("mqtt", "client_key");
  if ((clientCert === undefined) !== (clientKey === undefined)) {
    fail(clientCert === undefined ? "mqtt.client_cert" : "mqtt.client_key", "client_cert and client_key must be given together");
  }
  for (const { key, parsed } of parsedUrls) if ((clientCert || ca) && parsed.protocol !== "mqtts:") fail(key, "TLS files are configured, so the URL must use mqtts://");

  const username = get<string>("mqtt", "username");
  const passwordFile = get<string>("mqtt", "password_file");
  const passwordEnv = get<string>("mqtt", "password_env");
  if (passwordFile !== undefined && passwordEnv !== undefined) fail("mqtt.password_env", "give either password_file or password_env, not both");
  let password: Secret | undefined;
  if (passwordFile !== undefined) {
    if (username === undefined) fail("mqtt.username", "required when a password is configured");
    let raw: string;
    try {
      raw = readFileSync(passwordFile, "utf8");
    } catch (e) {
      return fail("mqtt.password_file", `cannot read ${passwordFile} (${(e as NodeJS.ErrnoException).code ?? "error"})`);
    }
    password = new Secret(raw.replace(/\r?\n$/, ""));
  } else if (passwordEnv !== undefined) {
    if (username === undefined) fail("mqtt.username", "required when a password is configured");
    const raw = env[passwordEnv];
    if (raw === undefined || raw === "") fail("mqtt.password_env", `environment variable ${passwordEnv} is not set`);
    password = new Secret(raw!);
  }
  for (const { key, parsed } of parsedUrls) {
    if (parsed.protocol === "mqtt:" && password !== undefined) {
      // A password over plain TCP is readable by anyone on the path.
      const host = parsed.hostname;
      if (host !== "127.0.0.1" && host !== "localhost" && host !== "[::1]") fail(key, "a password is configured: use mqtts:// (plain mqtt:// only to loopback)");
    }
  }
  const reconnectMinMs = get<number>("mqtt", "reconnect_min_ms") ?? DEFAULTS.mqtt.reconnectMinMs;
  const reconnectMaxMs = get<number>("mqtt", "reconnect_max_ms") ?? DEFAULTS.mqtt.reconnectMaxMs;
  if (reconnectMaxMs < reconnectMinMs) fail("mqtt.reconnect_max_ms", `must be at least reconnect_min_ms (${reconnectMinMs})`);

  const includePersonalData = get<boolean>("telemetry", "include_personal_data") ?? DEFAULTS.telemetry.includePersonalData;
  const personalDataKeyText = get<string>("telemetry", "personal_data_public_key");
  if (includePersonalData && personalDataKeyText === undefined) {
    fail("telemetry.personal_data_public_key", "required when include_personal_data = true: events carry personal data only sealed to this X25519 public key");
  }
  const telemetry: AgentConfig["telemetry"] = {
    healthIntervalS: get<number>("telemetry", "health_interval_s") ?? DEFAULTS.telemetry.healthIntervalS,
    metricsIntervalS: get<number>("telemetry", "metrics_interval_s") ?? DEFAULTS.telemetry.metricsIntervalS,
    includePersonalData,
  };
  if (personalDataKeyText !== undefined) {
    const problem = x25519PublicKeyProblem(new Uint8Array(Buffer.from(personalDataKeyText, "base64")));
    if (problem) fail("telemetry.personal_data_public_key", `not a usable X25519 public key: it ${problem}`);
    telemetry.personalDataPublicKey = personalDataKeyText;
  }

  const readOnInsert = get<boolean>("readers", "read_on_insert") ?? DEFAULTS.readers.readOnInsert;
  const testKeyFile = get<string>("readers", "test_key_file");
  if (readOnInsert && testKeyFile === undefined) fail("readers.test_key_file", "required when readers.read_on_insert = true");

  const mqtt: AgentConfig["mqtt"] = {
    url,
    urls,
    protocol: get<MqttProtocol>("mqtt", "protocol") ?? DEFAULTS.mqtt.protocol,
    sessionExpiryS: get<number>("mqtt", "session_expiry_s") ?? DEFAULTS.mqtt.sessionExpiryS,
    statusRefreshS: get<number>("mqtt", "status_refresh_s") ?? DEFAULTS.mqtt.statusRefreshS,
    prefix,
    keepaliveS: get<number>("mqtt", "keepalive_s") ?? DEFAULTS.mqtt.keepaliveS,
    reconnectMinMs,
    reconnectMaxMs,
    connectTimeoutMs: get<number>("mqtt", "connect_timeout_ms") ?? DEFAULTS.mqtt.connectTimeoutMs,
  };
  if (ca !== undefined) mqtt.ca = ca;
  if (clientCert !== undefined) mqtt.clientCert = clientCert;
  if (clientKey !== undefined) mqtt.clientKey = clientKey;
  if (username !== undefined) mqtt.username = username;
  if (password !== undefined) mqtt.password = password;
  if (passwordFile !== undefined) mqtt.passwordFile = passwordFile;

  const readers: AgentConfig["readers"] = {
    include: get<string[]>("readers", "include") ?? [...DEFAULTS.readers.include],
    exclude: get<string[]>("readers", "exclude") ?? [...DEFAULTS.readers.exclude],
    readOnInsert,
    disconnect: get<"reset" | "leave">("readers", "disconnect") ?? DEFAULTS.readers.disconnect,
  };
  if (testKeyFile !== undefined) readers.testKeyFile = testKeyFile;

  return {
    file,
    agent: {
      id: agentId,
      stateDir,
      logLevel: get<LogLevel>("agent", "log_level") ?? DEFAULTS.agent.logLevel,
      keyFile: get<string>("agent", "key_file") ?? join(stateDir, DEFAULTS.agent.keyFileName),
      strictKeyPermissions: get<boolean>("agent", "strict_key_permissions") ?? DEFAULTS.agent.strictKeyPermissions,
    },
    mqtt,
    telemetry,
    readers,
    outbox: {
      maxEvents: get<number>("outbox", "max_events") ?? DEFAULTS.outbox.maxEvents,
      path: get<string>("outbox", "path") ?? join(stateDir, DEFAULTS.outbox.fileName),
    },
    verification: {
      trust: get<string[]>("verification", "trust") ?? [...DEFAULTS.verification.trust],
      masterListAnchors: get<string[]>("verification", "master_list_anchors") ?? [...DEFAULTS.verification.masterListAnchors],
      activeAuthentication: get<boolean>("verification", "active_authentication") ?? DEFAULTS.verification.activeAuthentication,
    },
    memory: {
      trimExecutablePages: get<boolean>("memory", "trim_executable_pages") ?? DEFAULTS.memory.trimExecutablePages,
      jitThresholdScale: get<number>("memory", "jit_threshold_scale") ?? DEFAULTS.memory.jitThresholdScale,
    },
    commands: {
      allowPlaintextAccessKey: get<boolean>("commands", "allow_plaintext_access_key") ?? DEFAULTS.commands.allowPlaintextAccessKey,
    },
  };
}

/** 1-based line of a TOML syntax error: one past the longest prefix of whole lines that parses. */
function tomlErrorLine(text: string): number {
  const lines = text.split("\n");
  for (let n = lines.length - 1; n >= 0; n--) {
    try {
      Bun.TOML.parse(lines.slice(0, n).join("\n"));
      return n + 1;
    } catch {
      // keep shortening
    }
  }
  return 1;
}

/** The configuration as it may be logged: secrets replaced, file paths kept. */
export function redactedConfig(config: AgentConfig): Record<string, unknown> {
  return JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
}

/** Whether a reader name passes the include/exclude globs (`*`, `?`; case-insensitive). */
export function readerSelected(readers: { include: readonly string[]; exclude: readonly string[] }, name: string): boolean {
  const matches = (p: string) => globToRegExp(p).test(name);
  if (readers.include.length > 0 && !readers.include.some(matches)) return false;
  return !readers.exclude.some(matches);
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`, "i");
}

/** Certificate CNs (and so MQTT usernames) of operators start with this (deploy/mosquitto/acl). */
export const OPERATOR_ID_PREFIX = "operator-";

/**
 * The one agent id rule: MQTT client id, topic level, TLS certificate CN. deploy/asyncapi.yaml's
 * AgentId pattern is generated from it (deploy/gen-asyncapi-enums.ts). Operators are identified
 * by CNs starting "operator-": an agent with such an id would get operator rights.
 */
export const AGENT_ID_PATTERN = new RegExp(`^(?!${OPERATOR_ID_PREFIX})[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`);
export const AGENT_ID_RULE = `1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit, not starting with "${OPERATOR_ID_PREFIX}"`;

/** Problem with an agent id, or undefined when it follows AGENT_ID_PATTERN. */
export function agentIdProblem(id: string): string | undefined {
  if (AGENT_ID_PATTERN.test(id)) return undefined;
  if (id.startsWith(OPERATOR_ID_PREFIX)) return `must not start with "${OPERATOR_ID_PREFIX}" (reserved for operator identities)`;
  return "must be 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit (a topic level and client id)";
}

/** Problem with a topic prefix, or undefined when it is usable. */
export function topicPrefixProblem(prefix: string): string | undefined {
  if (prefix === "") return "must not be empty";
  if (/[+#\u0000]/.test(prefix)) return "must not contain the MQTT wildcards + or # (or NUL)";
  if (prefix.startsWith("$")) return "must not start with $ (reserved for the broker)";
  if (prefix.startsWith("/") || prefix.endsWith("/") || prefix.includes("//")) return "must not start or end with / or contain an empty level";
  // Bounds of topics.ts (MAX_TOPIC_BYTES, MAX_TOPIC_LEVELS) leave room for the agent's own levels.
  if (Buffer.byteLength(prefix) > 256) return "must be at most 256 bytes";
  if (prefix.split("/").length > 8) return "must have at most 8 levels";
  return undefined;
}

function checkValue(key: string, value: unknown, spec: KeySpec, fail: (key: string, problem: string) => never): unknown {
  switch (spec.kind) {
    case "string": {
      if (typeof value !== "string") return fail(key, `must be a string, not ${typeName(value)}`);
      if (value === "") return fail(key, "must not be empty");
      if (spec.oneOf && !spec.oneOf.includes(value)) return fail(key, `must be one of ${spec.oneOf.join(", ")}${didYouMean(value, spec.oneOf)}`);
      if (spec.pattern && !spec.pattern.test(value)) return fail(key, `must be ${spec.patternText}`);
      return value;
    }
    case "integer": {
      if (typeof value !== "number" || !Number.isInteger(value)) return fail(key, `must be an integer, not ${typeName(value)}`);
      if (spec.min !== undefined && value < spec.min) return fail(key, `must be at least ${spec.min} (got ${value})`);
      if (spec.max !== undefined && value > spec.max) return fail(key, `must be at most ${spec.max} (got ${value})`);
      return value;
    }
    case "boolean":
      if (typeof value !== "boolean") return fail(key, `must be true or false, not ${typeName(value)}`);
      return value;
    case "string[]":
      if (!Array.isArray(value) || value.some((v) => typeof v !== "string" || v === "")) return fail(key, "must be an array of non-empty strings");
      return value;
  }
}

function typeName(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a date";
  if (typeof value === "number") return Number.isInteger(value) ? "an integer" : "a float";
  if (typeof value === "object" && value !== null) return "a table";
  return `a ${typeof value}`;
}

/** " (did you mean x?)" for the closest candidate within edit distance 3, else "". */
export function didYouMean(word: string, candidates: readonly string[], qualifier = ""): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.min(3, Math.floor(word.length / 2))) ? ` (did you mean ${qualifier}${best}?)` : "";
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** `obj[key]` when `key` is an own property of `obj`, else undefined (never an inherited one). */
export function own<T>(obj: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/** Host names may carry characters a client id / topic level should not: keep the safe ones. */
function sanitizeHostname(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 64);
}
