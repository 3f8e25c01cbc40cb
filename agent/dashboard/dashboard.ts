/**
 * The fleet dashboard service: fleet subscriber (MQTT) -> contract check -> fleet state ->
 * write-behind to the store every second, history samples every store.sample_interval_s,
 * retention after each sample; HTTP server for the page, the API, live changes and /metrics.
 */
import type { DashboardConfig } from "./config.ts";
import { acceptPayload, PayloadRejected } from "./contract.ts";
import { FleetState, type Alert } from "./fleet-state.ts";
import { subscribeFleet, type FleetSubscriber } from "./fleet-subscriber.ts";
import { buildAssets, startServer, type DashboardServer } from "./server.ts";
import { Sessions } from "./auth.ts";
import { CommandRelay } from "./commands.ts";
import { SqliteFleetStore, type FleetStore } from "./store.ts";

export interface Dashboard {
  url: string;
  state: FleetState;
  store: FleetStore;
  stop(): Promise<void>;
}

type Log = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
const jsonLog: Log = (level, msg, fields = {}) => console.log(JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields }));

export async function startDashboard(config: DashboardConfig, log: Log = jsonLog): Promise<Dashboard> {
  const store: FleetStore = new SqliteFleetStore(config.store.path);
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
  server = startServer({ config, state, store, sessions: new Sessions(config.users, config.http.tlsCert !== undefined), ingest, assets, ...(commands ? { commands } : {}) });

  let writing = Promise.resolve();
  const flush = () => {
    const batch = state.takePending();
    if (batch.agents.length + batch.readers.length + batch.events.length === 0) return writing;
    writing = writing.then(() => store.write(batch)).catch((e) => log("error", "store write failed", { error: (e as Error).message }));
    return writing;
  };
  const flushTimer = setInterval(flush, 1000);
  const sampleTimer = setInterval(() => {
    const now = Date.now();
    const samples = state.samples(now);
    writing = writing
      .then(() => store.write({ agents: [], readers: [], events: [], samples }))
      .then(() => store.prune(now, config.store))
      .catch((e) => log("error", "store sample/prune failed", { error: (e as Error).message }))
      .then(() => undefined);
  }, config.store.sampleIntervalS * 1000);

  if (config.users.length === 0) log("warn", "no [[users]] configured: nobody can log in to the page (/metrics still answers)");
  const webhook = config.alerts.webhookUrl !== undefined ? alertWebhook(config.alerts.webhookUrl, state, log) : undefined;
  const webhookTimer = webhook ? setInterval(() => void webhook(), config.alerts.webhookIntervalS * 1000) : undefined;
  log("info", "dashboard ready", { url: server.url, agents: state.agents.size, prefix: config.mqtt.prefix, shareGroup: config.mqtt.shareGroup });
  return {
    url: server.url,
    state,
    store,
    stop: async () => {
      clearInterval(flushTimer);
      clearInterval(sampleTimer);
      if (webhookTimer) clearInterval(webhookTimer);
      commands?.stop();
      await server?.stop();
      await sub?.close();
      await flush();
      await store.close();
    },
  };
}

/**
 * Alerts to a webhook: each check POSTs the alerts that started and the ones that ended since
 * the last check (JSON `{ fired: Alert[], resolved: Alert[], at }`), nothing when none changed.
 * A failed POST is logged and its changes are sent again at the next check.
 */
function alertWebhook(url: string, state: FleetState, log: Log): () => Promise<void> {
  let known = new Map<string, Alert>();
  let busy = false;
  return async () => {
    if (busy) return;
    busy = true;
    try {
      const now = Date.now();
      const current = new Map(state.alerts(now).map((a) => [`${a.kind}\u0000${a.agentId}\u0000${a.reader ?? ""}`, a]));
      const fired = [...current].filter(([k]) => !known.has(k)).map(([, a]) => a);
      const resolved = [...known].filter(([k]) => !current.has(k)).map(([, a]) => a);
      if (fired.length + resolved.length === 0) return;
      const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ at: new Date(now).toISOString(), fired, resolved }), signal: AbortSignal.timeout(5000) });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      known = current;
    } catch (e) {
      log("warn", "alert webhook failed", { error: (e as Error).message });
    } finally {
      busy = false;
    }
  };
}
