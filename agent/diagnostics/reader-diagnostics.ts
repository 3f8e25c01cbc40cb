/**
 * Reader diagnostics ("testing the dongle"): what the reader says about itself (PC/SC
 * attributes, PC/SC part 3 reader.h tags), the card's ATR and ATS decoded (ISO 7816-3/-4,
 * ISO 14443-4 §5.2), whether extended-length APDUs pass the reader, then a stability loop of N
 * unauthenticated exchanges (SELECT of the eMRTD applet, GET CHALLENGE) with latency
 * percentiles, failures by class (failure-classes.ts), card-presence flaps, a verdict and advice.
 * EF.CardAccess (read plain) says whether the document offers PACE and with what parameters.
 * No access key is needed and nothing personal is read.
 *
 * No false alarms from what came before us: the card is held in a PC/SC transaction for the whole
 * test (card-source.ts), a reset another application made just before (SCARD_W_RESET_CARD at the
 * transaction or the first exchange) is acknowledged and the exchange retried, a failed
 * extended-length probe is repeated after a reset, and a verdict below "good" needs the same
 * kind of trouble at least twice.
 */
import { hex } from "../bytes.ts";
import { readCardAccess } from "../icao/card-access.ts";
import { choosePace, domainName, paceDomain, parseCardAccess } from "../lds/security-infos.ts";
import { MrtdError, TransportError } from "../errors.ts";
import { decodeResponse } from "../iso7816/apdu.ts";
import { describeHistorical, parseAtr, parseAts } from "../iso7816/atr.ts";
import { ApduMeter } from "../reading/apdu-meter.ts";
import { openCard, type CardDisposition, type OpenedCard } from "../reading/card-source.ts";
import { relinkCard } from "../reading/relink.ts";
import { classifyFailure, DEFAULT_READER_TIMEOUT_MS, FAILURE_CLASSES } from "../reading/failure-classes.ts";
import {
  SCARD_ATTR_DEVICE_FRIENDLY_NAME,
  SCARD_ATTR_MAXINPUT,
  SCARD_ATTR_VENDOR_IFD_SERIAL_NO,
  SCARD_ATTR_VENDOR_IFD_TYPE,
  SCARD_ATTR_VENDOR_IFD_VERSION,
  SCARD_ATTR_VENDOR_NAME,
  SCARD_STATE_PRESENT,
  SCARD_STATE_UNAWARE,
  type PcscCard,
  type PcscClient,
} from "../transport/pcsc.ts";

const SELECT_APPLET = Uint8Array.from([0x00, 0xa4, 0x04, 0x0c, 0x07, 0xa0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01]);
const GET_CHALLENGE = Uint8Array.from([0x00, 0x84, 0x00, 0x00, 0x08]);
/** GET CHALLENGE with an extended Le (ISO 7816-3 §12.1.3 case 2E). */
const GET_CHALLENGE_EXT = Uint8Array.from([0x00, 0x84, 0x00, 0x00, 0x00, 0x00, 0x08]);
/** PC/SC part 3 §3.2.2.1.3 GET DATA, P1 01: the ATS of an ISO 14443-4 card (answered by the reader). */
const GET_ATS = Uint8Array.from([0xff, 0xca, 0x01, 0x00, 0x00]);

export interface DiagnoseOptions {
  /** Part of the reader name. */
  reader?: string;
  /** Exchanges in the stability loop. */
  count: number;
  /** How long to wait for a card at the start and after it left. */
  waitMs: number;
  /** The reader's response timeout, to read elapsed times against (default 3000 ms, pcsc-lite CCID). */
  readerTimeoutMs?: number;
  client?: PcscClient;
  /** How the card is left afterwards (default "reset", see card-source.ts). */
  disconnect?: CardDisposition;
  onProgress?: (done: number, total: number) => void;
}

