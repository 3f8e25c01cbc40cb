/**
 * The card commands a requester can send (read, diagnose), as the dispatcher runs them
 * (command-dispatcher.ts): each waits for the card lock within its timeout, reports progress
 * and returns its result; the dispatcher seals a result to the requester's key (agent-key.ts),
 * and a read's result holds personal data only when asked for and only then.
 */
import { TransportError } from "../errors.ts";
import type { BacAccessKey } from "../icao/mrz-key.ts";
import { byKey, type LdsFileInfo } from "../lds/lds-files.ts";
import type { AccessKey } from "./access-key.ts";
import type { CardLock } from "./card-lock.ts";
import type { CardReads } from "./card-reads.ts";
import type { HandlerContext } from "./command-dispatcher.ts";
import { CommandError, type DiagnoseCommand, type ReadCommand } from "./command-types.ts";
import { b64 } from "./envelope.ts";
import type { ReadEvent } from "./payloads.ts";
import { readReport, withoutPersonalData } from "../reading/read-report.ts";
import type { ReaderWatcher } from "./reader-watcher.ts";

export type DiagnoseFn = (opts: { reader?: string; count: number; waitMs: number; disconnect?: "reset" | "leave"; onProgress?: (done: number, total: number) => void }) => Promise<unknown>;

/**
 * What a read returns to a remote requester: the read event's fields, the report `mrtd-agent
 * read --json` prints (MRZ, DG11, DG12 only with includePersonalData) and, with
 * includePersonalData, the face image. The dispatcher seals it all to the requester's key.
 */
export interface ReadReplyResult extends Omit<ReadEvent, "agentId" | "at" | "type"> {
  eventId: string;
  report?: Omit<ReturnType<typeof readReport>, "trace">;
  faceImage?: { format: string; image: string };
}

export interface RemoteCommandsOptions {
  agentId: string;
  watcher: ReaderWatcher;
  lock: CardLock;
  reads: CardReads;
  /** The `diagnose` implementation; resolved from agent/diagnostics when absent. */
  diagnose?: DiagnoseFn | undefined;
  /** How a diagnosis leaves the card (config readers.disconnect). */
  disconnect: "reset" | "leave";
}

export class RemoteCommands {
  readonly #o: RemoteCommandsOptions;

  constructor(opts: RemoteCommandsOptions) {
    this.#o = opts;
  }

