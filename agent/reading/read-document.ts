/**
 * One eMRTD read as a named list of steps (ICAO 9303-10/11): authenticate (PACE when
 * EF.CardAccess offers it, else BAC; authenticate.ts), read EF.COM and EF.SOD, then the data
 * groups EF.SOD lists (the signed list decides; EF.COM is advisory), parse, compare the hashes
 * with EF.SOD, run Chip Authentication (or check PACE-CAM) when EF.SOD vouches for DG14, and
 * Active Authentication when EF.SOD lists DG15. Recovers from a lost secure channel or link by
 * re-authenticating (and reconnecting) and resuming at the last verified offset.
 */
import { sha256InSlices } from "../crypto/hash.ts";
import { hex } from "../bytes.ts";
import { AccessDeniedError, CardStatusError, MrtdError, PaceError, SecureMessagingError, TransportError } from "../errors.ts";
import type { BacAccessKey } from "../icao/mrz-key.ts";
import { maxReadPlaintext, SecureChannel } from "../icao/secure-messaging.ts";
import { performChipAuthentication, type ChipAuthResult } from "../icao/chip-authentication.ts";
import { chooseChipAuthentication } from "../lds/security-infos.ts";
import { verifyCam } from "../icao/pace.ts";
import { parseDg14 } from "../lds/dg14.ts";
import type { CommandApdu } from "../iso7816/apdu.ts";
import { parseAtr } from "../iso7816/atr.ts";
import { parseEfCom, type EfCom } from "../lds/ef-com.ts";
import { byDataGroupNumber, byDgNumber, byKey, type LdsFileInfo } from "../lds/lds-files.ts";
import { parseDg1, type Mrz } from "../lds/mrz.ts";
import { parseDg2, type Dg2 } from "../lds/dg2.ts";
import { parseDg11, type Dg11 } from "../lds/dg11.ts";
import { parseDg12, type Dg12 } from "../lds/dg12.ts";
import { compareHashes, parseSod, type SodInfo } from "../lds/sod.ts";
import type { AaResult } from "../verification/active-authentication.ts";
import type { CardConnection } from "../transport/transport.ts";
import { ApduMeter, type TraceEntry } from "./apdu-meter.ts";
import { authenticate as runAccessControl, type Authenticated, type AuthMemory, type AuthMode } from "./authenticate.ts";
import { isFileAbsent, readFile, type FileProgress, type ProtectedLink, type SmResponse } from "./file-reader.ts";
import { LinkState } from "./link-state.ts";
import { relinkCard, relinkWindowSpent, type Reconnector } from "./relink.ts";
import { classifyFailure, DEFAULT_READER_TIMEOUT_MS, type ClassifiedFailure } from "./failure-classes.ts";
import type { FileKey, ReadSummary, Recovery, StepTiming } from "./read-result.ts";

/** Data groups behind Extended Access Control (fingerprints, iris): not readable after BAC alone. */
const EAC_PROTECTED = new Set([3, 4]);

export interface ReadOptions {
  /** The MRZ key (BAC, or PACE with the MRZ password). */
  accessKey?: BacAccessKey;
  /** Card access number (6 digits): PACE with the CAN password. Preferred over the MRZ key for PACE. */
  can?: string;
  /** Access control: PACE when offered, else BAC ("auto", default), or only one of them. */
  auth?: AuthMode;
  /**
   * Data groups to read; default: every data group EF.SOD lists except the EAC-protected DG3/DG4.
   * EF.COM and EF.SOD are always read, DG15 too when EF.SOD lists it and Active Authentication
   * is on, and DG14 when EF.SOD lists it and Chip Authentication is on, whatever this list says.
   */
  files?: LdsFileInfo[];
  /** Extended-length READ BINARY: probe ("auto"), force, or never. */
  extendedLength?: "auto" | "on" | "off";
  /** Largest short-Le block to start with (231 with 3DES SM). */
  maxShortBlock?: number;
  /** Read by short EF identifier (default true). */
  sfi?: boolean;
  /** Keep a redacted APDU trace (headers, lengths, SW, timing). */
  trace?: boolean;
  random?: (n: number) => Uint8Array;
  onProgress?: (p: ReadProgress) => void;
  recovery?: RecoveryOptions;
  /** Run Active Authentication (9303-11 §6.1) after the files when EF.SOD lists DG15 (default false). */
  activeAuthentication?: boolean;
  /** Run Chip Authentication (§6.2) with DG14's key once EF.SOD vouches for DG14, or check PACE-CAM (default true). */
  chipAuthentication?: boolean;
}

