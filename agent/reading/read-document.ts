/**
 * One eMRTD read (ICAO 9303-10/11) as a named list of steps over an explicit session
 * (read-session.ts): authenticate (PACE when EF.CardAccess offers it, else BAC: authenticate.ts),
 * read EF.COM, read EF.SOD, read the data groups EF.SOD lists (the signed list decides; EF.COM is
 * advisory), parse and compare the hashes with EF.SOD, run Chip Authentication (or check
 * PACE-CAM) when EF.SOD vouches for DG14, and Active Authentication when EF.SOD lists DG15. Each step takes the
 * session and the document so far and adds to it. A lost secure channel or link is recovered
 * by re-authenticating (and reconnecting) and resuming at the last verified offset.
 */
import { sha256InSlices } from "../crypto/hash.ts";
import { hex } from "../bytes.ts";
import { CardStatusError, MrtdError, SecureMessagingError, TransportError } from "../errors.ts";
import { performChipAuthentication, type ChipAuthResult } from "../icao/chip-authentication.ts";
import type { BacAccessKey } from "../icao/mrz-key.ts";
import { verifyCam } from "../icao/pace.ts";
import { parseDg14 } from "../lds/dg14.ts";
import { chooseChipAuthentication, type CaChoice } from "../lds/security-infos.ts";
import { parseAtr } from "../iso7816/atr.ts";
import { parseEfCom, type EfCom } from "../lds/ef-com.ts";
import { byDataGroupNumber, byDgNumber, byKey, type LdsFileInfo } from "../lds/lds-files.ts";
import { parseDg1, type Mrz } from "../lds/mrz.ts";
import { parseDg2, type Dg2 } from "../lds/dg2.ts";
import { parseDg11, type Dg11 } from "../lds/dg11.ts";
import { parseDg12, type Dg12 } from "../lds/dg12.ts";
import { compareHashes, parseSod, type SodInfo } from "../lds/sod.ts";
import type { CardConnection } from "../transport/transport.ts";
import type { AaResult } from "../verification/active-authentication.ts";
import type { TraceEntry } from "./apdu-meter.ts";
import type { Authenticated, AuthMode } from "./authenticate.ts";
import { isFileAbsent, readFile, type FileProgress } from "./file-reader.ts";
import { DEFAULT_RECOVERY, ReadSession, round, type RecoveryOptions } from "./read-session.ts";
import type { FileKey, ReadSummary, Recovery } from "./read-result.ts";
import { ReadTuning } from "./read-tuning.ts";
import type { Reconnector } from "./relink.ts";

export { DEFAULT_RECOVERY, readFailureReport, type ReadFailureReport, type RecoveryOptions } from "./read-session.ts";
/**
 * How to get the card back after the link is lost: the caller (CLI, service) waits for a
 * card in the same reader and connects again. Without it only SCardReconnect is tried.
 */
export type { Reconnector } from "./relink.ts";

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

export type ReadProgress =
  | { kind: "step"; step: string }
  | { kind: "file"; key: FileKey; offset: number; total: number | undefined }
  | { kind: "file-done"; key: FileKey; bytes: number; apdus: number; ms: number }
  | { kind: "file-absent"; key: FileKey; sw: number }
  | { kind: "recovery"; recovery: Recovery };

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

/** The document as the steps build it: the files' statistics travel with it until the summary. */
interface DocumentSoFar extends DocumentRead {
  fileStats: ReadSummary["files"];
}

export async function readDocument(connection: CardConnection, opts: ReadOptions, reconnect?: Reconnector): Promise<DocumentRead> {
  const s = new ReadSession(
    connection,
    {
      keys: { ...(opts.accessKey ? { mrz: opts.accessKey } : {}), ...(opts.can !== undefined ? { can: opts.can } : {}) },
      auth: opts.auth ?? "auto",
      random: opts.random ?? ((n: number) => crypto.getRandomValues(new Uint8Array(n))),
      recovery: opts.recovery ?? DEFAULT_RECOVERY,
      tuning: initialTuning(connection, opts),
      trace: opts.trace,
      onStep: (step) => opts.onProgress?.({ kind: "step", step }),
      onRecovery: (recovery) => opts.onProgress?.({ kind: "recovery", recovery }),
    },
    reconnect,
  );
  const doc = emptyDocument(opts);
  try {
    await authenticate(s);
    await readCom(s, doc, opts);
    await readSod(s, doc, opts);
    await readDataGroups(s, doc, opts, filesToRead(opts.files, doc.sod, doc.com, doc.plan.activeAuthentication, opts.chipAuthentication !== false));
    await parse(s, doc);
    if (opts.chipAuthentication !== false) await chipAuthentication(s, doc);
    // INTERNAL AUTHENTICATE inside the secure channel, while it is still open
    await activeAuthentication(s, doc);
  } catch (e) {
    throw s.fail(e);
  } finally {
    s.close();
  }
  return finish(s, doc);
}

