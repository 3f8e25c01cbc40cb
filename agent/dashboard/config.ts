/**
 * The dashboard's TOML configuration (deploy/dashboard.example.toml is the commented
 * reference), checked key by key at start like the agent's: an unknown key, a wrong type or
 * range fails with `<file>: <key>: <problem>`. Users carry argon2id hashes (Bun.password), never
 * passwords.
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { ConfigError } from "../errors.ts";
import { didYouMean, OPERATOR_ID_PREFIX, topicPrefixProblem } from "../service/config.ts";
import { MQTT_PROTOCOLS, type MqttProtocol } from "../service/mqtt-protocol.ts";

export type Role = "viewer" | "operator";
export type StoreKind = "sqlite" | "postgres";
export const STORE_KINDS: readonly StoreKind[] = ["sqlite", "postgres"];
export const ROLES: readonly Role[] = ["viewer", "operator"];

export interface DashboardUser {
  name: string;
  role: Role;
  passwordHash: string;
}

export interface DashboardConfig {
  file: string;
  /**
   * protocol: "5" or "3.1.1" (the agents' mqtt.protocol). shareGroup: events are subscribed as
   * $share/<shareGroup>/...; absent (3.1.1 without share_group): subscribed directly.
   * urls: the brokers (the nodes of a cluster), tried in turn on reconnect (mqtt.url or
   * mqtt.urls); url: the first. sessionExpiryS: the broker keeps the dashboard's session this long
   * after a disconnect, so events published meanwhile wait for it; 0: a clean session.
   */
  mqtt: { url: string; urls: string[]; sessionExpiryS: number; protocol: MqttProtocol; prefix: string; ca?: string; clientCert?: string; clientKey?: string; clientId: string; shareGroup?: string };
  http: { host: string; port: number; tlsCert?: string; tlsKey?: string };
  store: {
    /** "sqlite" (one instance, store.path) or "postgres" (several instances sharing store.url). */
    kind: StoreKind;
    path: string;
    /** postgres://user@host:port/database (no password in it). */
    url?: string;
    /** A file holding the PostgreSQL password (else PGPASSWORD, else none). */
    passwordFile?: string;
    sampleIntervalS: number;
    rawRetentionH: number;
    dailyRetentionD: number;
    eventsPerAgent: number;
    auditRetentionD: number;
  };
  alerts: { successRateBelow: number; minWindowReads: number; rfDropsPerHourAbove: number; offlineAfterMin: number; webhookUrl?: string; webhookIntervalS: number };
  users: DashboardUser[];
}

/**
 * Defaults sized for 10,000 agents with 2 readers each: samples every 15 min kept 48 h
 * (20,000 x 192 = 3.8 M rows), daily roll-ups kept 90 days (1.8 M rows), 50 events per agent
 * (0.5 M rows): a database of a few hundred MB at most, pruned every sample interval.
 */
export const DASHBOARD_DEFAULTS = {
  mqtt: { url: "mqtts://localhost:8883", sessionExpiryS: 0, protocol: "5" as MqttProtocol, prefix: "mrtd/v1", shareGroup: "mrtd-dashboard" },
  http: { host: "127.0.0.1", port: 8080 },
  store: { kind: "sqlite", path: "/var/lib/mrtd-agent/dashboard.sqlite", sampleIntervalS: 900, rawRetentionH: 48, dailyRetentionD: 90, eventsPerAgent: 50, auditRetentionD: 365 },
  alerts: { successRateBelow: 0.8, minWindowReads: 5, rfDropsPerHourAbove: 10, offlineAfterMin: 10, webhookIntervalS: 30 },
} as const;

