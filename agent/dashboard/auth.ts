/**
 * Operator login and sessions: passwords checked against the configuration's argon2id hashes
 * (Bun.password), sessions as random 256-bit tokens in an HttpOnly, SameSite=Strict cookie
 * (Secure when the dashboard serves TLS), a per-session CSRF token that every state-changing
 * request must send in the X-CSRF-Token header (and a same-origin Origin header), and roles:
 * viewers look, operators also send commands. Sessions live in memory: a restart logs
 * everyone out.
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

export class Sessions {
  readonly #users: Map<string, DashboardUser>;
  readonly #sessions = new Map<string, Session>();
  readonly #secure: boolean;
  /** A hash to verify against for unknown users, so a login takes as long either way. */
  readonly #dummy = Bun.password.hashSync("not a password", { algorithm: "argon2id" });

  constructor(users: DashboardUser[], secure: boolean) {
    this.#users = new Map(users.map((u) => [u.name, u]));
    this.#secure = secure;
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
    this.#sessions.set(token, session);
    return { token, session };
  }

  /** The session a request's cookie names, if live. */
  of(req: Request): (Session & { token: string }) | undefined {
    const token = cookie(req.headers.get("cookie") ?? "", SESSION_COOKIE);
    if (!token) return undefined;
    const s = this.#sessions.get(token);
    if (!s) return undefined;
    if (s.expires < Date.now()) {
      this.#sessions.delete(token);
      return undefined;
    }
    return { ...s, token };
  }

  logout(token: string): void {
    this.#sessions.delete(token);
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