export interface LatencyStats {
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export interface FailureTally {
  code: string;
  layer: string;
  count: number;
  /** Share of all exchanges, %. */
  percent: number;
  explanation: string;
  action: string;
  /** Median and largest time the failed exchanges took before failing. */
  medianElapsedMs: number | undefined;
  maxElapsedMs: number | undefined;
  /** What was observed (PC/SC names, status words), with counts. */
  observed: Record<string, number>;
}

export interface ReaderDiagnosis {
  reader: {
    name: string;
    vendor?: string;
    model?: string;
    firmware?: string;
    serial?: string;
    friendlyName?: string;
    /** SCARD_ATTR_MAXINPUT: largest command the reader takes, bytes. */
    maxInput?: number;
    /** Attributes the driver did not report. */
    missing: string[];
  };
  card: {
    atr: string;
    contactless: boolean;
    historical: string;
    historicalDecoded: string[];
    extendedLengthClaimed: boolean | undefined;
    ats?: { hex: string; maxFrameBytes: number | undefined; fwtMs: number | undefined; bitRates?: { toCard: number[]; toReader: number[] } };
    atsNote?: string;
  };
  extendedApdu: { passes: boolean | undefined; le: string; lc: string };
  /** EF.CardAccess: the PACE protocols the document offers (none: BAC only), and which this agent would run. */
  accessControl: { pace: { protocol: string; supported: boolean }[]; note: string };
  stability: {
    exchanges: number;
    ok: number;
    failed: number;
    latencyMs: LatencyStats | undefined;
    failures: FailureTally[];
    presenceFlaps: number;
    relinks: number;
    /** Resets made by another application just before the test (acknowledged, not counted as failures). */
    resetsBeforeStart: number;
    /** Exchanges slower than the spike threshold (max(20 ms, 10 × median)). */
    latencySpikes: number;
    aborted?: string;
  };
  verdict: "good" | "marginal" | "unreliable" | "unusable";
  advice: string[];
}

export async function diagnoseReader(opts: DiagnoseOptions): Promise<ReaderDiagnosis> {
  const timeoutMs = opts.readerTimeoutMs ?? DEFAULT_READER_TIMEOUT_MS;
  const opened = await openCard({ reader: opts.reader, waitMs: opts.waitMs, client: opts.client, ...(opts.disconnect ? { disconnect: opts.disconnect } : {}) });
  let monitor: Promise<void> | undefined;
  let stopMonitor = false;
  try {
    const conn = opened.connection;
    const start = { resets: conn.resetsAcknowledged };
    const reader = await readerFacts(conn);
    const card = await cardFacts(conn, start);
    const accessControl = await accessFacts(conn);
    const extendedApdu = await extendedCheck(conn, card.extendedLengthClaimed);

    // Presence flaps, seen by pcscd while the loop runs (the monitor worker waits in parallel).
    let flaps = 0;
    monitor = (async () => {
      let [s] = await opened.client.getStatusChange([{ name: conn.reader, currentState: SCARD_STATE_UNAWARE }], 0);
      while (!stopMonitor && s) {
        const was = (s.eventState & SCARD_STATE_PRESENT) !== 0;
        try {
          [s] = await opened.client.getStatusChange([{ name: conn.reader, currentState: s.eventState }], 250);
        } catch {
          return;
        }
        if (s && was && !(s.eventState & SCARD_STATE_PRESENT)) flaps++;
      }
    })();

    const stability = await stabilityLoop(opened, opts, timeoutMs);
    stopMonitor = true;
    await monitor.catch(() => undefined);
    stability.presenceFlaps = flaps;
    stability.resetsBeforeStart = start.resets;
    const { verdict, advice } = judge(reader, card, extendedApdu, stability, timeoutMs);
    return { reader, card, extendedApdu, accessControl, stability, verdict, advice };
  } finally {
    stopMonitor = true;
    await monitor?.catch(() => undefined);
    await opened.close();
  }
}

async function attr(conn: PcscCard, id: number): Promise<Uint8Array | undefined> {
  try {
    const v = await conn.getAttribute(id);
    return v && v.length > 0 ? v : undefined;
  } catch {
    return undefined;
  }
}

const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b).replace(/\0+$/g, "").trim() || undefined : undefined);
const dword = (b: Uint8Array | undefined) => {
  if (!b || b.length === 0) return undefined;
  let v = 0;
  for (let i = Math.min(b.length, 4) - 1; i >= 0; i--) v = v * 256 + b[i]!;
  return v;
};

async function readerFacts(conn: PcscCard): Promise<ReaderDiagnosis["reader"]> {
  const out: ReaderDiagnosis["reader"] = { name: conn.reader, missing: [] };
  const vendor = text(await attr(conn, SCARD_ATTR_VENDOR_NAME));
  const model = text(await attr(conn, SCARD_ATTR_VENDOR_IFD_TYPE));
  const version = dword(await attr(conn, SCARD_ATTR_VENDOR_IFD_VERSION));
  const serial = text(await attr(conn, SCARD_ATTR_VENDOR_IFD_SERIAL_NO));
  const friendly = text(await attr(conn, SCARD_ATTR_DEVICE_FRIENDLY_NAME));
  const maxInput = dword(await attr(conn, SCARD_ATTR_MAXINPUT));
  if (vendor) out.vendor = vendor;
  else out.missing.push("vendor name");
  if (model) out.model = model;
  else out.missing.push("reader type");
  // PC/SC part 3: 0xMMmmbbbb = major, minor, build.
  if (version !== undefined) out.firmware = `${(version >>> 24) & 0xff}.${(version >>> 16) & 0xff}.${version & 0xffff}`;
  else out.missing.push("firmware version");
  if (serial) out.serial = serial;
  if (friendly) out.friendlyName = friendly;
  if (maxInput !== undefined) out.maxInput = maxInput;
  else out.missing.push("maximum input");
  return out;
}

