/**
 * The fleet dashboard service: fleet subscriber (MQTT) -> contract check -> fleet state ->
 * write-behind to the store every second (one write at a time; a failed one is put back),
 * history samples at each multiple of store.sample_interval_s (the same instants on every
 * instance), retention after each sample; HTTP server for the page, the API, live changes and
 * /metrics.
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { ConfigError } from "../errors.ts";
import type { DashboardConfig } from "./config.ts";
import { acceptPayload, PayloadRejected } from "./contract.ts";
import { FleetState, type Alert } from "./fleet-state.ts";
import { subscribeFleet, type FleetSubscriber } from "./fleet-subscriber.ts";
import { buildAssets, startServer, type DashboardServer } from "./server.ts";
import { Sessions } from "./auth.ts";
import { CommandRelay } from "./commands.ts";
import { SqliteFleetStore, type FleetStore } from "./store.ts";
import { PostgresFleetStore } from "./store-postgres.ts";

export interface Dashboard {
  url: string;
  state: FleetState;
  store: FleetStore;
  stop(): Promise<void>;
}

type Log = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
const jsonLog: Log = (level, msg, fields = {}) => console.log(JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields }));

export async function startDashboard(config: DashboardConfig, log: Log = jsonLog): Promise<Dashboard> {
  const store = await openStore(config);
  const state = new FleetState(config.alerts);
  state.restore(await store.loadAgents(), await store.loadReaders());
  const ingest = { received: {} as Record<string, number>, rejected: {} as Record<string, number>, connected: () => sub?.connected ?? false };
  const assets = await buildAssets();
  let server: DashboardServer | undefined;
  let sub: FleetSubscriber | undefined;
  // One warning per agent and reason per minute: a misbehaving agent must not flood the log.
  const warned = new Map<string, number>();

  const onMessage = (m: Parameters<Parameters<typeof subscribeFleet>[1]>[0]) => {
    ingest.received[m.topic.kind] = (ingest.received[m.topic.kind] ?? 0) + 1;
    if (m.payload.byteLength === 0) return; // a cleared retained message
    try {
      const accepted = acceptPayload(m.topic, m.payload);
      const change = state.apply(accepted, Date.now(), m.retain);
      server?.notify(change);
    } catch (e) {
      const reason = e instanceof PayloadRejected ? e.reason : "internal";
      ingest.rejected[reason] = (ingest.rejected[reason] ?? 0) + 1;
      const key = `${m.topic.agentId}/${reason}`;
      const now = Date.now();
      if ((warned.get(key) ?? 0) < now - 60_000) {
        warned.set(key, now);
        if (warned.size > 10_000) warned.clear();
        log("warn", "payload rejected", { agentId: m.topic.agentId, kind: m.topic.kind, reason, problem: (e as Error).message });
      }
    }
  };

  sub = await subscribeFleet(config.mqtt, onMessage, (s) => log(s.error ? "warn" : "info", s.connected ? "broker connected" : "broker disconnected", s.error ? { error: s.error } : {}));
  // Replies to the page's commands come back on <prefix>/<agent>/reply/<client id>, which an operator identity may read.
  let commands: CommandRelay | undefined;
  try {
    commands = new CommandRelay(sub, config.mqtt.prefix, config.mqtt.clientId);
  } catch (e) {
    log("warn", "commands from the page are off", { reason: (e as Error).message });
  }
  server = startServer({ config, state, store, sessions: new Sessions(config.users, config.http.tlsCert !== undefined, store.sessions), ingest, assets, ...(commands ? { commands } : {}) });

  // One write at a time: while the store is slow or away, changes gather in the state's
  // pending sets (one entry per agent and reader, events bounded) instead of in a queue.
  let writing: Promise<void> = Promise.resolve();
  let busy = false;
  let lastWriteError = 0;
  const flush = (): Promise<void> => {
    if (busy) return writing;
    const batch = state.takePending();
    if (batch.agents.length + batch.readers.length + batch.events.length === 0) return writing;
    busy = true;
    writing = writing
      .then(() => store.write(batch))
      .catch((e) => {
        state.requeue(batch);
        if (Date.now() - lastWriteError > 60_000) {
          lastWriteError = Date.now();
          log("error", "store write failed; kept for the next write", { error: (e as Error).message, droppedEvents: state.droppedEvents });
        }
      })
      .finally(() => {
        busy = false;
      });
    return writing;
  };
  const flushTimer = setInterval(flush, 1000);
  // Samples on the interval's grid (just after each multiple of it): instances sharing a store
  // sample the same instants, and write the same keys, stored once.
  const interval = config.store.sampleIntervalS * 1000;
  let sampleTimer: ReturnType<typeof setTimeout>;
  const sample = () => {
    const now = Math.floor(Date.now() / interval) * interval;
    const samples = state.samples(now);
    writing = writing
      .then(() => store.write({ agents: [], readers: [], events: [], samples }))
      .then(() => store.prune(now, config.store))
      .catch((e) => log("error", "store sample/prune failed", { error: (e as Error).message }))
      .then(() => undefined);
  };
  const armSample = () => {
    sampleTimer = setTimeout(() => {
      sample();
      armSample();
    }, interval - (Date.now() % interval) + 20);
  };
  armSample();

  if (config.users.length === 0) log("warn", "no [[users]] configured: nobody can log in to the page (/metrics still answers)");
  const webhook = config.alerts.webhookUrl !== undefined ? alertWebhook(config.alerts.webhookUrl, state, log, store, config.alerts.webhookIntervalS) : undefined;
  const webhookTimer = webhook ? setInterval(() => void webhook(), config.alerts.webhookIntervalS * 1000) : undefined;
  log("info", "dashboard ready", { url: server.url, agents: state.agents.size, prefix: config.mqtt.prefix, shareGroup: config.mqtt.shareGroup, store: config.store.kind });
  return {
    url: server.url,
    state,
    store,
    stop: async () => {
      clearInterval(flushTimer);
      clearTimeout(sampleTimer);
      if (webhookTimer) clearInterval(webhookTimer);
      commands?.stop();
      await server?.stop();
      await sub?.close();
      await writing;
      await flush();
      await store.close();
    },
  };
}

/** The store: bun:sqlite at store.path, or the shared PostgreSQL at store.url (password from store.password_file or PGPASSWORD). */
async function openStore(config: DashboardConfig): Promise<FleetStore> {
  const s = config.store;
  if (s.kind === "sqlite") return new SqliteFleetStore(s.path);
  let password: string | undefined = process.env.PGPASSWORD;
  if (s.passwordFile !== undefined) {
    try {
      password = readFileSync(s.passwordFile, "utf8").replace(/\r?\n$/, "");
    } catch (e) {
      throw new ConfigError(`${config.file}: store.password_file: cannot read ${s.passwordFile} (${(e as NodeJS.ErrnoException).code ?? "error"})`, { file: config.file, key: "store.password_file" });
    }
  }
  return PostgresFleetStore.open({ url: s.url!, ...(password !== undefined ? { password } : {}) });
}