type Spec = { kind: "string" } | { kind: "string[]" } | { kind: "integer"; min: number; max: number } | { kind: "number"; min: number; max: number };
const SCHEMA: Record<string, Record<string, Spec>> = {
  mqtt: { url: { kind: "string" }, urls: { kind: "string[]" }, session_expiry_s: { kind: "integer", min: 0, max: 4294967295 }, protocol: { kind: "string" }, prefix: { kind: "string" }, ca: { kind: "string" }, client_cert: { kind: "string" }, client_key: { kind: "string" }, client_id: { kind: "string" }, share_group: { kind: "string" } },
  http: { host: { kind: "string" }, port: { kind: "integer", min: 0, max: 65535 }, tls_cert: { kind: "string" }, tls_key: { kind: "string" } },
  store: {
    kind: { kind: "string" },
    path: { kind: "string" },
    url: { kind: "string" },
    password_file: { kind: "string" },
    sample_interval_s: { kind: "integer", min: 1, max: 86400 },
    raw_retention_h: { kind: "integer", min: 1, max: 24 * 365 },
    daily_retention_d: { kind: "integer", min: 1, max: 3650 },
    events_per_agent: { kind: "integer", min: 0, max: 10000 },
    audit_retention_d: { kind: "integer", min: 1, max: 3650 },
  },
  alerts: {
    success_rate_below: { kind: "number", min: 0, max: 1 },
    min_window_reads: { kind: "integer", min: 1, max: 1000 },
    rf_drops_per_hour_above: { kind: "number", min: 0, max: 1e9 },
    offline_after_min: { kind: "integer", min: 1, max: 100000 },
    webhook_url: { kind: "string" },
    webhook_interval_s: { kind: "integer", min: 1, max: 3600 },
  },
};
const USER_KEYS = ["name", "role", "password_hash"];
const LEVEL = /^[A-Za-z0-9._-]{1,64}$/;

export function loadDashboardConfig(file: string): DashboardConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`${file}: cannot read the configuration file (${(e as NodeJS.ErrnoException).code ?? "error"})`, { file });
  }
  return parseDashboardConfig(text, file);
}

