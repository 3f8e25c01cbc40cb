/**
 * A strict scripted card for unit tests (gmrtd-style request/response replay): each transmit must
 * send exactly the next scripted command, or it throws ScriptError (which no protocol code
 * catches as a card or transport failure). assertDone() fails if steps are left over or any
 * mismatch happened, even if the code under test swallowed the error.
 * A step's response may be an Error to simulate a lost link (e.g. a TransportError).
 */
import type { CardTransport } from "./transport.ts";
import { fromHex, hex } from "../bytes.ts";

export interface ScriptStep {
  command: Uint8Array | string;
  response: Uint8Array | string | Error;
}

/** A scripted exchange went wrong: a test failure, not a card or link condition. */
export class ScriptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ScriptError";
  }
}

export class ScriptedTransport implements CardTransport {
  private readonly steps: Array<{ command: Uint8Array; response: Uint8Array | Error }>;
  private next = 0;
  private failure: string | undefined;
  /** Every command transmitted, in order (including an unexpected one). */
  readonly sent: Uint8Array[] = [];

  constructor(script: ScriptStep[]) {
    this.steps = script.map((s) => ({
      command: typeof s.command === "string" ? fromHex(s.command) : s.command.slice(),
      response: typeof s.response === "string" ? fromHex(s.response) : s.response instanceof Error ? s.response : s.response.slice(),
    }));
  }

  async transmit(command: Uint8Array): Promise<Uint8Array> {
    this.sent.push(command.slice());
    const index = this.next;
    const step = this.steps[index];
    if (!step) return this.fail(`unexpected command #${index + 1} after the end of the script: ${hex(command)}`);
    if (hex(step.command) !== hex(command)) {
      return this.fail(`command #${index + 1} differs from the script\n  expected ${hex(step.command)}\n  got      ${hex(command)}`);
    }
    this.next++;
    if (step.response instanceof Error) throw step.response;
    return step.response.slice();
  }

  /** Steps not yet consumed. */
  get remaining(): number {
    return this.steps.length - this.next;
  }

  assertDone(): void {
    if (this.failure !== undefined) throw new ScriptError(`script failed earlier: ${this.failure}`);
    if (this.next !== this.steps.length) {
      const left = this.steps[this.next]!;
      throw new ScriptError(`${this.steps.length - this.next} scripted step(s) not sent; next expected ${hex(left.command)}`);
    }
  }

  private fail(message: string): never {
    this.failure ??= message;
    throw new ScriptError(message);
  }
}