export interface RecoveryOptions {
  /** Recoveries allowed in one read (each handled failure counts one). */
  maxRecoveries: number;
  /** How long to wait for the card (and pcscd) to come back after a link loss. */
  cardWaitMs: number;
  /**
   * Backoff base: the first retry after progress is immediate, then base × 2^(k-2) for the
   * k-th failure in a row without a verified block, capped at 1 s.
   */
  backoffMs: number;
  /** Failures in a row without any verified block before giving up (default 16). */
  maxConsecutive?: number;
  /** The reader's response timeout, to put the elapsed time of a lost exchange in context (default 3000). */
  readerTimeoutMs?: number;
}

/**
 * Sized for a flaky link: at a 20% per-APDU loss rate a 100-APDU read meets ~30 losses, and one
 * recovery (SELECT, GET CHALLENGE, EXTERNAL AUTHENTICATE, the read) needs 4 exchanges in a row
 * to pass; 16 failures in a row without progress bounds a dead link.
 */
export const DEFAULT_RECOVERY: RecoveryOptions = { maxRecoveries: 200, cardWaitMs: 10_000, backoffMs: 25, maxConsecutive: 16, readerTimeoutMs: DEFAULT_READER_TIMEOUT_MS };

/** What the read had done when it failed for good: for the CLI's --json and for telemetry. */
export interface ReadFailureReport {
  failure: ClassifiedFailure;
  step: string;
  file?: FileKey;
  offset?: number;
  recoveries: Recovery[];
  apdus: number;
  ms: number;
  /** Why recovery stopped, when it was tried. */
  stoppedBecause?: string;
}

const FAILURE_REPORTS = new WeakMap<object, ReadFailureReport>();

/** The classified failure and recovery history of an error thrown by readDocument. */
export function readFailureReport(e: unknown): ReadFailureReport | undefined {
  return typeof e === "object" && e !== null ? FAILURE_REPORTS.get(e) : undefined;
}

export type ReadProgress =
  | { kind: "step"; step: string }
  | { kind: "file"; key: FileKey; offset: number; total: number | undefined }
  | { kind: "file-done"; key: FileKey; bytes: number; apdus: number; ms: number }
  | { kind: "file-absent"; key: FileKey; sw: number }
  | { kind: "recovery"; recovery: Recovery };

/**
 * How to get the card back after the link is lost: the caller (CLI, service) waits for a
 * card in the same reader and connects again. Without it only SCardReconnect is tried.
 */
export type { Reconnector } from "./relink.ts";

export interface DocumentRead {
  summary: ReadSummary;
  /** Raw files as read (personal data). */
  files: Map<FileKey, Uint8Array>;
  /** SHA-256 of each file, computed once as it completed (the summary's sha256, the SOD check, verification). */
  sha256: Map<FileKey, Uint8Array>;
  com?: EfCom;
  mrz?: Mrz;
  dg2?: Dg2;
  dg11?: Dg11;
  dg12?: Dg12;
  sod?: SodInfo;
  sodHashes?: ReturnType<typeof compareHashes>;
  /** Files the card refused or does not have, with the status word. */
  absent: { key: FileKey; sw: number }[];
  /** Files that were read but did not parse (message only; never content). */
  parseErrors: { key: FileKey; message: string }[];
  trace?: TraceEntry[];
  /** Active Authentication result, when requested and DG15 was read. */
  aa?: AaResult;
  /** PACE-CAM's chip data, to check against DG14's key once the SOD vouches for DG14. */
  cam?: Authenticated["cam"];
  /** Chip Authentication or PACE-CAM result, when DG14 was read, matched EF.SOD and offered either. */
  chipAuth?: ChipAuthResult;
  /** What the read was asked to do: the caller's file list (undefined: EF.SOD decided) and whether AA was on. */
  plan: { requested: FileKey[] | undefined; activeAuthentication: boolean };
  /** Where the time went: all exchanges (wall) and inside SCardTransmit (when the transport reports it). */
  timing: { exchangeMs: number; nativeMs: number | undefined };
}

