/**
 * Watches PC/SC readers and cards for the service (PC/SC part 5, SCardGetStatusChange):
 * readers appearing and disappearing (the "\\?PnP?\Notification" pseudo reader), cards
 * arriving and leaving, and pcscd itself going away and coming back.
 *
 * One PcscClient is kept open; its monitor worker blocks in SCardGetStatusChange (no CPU while
 * waiting) and is woken by SCardCancel on stop. Reads use the same client's I/O worker, so a
 * read never waits behind the watcher. When pcscd stops or restarts (SCARD_E_NO_SERVICE,
 * SCARD_F_COMM_ERROR, ...) the client's contexts are dead: the watcher reports every reader
 * gone, closes the client and opens a fresh one with exponential backoff and jitter.
 */
import { TransportError } from "../errors.ts";
import {
  PcscClient,
  PNP_NOTIFICATION,
  SCARD_STATE_MUTE,
  SCARD_STATE_PRESENT,
  SCARD_STATE_UNAWARE,
  SCARD_STATE_UNKNOWN,
  type ReaderState,
} from "../transport/pcsc.ts";
import { hex } from "../bytes.ts";
import type { Logger } from "./logger.ts";
import { errorFields, silentLogger } from "./logger.ts";
import { backoffDelayMs } from "./backoff.ts";

export type WatcherEvent =
  | { type: "attached"; reader: string }
  | { type: "detached"; reader: string }
  | { type: "inserted"; reader: string; atr: string; mute: boolean }
  | { type: "removed"; reader: string }
  /** A card's responsiveness changed (mute <-> answering) without leaving the reader. */
  | { type: "state"; reader: string; mute: boolean }
  | { type: "service-lost"; code: string }
  | { type: "service-restored" };

export interface ReaderView {
  name: string;
  present: boolean;
  /** A card is present but did not answer the reset (SCARD_STATE_MUTE). */
  mute: boolean;
  atr: string;
}

export interface ReaderWatcherOptions {
  /** Which readers to watch (config readers.include/exclude); default all. */
  select?: (name: string) => boolean;
  log?: Logger;
  openClient?: () => Promise<PcscClient>;
  /** Reopen backoff after pcscd went away. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

/** PC/SC codes meaning the client's link to pcscd is gone (daemon stopped or restarted). */
export const SERVICE_LOST_CODES = new Set(["SCARD_E_NO_SERVICE", "SCARD_E_SERVICE_STOPPED", "SCARD_F_COMM_ERROR", "SCARD_E_INVALID_HANDLE", "SCARD_E_INVALID_VALUE", "SCARD_F_INTERNAL_ERROR"]);

const INFINITE = 0xffffffff;

export class ReaderWatcher {
  readonly #select: (name: string) => boolean;
  readonly #log: Logger;
  readonly #open: () => Promise<PcscClient>;
  readonly #backoffMinMs: number;
  readonly #backoffMaxMs: number;
  readonly #listeners = new Set<(e: WatcherEvent) => void>();
  readonly #readers = new Map<string, ReaderView>();
  #client: PcscClient | undefined;
  #running = false;
  #loop: Promise<void> | undefined;
  #serviceUp = false;
  #scanned = false;
  #scanWaiters: Array<() => void> = [];
  #sleepWake: (() => void) | undefined;
  #reopens = 0;

  constructor(opts: ReaderWatcherOptions = {}) {
    this.#select = opts.select ?? (() => true);
    this.#log = opts.log ?? silentLogger;
    this.#open = opts.openClient ?? (() => PcscClient.open());
    this.#backoffMinMs = opts.backoffMinMs ?? 250;
    this.#backoffMaxMs = opts.backoffMaxMs ?? 5000;
  }