/** Step: PACE when EF.CardAccess offers it, BAC otherwise; the eMRTD application selected. */
async function authenticate(s: ReadSession): Promise<void> {
  s.currentStep = "authenticate";
  await s.step("authenticate", () => s.authenticateFirst());
}

/** Step: EF.COM, advisory only (it is unsigned): compared with EF.SOD by the verdict. */
async function readCom(s: ReadSession, doc: DocumentSoFar, opts: ReadOptions): Promise<void> {
  const com = await readOneFile(s, doc, opts, byKey("COM")!);
  if (com) doc.com = tryParse(doc, "COM", () => parseEfCom(com));
}

/** Step: EF.SOD, early: its signed list of data groups decides what is read. */
async function readSod(s: ReadSession, doc: DocumentSoFar, opts: ReadOptions): Promise<void> {
  const sod = await readOneFile(s, doc, opts, byKey("SOD")!);
  if (sod) doc.sod = tryParse(doc, "SOD", () => parseSod(sod));
}

/** Step: the data groups, in order. */
async function readDataGroups(s: ReadSession, doc: DocumentSoFar, opts: ReadOptions, files: LdsFileInfo[]): Promise<void> {
  for (const info of files) await readOneFile(s, doc, opts, info);
}

/** Step: parse what was read and compare every data group with its hash in EF.SOD. */
async function parse(s: ReadSession, doc: DocumentSoFar): Promise<void> {
  await s.step("parse", async () => {
    const dg1 = doc.files.get("DG1");
    if (dg1) doc.mrz = tryParse(doc, "DG1", () => parseDg1(dg1));
    const dg2 = doc.files.get("DG2");
    if (dg2) doc.dg2 = tryParse(doc, "DG2", () => parseDg2(dg2));
    const dg11 = doc.files.get("DG11");
    if (dg11) doc.dg11 = tryParse(doc, "DG11", () => parseDg11(dg11));
    const dg12 = doc.files.get("DG12");
    if (dg12) doc.dg12 = tryParse(doc, "DG12", () => parseDg12(dg12));
    if (doc.sod) doc.sodHashes = compareHashes(doc.sod, byDataGroupNumber(doc.files), { algorithm: "sha256", byDg: byDataGroupNumber(doc.sha256) });
  });
}

/**
 * Step: Chip Authentication (9303-11 §6.2), or the PACE-CAM check, with DG14's key once EF.SOD's
 * hash vouches for DG14 (the verdict also requires EF.SOD's signature before it counts).
 */
async function chipAuthentication(s: ReadSession, doc: DocumentSoFar): Promise<void> {
  const dg14 = doc.files.get("DG14");
  if (!dg14 || doc.sodHashes?.some((h) => h.dg === 14 && h.status === "ok") !== true) return;
  const infos = tryParse(doc, "DG14", () => parseDg14(dg14))?.infos;
  if (!infos) return;
  if (s.cam) {
    doc.cam = s.cam;
    const key = infos.chipAuthenticationPublicKeys.find((k) => k.agreement === "ECDH");
    const algorithm = `PACE-CAM ${s.cam.parameters.group.name}`;
    doc.chipAuth = key
      ? { method: "CAM", status: verifyCam(s.cam.parameters.group, s.cam.session, key.publicKey) ? "ok" : "failed", algorithm }
      : { method: "CAM", status: "error", algorithm, detail: "DG14 holds no ECDH Chip Authentication key" };
    return;
  }
  const choice = chooseChipAuthentication(infos);
  if (!choice) return;
  s.currentStep = "chip authentication";
  s.where = {};
  doc.chipAuth = await s.step("chip authentication", () => runChipAuthentication(s, choice));
}

/**
 * New session keys from DG14's key; a protected SELECT EF.COM whose response verifies under them
 * proves the chip holds the private key. A response that does not verify may be link noise:
 * PACE/BAC and CA run once more before the chip is called failed.
 */
