/** The dashboard's JSON API as the page uses it: same-origin fetches, the CSRF token on POSTs. */
import type { LatencyHistogram } from "../charts.ts";

export interface SessionInfo {
  user: string;
  role: "viewer" | "operator";
  csrf: string;
}
export interface ReaderRow {
  slug: string;
  reader: string;
  connected: boolean;
  cardPresent: boolean;
  rate: number | null;
  windowReads: number;
  rfDrops: number;
  rfDropsPerHour: number | null;
  recoveries: number;
  p95: number | null;
  mean: number | null;
  lastFailureClass: string | null;
  at: string;
}
export interface AgentRow {
  agentId: string;
  online: boolean;
  version: string | null;
  lastSeen: number;
  offlineSince: number | null;
  alerts: number;
  readers: ReaderRow[];
}
export interface Counts {
  agents: number;
  online: number;
  offline: number;
  readers: number;
}
export interface Overview {
  counts: Counts;
  alerts: number;
  broker: boolean;
  total: number;
  offset: number;
  rows: AgentRow[];
}
export interface Alert {
  kind: string;
  agentId: string;
  reader?: string;
  message: string;
}
export interface AgentDetail extends AgentRow {
  startedAt: string | null;
  alertList: Alert[];
  events: Array<Record<string, unknown>>;
  failureClasses: Array<{ code: string; count: number | null; layer: string | null; explanation: string | null; likelyCauses: string[]; action: string | null }>;
  canCommand: boolean;
  /** The agent's HPKE public key (base64) from its birth; null when it published none. */
  hpkePublicKey: string | null;
  /** The APDU latency distribution of the agent's newest metrics (charts.ts), null before any. */
  apduLatency: LatencyHistogram | null;
}

/** One server-sent event of a command's stream: sent, reply (the agent's reply as it sent it), end. */
export interface CommandEvent {
  event: "sent" | "reply" | "end";
  data: Record<string, unknown>;
}

let session: SessionInfo | undefined;

export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

async function call<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (method === "POST") {
    headers["content-type"] = "application/json";
    if (session) headers["x-csrf-token"] = session.csrf;
  }
  const r = await fetch(path, { method, headers, body: body === undefined ? null : JSON.stringify(body), credentials: "same-origin" });
  const data = (await r.json().catch(() => ({}))) as { error?: string };
  if (!r.ok) throw new HttpError(r.status, data.error ?? `HTTP ${r.status}`);
  return data as T;
}

export const api = {
  current: () => session,
  async session(): Promise<SessionInfo | undefined> {
    try {
      session = await call<SessionInfo>("GET", "/api/session");
    } catch {
      session = undefined;
    }
    return session;
  },
  async login(name: string, password: string): Promise<SessionInfo> {
    session = await call<SessionInfo>("POST", "/api/login", { name, password });
    return session;
  },
  async logout(): Promise<void> {
    await call("POST", "/api/logout", {});
    session = undefined;
  },
  overview: (params: URLSearchParams) => call<Overview>("GET", `/api/overview?${params}`),
  agent: (id: string) => call<AgentDetail>("GET", `/api/agents/${encodeURIComponent(id)}`),
  alerts: () => call<{ alerts: Alert[] }>("GET", "/api/alerts"),
  history: (id: string, slug: string) =>
    call<{ samples: Array<{ at: number; rate: number | null; p95: number | null; rfDrops: number; readsOk: number; readsFailed: number }>; daily: Array<{ day: string; meanRate: number | null; maxP95: number | null }> }>("GET", `/api/agents/${encodeURIComponent(id)}/readers/${encodeURIComponent(slug)}/history`),
  /**
   * Sends a command the page built (remote.ts) and calls `onEvent` for each event of the
   * server's stream until it ends. Throws HttpError when the server refuses it.
   */
  async command(id: string, body: unknown, signal: AbortSignal, onEvent: (e: CommandEvent) => void): Promise<void> {
    const r = await fetch(`/api/agents/${encodeURIComponent(id)}/command`, {
      method: "POST",
      signal,
      headers: { "content-type": "application/json", "x-csrf-token": session?.csrf ?? "" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    if (!r.ok || !r.body) {
      const data = (await r.json().catch(() => ({}))) as { error?: string; code?: string };
      throw new HttpError(r.status, `${data.code ? `${data.code}: ` : ""}${data.error ?? `HTTP ${r.status}`}`);
    }
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i: number;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const event = /^event: (.*)$/m.exec(frame)?.[1];
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if ((event === "sent" || event === "reply" || event === "end") && data !== undefined) {
          try {
            onEvent({ event, data: JSON.parse(data) as Record<string, unknown> });
          } catch (e) {
            if (!(e instanceof SyntaxError)) throw e;
          }
        }
      }
    }
  },
};
