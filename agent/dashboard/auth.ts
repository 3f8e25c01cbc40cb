/**
 * Operator login and sessions: passwords checked against the configuration's argon2id hashes
 * (Bun.password), sessions as random 256-bit tokens in an HttpOnly, SameSite=Strict cookie
 * (Secure when the dashboard serves TLS), a per-session CSRF token that every state-changing
 * request must send in the X-CSRF-Token header (and a same-origin Origin header), and roles:
 * viewers look, operators also send commands. Sessions live in memory (a restart logs
 * everyone out), or in a shared store (PostgreSQL) so that any instance behind a load balancer
 * knows them; the store keeps a SHA-256 of the token, not the token.
 */
import type { DashboardUser, Role } from "./config.ts";

export const SESSION_COOKIE = "mrtd_dashboard_session";
const SESSION_TTL_MS = 12 * 3_600_000;
const FAIL_DELAY_MS = 500;

export interface Session {
  user: string;
  role: Role;
  csrf: string;
  expires: number;
}

/** Where sessions are kept, by an id derived from the token (sessionId). */
export interface SessionBackend {
  put(id: string, s: Session): Promise<void>;
  get(id: string): Promise<Session | undefined>;
  delete(id: string): Promise<void>;
}

/** One process's sessions. */
export class MemorySessions implements SessionBackend {
  readonly #m = new Map<string, Session>();
  async put(id: string, s: Session): Promise<void> {
    // Expired sessions nobody asked for again go when new ones are made.
    if (this.#m.size > 1000) for (const [k, v] of this.#m) if (v.expires < Date.now()) this.#m.delete(k);
    this.#m.set(id, s);
  }
  async get(id: string): Promise<Session | undefined> {
    return this.#m.get(id);
  }
  async delete(id: string): Promise<void> {
    this.#m.delete(id);
  }
}

/** The key a session is stored under: SHA-256 of its token, so a copy of the store lets nobody in. */
export function sessionId(token: string): string {
  return new Bun.CryptoHasher("sha256").update(token).digest("hex");
}

export class Sessions {
  readonly #users: Map<string, DashboardUser>;
  readonly #sessions: SessionBackend;
  readonly #secure: boolean;
  /** A hash to verify against for unknown users, so a login takes as long either way. */
  readonly #dummy = Bun.password.hashSync("not a password", { algorithm: "argon2id" });

  constructor(users: DashboardUser[], secure: boolean, backend: SessionBackend = new MemorySessions()) {
    this.#users = new Map(users.map((u) => [u.name, u]));
    this.#secure = secure;
    this.#sessions = backend;
  }

  async login(name: string, password: string): Promise<{ token: string; session: Session } | undefined> {
    const u = this.#users.get(name);
    let ok = false;
    try {
      ok = await Bun.password.verify(password, u?.passwordHash ?? this.#dummy);
    } catch {
      ok = false;
    }
    if (!u || !ok) {
      await Bun.sleep(FAIL_DELAY_MS);
      return undefined;
    }
    const token = randomToken();
    const session: Session = { user: u.name, role: u.role, csrf: randomToken(), expires: Date.now() + SESSION_TTL_MS };
    await this.#sessions.put(sessionId(token), session);
    return { token, session };
  }

  /** The session a request's cookie names, if live. */
  async of(req: Request): Promise<(Session & { token: string }) | undefined> {
    const token = cookie(req.headers.get("cookie") ?? "", SESSION_COOKIE);
    if (!token || token.length > 128) return undefined;
    const id = sessionId(token);
    const s = await this.#sessions.get(id);
    if (!s) return undefined;
    if (s.expires < Date.now()) {
      await this.#sessions.delete(id);
      return undefined;
    }
    return { ...s, token };
  }

  async logout(token: string): Promise<void> {
    await this.#sessions.delete(sessionId(token));
  }

  setCookie(token: string): string {
    return `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}${this.#secure ? "; Secure" : ""}`;
  }

  clearCookie(): string {
    return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${this.#secure ? "; Secure" : ""}`;
  }
}

/** A state-changing request must come from our own origin and carry the session's CSRF token. */
export function csrfOk(req: Request, session: Session | undefined): boolean {
  if (!sameOrigin(req)) return false;
  if (!session) return true; // login: no session yet; the Origin check above is what protects it
  const sent = req.headers.get("x-csrf-token") ?? "";
  return sent.length === session.csrf.length && timingSafeEqual(sent, session.csrf);
}

export function sameOrigin(req: Request): boolean {
  const origin = req.headers.get("origin");
  if (origin === null) return false;
  return origin === new URL(req.url).origin;
}

function timingSafeEqual(a: string, b: string): boolean {
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return d === 0;
}

function randomToken(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
}

function cookie(header: string, name: string): string | undefined {
  for (const part of header.split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}