async function runChipAuthentication(s: ReadSession, choice: CaChoice): Promise<ChipAuthResult> {
  const result = (status: ChipAuthResult["status"], detail?: string): ChipAuthResult => ({ method: "CA", status, algorithm: choice.label, ...(detail ? { detail } : {}) });
  let lastDetail = "";
  let lastError: unknown;
  for (let attempt = 0; attempt < 2; attempt++) {
    // a lost link is relinked; a session broken by the new keys is re-established (PACE/BAC)
    if (attempt > 0) await s.restore(lastError ?? new SecureMessagingError("chip-authentication", lastDetail));
    lastError = undefined;
    let cipher;
    try {
      cipher = (await performChipAuthentication(s.secure.send, choice, s.random)).cipher;
    } catch (e) {
      if (e instanceof CardStatusError) return result("failed", `the chip refused Chip Authentication (${e.command}: ${e.sw.toString(16).toUpperCase()})`);
      if (e instanceof MrtdError && e.retryable) {
        lastDetail = e.message;
        lastError = e;
        continue;
      }
      throw e;
    }
    s.switchChannel(cipher);
    try {
      const r = await s.secure.send({ cla: 0x00, ins: 0xa4, p1: 0x02, p2: 0x0c, data: Uint8Array.of(0x01, 0x1e) });
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
}

/** Step: Active Authentication when it is on and DG15 was read. */
async function activeAuthentication(s: ReadSession, doc: DocumentSoFar): Promise<void> {
  const dg15 = doc.files.get("DG15");
  if (!doc.plan.activeAuthentication || !dg15) return;
  // Loaded on demand: AA pulls in the signature code, which a read without it does not need.
  const { activeAuthenticate } = await import("../verification/active-authentication.ts");
  doc.aa = await s.step("active authentication", () => activeAuthenticate(s.secure.send, { dg15, dg14: doc.files.get("DG14"), random: s.random }));
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

/** One file as its own timed step; a file the card refuses is noted as absent, not an error. */
async function readOneFile(s: ReadSession, doc: DocumentSoFar, opts: ReadOptions, info: LdsFileInfo): Promise<Uint8Array | undefined> {
  s.currentStep = `read ${info.key}`;
  s.where = { file: info.key, offset: 0 };
  return s.step(s.currentStep, async () => {
    const f0 = performance.now();
    const a0 = s.meter.count;
    let bytes: Uint8Array;
    try {
      bytes = await readFile(s.secure, s.tuning, info, (p: FileProgress) => opts.onProgress?.({ kind: "file", key: info.key, offset: p.offset, total: p.total }));
    } catch (e) {
      if (isFileAbsent(e)) {
        const sw = (e as CardStatusError).sw;
        doc.absent.push({ key: info.key, sw });
        opts.onProgress?.({ kind: "file-absent", key: info.key, sw });
        return undefined;
      }
      throw e;
    }
    const ms = round(performance.now() - f0);
    const apdus = s.meter.count - a0;
    doc.files.set(info.key, bytes);
    // In slices: a face image is milliseconds of hashing the agent's event loop should not wait out.
    const digest = await sha256InSlices(bytes);
    doc.sha256.set(info.key, digest);
    doc.fileStats[info.key] = { bytes: bytes.length, sha256: hex(digest).toLowerCase(), apdus, ms };
    opts.onProgress?.({ kind: "file-done", key: info.key, bytes: bytes.length, apdus, ms });
    return bytes;
  });
}

/** "auto": probe extended length unless the card's historical bytes say it has none. */
function initialTuning(connection: CardConnection, opts: ReadOptions): ReadTuning {
  const extendedMode = opts.extendedLength ?? "auto";
  const atrSaysNo = parseAtr(connection.atr).extendedLength === false;
  return new ReadTuning({
    maxShortBlock: opts.maxShortBlock ?? 231,
    extended: extendedMode === "auto" && atrSaysNo ? "off" : extendedMode,
    extendedBlock: 0,
    sfi: opts.sfi,
  });
}

function emptyDocument(opts: ReadOptions): DocumentSoFar {
  return {
    summary: undefined as unknown as ReadSummary,
    files: new Map(),
    sha256: new Map(),
    absent: [],
    parseErrors: [],
    timing: { exchangeMs: 0, nativeMs: undefined },
    plan: { requested: opts.files?.map((f) => f.key), activeAuthentication: opts.activeAuthentication === true },
    fileStats: {},
  };
}

/** The summary, trace and timing of the finished read. */
function finish(s: ReadSession, doc: DocumentSoFar): DocumentRead {
  const { fileStats, ...out } = doc;
  const face = out.dg2?.faces[0];
  const read = out.sodHashes?.filter((h) => h.status !== "not-read");
  out.summary = {
    reader: s.conn.reader,
    atr: hex(s.conn.atr),
    documentType: out.mrz?.documentCode,
    issuingState: out.mrz?.issuingState,
    files: fileStats,
    face: face ? { format: face.format, bytes: face.imageBytes.length, width: face.width, height: face.height } : undefined,
    hashesMatchSod: read && read.length > 0 ? read.every((h) => h.status === "ok") : undefined,
    apdus: s.meter.count,
    durationMs: round(performance.now() - s.t0),
    steps: s.steps,
    recoveries: s.recoveries,
    ...(s.authFacts ? { authentication: s.authFacts } : {}),
    link: s.tuning.facts(),
    blockChanges: [...s.tuning.adaptations],
  };
  if (s.meter.trace) out.trace = s.meter.trace;
  out.timing = { exchangeMs: round(s.meter.totalMs), nativeMs: s.meter.nativeReported ? round(s.meter.nativeMs) : undefined };
  return out;
}

function tryParse<T>(doc: DocumentRead, key: FileKey, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (e) {
    doc.parseErrors.push({ key, message: (e as Error).message });
    return undefined;
  }
}