/**
 * The first exchange of the test: SCARD_W_RESET_CARD here means another application reset the
 * card after we connected and before we held it (pcsc-lite reports that once to every other
 * handle). It says nothing about the reader: acknowledge it (SCardReconnect leave) and retry.
 */
async function firstExchange(conn: PcscCard, apdu: Uint8Array, start: { resets: number }): Promise<Uint8Array> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await conn.transmit(apdu);
    } catch (e) {
      if (!(e instanceof TransportError && e.code === "SCARD_W_RESET_CARD") || attempt >= 3) throw e;
      start.resets++;
      await conn.reconnect("leave");
    }
  }
}

async function cardFacts(conn: PcscCard, start: { resets: number }): Promise<ReaderDiagnosis["card"]> {
  const a = parseAtr(conn.atr);
  const out: ReaderDiagnosis["card"] = {
    atr: hex(conn.atr),
    contactless: a.contactless,
    historical: hex(a.historical),
    historicalDecoded: describeHistorical(a.historical),
    extendedLengthClaimed: a.extendedLength,
  };
  try {
    const r = decodeResponse(await firstExchange(conn, GET_ATS, start));
    const ats = r.sw === 0x9000 ? parseAts(r.data) : undefined;
    if (ats) {
      out.ats = { hex: hex(r.data), maxFrameBytes: ats.maxFrameBytes, fwtMs: ats.fwtMs };
      if (ats.bitRates) out.ats.bitRates = { toCard: ats.bitRates.toCard, toReader: ats.bitRates.toReader };
    } else out.atsNote = `the reader does not give the ATS (GET DATA FF CA 01 00 answered ${r.sw.toString(16).toUpperCase().padStart(4, "0")}); maximum frame size unknown`;
  } catch (e) {
    out.atsNote = `GET DATA for the ATS failed (${e instanceof TransportError ? e.code : (e as Error).name}); maximum frame size unknown`;
  }
  return out;
}

/** What EF.CardAccess offers (9303-11 §9.2.11), read plain; a card without it does BAC only. */
async function accessFacts(conn: PcscCard): Promise<ReaderDiagnosis["accessControl"]> {
  try {
    const bytes = await readCardAccess(conn);
    if (!bytes) return { pace: [], note: "no EF.CardAccess: the document offers BAC only" };
    const infos = parseCardAccess(bytes);
    const chosen = choosePace(infos).parameters?.oid;
    const pace = infos.pace.map((p) => {
      const d = paceDomain(infos, p);
      return { protocol: `PACE-${p.protocol.mapping} ${p.protocol.agreement} ${d ? domainName(d) : `parameter id ${p.parameterId ?? "?"}`} ${p.protocol.cipher}`, supported: p.protocol.oid === chosen };
    });
    const note = pace.length === 0 ? "EF.CardAccess offers no PACE version 2: BAC only" : chosen ? "the agent reads this document with PACE" : "no offered PACE parameters are supported here: the agent falls back to BAC";
    return { pace, note };
  } catch (e) {
    return { pace: [], note: `EF.CardAccess could not be read (${e instanceof MrtdError ? e.message : (e as Error).name})` };
  }
}

