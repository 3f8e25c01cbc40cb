/**
 * The dashboard's HTTP side (Bun.serve, loopback unless configured with TLS): the page and its
 * bundle (built from web/ with Bun's bundler at start), a JSON API behind the session, live
 * changes as server-sent events, and /metrics for Prometheus. Every response carries a strict
 * Content-Security-Policy (scripts and styles from this origin only), so even a payload that
 * slipped markup into the page could not run.
 */
import { join } from "node:path";
import { FAILURE_CLASSES } from "../reading/failure-classes.ts";
import type { DashboardConfig } from "./config.ts";
import { csrfOk, sameOrigin, Sessions, type Session } from "./auth.ts";
import type { AgentState, Change, FleetState, OverviewQuery, Sort } from "./fleet-state.ts";
import type { FleetStore } from "./store.ts";
import { fleetExposition, type IngestCounters } from "./prometheus.ts";
import { checkCommand, CommandRefused, DASHBOARD_COMMANDS, type CommandRelay, type RelayEnd } from "./commands.ts";
import { apduLatencyHistogram } from "./charts.ts";

const WEB = join(import.meta.dir, "web");
const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};
const SORTS: readonly Sort[] = ["id", "lastSeen", "version", "successRate", "rfDrops", "p95"];

export interface Assets {
  html: string;
  js: string;
  css: string;
}

/** Bundles web/app.ts for the browser (no CDN, no runtime dependency). */
export async function buildAssets(): Promise<Assets> {
  const r = await Bun.build({ entrypoints: [join(WEB, "app.ts")], target: "browser", minify: true, sourcemap: "none" });
  if (!r.success) throw new Error(`dashboard bundle failed: ${r.logs.map(String).join("\n")}`);
  return {
    js: await r.outputs[0]!.text(),
    html: await Bun.file(join(WEB, "index.html")).text(),
    css: await Bun.file(join(WEB, "style.css")).text(),
  };
}

export interface ServerDeps {
  config: DashboardConfig;
  state: FleetState;
  store: FleetStore;
  sessions: Sessions;
  ingest: IngestCounters & { connected: () => boolean };
  assets: Assets;
  /** Sends operators' commands and relays their replies (commands.ts); absent: commands answer 501. */
  commands?: CommandRelay;
}

export interface DashboardServer {
  url: string;
  /** Queues a change for live clients. */
  notify(c: Change): void;
  stop(): Promise<void>;
}

/** Commands running at once, per session and in all. */
const MAX_COMMANDS_PER_SESSION = 2;
const MAX_COMMANDS = 32;

