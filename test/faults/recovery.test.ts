/**
 * Recovery from each fault kind (issue 4), in-process: the real reading code against the
 * virtual passport chip behind a reader that behaves like pcscd + vpcd (in-process-reader.ts),
 * with seeded faults. Every read must give the same file hashes as the fault-free read.
 */
import { describe, expect, test } from "bun:test";
import { hex } from "../../agent/bytes.ts";
import { sha256 } from "../../agent/crypto/hash.ts";
import { TransportError } from "../../agent/errors.ts";
import { readDocument, readFailureReport, type DocumentRead, type ReadOptions } from "../../agent/reading/read-document.ts";
import { VirtualPassport } from "../virtual-passport/card.ts";
import { FaultInjector, FAULT_KINDS, type FaultKind, type FaultOptions } from "../virtual-passport/faults.ts";
import { InProcessReader } from "./in-process-reader.ts";
import { loadTd3With20kDg2 } from "./td3-20k.ts";

const FAST = { readerTimeoutMs: 10, absentMs: 10 };
const RECOVERY = { maxRecoveries: 200, cardWaitMs: 1000, backoffMs: 2 };

async function read(faults: Partial<FaultOptions> | undefined, opts: Partial<ReadOptions> = {}) {
  const p = await loadTd3With20kDg2();
  const card = new VirtualPassport(p.files, { mrzKey: p.mrzKey, extendedLength: false });
  const injector = faults ? new FaultInjector({ seed: 1, ...FAST, ...faults }) : undefined;
  const reader = new InProcessReader(card, injector, { pollMs: 5 });
  const result = await readDocument(reader.connect(), { accessKey: { ...p.mrzKey }, recovery: RECOVERY, ...opts }, reader.reconnector);
  return { result, injector: injector!, reader, profile: p };
}

function hashes(r: DocumentRead): Record<string, string> {
  return Object.fromEntries([...r.files].map(([k, v]) => [k, hex(sha256(v))]));
}

async function expected(): Promise<Record<string, string>> {
  const p = await loadTd3With20kDg2();
  const out: Record<string, string> = { COM: hex(sha256(p.files.com)), SOD: hex(sha256(p.files.sod)) };
  for (const [n, b] of p.files.dgs) out[`DG${n}`] = hex(sha256(b));
  return out;
}

