/**
 * The idempotency cache of remote commands: a command id seen recently (running or answered)
 * never runs twice; its duplicates get the held reply, or wait for the running command.
 */
import type { ErrorCode } from "./command-types.ts";

interface CacheEntry {
  at: number;
  /** The final reply as sent (JSON), while it is held. */
  reply?: string;
  /** How the command ended (kept when the reply is dropped). */
  outcome?: { ok: boolean; code?: ErrorCode };
  waiters: Array<(reply: string) => void>;
}

/**
 * Remembers command ids (running or answered) for `ttlMs`, at most `maxEntries`, so a
 * repeated id never runs twice. Only answered entries are evicted (oldest first): a running
 * command keeps its entry, so its duplicates always get its reply; when every entry is a
 * running command, `begin` refuses (the dispatcher answers BUSY). A running command takes at
 * most `maxWaiters` duplicates waiting for its reply. The replies themselves are held within
 * `maxReplyBytes` in all: a read reply with a sealed face image is tens of kilobytes, and
 * 512 of them would be a board's memory. Past the budget the oldest replies are dropped and
 * only their id and outcome remain; a repeat of such an id is answered DUPLICATE, not run.
 */
export class IdempotencyCache {
  readonly #entries = new Map<string, CacheEntry>();
  readonly #maxEntries: number;
  readonly #maxReplyBytes: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  #replyBytes = 0;
  readonly #maxWaiters: number;
  constructor(opts: { maxEntries?: number; maxReplyBytes?: number; ttlMs?: number; maxWaiters?: number; now?: () => number } = {}) {
    this.#maxEntries = opts.maxEntries ?? 512;
    this.#maxWaiters = opts.maxWaiters ?? 8;
    this.#maxReplyBytes = opts.maxReplyBytes ?? 256 * 1024;
    this.#ttlMs = opts.ttlMs ?? 10 * 60_000;
    this.#now = opts.now ?? Date.now;
  }
  get size(): number {
    return this.#entries.size;
  }
  /** Bytes of the replies held (UTF-16 code units of their JSON, which is ASCII). */
  get replyBytes(): number {
    return this.#replyBytes;
  }
  /** The live entry for `id`, or undefined (expired entries are forgotten). */
  get(id: string): CacheEntry | undefined {
    const e = this.#entries.get(id);
    if (e?.outcome && this.#now() - e.at > this.#ttlMs) {
      this.#delete(id);
      return undefined;
    }
    return e;
  }
  /**
   * Marks `id` as running, evicting the oldest answered entries to make room. False (and
   * nothing recorded) when the cache holds `maxEntries` running commands.
   */
  begin(id: string): boolean {
    this.#delete(id);
    if (this.#entries.size >= this.#maxEntries) {
      for (const [oldId, e] of this.#entries) {
        if (this.#entries.size < this.#maxEntries) break;
        if (e.outcome) this.#delete(oldId);
      }
      if (this.#entries.size >= this.#maxEntries) return false;
    }
    this.#entries.set(id, { at: this.#now(), waiters: [] });
    return true;
  }
  /**
   * Adds a caller to wait for the reply of running command `id`. False when `id` is not
   * running or already has `maxWaiters` callers waiting.
   */
  wait(id: string, waiter: (reply: string) => void): boolean {
    const e = this.#entries.get(id);
    if (!e || e.outcome || e.waiters.length >= this.#maxWaiters) return false;
    e.waiters.push(waiter);
    return true;
  }
  /** How many commands are running (begun, not finished). */
  get running(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (!e.outcome) n++;
    return n;
  }
  /** Records the final reply (its JSON) and returns the callers that waited on the running command. */
  finish(id: string, reply: string, outcome: { ok: boolean; code?: ErrorCode }): Array<(reply: string) => void> {
    const waiters = this.#entries.get(id)?.waiters ?? [];
    this.#delete(id); // re-insert at the end: eviction order follows completion
    const entry: CacheEntry = { at: this.#now(), outcome, waiters: [] };
    if (reply.length <= this.#maxReplyBytes) {
      entry.reply = reply;
      this.#replyBytes += reply.length;
    }
    this.#entries.set(id, entry);
    // Over budget: drop the oldest held replies (never the one just added, which fits).
    for (const [oldId, e] of this.#entries) {
      if (this.#replyBytes <= this.#maxReplyBytes) break;
      if (oldId === id || e.reply === undefined) continue;
      this.#replyBytes -= e.reply.length;
      delete e.reply;
    }
    return waiters;
  }
  /** Forgets `id` (for answers that must not be replayed, e.g. BUSY). */
  forget(id: string): void {
    this.#delete(id);
  }
  #delete(id: string): void {
    const e = this.#entries.get(id);
    if (e?.reply !== undefined) this.#replyBytes -= e.reply.length;
    this.#entries.delete(id);
  }
}