export function startServer(d: ServerDeps): DashboardServer {
  const clients = new Set<ReadableStreamDefaultController<Uint8Array>>();
  /** Running commands: command id -> the CSRF token of the session that sent it (one per session). */
  const running = new Map<string, string>();
  const enc = new TextEncoder();
  let changed = new Set<string>();
  // Changes go out at most every 250 ms, as the set of agents that changed (clients refetch what they show).
  const flush = setInterval(() => {
    if (changed.size === 0 || clients.size === 0) {
      changed.clear();
      return;
    }
    const agents = [...changed].slice(0, 2000);
    const more = changed.size > agents.length;
    changed = new Set();
    const msg = enc.encode(`event: change\ndata: ${JSON.stringify({ agents, more, counts: d.state.counts() })}\n\n`);
    for (const c of clients) {
      try {
        c.enqueue(msg);
      } catch {
        clients.delete(c);
      }
    }
  }, 250);
  const ping = setInterval(() => {
    for (const c of clients) {
      try {
        c.enqueue(enc.encode(": keep-alive\n\n"));
      } catch {
        clients.delete(c);
      }
    }
  }, 15_000);

  const tls = d.config.http.tlsCert ? { cert: Bun.file(d.config.http.tlsCert), key: Bun.file(d.config.http.tlsKey!) } : undefined;
  const json = (body: unknown, status = 200, extra: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), { status, headers: { ...SECURITY_HEADERS, "content-type": "application/json; charset=utf-8", ...extra } });
  const text = (body: string, type: string, status = 200) => new Response(body, { status, headers: { ...SECURITY_HEADERS, "content-type": type } });

  const server = Bun.serve({
    hostname: d.config.http.host,
    port: d.config.http.port,
    ...(tls ? { tls } : {}),
    // Live streams send a comment every 15 s, so 60 s only ends connections that went quiet.
    idleTimeout: 60,
    // Logins and commands are small JSON bodies.
    maxRequestBodySize: 64 * 1024,
    fetch: async (req) => {
      const url = new URL(req.url);
      const path = url.pathname;
      try {
        if (req.method === "GET" && (path === "/" || path === "/index.html")) return text(d.assets.html, "text/html; charset=utf-8");
        if (req.method === "GET" && path === "/assets/app.js") return text(d.assets.js, "text/javascript; charset=utf-8");
        if (req.method === "GET" && path === "/assets/app.css") return text(d.assets.css, "text/css; charset=utf-8");
        if (req.method === "GET" && path === "/metrics") return text(fleetExposition(d.state, d.ingest, Date.now()), "text/plain; version=0.0.4; charset=utf-8");
        if (req.method === "GET" && path === "/healthz") return json({ ok: true, broker: d.ingest.connected(), received: d.ingest.received });

        if (req.method === "POST" && path === "/api/login") {
          if (!csrfOk(req, undefined)) return json({ error: "cross-origin request refused" }, 403);
          const body = (await req.json().catch(() => null)) as { name?: unknown; password?: unknown } | null;
          if (typeof body?.name !== "string" || typeof body.password !== "string" || body.name.length > 64 || body.password.length > 1024) return json({ error: "name and password required" }, 400);
          const r = await d.sessions.login(body.name, body.password);
          if (!r) return json({ error: "wrong name or password" }, 401);
          return json({ user: r.session.user, role: r.session.role, csrf: r.session.csrf }, 200, { "set-cookie": d.sessions.setCookie(r.token) });
        }

        const session = await d.sessions.of(req);
        if (!path.startsWith("/api/")) return json({ error: "not found" }, 404);
        if (!session) return json({ error: "log in first" }, 401);
        if (req.method !== "GET" && !csrfOk(req, session)) return json({ error: "missing or wrong CSRF token" }, 403);

        if (req.method === "GET" && path === "/api/session") return json({ user: session.user, role: session.role, csrf: session.csrf });
        if (req.method === "POST" && path === "/api/logout") {
          await d.sessions.logout(session.token);
          return json({ ok: true }, 200, { "set-cookie": d.sessions.clearCookie() });
        }
        if (req.method === "GET" && path === "/api/live") return live(req);
        if (req.method === "GET" && path === "/api/overview") return json(overview(url.searchParams));
        if (req.method === "GET" && path === "/api/alerts") return json({ alerts: d.state.alerts(Date.now()) });
        if (req.method === "GET" && path === "/api/audit") return json({ audit: await d.store.auditLog(200) });
        const m = /^\/api\/agents\/([A-Za-z0-9._-]{1,64})(?:\/(command|readers\/([a-z0-9._-]{1,64})\/history))?$/.exec(path);
        if (m) {
          const agentId = m[1]!;
          const a = d.state.agents.get(agentId);
          if (!a) return json({ error: "no such agent" }, 404);
          if (m[2] === undefined && req.method === "GET") return json(await agentDetail(a));
          if (m[3] !== undefined && req.method === "GET") {
            const since = Date.now() - 48 * 3_600_000;
            return json({ samples: await d.store.samples(agentId, m[3], since), daily: await d.store.daily(agentId, m[3]) });
          }
          if (m[2] === "command" && req.method === "POST") return command(req, session, a);
        }
        return json({ error: "not found" }, 404);
      } catch (e) {
        console.error(JSON.stringify({ ts: new Date().toISOString(), level: "error", msg: "request failed", path, error: (e as Error).message }));
        return json({ error: "internal error" }, 500);
      }
    },
  });

  /**
   * POST /api/agents/<id>/command: the command the page built (access key sealed in the page).
   * Checked (commands.ts), published, and answered as a server-sent event stream: `sent`, then
   * one `reply` per reply as the agent sent it (sealed results stay sealed), then `end` with how
   * it ended (final, timeout). The audit log gets who, which agent and reader, the command and
   * its outcome; never the command's body.
   */
  async function command(req: Request, session: Session, a: AgentState): Promise<Response> {
    const raw = (await req.json().catch(() => undefined)) as unknown;
    // The audit names a command only by its known name, and a reader only once the command passed its checks.
    const named = (raw as { command?: unknown } | undefined)?.command;
    const action = typeof named === "string" && (DASHBOARD_COMMANDS as readonly string[]).includes(named) ? named : "command";
    const audit = (outcome: string, at = Date.now(), reader: string | null = null) => d.store.audit({ at, user: session.user, role: session.role, action, agentId: a.agentId, reader, outcome });
    if (session.role !== "operator") {
      await audit("refused: viewer");
      return json({ error: "operators only" }, 403);
    }
    if (!d.commands) return json({ error: "commands are not available in this dashboard" }, 501);
    let c;
    try {
      c = checkCommand(a.agentId, raw);
    } catch (e) {
      if (!(e instanceof CommandRefused)) throw e;
      await audit(`refused: ${e.code}`);
      return json({ error: e.message, code: e.code }, e.status);
    }
    if (!a.online) return json({ error: `${a.agentId} is offline`, code: "AGENT_OFFLINE" }, 409);
    if (running.has(c.id)) return json({ error: "a command with this id is running", code: "DUPLICATE" }, 409);
    const mine = [...running.values()].filter((u) => u === session.csrf).length;
    if (mine >= MAX_COMMANDS_PER_SESSION || running.size >= MAX_COMMANDS) return json({ error: "too many commands running; wait for one to end", code: "BUSY" }, 429);
    const at = Date.now();
    let ctl: ReadableStreamDefaultController<Uint8Array> | undefined;
    const queued: Uint8Array[] = [];
    let closed = false;
    const emit = (event: string, data: string) => {
      const frame = enc.encode(`event: ${event}\ndata: ${data}\n\n`);
      if (closed) return;
      if (ctl) {
        try {
          ctl.enqueue(frame);
        } catch {
          closed = true;
        }
      } else queued.push(frame);
    };
    let sent;
    running.set(c.id, session.csrf);
    try {
      sent = await d.commands.send(a.agentId, c, (text) => emit("reply", text.replace(/[\r\n]+/g, " ")));
    } catch (e) {
      running.delete(c.id);
      const msg = e instanceof CommandRefused ? e.message : `the broker refused the command: ${(e as Error).message.slice(0, 200)}`;
      await audit(`error: ${msg.slice(0, 120)}`, at, c.reader);
      return json({ error: msg, code: e instanceof CommandRefused ? e.code : "BROKER" }, e instanceof CommandRefused ? e.status : 502);
    }
    emit("sent", JSON.stringify({ id: c.id, agentId: a.agentId, timeoutS: c.timeoutS }));
    // A read may wait minutes for a card without a word from the agent: a comment every 15 s keeps
    // the stream inside the server's idle timeout (60 s).
    const keepAlive = setInterval(() => {
      if (ctl && !closed) {
        try {
          ctl.enqueue(enc.encode(": keep-alive\n\n"));
        } catch {
          closed = true;
        }
      }
    }, 15_000);
    void sent.ended.then(async (end: RelayEnd) => {
      clearInterval(keepAlive);
      running.delete(c.id);
      emit("end", JSON.stringify(end.kind === "timeout" ? { kind: "timeout", timeoutS: c.timeoutS } : end));
      closed = true;
      try {
        ctl?.close();
      } catch {
        // the page went away
      }
      await audit(end.kind === "final" ? (end.ok ? "ok" : `error: ${end.code}`) : end.kind, at, c.reader).catch(() => undefined);
    });
    const stream = new ReadableStream<Uint8Array>({
      start(cc) {
        ctl = cc;
        for (const f of queued.splice(0)) cc.enqueue(f);
        if (closed) cc.close();
      },
      cancel() {
        // The page left: the command runs on at the agent; its outcome still goes to the audit log.
        closed = true;
      },
    });
    return new Response(stream, { headers: { ...SECURITY_HEADERS, "content-type": "text/event-stream" } });
  }

  function live(req: Request): Response {
    if (!sameOrigin(req) && req.headers.get("origin") !== null) return json({ error: "cross-origin" }, 403);
    let ctl: ReadableStreamDefaultController<Uint8Array>;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        ctl = c;
        clients.add(c);
        c.enqueue(enc.encode(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ counts: d.state.counts() })}\n\n`));
      },
      cancel() {
        clients.delete(ctl);
      },
    });
    req.signal.addEventListener("abort", () => clients.delete(ctl));
    return new Response(stream, { headers: { ...SECURITY_HEADERS, "content-type": "text/event-stream", connection: "keep-alive" } });
  }

  function overview(p: URLSearchParams) {
    const q: OverviewQuery = {};
    const s = p.get("q");
    if (s) q.q = s.slice(0, 100);
    const st = p.get("status");
    if (st === "online" || st === "offline" || st === "alerting") q.status = st;
    const sort = p.get("sort");
    if (sort && (SORTS as readonly string[]).includes(sort)) q.sort = sort as Sort;
    q.desc = p.get("desc") === "1";
    q.offset = Number(p.get("offset")) || 0;
    q.limit = Number(p.get("limit")) || 100;
    const now = Date.now();
    const { total, rows } = d.state.overview(q, now);
    return { counts: d.state.counts(), alerts: d.state.alerts(now).length, broker: d.ingest.connected(), total, offset: q.offset, rows: rows.map((a) => agentRow(a, now)) };
  }

  function agentRow(a: AgentState, now: number) {
    return {
      agentId: a.agentId,
      online: a.online,
      version: a.version,
      lastSeen: a.lastSeen,
      offlineSince: a.offlineSince,
      alerts: d.state.alertsOf(a, now).length,
      readers: [...a.readers.values()].map((r) => ({
        slug: r.slug,
        reader: r.health.reader,
        connected: r.health.connected,
        cardPresent: r.health.cardPresent,
        rate: r.health.successRate.rate,
        windowReads: r.health.successRate.windowReads,
        rfDrops: r.health.rfDrops,
        rfDropsPerHour: d.state.rfDropsPerHour(r) ?? null,
        recoveries: r.health.recoveries,
        p95: r.health.apduLatencyMs.p95,
        mean: r.health.apduLatencyMs.mean,
        lastFailureClass: r.health.lastFailureClass,
        at: r.health.at,
      })),
    };
  }

  async function agentDetail(a: AgentState) {
    const now = Date.now();
    const events = (await d.store.recentEvents(a.agentId, 30)).map((e) => JSON.parse(e.body) as Record<string, unknown>);
    const classes = new Set<string>();
    for (const r of a.readers.values()) if (r.health.lastFailureClass) classes.add(r.health.lastFailureClass);
    for (const e of events) if (typeof e.failureClass === "string") classes.add(e.failureClass);
    for (const c of a.metrics?.counters ?? []) if (c.name === "mrtd_read_failures_total" && c.labels.class) classes.add(c.labels.class);
    const failureCounts: Record<string, number> = {};
    for (const c of a.metrics?.counters ?? []) if (c.name === "mrtd_read_failures_total" && c.labels.class) failureCounts[c.labels.class] = c.value;
    return {
      ...agentRow(a, now),
      startedAt: a.startedAt,
      alertList: d.state.alertsOf(a, now),
      events,
      failureClasses: [...classes].sort().map((code) => {
        const f = FAILURE_CLASSES[code];
        return { code, count: failureCounts[code] ?? null, layer: f?.layer ?? null, explanation: f?.explanation ?? null, likelyCauses: f?.likelyCauses ?? [], action: f?.action ?? null };
      }),
      canCommand: d.commands !== undefined,
      hpkePublicKey: a.publicKey,
      apduLatency: apduLatencyHistogram(a.metrics),
    };
  }

  return {
    url: `${tls ? "https" : "http"}://${d.config.http.host.includes(":") ? `[${d.config.http.host}]` : d.config.http.host}:${server.port}`,
    notify: (c) => {
      changed.add(c.agentId);
    },
    stop: async () => {
      clearInterval(flush);
      clearInterval(ping);
      for (const c of clients) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      clients.clear();
      await server.stop(true);
    },
  };
}