export function parseDashboardConfig(text: string, file: string): DashboardConfig {
  const fail = (key: string, problem: string): never => {
    throw new ConfigError(`${file}: ${key}: ${problem}`, { file, key });
  };
  let root: Record<string, unknown>;
  try {
    root = Bun.TOML.parse(text) as Record<string, unknown>;
  } catch {
    return fail("(file)", "not valid TOML");
  }
  const values: Record<string, Record<string, unknown>> = {};
  let users: DashboardUser[] = [];
  for (const [section, body] of Object.entries(root)) {
    if (section === "users") {
      if (!Array.isArray(body)) fail("users", "must be an array of tables ([[users]])");
      users = (body as unknown[]).map((u, i) => checkUser(u, `users[${i}]`, fail));
      continue;
    }
    const spec = SCHEMA[section];
    if (!spec) return fail(section, `unknown section${didYouMean(section, [...Object.keys(SCHEMA), "users"])}`);
    if (typeof body !== "object" || body === null || Array.isArray(body)) fail(section, `must be a table ([${section}])`);
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
      const ks = spec[key];
      if (!ks) return fail(`${section}.${key}`, `unknown key${didYouMean(key, Object.keys(spec), section + ".")}`);
      out[key] = checkValue(`${section}.${key}`, value, ks, fail);
    }
    values[section] = out;
  }
  const get = <T>(s: string, k: string): T | undefined => values[s]?.[k] as T | undefined;
  const names = new Set<string>();
  for (const u of users) {
    if (names.has(u.name)) fail("users", `user ${u.name} is listed twice`);
    names.add(u.name);
  }

  const D = DASHBOARD_DEFAULTS;
  const givenUrls = get<string[]>("mqtt", "urls");
  if (givenUrls !== undefined && get<string>("mqtt", "url") !== undefined) fail("mqtt.urls", "give mqtt.url or mqtt.urls, not both");
  const urls = givenUrls ?? [get<string>("mqtt", "url") ?? D.mqtt.url];
  const urlKey = givenUrls !== undefined ? "mqtt.urls" : "mqtt.url";
  const schemes = new Set<string>();
  for (const u of urls) {
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      return fail(urlKey, "not a URL (expected mqtts://host:8883)");
    }
    if (parsed.protocol !== "mqtts:" && parsed.protocol !== "mqtt:") fail(urlKey, "scheme must be mqtts or mqtt");
    schemes.add(parsed.protocol);
  }
  if (schemes.size > 1) fail(urlKey, "all brokers must use the same scheme (mqtts or mqtt): the TLS settings apply to every one");
  const url = urls[0]!;
  const prefix = get<string>("mqtt", "prefix") ?? D.mqtt.prefix;
  const pp = topicPrefixProblem(prefix);
  if (pp) fail("mqtt.prefix", pp);
  const clientCert = get<string>("mqtt", "client_cert");
  const clientKey = get<string>("mqtt", "client_key");
  if ((clientCert === undefined) !== (clientKey === undefined)) fail("mqtt.client_cert", "client_cert and client_key must be given together");
  const clientId = get<string>("mqtt", "client_id") ?? `${OPERATOR_ID_PREFIX}dashboard-${hostname().replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 30)}-${process.pid}`;
  if (!LEVEL.test(clientId)) fail("mqtt.client_id", "must be 1-64 of A-Z a-z 0-9 . _ -");
  const protocol = get<string>("mqtt", "protocol") ?? D.mqtt.protocol;
  if (!(MQTT_PROTOCOLS as readonly string[]).includes(protocol)) fail("mqtt.protocol", `must be ${MQTT_PROTOCOLS.join(" or ")}`);
  // Shared subscriptions are MQTT 5; some 3.1.1 brokers take $share/ as a plain topic: with
  // 3.1.1 only an explicit share_group makes one.
  const givenShareGroup = get<string>("mqtt", "share_group");
  const shareGroup = givenShareGroup ?? (protocol === "5" ? D.mqtt.shareGroup : undefined);
  if (shareGroup !== undefined && !LEVEL.test(shareGroup)) fail("mqtt.share_group", "must be 1-64 of A-Z a-z 0-9 . _ - (one topic level)");
  const sessionExpiryS = get<number>("mqtt", "session_expiry_s") ?? D.mqtt.sessionExpiryS;
  const mqtt: DashboardConfig["mqtt"] = { url, urls, sessionExpiryS, protocol: protocol as MqttProtocol, prefix, clientId };
  if (shareGroup !== undefined) mqtt.shareGroup = shareGroup;
  const ca = get<string>("mqtt", "ca");
  if (ca !== undefined) mqtt.ca = ca;
  if (clientCert !== undefined) mqtt.clientCert = clientCert;
  if (clientKey !== undefined) mqtt.clientKey = clientKey;

  const http: DashboardConfig["http"] = { host: get<string>("http", "host") ?? D.http.host, port: get<number>("http", "port") ?? D.http.port };
  const tlsCert = get<string>("http", "tls_cert");
  const tlsKey = get<string>("http", "tls_key");
  if ((tlsCert === undefined) !== (tlsKey === undefined)) fail("http.tls_cert", "tls_cert and tls_key must be given together");
  if (tlsCert !== undefined) http.tlsCert = tlsCert;
  if (tlsKey !== undefined) http.tlsKey = tlsKey;
  if (tlsCert === undefined && !isLoopback(http.host)) fail("http.host", "serving beyond loopback needs http.tls_cert and http.tls_key (session cookies and logins would travel in clear)");

  const webhookUrl = get<string>("alerts", "webhook_url");
  if (webhookUrl !== undefined) {
    let u: URL | undefined;
    try {
      u = new URL(webhookUrl);
    } catch {
      u = undefined;
    }
    if (!u || (u.protocol !== "https:" && u.protocol !== "http:")) fail("alerts.webhook_url", "must be an http:// or https:// URL");
  }
  const kind = get<string>("store", "kind") ?? D.store.kind;
  if (!STORE_KINDS.includes(kind as StoreKind)) fail("store.kind", `must be one of ${STORE_KINDS.join(", ")}`);
  const storeUrl = get<string>("store", "url");
  const passwordFile = get<string>("store", "password_file");
  if (kind === "postgres") {
    if (storeUrl === undefined) fail("store.url", 'store.kind = "postgres" needs store.url (postgres://user@host:5432/database)');
    let u: URL | undefined;
    try {
      u = new URL(storeUrl!);
    } catch {
      u = undefined;
    }
    if (!u || (u.protocol !== "postgres:" && u.protocol !== "postgresql:")) fail("store.url", "must be a postgres:// URL (postgres://user@host:5432/database)");
    // The configuration is printed by --check and read by whoever reads the file: no secret in it.
    if (u!.password !== "" || u!.searchParams.has("password")) fail("store.url", "must not hold the password: put it in store.password_file (or PGPASSWORD)");
  } else if (storeUrl !== undefined || passwordFile !== undefined) {
    fail(storeUrl !== undefined ? "store.url" : "store.password_file", 'only with store.kind = "postgres"');
  }
  return {
    file,
    mqtt,
    http,
    store: {
      kind: kind as StoreKind,
      path: get<string>("store", "path") ?? D.store.path,
      ...(storeUrl !== undefined ? { url: storeUrl } : {}),
      ...(passwordFile !== undefined ? { passwordFile } : {}),
      sampleIntervalS: get<number>("store", "sample_interval_s") ?? D.store.sampleIntervalS,
      rawRetentionH: get<number>("store", "raw_retention_h") ?? D.store.rawRetentionH,
      dailyRetentionD: get<number>("store", "daily_retention_d") ?? D.store.dailyRetentionD,
      eventsPerAgent: get<number>("store", "events_per_agent") ?? D.store.eventsPerAgent,
      auditRetentionD: get<number>("store", "audit_retention_d") ?? D.store.auditRetentionD,
    },
    alerts: {
      successRateBelow: get<number>("alerts", "success_rate_below") ?? D.alerts.successRateBelow,
      minWindowReads: get<number>("alerts", "min_window_reads") ?? D.alerts.minWindowReads,
      rfDropsPerHourAbove: get<number>("alerts", "rf_drops_per_hour_above") ?? D.alerts.rfDropsPerHourAbove,
      offlineAfterMin: get<number>("alerts", "offline_after_min") ?? D.alerts.offlineAfterMin,
      webhookIntervalS: get<number>("alerts", "webhook_interval_s") ?? D.alerts.webhookIntervalS,
      ...(webhookUrl !== undefined ? { webhookUrl } : {}),
    },
    users,
  };
}