describe("recovery from each fault kind (in-process reader)", () => {
  test("fault-free read: 102 APDUs (one of them the EF.CardAccess probe, 6A82), no recovery", async () => {
    const { result } = await read(undefined);
    expect(hashes(result)).toEqual(await expected());
    expect(result.summary.apdus).toBe(102);
    expect(result.summary.recoveries).toEqual([]);
  });

  for (const kind of FAULT_KINDS) {
    test(`${kind} in the middle of DG2 and during BAC: same hashes, each recovery listed`, async () => {
      // APDU 3 = GET CHALLENGE (after the EF.CardAccess probe and SELECT; corrupt/sm-lost do not apply there: no MAC, no session), 40 = inside DG2.
      const { result, injector } = await read({ at: new Map<number, FaultKind>([[3, kind], [40, kind]]) });
      expect(hashes(result)).toEqual(await expected());
      expect(result.summary.hashesMatchSod).toBe(true);
      const fired = injector.injected.filter((f) => f.kind === kind);
      expect(fired.length).toBeGreaterThanOrEqual(kind === "corrupt" || kind === "sm-lost" ? 1 : 2);
      const recs = result.summary.recoveries;
      if (kind === "latency-spike") {
        expect(recs).toEqual([]);
        return;
      }
      expect(recs.length).toBe(fired.length);
      for (const r of recs) {
        expect(r.ok).toBe(true);
        expect(r.apdus).toBeGreaterThanOrEqual(3); // SELECT + GET CHALLENGE + EXTERNAL AUTHENTICATE
        expect(r.ms).toBeGreaterThanOrEqual(0);
        expect(r.step).toMatch(/authenticate|read /);
      }
      const mid = recs.find((r) => r.file === "DG2");
      expect(mid).toBeDefined();
      expect(mid!.offset! % 231).toBe(0);
      const cause = { "no-answer": "NO_RESPONSE", "card-leaves": "NO_RESPONSE", "sw-6f00": "RF_NO_ANSWER", "sw-6f01": "RF_TIMEOUT", "sw-6600": "RF_TRANSMISSION_ERROR", corrupt: "SM_BAD_MAC", "sm-lost": "SM_OUT_OF_STEP" }[kind as Exclude<FaultKind, "latency-spike">];
      // A corrupted byte may also break the DO structure instead of the MAC.
      if (kind === "corrupt") expect(["SM_BAD_MAC", "SM_MALFORMED"]).toContain(mid!.cause);
      else expect(mid!.cause).toBe(cause);
      if (kind === "card-leaves" || kind === "no-answer") expect(mid!.action).toMatch(/wait for the card|reconnect \(reset\) after/);
      if (kind === "sw-6f01") {
        expect(mid!.layer).toBe("rf-link");
        expect(mid!.failedAfterMs!).toBeGreaterThanOrEqual(8);
      }
    });
  }

  test("corrupted responses: data failing the MAC is never used (many corruptions, hashes still exact)", async () => {
    const { result, injector } = await read({ rate: 0.3, kinds: ["corrupt"], seed: 7 });
    expect(injector.injected.length).toBeGreaterThan(10);
    expect(hashes(result)).toEqual(await expected());
  });

  test("mixed faults at 20%: completes with exact hashes; block size shrank and grew back", async () => {
    const { result, injector } = await read({ rate: 0.2, seed: 2 });
    expect(injector.disruptive).toBeGreaterThan(15);
    expect(hashes(result)).toEqual(await expected());
    expect(result.summary.recoveries.length).toBeGreaterThan(15);
    const changes = result.summary.blockChanges ?? [];
    expect(changes.some((c) => c.why === "losses" && typeof c.to === "number" && typeof c.from === "number" && c.to < c.from)).toBe(true);
    expect(changes.some((c) => c.why === "successes" && typeof c.to === "number" && typeof c.from === "number" && c.to > c.from)).toBe(true);
  });

  test("the card never comes back: CARD_LOST within the wait window, classified, history attached", async () => {
    const p = await loadTd3With20kDg2();
    const card = new VirtualPassport(p.files, { mrzKey: p.mrzKey, extendedLength: false });
    const reader = new InProcessReader(card, undefined, { pollMs: 5 });
    const conn = reader.connect();
    const t0 = performance.now();
    const err = await readDocument(
      conn,
      {
        accessKey: { ...p.mrzKey },
        recovery: { ...RECOVERY, cardWaitMs: 300 },
        onProgress: (e) => {
          if (e.kind === "file" && e.key === "DG2" && e.offset > 5000 && reader.present) reader.remove(Infinity);
        },
      },
      reader.reconnector,
    ).catch((e: unknown) => e);
    const ms = performance.now() - t0;
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).code).toBe("CARD_LOST");
    expect(ms).toBeLessThan(300 + 1000);
    const report = readFailureReport(err)!;
    expect(report.failure.code).toBe("CARD_LOST");
    expect(report.failure.layer).toBe("reader");
    expect(report.file).toBe("DG2");
    expect(report.recoveries.length).toBeGreaterThanOrEqual(1);
    expect(report.recoveries[0]!.cause).toBe("NOT_TRANSACTED");
  });

  test("a link that always fails: gives up after maxConsecutive failures without progress", async () => {
    const err = await read({ rate: 1, kinds: ["sw-6600"] }, { recovery: { ...RECOVERY, maxConsecutive: 5 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).code).toBe("RF_6600");
    const report = readFailureReport(err)!;
    expect(report.failure.code).toBe("RF_TRANSMISSION_ERROR");
    expect(report.stoppedBecause).toContain("5 failures in a row");
    expect(report.recoveries.length).toBe(5);
    expect((err as Error).message).toContain("gave up after 5 recoveries");
  });
});