async function extendedCheck(conn: PcscCard, claimed: boolean | undefined): Promise<ReaderDiagnosis["extendedApdu"]> {
  const probe = async (apdu: Uint8Array, expectData: number): Promise<{ passed: boolean | undefined; note: string }> => {
    try {
      const r = decodeResponse(await conn.transmit(apdu));
      if (r.sw === 0x9000 && r.data.length === expectData) return { passed: true, note: `passed (${apdu.length}-byte command, card answered ${r.data.length} bytes + 9000)` };
      if ((r.sw & 0xff00) === 0x6f00 || r.sw === 0x6600) return { passed: false, note: `the reader stack answered ${r.sw.toString(16).toUpperCase()}: it does not carry it` };
      // Any card status word means the APDU went through the reader.
      const sw = r.sw.toString(16).toUpperCase().padStart(4, "0");
      return { passed: r.sw !== 0x6700 ? true : claimed === true ? false : undefined, note: r.sw === 0x6700 ? `the card answered 6700 (${claimed ? "it claims extended length: the reader altered the APDU" : "the card has no extended length"})` : `reached the card (answered ${sw})` };
    } catch (e) {
      await conn.reconnect("reset").catch(() => undefined);
      return { passed: false, note: `failed in the reader (${e instanceof TransportError ? e.code : (e as Error).name})` };
    }
  };
  // One failure is not evidence: a card reset or a lost frame just before looks the same. The
  // probe is repeated once on a freshly reset card, and only a second failure counts.
  const tryOne = async (apdu: Uint8Array, expectData: number): Promise<{ passed: boolean | undefined; note: string }> => {
    const first = await probe(apdu, expectData);
    if (first.passed !== false) return first;
    await conn.reconnect("reset").catch(() => undefined);
    await conn.transmit(SELECT_APPLET).catch(() => undefined);
    const again = await probe(apdu, expectData);
    return again.passed === false ? { passed: false, note: `${again.note} (twice, the second time after a card reset)` } : { ...again, note: `${again.note}, after a card reset (the first try ${first.note})` };
  };
  await conn.transmit(SELECT_APPLET).catch(() => undefined);
  const le = await tryOne(GET_CHALLENGE_EXT, 8);
  // Extended Lc: a SELECT with a 300-byte name; the card answers 6A82/6700, which proves the reader carried it.
  const lcApdu = new Uint8Array(7 + 300);
  lcApdu.set([0x00, 0xa4, 0x04, 0x0c, 0x00, 0x01, 0x2c]);
  lcApdu.fill(0xa0, 7);
  const lc = await tryOne(lcApdu, -1);
  await conn.transmit(SELECT_APPLET).catch(() => undefined);
  const passes = le.passed === true ? true : le.passed === false ? false : undefined;
  return { passes, le: le.note, lc: lc.note };
}

async function stabilityLoop(opened: OpenedCard, opts: DiagnoseOptions, timeoutMs: number): Promise<ReaderDiagnosis["stability"]> {
  let conn: PcscCard = opened.connection;
  const meter = new ApduMeter(conn);
  const latencies: number[] = [];
  const failures = new Map<string, { count: number; elapsed: number[]; observed: Record<string, number> }>();
  let failed = 0;
  let relinks = 0;
  let aborted: string | undefined;
  for (let i = 0; i < opts.count; i++) {
    const cmd = i % 2 === 0 ? SELECT_APPLET : GET_CHALLENGE;
    const t0 = performance.now();
    try {
      await meter.transmit(cmd);
      latencies.push(performance.now() - t0);
    } catch (e) {
      const elapsed = performance.now() - t0;
      if (!(e instanceof MrtdError)) throw e;
      failed++;
      const cls = classifyFailure(e, { elapsedMs: elapsed, readerTimeoutMs: timeoutMs });
      const f = failures.get(cls.code) ?? { count: 0, elapsed: [], observed: {} };
      f.count++;
      f.elapsed.push(elapsed);
      f.observed[cls.observed] = (f.observed[cls.observed] ?? 0) + 1;
      failures.set(cls.code, f);
      // Get the link back as a read would: reset, else wait for the card.
      try {
        relinks++;
        const r = await relinkCard(conn, opened.reconnect, opts.waitMs);
        conn = r.conn as PcscCard;
        meter.setTransport(conn);
      } catch (e2) {
        aborted = `the card did not come back within ${Math.round(opts.waitMs / 1000)} s (${e2 instanceof TransportError ? e2.code : (e2 as Error).name})`;
        opts.onProgress?.(i + 1, opts.count);
        break;
      }
    }
    opts.onProgress?.(i + 1, opts.count);
  }
  const exchanges = latencies.length + failed;
  const tallies: FailureTally[] = [...failures.entries()]
    .map(([code, f]) => {
      const cls = FAILURE_CLASSES[code]!;
      return {
        code,
        layer: cls.layer,
        count: f.count,
        percent: round((f.count / Math.max(1, exchanges)) * 100),
        explanation: cls.explanation,
        action: cls.action,
        medianElapsedMs: round(percentile(f.elapsed, 50)),
        maxElapsedMs: round(Math.max(...f.elapsed)),
        observed: f.observed,
      };
    })
    .sort((a, b) => b.count - a.count);
  return {
    exchanges,
    ok: latencies.length,
    failed,
    latencyMs: latencies.length
      ? { min: round(Math.min(...latencies)), p50: round(percentile(latencies, 50)), p95: round(percentile(latencies, 95)), p99: round(percentile(latencies, 99)), max: round(Math.max(...latencies)) }
      : undefined,
    failures: tallies,
    presenceFlaps: 0,
    relinks,
    resetsBeforeStart: 0,
    latencySpikes: spikes(latencies),
    ...(aborted ? { aborted } : {}),
  };
}

