/**
 * One eMRTD read as a named list of steps (ICAO 9303-10/11): select the applet,
 * authenticate (BAC), read EF.COM, the data groups and EF.SOD, parse, and compare the
 * hashes with EF.SOD. Recovers from a lost secure channel or link by re-authenticating
 * (and reconnecting) and resuming at the last verified offset.
 */
import { sha256 } from "../crypto/hash.ts";
import { hex } from "../bytes.ts";
import { AccessDeniedError, CardStatusError, MrtdError, SecureMessagingError, TransportError } from "../errors.ts";
import { performBac } from "../icao/bac.ts";
import { bacKeySeed, type BacAccessKey } from "../icao/mrz-key.ts";
import { maxReadPlaintext, SecureChannel, tdesSmCipher } from "../icao/secure-messaging.ts";
import type { CommandApdu } from "../iso7816/apdu.ts";
import { encodeCommand, decodeResponse } from "../iso7816/apdu.ts";
import { parseAtr } from "../iso7816/atr.ts";
import { parseEfCom, type EfCom } from "../lds/ef-com.ts";
import { byDgNumber, byKey, EMRTD_AID, type LdsFileInfo } from "../lds/lds-files.ts";
import { parseDg1, type Mrz } from "../lds/mrz.ts";
import { parseDg2, type Dg2 } from "../lds/dg2.ts";
import { parseDg11, type Dg11 } from "../lds/dg11.ts";
import { parseDg12, type Dg12 } from "../lds/dg12.ts";
import { compareHashes, parseSod, type SodInfo } from "../lds/sod.ts";
import type { CardConnection } from "../transport/transport.ts";
import { ApduMeter, type TraceEntry } from "./apdu-meter.ts";
import { isFileAbsent, readFile, type FileProgress, type ProtectedLink, type SmResponse } from "./file-reader.ts";
import { LinkState } from "./link-state.ts";
import type { FileKey, ReadSummary, Recovery, StepTiming } from "./read-result.ts";

/** Data groups behind Extended Access Control (fingerprints, iris): not readable after BAC alone. */
const EAC_PROTECTED = new Set([3, 4]);

export interface ReadOptions {
  accessKey: BacAccessKey;
  /** Files to read; default: every data group EF.COM lists (except EAC-protected DG3/DG4), and EF.SOD. */
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
}

export interface RecoveryOptions {
  /** Recoveries allowed in one read. */
  maxRecoveries: number;
  /** How long to wait for the card to come back after a link loss. */
  cardWaitMs: number;
  /** First backoff delay after a link loss; doubles per consecutive loss, capped at 1 s. */
  backoffMs: number;
}

export const DEFAULT_RECOVERY: RecoveryOptions = { maxRecoveries: 8, cardWaitMs: 10_000, backoffMs: 25 };

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
export type Reconnector = (waitMs: number) => Promise<CardConnection>;

export interface DocumentRead {
  summary: ReadSummary;
  /** Raw files as read (personal data). */
  files: Map<FileKey, Uint8Array>;
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
  /** Where the time went: all exchanges (wall) and inside SCardTransmit (when the transport reports it). */
  timing: { exchangeMs: number; nativeMs: number | undefined };
}

const SELECT_APPLET: CommandApdu = { cla: 0x00, ins: 0xa4, p1: 0x04, p2: 0x0c, data: EMRTD_AID };

