/**
 * The card lock: one card operation (a read, a diagnosis) at a time. A remote read waits for
 * a read-on-insert in progress, within its timeout; past it, or when its command is aborted,
 * it is answered BUSY.
 */
import { CommandError } from "./command-types.ts";

export class CardLock {
  #held: Promise<void> | undefined;

  /** Whether a card operation is running. */
  get busy(): boolean {
    return this.#held !== undefined;
  }

  /** Runs `fn` holding the lock; waits for the lock up to `waitMs` (0: fail at once). */
  async run<T>(fn: () => Promise<T>, waitMs = 0, signal?: AbortSignal): Promise<T> {
    const deadline = Date.now() + waitMs;
    while (this.#held) {
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) throw new CommandError("BUSY", "another card operation is running; retry later with the same id");
      await Promise.race([this.#held, sleep(Math.min(left, 1000))]);
    }
    let release!: () => void;
    this.#held = new Promise<void>((r) => (release = r));
    try {
      return await fn();
    } finally {
      this.#held = undefined;
      release();
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
