/**
 * The card lock: one card operation (a read, a diagnosis) at a time. A remote read waits for
 * a read-on-insert in progress, within its timeout; past it, or when its command is aborted,
 * it is answered BUSY.
 */
import { CommandError } from "./command-types.ts";

export interface CardLockHooks {
  /** When the lock is taken, before the operation runs. */
  onAcquire?: (waitedMs: number) => void;
  /**
   * After the operation, once the lock is free again (also after a failure). `deferred`: the
   * caller runs the clean-up itself later (a remote read, once its sealed reply is sent).
   */
  onRelease?: (deferred: boolean) => void;
}

export class CardLock {
  #held: Promise<void> | undefined;
  readonly #hooks: CardLockHooks;

  constructor(hooks: CardLockHooks = {}) {
    this.#hooks = hooks;
  }

  /** Whether a card operation is running. */
  get busy(): boolean {
    return this.#held !== undefined;
  }

  /** Runs `fn` holding the lock; waits for the lock up to `waitMs` (0: fail at once). */
  async run<T>(fn: () => Promise<T>, waitMs = 0, signal?: AbortSignal, opts: { deferCleanup?: boolean } = {}): Promise<T> {
    const start = Date.now();
    const deadline = start + waitMs;
    while (this.#held) {
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) throw new CommandError("BUSY", "another card operation is running; retry later with the same id");
      await Promise.race([this.#held, sleep(Math.min(left, 1000))]);
    }
    let release!: () => void;
    this.#held = new Promise<void>((r) => (release = r));
    this.#hooks.onAcquire?.(Date.now() - start);
    try {
      return await fn();
    } finally {
      this.#held = undefined;
      release();
      this.#hooks.onRelease?.(opts.deferCleanup === true);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