export async function readDocument(connection: CardConnection, opts: ReadOptions, reconnect?: Reconnector): Promise<DocumentRead> {
  const t0 = performance.now();
  const random = opts.random ?? ((n: number) => crypto.getRandomValues(new Uint8Array(n)));
  const recovery = opts.recovery ?? DEFAULT_RECOVERY;
  const meter = new ApduMeter(connection, { trace: opts.trace });
  const keySeed = bacKeySeed(opts.accessKey);
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

  const plain = async (cmd: CommandApdu, name: string): Promise<void> => {
    const r = decodeResponse(await meter.transmit(encodeCommand(cmd)));
    if (r.sw !== 0x9000) throw new CardStatusError(r.sw, name, r.sw === 0x6a82 ? "the card has no eMRTD application (SELECT answered 6A82)" : undefined);
  };

  /** SELECT the applet and run BAC: a fresh secure channel. */
  const authenticate = async (): Promise<void> => {
    channel?.close();
    try {
      await plain(SELECT_APPLET, "SELECT eMRTD application");
    } catch (e) {
      // A chip still in a secure session (a previous read on this connection) refuses a
      // plain command with 6982/6988 and drops the session: the repeated SELECT then works.
      if (!(e instanceof CardStatusError && (e.sw === 0x6982 || e.sw === 0x6988))) throw e;
      await plain(SELECT_APPLET, "SELECT eMRTD application");
    }
    const session = await performBac(meter, keySeed, random);
    const cipher = tdesSmCipher(session.ksEnc, session.ksMac);
    session.ksEnc.fill(0);
    session.ksMac.fill(0);
    channel = new SecureChannel(meter, cipher, session.ssc);
    if (state.extendedBlock === 0) state.extendedBlock = maxReadPlaintext(cipher, true);
  };

  let currentStep = "";
  const link: ProtectedLink = {
    send: async (cmd: CommandApdu): Promise<SmResponse> => {
      if (!channel) throw new SecureMessagingError("no-channel", "no secure channel");
      const r = await channel.send(cmd);
      consecutiveLosses = 0;
      return r;
    },
    recover: async (cause: unknown, where: { file: LdsFileInfo; offset: number }): Promise<void> => {
      if (!(cause instanceof MrtdError) || !cause.retryable) throw cause;
      if (recoveries.length >= recovery.maxRecoveries) throw cause;
      const r0 = performance.now();
      const a0 = meter.count;
      let action: string;
      if (cause instanceof TransportError) {
        consecutiveLosses++;
        await sleep(Math.min(1000, recovery.backoffMs * 2 ** (consecutiveLosses - 1)));
        action = await relink();
      } else {
        action = "re-authenticate";
      }
      await authenticate();
      recordRecovery({
        step: currentStep,
        file: where.file.key,
        offset: where.offset,
        cause: failureCode(cause),
        action,
        apdus: meter.count - a0,
        ms: round(performance.now() - r0),
      });
    },
  };

  const recordRecovery = (rec: Recovery): void => {
    recoveries.push(rec);
    opts.onProgress?.({ kind: "recovery", recovery: rec });
  };

  /** Get a working card link back: SCardReconnect first, then wait for the card. */
  const relink = async (): Promise<string> => {
    try {
      await conn.reconnect("reset");
      return "reconnect (reset) and re-authenticate";
    } catch (e) {
      if (!reconnect) throw e;
    }
    await conn.disconnect("leave").catch(() => {});
    conn = await reconnect(recovery.cardWaitMs);
    meter.setTransport(conn);
    return "wait for card, connect and re-authenticate";
  };

  const out: DocumentRead = {
    summary: undefined as unknown as ReadSummary,
    files: new Map(),
    absent: [],
    parseErrors: [],
    timing: { exchangeMs: 0, nativeMs: undefined },
  };
  const fileStats: ReadSummary["files"] = {};

  const readOne = async (info: LdsFileInfo): Promise<Uint8Array | undefined> => {
    currentStep = `read ${info.key}`;
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
      fileStats[info.key] = { bytes: bytes.length, sha256: hex(sha256(bytes)).toLowerCase(), apdus, ms };
      opts.onProgress?.({ kind: "file-done", key: info.key, bytes: bytes.length, apdus, ms });
      return bytes;
    });
  };

  try {
    currentStep = "authenticate";
    await step("select applet + BAC", async () => {
      for (;;) {
        try {
          return await authenticate();
        } catch (e) {
          // A link that drops during the first exchanges is recovered like one mid-file.
          if (!(e instanceof TransportError && e.retryable) || recoveries.length >= recovery.maxRecoveries) throw e;
          const r0 = performance.now();
          const a0 = meter.count;
          consecutiveLosses++;
          await sleep(Math.min(1000, recovery.backoffMs * 2 ** (consecutiveLosses - 1)));
          const action = await relink();
          recordRecovery({ step: currentStep, cause: failureCode(e), action, apdus: meter.count - a0, ms: round(performance.now() - r0) });
        }
      }
    });

    const com = await readOne(byKey("COM")!);
    if (com) out.com = tryParse(out, "COM", () => parseEfCom(com));
    const wanted = opts.files ?? defaultFiles(out.com);
    for (const info of wanted) {
      if (info.key === "COM" && out.files.has("COM")) continue;
      await readOne(info);
    }

    await step("parse", async () => {
      const dg1 = out.files.get("DG1");
      if (dg1) out.mrz = tryParse(out, "DG1", () => parseDg1(dg1));
      const dg2 = out.files.get("DG2");
      if (dg2) out.dg2 = tryParse(out, "DG2", () => parseDg2(dg2));
      const dg11 = out.files.get("DG11");
      if (dg11) out.dg11 = tryParse(out, "DG11", () => parseDg11(dg11));
      const dg12 = out.files.get("DG12");
      if (dg12) out.dg12 = tryParse(out, "DG12", () => parseDg12(dg12));
      const sod = out.files.get("SOD");
      if (sod) {
        out.sod = tryParse(out, "SOD", () => parseSod(sod));
        if (out.sod) {
          const dgs = new Map<number, Uint8Array>();
          for (const [k, v] of out.files) if (k.startsWith("DG")) dgs.set(Number(k.slice(2)), v);
          out.sodHashes = compareHashes(out.sod, dgs);
        }
      }
    });
  } finally {
    channel?.close();
    keySeed.fill(0);
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
    link: state.facts(),
  };
  if (meter.trace) out.trace = meter.trace;
  out.timing = { exchangeMs: round(meter.totalMs), nativeMs: meter.nativeReported ? round(meter.nativeMs) : undefined };
  return out;
}

/** Files read when none are named: the data groups EF.COM lists, minus EAC-protected ones, then EF.SOD. */
export function defaultFiles(com: EfCom | undefined): LdsFileInfo[] {
  const dgs = com ? com.dataGroups.filter((n) => !EAC_PROTECTED.has(n)) : [1, 2];
  const out: LdsFileInfo[] = [];
  for (const n of dgs) {
    const info = byDgNumber(n);
    if (info) out.push(info);
  }
  out.push(byKey("SOD")!);
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

function failureCode(e: unknown): string {
  if (e instanceof TransportError) return e.code;
  if (e instanceof SecureMessagingError) return `SM_${e.reason.toUpperCase().replace(/-/g, "_")}`;
  if (e instanceof AccessDeniedError) return "ACCESS_DENIED";
  return (e as Error)?.name ?? "UNKNOWN";
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