function isLoopback(host: string): boolean {
  return host === "127.0.0.1" || host === "::1" || host === "localhost";
}

function checkUser(u: unknown, key: string, fail: (k: string, p: string) => never): DashboardUser {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return fail(key, "must be a table");
  const o = u as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!USER_KEYS.includes(k)) fail(`${key}.${k}`, `unknown key${didYouMean(k, USER_KEYS)}`);
  if (typeof o.name !== "string" || !LEVEL.test(o.name)) fail(`${key}.name`, "must be 1-64 of A-Z a-z 0-9 . _ -");
  if (typeof o.role !== "string" || !ROLES.includes(o.role as Role)) fail(`${key}.role`, `must be one of ${ROLES.join(", ")}`);
  if (typeof o.password_hash !== "string" || !o.password_hash.startsWith("$argon2id$")) {
    fail(`${key}.password_hash`, 'must be an argon2id hash (bun -e \'console.log(await Bun.password.hash(prompt("password:")))\'), never a password');
  }
  return { name: o.name as string, role: o.role as Role, passwordHash: o.password_hash as string };
}

function checkValue(key: string, value: unknown, spec: Spec, fail: (k: string, p: string) => never): unknown {
  if (spec.kind === "string") {
    if (typeof value !== "string" || value === "") return fail(key, "must be a non-empty string");
    return value;
  }
  if (spec.kind === "string[]") {
    if (!Array.isArray(value) || value.length === 0 || value.length > 16 || !value.every((v) => typeof v === "string" && v !== "")) return fail(key, "must be a list of 1 to 16 non-empty strings");
    return value;
  }
  if (typeof value !== "number" || !Number.isFinite(value)) return fail(key, "must be a number");
  if (spec.kind === "integer" && !Number.isInteger(value)) return fail(key, "must be an integer");
  if (value < spec.min || value > spec.max) return fail(key, `must be between ${spec.min} and ${spec.max} (got ${value})`);
  return value;
}