export async function readDocument(connection: CardConnection, opts: ReadOptions, reconnect?: Reconnector): Promise<DocumentRead> {
  const t0 = performance.now();
  const random = opts.random ?? ((n: number) => crypto.getRandomValues(new Uint8Array(n)));
  const recovery = opts.recovery ?? DEFAULT_RECOVERY;
  const meter = new ApduMeter(connection, { trace: opts.trace });
  const keys = { ...(opts.accessKey ? { mrz: opts.accessKey } : {}), ...(opts.can !== undefined ? { can: opts.can } : {}) };
  const authMemory: AuthMemory = {};
  let authFacts: Authenticated["facts"] | undefined;
  // "auto": probe extended length unless the card's historical bytes say it has none.
  const extendedMode = opts.extendedLength ?? "auto";
  const atrSaysNo = parseAtr(connection.atr).extendedLength === false;
  const state = new LinkState({
    maxShortBlock: opts.maxShortBlock ?? 231,
    extended: extendedMode === "auto" && atrSaysNo ? "off" : extendedMode,
    extendedBlock: 0,
    sfi: opts.sfi,
  });
  const steps: StepTiming[] = [];
  const recoveries: Recovery[] = [];
  let conn = connection;
  let channel: SecureChannel | undefined;
  let consecutiveLosses = 0;

  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    opts.onProgress?.({ kind: "step", step: name });
    const s0 = performance.now();
    const a0 = meter.count;
    try {
      return await fn();
    } finally {
      steps.push({ name, ms: round(performance.now() - s0), apdus: meter.count - a0 });
    }
  };

  /** PACE or BAC (authenticate.ts): a fresh secure channel with the applet selected. */
  const authenticate = async (): Promise<void> => {
    channel?.close();
    const a = await runAccessControl(meter, keys, opts.auth ?? "auto", authMemory, random);
    channel = a.channel;
    authFacts = a.facts;
    if (a.cam) out.cam = a.cam;
    if (state.extendedBlock === 0) state.extendedBlock = maxReadPlaintext(a.cipher, true);
    // AES blocks are 16 bytes: a short protected response carries 223 plaintext bytes, not 231
    state.clampTo(maxReadPlaintext(a.cipher, false));
  };

  let currentStep = "";
  let where: { file?: FileKey; offset?: number } = {};
  const maxConsecutive = recovery.maxConsecutive ?? DEFAULT_RECOVERY.maxConsecutive!;
  const readerTimeoutMs = recovery.readerTimeoutMs ?? DEFAULT_READER_TIMEOUT_MS;

  const link: ProtectedLink = {
    send: async (cmd: CommandApdu): Promise<SmResponse> => {
      if (!channel) throw new SecureMessagingError("no-channel", "no secure channel");
      const r = await channel.send(cmd);
      if (r.protected) consecutiveLosses = 0;
      return r;
    },
    recover: async (cause: unknown, at: { file: LdsFileInfo; offset: number }): Promise<void> => {
      where = { file: at.file.key, offset: at.offset };
      await restore(cause);
    },
  };

  /** Why no further recovery is attempted for `cause`, or undefined to go on. */
  const stopReason = (cause: unknown): string | undefined => {
    if (!(cause instanceof MrtdError) || !cause.retryable) return "not recoverable";
    if (relinkWindowSpent(cause)) return `the card did not come back within ${recovery.cardWaitMs} ms`;
    if (recoveries.length >= recovery.maxRecoveries) return `recovery budget of ${recovery.maxRecoveries} spent`;
    if (consecutiveLosses >= maxConsecutive) return `${consecutiveLosses} failures in a row without progress`;
    return undefined;
  };

  /**
   * Brings the secure channel back after `first`: backoff, reconnect (reset) or wait for the
   * card when the link is lost, SELECT the applet and run BAC again. A failure during recovery
   * is recovered in turn, within the same budget. Every attempt is listed.
   */
  const restore = async (first: unknown): Promise<void> => {
    let cause = first;
    for (;;) {
      const stop = stopReason(cause);
      if (stop !== undefined) throw fail(cause, stop);
      consecutiveLosses++;
      const r0 = performance.now();
      const a0 = meter.count;
      const cls = classifyFailure(cause, { readerTimeoutMs });
      let action = "re-authenticate";
      const wait = consecutiveLosses <= 1 ? 0 : Math.min(1000, recovery.backoffMs * 2 ** (consecutiveLosses - 2));
      try {
        if (wait > 0) await sleep(wait);
        if (cause instanceof TransportError) action = await relink();
        await authenticate();
        recordRecovery(cls, action, wait, r0, a0, true);
        return;
      } catch (e) {
        recordRecovery(cls, action, wait, r0, a0, false);
        cause = e;
      }
    }
  };

  const recordRecovery = (cls: ClassifiedFailure, action: string, backoffMs: number, r0: number, a0: number, ok: boolean): void => {
    const rec: Recovery = {
      step: currentStep,
      ...(where.file !== undefined ? { file: where.file, offset: where.offset } : {}),
      cause: cls.code,
      layer: cls.layer,
      observed: cls.observed,
      ...(cls.elapsedMs !== undefined ? { failedAfterMs: cls.elapsedMs } : {}),
      action: ok ? action : `${action}: failed`,
      backoffMs,
      apdus: meter.count - a0,
      ms: round(performance.now() - r0),
      blockSize: state.extendedNow && state.extended === "yes" ? state.extendedBlock : state.blockSize,
      ok,
    };
    recoveries.push(rec);
    opts.onProgress?.({ kind: "recovery", recovery: rec });
  };

  /** Adds the classification and history to the error that ends the read. */
  const fail = (e: unknown, stoppedBecause?: string): unknown => {
    if (typeof e === "object" && e !== null && !FAILURE_REPORTS.has(e)) {
      const failure = classifyFailure(e, { readerTimeoutMs });
      FAILURE_REPORTS.set(e, {
        failure,
        step: currentStep,
        ...(where.file !== undefined ? { file: where.file, offset: where.offset } : {}),
        recoveries: [...recoveries],
        apdus: meter.count,
        ms: round(performance.now() - t0),
        ...(stoppedBecause && stoppedBecause !== "not recoverable" ? { stoppedBecause } : {}),
      });
      if (e instanceof MrtdError && stoppedBecause && stoppedBecause !== "not recoverable") {
        e.message += ` [gave up after ${recoveries.length} recoveries in ${currentStep}${where.offset !== undefined ? ` at offset ${where.offset}` : ""}: ${stoppedBecause}]`;
      }
    }
    return e;
  };

  const relink = async (): Promise<string> => {
    const r = await relinkCard(conn, reconnect, recovery.cardWaitMs);
    if (r.conn !== conn) {
      conn = r.conn;
      meter.setTransport(conn);
    }
    return r.action;
  };

  /**
   * Chip Authentication: new session keys from DG14's key; a protected SELECT EF.COM whose
   * response verifies under them proves the chip holds the private key. A response that does
   * not verify may be link noise: PACE/BAC and CA run once more before the chip is called failed.
   */
  const chipAuthenticate = async (choice: NonNullable<ReturnType<typeof chooseChipAuthentication>>): Promise<ChipAuthResult> => {
    const result = (status: ChipAuthResult["status"], detail?: string): ChipAuthResult => ({ method: "CA", status, algorithm: choice.label, ...(detail ? { detail } : {}) });
    let lastDetail = "";
    let lastError: unknown;
    for (let attempt = 0; attempt < 2; attempt++) {
      // a lost link is relinked; a session broken by the new keys is re-established (PACE/BAC)
      if (attempt > 0) await restore(lastError ?? new SecureMessagingError("chip-authentication", lastDetail));
      lastError = undefined;
      let caCipher;
      try {
        caCipher = (await performChipAuthentication(link.send, choice, random)).cipher;
      } catch (e) {
        if (e instanceof CardStatusError) return result("failed", `the chip refused Chip Authentication (${e.command}: ${e.sw.toString(16).toUpperCase()})`);
        if (e instanceof MrtdError && e.retryable) {
          lastDetail = e.message;
          lastError = e;
          continue;
        }
        throw e;
      }
      channel?.close();
      channel = new SecureChannel(meter, caCipher, 0n);
      try {
        const r = await channel.send({ cla: 0x00, ins: 0xa4, p1: 0x02, p2: 0x0c, data: Uint8Array.of(0x01, 0x1e) });
        if (r.protected && r.sw === 0x9000) return result("ok");
        lastDetail = `the chip answered ${r.sw.toString(16).toUpperCase()} without the new session keys`;
      } catch (e) {
        if (!(e instanceof SecureMessagingError || e instanceof TransportError)) throw e;
        lastDetail = e instanceof SecureMessagingError ? "the chip's response does not verify under the Chip Authentication keys" : e.message;
        if (e instanceof TransportError) lastError = e;
      }
    }
    // a link that stayed away proves nothing either way
    return result(lastError instanceof TransportError ? "error" : "failed", lastDetail);
  };

  const out: DocumentRead = {
    summary: undefined as unknown as ReadSummary,
    files: new Map(),
    sha256: new Map(),
    absent: [],
    parseErrors: [],
    timing: { exchangeMs: 0, nativeMs: undefined },
    plan: { requested: opts.files?.map((f) => f.key), activeAuthentication: opts.activeAuthentication === true },
  };
  const fileStats: ReadSummary["files"] = {};

  const readOne = async (info: LdsFileInfo): Promise<Uint8Array | undefined> => {
    currentStep = `read ${info.key}`;
    where = { file: info.key, offset: 0 };
    return step(currentStep, async () => {
      const f0 = performance.now();
      const a0 = meter.count;
      let bytes: Uint8Array;
      try {
        bytes = await readFile(link, state, info, (p: FileProgress) =>
          opts.onProgress?.({ kind: "file", key: info.key, offset: p.offset, total: p.total }),
        );
      } catch (e) {
        if (isFileAbsent(e)) {
          const sw = (e as CardStatusError).sw;
          out.absent.push({ key: info.key, sw });
          opts.onProgress?.({ kind: "file-absent", key: info.key, sw });
          return undefined;
        }
        throw e;
      }
      const ms = round(performance.now() - f0);
      const apdus = meter.count - a0;
      out.files.set(info.key, bytes);
      // In slices: a face image is milliseconds of hashing the agent's event loop should not wait out.
      const digest = await sha256InSlices(bytes);
      out.sha256.set(info.key, digest);
      fileStats[info.key] = { bytes: bytes.length, sha256: hex(digest).toLowerCase(), apdus, ms };
      opts.onProgress?.({ kind: "file-done", key: info.key, bytes: bytes.length, apdus, ms });
      return bytes;
    });
  };

  try {
    currentStep = "authenticate";
    await step("authenticate", async () => {
      try {
        await authenticate();
      } catch (e) {
        // A link that drops during the first exchanges is recovered like one mid-file.
        if (e instanceof AccessDeniedError || (e instanceof PaceError && !e.retryable)) throw e;
        await restore(e);
      }
    });

    const com = await readOne(byKey("COM")!);
    if (com) out.com = tryParse(out, "COM", () => parseEfCom(com));
    // EF.SOD early: its signed list of data groups decides what is read
    const sod = await readOne(byKey("SOD")!);
    if (sod) out.sod = tryParse(out, "SOD", () => parseSod(sod));
    for (const info of filesToRead(opts.files, out.sod, out.com, opts.activeAuthentication === true, opts.chipAuthentication !== false)) await readOne(info);

    await step("parse", async () => {
      const dg1 = out.files.get("DG1");
      if (dg1) out.mrz = tryParse(out, "DG1", () => parseDg1(dg1));
      const dg2 = out.files.get("DG2");
      if (dg2) out.dg2 = tryParse(out, "DG2", () => parseDg2(dg2));
      const dg11 = out.files.get("DG11");
      if (dg11) out.dg11 = tryParse(out, "DG11", () => parseDg11(dg11));
      const dg12 = out.files.get("DG12");
      if (dg12) out.dg12 = tryParse(out, "DG12", () => parseDg12(dg12));
      if (out.sod) out.sodHashes = compareHashes(out.sod, byDataGroupNumber(out.files), { algorithm: "sha256", byDg: byDataGroupNumber(out.sha256) });
    });

    // Chip Authentication (9303-11 §6.2) or the PACE-CAM check, with DG14's key once EF.SOD's hash vouches for DG14
    const dg14 = out.files.get("DG14");
    const dg14Vouched = out.sodHashes?.some((h) => h.dg === 14 && h.status === "ok") === true;
    if (opts.chipAuthentication !== false && dg14 && dg14Vouched) {
      const infos = tryParse(out, "DG14", () => parseDg14(dg14))?.infos;
      const choice = infos ? chooseChipAuthentication(infos) : undefined;
      if (out.cam) {
        const key = infos?.chipAuthenticationPublicKeys.find((k) => k.agreement === "ECDH");
        const algorithm = `PACE-CAM ${out.cam.parameters.group.name}`;
        out.chipAuth = key
          ? { method: "CAM", status: verifyCam(out.cam.parameters.group, out.cam.session, key.publicKey) ? "ok" : "failed", algorithm }
          : { method: "CAM", status: "error", algorithm, detail: "DG14 holds no ECDH Chip Authentication key" };
      } else if (choice) {
        currentStep = "chip authentication";
        where = {};
        out.chipAuth = await step("chip authentication", () => chipAuthenticate(choice));
      }
    }

    // INTERNAL AUTHENTICATE inside the secure channel, while it is still open
    const dg15 = out.files.get("DG15");
    if (opts.activeAuthentication && dg15) {
      // Loaded on demand: AA pulls in the signature code, which a read without it does not need.
      const { activeAuthenticate } = await import("../verification/active-authentication.ts");
      out.aa = await step("active authentication", () => activeAuthenticate(link.send, { dg15, dg14: out.files.get("DG14"), random }));
    }
  } catch (e) {
    throw fail(e);
  } finally {
    channel?.close();
  }

  const face = out.dg2?.faces[0];
  const read = out.sodHashes?.filter((h) => h.status !== "not-read");
  out.summary = {
    reader: conn.reader,
    atr: hex(conn.atr),
    documentType: out.mrz?.documentCode,
    issuingState: out.mrz?.issuingState,
    files: fileStats,
    face: face ? { format: face.format, bytes: face.imageBytes.length, width: face.width, height: face.height } : undefined,
    hashesMatchSod: read && read.length > 0 ? read.every((h) => h.status === "ok") : undefined,
    apdus: meter.count,
    durationMs: round(performance.now() - t0),
    steps,
    recoveries,
    ...(authFacts ? { authentication: authFacts } : {}),
    link: state.facts(),
    blockChanges: [...state.adaptations],
  };
  if (meter.trace) out.trace = meter.trace;
  out.timing = { exchangeMs: round(meter.totalMs), nativeMs: meter.nativeReported ? round(meter.nativeMs) : undefined };
  return out;
}