/** Verdict and advice from what was measured; thresholds are plain and stated in the advice. */
export function judge(
  reader: ReaderDiagnosis["reader"],
  card: ReaderDiagnosis["card"],
  ext: ReaderDiagnosis["extendedApdu"],
  s: ReaderDiagnosis["stability"],
  timeoutMs: number,
): { verdict: ReaderDiagnosis["verdict"]; advice: string[] } {
  const advice: string[] = [];
  const rate = s.exchanges ? s.failed / s.exchanges : 1;
  for (const f of s.failures) {
    const near = f.medianElapsedMs !== undefined && f.medianElapsedMs >= timeoutMs * 0.8;
    if (f.layer === "rf-link" || f.layer === "reader") {
      if (near) {
        advice.push(
          `the card stops answering after ~${fmtMs(f.medianElapsedMs!)} (the reader's timeout is ${fmtMs(timeoutMs)}) in ${f.percent}% of exchanges (${f.code}): RF field or power too weak, check the antenna position and the reader's USB power (use a powered hub on boards)`,
        );
      } else if (f.layer === "rf-link") {
        advice.push(`${f.percent}% of exchanges failed on the RF link at once (${f.code}, after ~${fmtMs(f.medianElapsedMs ?? 0)}): ${f.explanation}; ${f.action}`);
      } else {
        advice.push(`${f.percent}% of exchanges lost the card (${f.code}): ${f.explanation}; ${f.action}`);
      }
    } else if (f.layer === "service") {
      advice.push(`pcscd failed during the test (${f.code}): ${f.action}`);
    }
  }
  if (s.presenceFlaps > 0) advice.push(`the card left the field ${s.presenceFlaps} time(s) during the test: the document moved or the field dropped (brownout); keep it flat and still, check the USB power`);
  const l = s.latencyMs;
  if (l && s.latencySpikes > 0) {
    advice.push(
      `${s.latencySpikes} latency spike(s) above ${fmtMs(Math.max(20, l.p50 * 10))} (p99 ${fmtMs(l.p99)}, median ${fmtMs(l.p50)}); a spike beyond ${fmtMs(timeoutMs)} loses the exchange (weak field, busy USB bus or CPU)`,
    );
  }
  if (s.resetsBeforeStart > 0) advice.push("another application reset the card just before the test; that was acknowledged and is not counted against the reader");
  if (l && l.p50 > 100) advice.push(`slow exchanges (median ${fmtMs(l.p50)}): a read of ~100 APDUs takes ${fmtMs(l.p50 * 100)} or more; check for Nagle/delayed-ACK style delays in the reader stack or a low RF bit rate`);
  if (ext.passes === false) advice.push("extended-length APDUs do not pass this reader: reads use short blocks (about 90 APDUs more for a 20 KB face image)");
  if (card.ats?.maxFrameBytes !== undefined && card.ats.maxFrameBytes < 64) advice.push(`the card accepts frames of ${card.ats.maxFrameBytes} bytes only: long APDUs are chained`);
  if (reader.maxInput !== undefined && reader.maxInput < 261) advice.push(`the reader takes commands of ${reader.maxInput} bytes at most`);
  if (s.aborted) advice.push(`test stopped: ${s.aborted}`);
  // Below "good" only on repeated evidence: one failed exchange, one flap or one slow exchange
  // in a whole test is reported in the advice but does not condemn the reader.
  let verdict: ReaderDiagnosis["verdict"];
  if (s.aborted || s.ok === 0) verdict = "unusable";
  else if ((s.failed >= 2 && rate >= 0.02) || s.presenceFlaps >= 3) verdict = "unreliable";
  else if (s.failed >= 2 || s.presenceFlaps >= 2 || s.latencySpikes >= 2) verdict = "marginal";
  else verdict = "good";
  if (verdict === "good") advice.unshift(s.failed === 0 ? `no failure in ${s.exchanges} exchanges` : `${s.failed} failure in ${s.exchanges} exchanges: once is not a pattern; run diagnose again if reads fail`);
  else if (verdict === "unreliable") advice.push("reads will still complete (the agent reconnects and resumes), but slower; fix the cause above for fast, reliable reads");
  return { verdict, advice };
}

/** Exchanges slower than max(20 ms, 10 × the median). */
function spikes(latencies: number[]): number {
  if (latencies.length === 0) return 0;
  const limit = Math.max(20, percentile(latencies, 50) * 10);
  return latencies.filter((x) => x > limit).length;
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms * 10) / 10} ms`;
}