  async read(cmd: ReadCommand, ctx: HandlerContext): Promise<ReadReplyResult> {
    const keys = readKeysOf(cmd.accessKey);
    const files: LdsFileInfo[] | undefined = cmd.files?.map((k) => byKey(k)!).filter(Boolean);
    const part = cmd.reader?.toLowerCase();
    const match = (n: string) => part === undefined || n.toLowerCase().includes(part);
    if (this.#o.watcher.serviceUp && !this.#o.watcher.readers.some(match)) {
      this.#o.reads.recordUnstarted(cmd, "NO_READER", 0);
      throw new CommandError("NO_READER", part === undefined ? "no PC/SC reader is connected" : "no connected reader name contains the given reader text");
    }
    const timeoutMs = cmd.timeoutS * 1000;
    const deadline = Date.now() + timeoutMs;
    return this.#o.lock.run(
      async () => {
        void ctx.progress("waiting-for-card", { timeoutS: cmd.timeoutS });
        let reader: string;
        const waitStart = performance.now();
        try {
          reader = await this.#o.watcher.waitForCard(match, Math.max(0, deadline - Date.now()), ctx.signal);
        } catch (e) {
          if (e instanceof TransportError && (e.code === "NO_CARD" || e.code === "NO_READER")) this.#o.reads.recordUnstarted(cmd, e.code, performance.now() - waitStart);
          if (e instanceof TransportError && e.code === "NO_CARD") throw new CommandError("TIMEOUT", `no card was presented within ${cmd.timeoutS} s`);
          if (e instanceof TransportError && e.code === "NO_READER") throw new CommandError("NO_READER", e.message);
          throw e;
        }
        void ctx.progress("card-present", { reader });
        const outcome = await this.#o.reads.read({
          reader,
          ...keys,
          ...(files ? { files } : {}),
          trigger: "command",
          commandId: cmd.id,
          cardWaitMs: Math.min(10_000, Math.max(2000, deadline - Date.now())),
          signal: ctx.signal,
          onProgress: (pr) => {
            if (pr.kind === "step") void ctx.progress(pr.step);
            else if (pr.kind === "file-done") void ctx.progress("file-done", { file: pr.key, bytes: pr.bytes, apdus: pr.apdus, ms: pr.ms });
            else if (pr.kind === "file-absent") void ctx.progress("file-absent", { file: pr.key, sw: pr.sw.toString(16).toUpperCase().padStart(4, "0") });
            else if (pr.kind === "recovery") void ctx.progress("recovery", { cause: pr.recovery.cause, action: pr.recovery.action, ok: pr.recovery.ok ?? true });
          },
        });
        // The event's own sealed data (telemetry.include_personal_data) is for the fleet's key, not the requester's.
        const { agentId: _a, at: _t, type: _y, personalData: _p, ...rest } = outcome.event;
        const result: ReadReplyResult = { eventId: outcome.eventId, ...rest };
        if (outcome.doc) {
          // Personal data only when asked for, and only into a result that is sealed (the dispatcher seals to replyPublicKey).
          const personal = cmd.includePersonalData && cmd.replyPublicKey !== undefined;
          const { trace: _trace, ...report } = readReport(outcome.doc, outcome.verdict);
          result.report = personal ? report : withoutPersonalData(report);
          const face = outcome.doc.dg2?.faces[0];
          if (personal && face) result.faceImage = { format: face.format, image: b64(face.imageBytes) };
        }
        return result;
      },
      timeoutMs,
      ctx.signal,
      { deferCleanup: true }, // the dispatcher's afterReply, once the sealed reply is sent: GC and trim never run between the slices of its sealing
    );
  }

  async diagnose(cmd: DiagnoseCommand, ctx: HandlerContext): Promise<unknown> {
    const diagnose = this.#o.diagnose ?? (await loadDiagnose());
    if (!diagnose) throw new CommandError("NOT_SUPPORTED", "NOT_AVAILABLE: reader diagnostics are not part of this agent build");
    return this.#o.lock.run(
      async () => {
        let lastPct = -1;
        void ctx.progress("diagnosing", { count: cmd.count });
        // A separate PC/SC client: the watcher's monitor worker is blocked in its wait.
        return diagnose({
          ...(cmd.reader !== undefined ? { reader: cmd.reader } : {}),
          count: cmd.count,
          waitMs: 10_000,
          disconnect: this.#o.disconnect,
          onProgress: (done, total) => {
            const pct = Math.floor((done / total) * 10) * 10;
            if (pct > lastPct) {
              lastPct = pct;
              void ctx.progress("exchanges", { done, total });
            }
          },
        }); // the card lock's release collects what its own PC/SC client (two workers) left
      },
      30_000,
      ctx.signal,
    );
  }
}

export type ReadKeys = { accessKey: BacAccessKey; can?: undefined } | { accessKey?: undefined; can: string };

/** What a read takes from a validated access key: the MRZ key (BAC or PACE) or the CAN (PACE). */
export function readKeysOf(k: AccessKey): ReadKeys {
  if (k.kind === "can") return { can: k.can };
  return { accessKey: { documentNumber: k.documentNumber, dateOfBirth: k.dateOfBirth, dateOfExpiry: k.dateOfExpiry } };
}

/** The diagnostics function, if this build has it (agent/diagnostics). */
async function loadDiagnose(): Promise<DiagnoseFn | undefined> {
  try {
    const mod = (await import("../diagnostics/reader-diagnostics.ts")) as { diagnoseReader?: DiagnoseFn };
    return typeof mod.diagnoseReader === "function" ? mod.diagnoseReader : undefined;
  } catch {
    return undefined;
  }
}