  /** The open PC/SC client (undefined while pcscd is unreachable). */
  get client(): PcscClient | undefined {
    return this.#client;
  }
  get serviceUp(): boolean {
    return this.#serviceUp;
  }
  /** Times the PC/SC client was reopened after pcscd went away. */
  get reopens(): number {
    return this.#reopens;
  }
  /** Watched readers pcscd lists now. */
  get readers(): string[] {
    return [...this.#readers.keys()];
  }
  reader(name: string): ReaderView | undefined {
    const r = this.#readers.get(name);
    return r ? { ...r } : undefined;
  }

  on(listener: (e: WatcherEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  /** Resolves after the first complete scan (or the first failure to reach pcscd). */
  firstScan(): Promise<void> {
    if (this.#scanned) return Promise.resolve();
    return new Promise((r) => this.#scanWaiters.push(r));
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#sleepWake?.();
    this.#client?.cancel();
    await this.#loop;
    await this.#client?.close().catch(() => undefined);
    this.#client = undefined;
  }

  /**
   * Resolves with the first watched reader accepted by `match` that holds a responsive card,
   * waiting up to `timeoutMs`. Rejects with TransportError NO_CARD (or NO_READER when no
   * reader matched at the end), or with the signal's reason when aborted.
   */
  waitForCard(match: (name: string) => boolean, timeoutMs: number, signal?: AbortSignal, onWaiting?: (readers: string[]) => void): Promise<string> {
    const ready = () => [...this.#readers.values()].find((r) => match(r.name) && r.present && !r.mute)?.name;
    const now = ready();
    if (now !== undefined) return Promise.resolve(now);
    onWaiting?.(this.readers.filter(match));
    return new Promise<string>((resolve, reject) => {
      const finish = (fn: () => void) => {
        clearTimeout(timer);
        off();
        signal?.removeEventListener("abort", onAbort);
        fn();
      };
      const onAbort = () => finish(() => reject(signal!.reason ?? new Error("aborted")));
      const off = this.on(() => {
        const name = ready();
        if (name !== undefined) finish(() => resolve(name));
      });
      const timer = setTimeout(() => {
        finish(() => {
          const candidates = this.readers.filter(match);
          if (candidates.length === 0) reject(new TransportError("NO_READER", "no matching PC/SC reader is connected", { retryable: false }));
          else reject(new TransportError("NO_CARD", `no card in ${candidates.join(", ")} after waiting ${Math.round(timeoutMs / 1000)} s`, { retryable: true }));
        });
      }, timeoutMs);
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  #emit(e: WatcherEvent): void {
    for (const l of [...this.#listeners]) {
      try {
        l(e);
      } catch (err) {
        this.#log.error("reader watcher listener failed", errorFields(err));
      }
    }
  }

  #scanDone(): void {
    this.#scanned = true;
    for (const w of this.#scanWaiters.splice(0)) w();
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (this.#running) {
      try {
        if (!this.#client) {
          this.#client = await this.#open();
          if (failures > 0 || this.#reopens > 0 || this.#serviceUpBefore) {
            this.#reopens++;
            this.#log.info("pcscd reachable again", { reopens: this.#reopens });
          }
          this.#serviceUp = true;
          this.#serviceUpBefore = true;
          this.#emit({ type: "service-restored" });
        }
        failures = 0;
        await this.#watch(this.#client);
      } catch (e) {
        if (!this.#running) break;
        const code = e instanceof TransportError ? e.code : "UNKNOWN";
        if (code === "SCARD_E_CANCELLED") continue;
        failures++;
        const lost = !(e instanceof TransportError) || SERVICE_LOST_CODES.has(code) || code === "CLOSED" || code === "PCSC_WORKER";
        if (lost) {
          if (this.#serviceUp || failures === 1) this.#log.warn("pcscd unreachable: readers are gone until it is back", errorFields(e));
          this.#dropAll(code);
          const c = this.#client;
          this.#client = undefined;
          await c?.close().catch(() => undefined);
        } else {
          this.#log.warn("reader watch failed; rescanning", errorFields(e));
        }
        this.#scanDone();
        await this.#sleep(backoffDelayMs(failures, this.#backoffMinMs, this.#backoffMaxMs));
      }
    }
    this.#scanDone();
  }

  #serviceUpBefore = false;

  #dropAll(code: string): void {
    const wasUp = this.#serviceUp;
    this.#serviceUp = false;
    for (const r of [...this.#readers.values()]) {
      this.#readers.delete(r.name);
      if (r.present) this.#emit({ type: "removed", reader: r.name });
      this.#emit({ type: "detached", reader: r.name });
    }
    if (wasUp) this.#emit({ type: "service-lost", code });
  }

  /** Lists readers, reconciles, then waits for changes until the reader set changes. */
  async #watch(client: PcscClient): Promise<void> {
    const names = (await client.listReaders()).filter((n) => this.#select(n));
    for (const gone of [...this.#readers.keys()].filter((n) => !names.includes(n))) {
      const r = this.#readers.get(gone)!;
      this.#readers.delete(gone);
      if (r.present) this.#emit({ type: "removed", reader: gone });
      this.#emit({ type: "detached", reader: gone });
    }
    let states: ReaderState[] = await client.getStatusChange(
      [{ name: PNP_NOTIFICATION, currentState: SCARD_STATE_UNAWARE }, ...names.map((name) => ({ name, currentState: SCARD_STATE_UNAWARE }))],
      0,
    );
    for (const name of names) {
      if (!this.#readers.has(name)) {
        this.#readers.set(name, { name, present: false, mute: false, atr: "" });
        this.#emit({ type: "attached", reader: name });
      }
    }
    this.#apply(states.slice(1));
    this.#scanDone();
    while (this.#running) {
      states = await client.getStatusChange(
        states.map((s) => ({ name: s.name, currentState: s.eventState })),
        INFINITE,
      );
      if (!this.#running) return;
      const [pnp, ...rest] = states;
      if (rest.some((s) => (s.eventState & SCARD_STATE_UNKNOWN) !== 0)) return; // a reader went away: re-list
      this.#apply(rest);
      if (pnp?.changed) return; // readers added or removed: re-list
    }
  }

  #apply(states: ReaderState[]): void {
    for (const s of states) {
      const r = this.#readers.get(s.name);
      if (!r) continue;
      const present = (s.eventState & SCARD_STATE_PRESENT) !== 0;
      const mute = (s.eventState & SCARD_STATE_MUTE) !== 0;
      if (present && !r.present) {
        r.present = true;
        r.mute = mute;
        r.atr = hex(s.atr).toUpperCase();
        this.#emit({ type: "inserted", reader: s.name, atr: r.atr, mute });
      } else if (!present && r.present) {
        r.present = false;
        r.mute = false;
        r.atr = "";
        this.#emit({ type: "removed", reader: s.name });
      } else if (present && r.mute !== mute) {
        r.mute = mute;
        this.#emit({ type: "state", reader: s.name, mute });
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#sleepWake = undefined;
        resolve();
      }, ms);
      this.#sleepWake = () => {
        clearTimeout(t);
        this.#sleepWake = undefined;
        resolve();
      };
    });
  }
}