/**
 * Alerts to a webhook: each check POSTs the alerts that started and the ones that ended since
 * the last check (JSON `{ fired: Alert[], resolved: Alert[], at }`), nothing when none changed.
 * A failed POST is logged and its changes are sent again at the next check. With a shared
 * store, the instance holding the store's lease sends, and leaves the alerts it reported with
 * the lease: when it stops, another takes the lease (within three intervals) and sends what
 * changed since that report, so nothing is sent twice or lost.
 */
function alertWebhook(url: string, state: FleetState, log: Log, store: FleetStore, intervalS: number): () => Promise<void> {
  const LEASE = "alert-webhook";
  let known = new Map<string, Alert>();
  let leading = false;
  let busy = false;
  const owner = `${hostname()}/${process.pid}/${crypto.randomUUID()}`;
  return async () => {
    if (busy) return;
    busy = true;
    try {
      if (store.lease) {
        const l = await store.lease(LEASE, owner, intervalS * 3);
        if (!l.held) {
          leading = false;
          return;
        }
        if (!leading) {
          leading = true;
          known = new Map(reported(l.value));
        }
      }
      const now = Date.now();
      const current = new Map(state.alerts(now).map((a) => [`${a.kind}\u0000${a.agentId}\u0000${a.reader ?? ""}`, a]));
      const fired = [...current].filter(([k]) => !known.has(k)).map(([, a]) => a);
      const resolved = [...known].filter(([k]) => !current.has(k)).map(([, a]) => a);
      if (fired.length + resolved.length === 0) return;
      const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ at: new Date(now).toISOString(), fired, resolved }), signal: AbortSignal.timeout(5000) });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      known = current;
      await store.setLeaseValue?.(LEASE, owner, JSON.stringify([...known]));
    } catch (e) {
      log("warn", "alert webhook failed", { error: (e as Error).message });
    } finally {
      busy = false;
    }
  };
}

/** The alerts a previous holder of the webhook lease reported (none if unreadable). */
function reported(value: string | null): Array<[string, Alert]> {
  if (value === null) return [];
  try {
    const v = JSON.parse(value) as unknown;
    return Array.isArray(v) ? (v as Array<[string, Alert]>).filter((e) => Array.isArray(e) && typeof e[0] === "string") : [];
  } catch {
    return [];
  }
}