/**
 * The data groups to read after EF.COM and EF.SOD: the caller's list, or every data group EF.SOD
 * lists except the EAC-protected ones (EF.COM's list only when EF.SOD is missing or malformed, and
 * the verdict then fails or is unverifiable anyway). DG15 is added when EF.SOD lists it and Active
 * Authentication is on, DG14 when EF.SOD lists it and Chip Authentication is on: neither EF.COM
 * (unsigned) nor the caller can talk the chip out of it.
 */
export function filesToRead(requested: LdsFileInfo[] | undefined, sod: SodInfo | undefined, com: EfCom | undefined, activeAuthentication: boolean, chipAuthentication = false): LdsFileInfo[] {
  const listed = sod ? [...sod.dataGroupHashes.keys()].sort((a, b) => a - b) : undefined;
  const base = requested ?? (listed ?? com?.dataGroups ?? [1, 2]).filter((n) => !EAC_PROTECTED.has(n)).map((n) => byDgNumber(n)!);
  const out = base.filter((f) => f && f.key !== "COM" && f.key !== "SOD");
  if (chipAuthentication && listed?.includes(14) && !out.some((f) => f.key === "DG14")) out.push(byDgNumber(14)!);
  if (activeAuthentication && listed?.includes(15) && !out.some((f) => f.key === "DG15")) out.push(byDgNumber(15)!);
  return out;
}

function tryParse<T>(out: DocumentRead, key: FileKey, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (e) {
    out.parseErrors.push({ key, message: (e as Error).message });
    return undefined;
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
