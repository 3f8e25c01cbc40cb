/**
 * Disk-backed outbox for QoS 1 events ("nothing lost offline"), in bun:sqlite.
 *
 * - Every event gets a time-ordered id (UUIDv7, RFC 9562 §5.7) that travels in the payload
 *   (`eventId`) and as the MQTT user property `event-id`; consumers de-duplicate by it, since
 *   an event whose PUBACK was lost in a disconnect is sent again after reconnect.
 *   Appending the same id twice stores it once.
 * - Delivered oldest first, one at a time (publish QoS 1, delete on PUBACK), so order holds
 *   across reconnects.
 * - Bounded: appending beyond `maxEvents` drops the oldest; the number dropped is persisted
 *   (table `meta`) and exposed for telemetry.
 * - Durability: WAL with synchronous=FULL. A process crash (kill -9) loses nothing with either
 *   NORMAL or FULL in WAL mode, but on a board that loses power NORMAL may lose the last
 *   commits; events are few (one per read, reader or card change), so an fsync per commit is
 *   cheap insurance.
 */
import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { PublishOptions } from "./mqtt-link.ts";

export interface OutboxEntry {
  seq: number;
  eventId: string;
  topic: string;
  /** The JSON payload as sent (contains `eventId`). */
  payload: string;
  createdAt: number;
}

export interface OutboxStats {
  pending: number;
  /** Oldest events dropped because the bound was hit, since the outbox file was created. */
  dropped: number;
  /** Events delivered (PUBACK received) by this process. */
  delivered: number;
  /** Events the broker refused (PUBACK reason code >= 0x80) and that were therefore discarded. */
  refused: number;
}

/** What the outbox needs from the MQTT link. */
export interface EventPublisher {
  readonly connected: boolean;
  publish(topic: string, payload: string, opts: PublishOptions): Promise<void>;
}

export const EVENT_ID_PROPERTY = "event-id";

export class Outbox {
  readonly #db: Database;
  readonly #maxEvents: number;
  #count: number;
  #delivered = 0;
  #refused = 0;
  #draining: Promise<void> | undefined;
  #rerun = false;
  #closed = false;

  constructor(path: string, opts: { maxEvents: number }) {
    if (!Number.isInteger(opts.maxEvents) || opts.maxEvents < 1) throw new RangeError("Outbox: maxEvents must be a positive integer");
    this.#maxEvents = opts.maxEvents;
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.#db = new Database(path, { create: true, strict: true });
    this.#db.exec("PRAGMA journal_mode = WAL");
    this.#db.exec("PRAGMA synchronous = FULL");
    this.#db.exec("PRAGMA busy_timeout = 5000");
    this.#db.exec(`CREATE TABLE IF NOT EXISTS events (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      event_id TEXT NOT NULL UNIQUE,
      topic TEXT NOT NULL,
      payload TEXT NOT NULL,
      created_at INTEGER NOT NULL)`);
    this.#db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)");
    this.#db.exec("INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped', 0)");
    this.#count = (this.#db.query("SELECT COUNT(*) AS n FROM events").get() as { n: number }).n;
  }

  /**
   * Stores one event. `body` gets `eventId` (generated unless given) and is serialized as JSON.
   * Returns the event id. Appending an id that is already stored changes nothing.
   */
  append(topic: string, body: Record<string, unknown>, eventId: string = Bun.randomUUIDv7()): string {
    this.#assertOpen();
    const payload = JSON.stringify({ eventId, ...body });
    const tx = this.#db.transaction(() => {
      const r = this.#db.query("INSERT OR IGNORE INTO events (event_id, topic, payload, created_at) VALUES (?, ?, ?, ?)").run(eventId, topic, payload, Date.now());
      if (r.changes === 0) return;
      this.#count++;
      const excess = this.#count - this.#maxEvents;
      if (excess > 0) {
        this.#db.query("DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)").run(excess);
        this.#db.query("UPDATE meta SET value = value + ? WHERE key = 'dropped'").run(excess);
        this.#count -= excess;
      }
    });
    tx();
    return eventId;
  }

  /** The oldest `limit` pending events, in order. */
  peek(limit = 100): OutboxEntry[] {
    this.#assertOpen();
    return this.#db
      .query("SELECT seq, event_id AS eventId, topic, payload, created_at AS createdAt FROM events ORDER BY seq LIMIT ?")
      .all(limit) as OutboxEntry[];
  }

  /** Removes a delivered event. */
  ack(eventId: string): void {
    this.#assertOpen();
    const r = this.#db.query("DELETE FROM events WHERE event_id = ?").run(eventId);
    if (r.changes > 0) {
      this.#count -= r.changes;
      this.#delivered += r.changes;
    }
  }

  #refuse(eventId: string): void {
    const r = this.#db.query("DELETE FROM events WHERE event_id = ?").run(eventId);
    this.#count -= r.changes;
    this.#refused += r.changes;
  }

  stats(): OutboxStats {
    this.#assertOpen();
    const dropped = (this.#db.query("SELECT value FROM meta WHERE key = 'dropped'").get() as { value: number }).value;
    return { pending: this.#count, dropped, delivered: this.#delivered, refused: this.#refused };
  }

  /**
   * Sends pending events through `link` in order until empty, disconnected or refused.
   * Concurrent calls share one drain. Resolves when the drain stops; never rejects.
   */
  drain(link: EventPublisher): Promise<void> {
    if (this.#draining) {
      // Events appended while a drain is finishing must not wait for the next reconnect.
      this.#rerun = true;
      return this.#draining;
    }
    const run = async () => {
      while (!this.#closed && link.connected) {
        const batch = this.peek(50);
        if (batch.length === 0) return;
        for (const e of batch) {
          if (this.#closed || !link.connected) return;
          try {
            await link.publish(e.topic, e.payload, {
              qos: 1,
              userProperties: { [EVENT_ID_PROPERTY]: e.eventId },
              contentType: "application/json",
            });
          } catch (err) {
            if ((err as { code?: unknown }).code === "REFUSED") {
              // The broker will never take this one (e.g. ACL): retrying would block the queue.
              if (!this.#closed) this.#refuse(e.eventId);
              continue;
            }
            // Offline or connection lost: stays queued, retried at the next drain (after reconnect).
            return;
          }
          if (!this.#closed) this.ack(e.eventId);
        }
      }
    };
    const loop = async () => {
      try {
        do {
          this.#rerun = false;
          await run();
        } while (this.#rerun && !this.#closed && link.connected);
      } catch {
        // publish failures are handled in run(); anything else leaves the events queued
      }
      // Runs after at least one await, so #draining already holds this promise: no window
      // in which a drain() call could join a drain that has already decided to stop.
      this.#draining = undefined;
    };
    this.#draining = loop();
    return this.#draining;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error("Outbox: closed");
  }
}
