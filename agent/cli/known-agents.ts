/**
 * The operator's pinned agent keys (like ssh's known_hosts): one line per agent,
 * `<agent id> <base64 X25519 public key>`. `mrtd-agent remote` takes an agent's key from its
 * retained birth message the first time it talks to that agent (trust on first use; the
 * broker's ACL already lets only that agent's certificate write its status topic) and from
 * then on refuses a birth with another key, and opens replies only with the pinned key.
 * Default file: $XDG_CONFIG_HOME/mrtd-agent/known-agents (~/.config/mrtd-agent/known-agents).
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";

export function configHome(env: Record<string, string | undefined> = process.env): string {
  return env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith("/") ? env.XDG_CONFIG_HOME : join(env.HOME ?? homedir(), ".config");
}

export function defaultKnownAgentsFile(env: Record<string, string | undefined> = process.env): string {
  return join(configHome(env), "mrtd-agent", "known-agents");
}

export function defaultOperatorKeyFile(env: Record<string, string | undefined> = process.env): string {
  return join(configHome(env), "mrtd-agent", "operator.key");
}

export class KnownAgents {
  readonly file: string;
  readonly #keys = new Map<string, { key: string; line: number }>();
  constructor(file: string) {
    this.file = file;
    if (!existsSync(file)) return;
    const lines = readFileSync(file, "utf8").split("\n");
    for (const [i, raw] of lines.entries()) {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) continue;
      const [id, key] = line.split(/\s+/);
      if (id && key && /^[A-Za-z0-9+/]{43}=$/.test(key) && !this.#keys.has(id)) this.#keys.set(id, { key, line: i + 1 });
    }
  }
  get(agentId: string): { key: string; line: number } | undefined {
    return this.#keys.get(agentId);
  }
  /** Pins `key` for `agentId` (appends a line). */
  pin(agentId: string, key: string): void {
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    appendFileSync(this.file, `${agentId} ${key}\n`, { mode: 0o600 });
    this.#keys.set(agentId, { key, line: -1 });
  }
}
