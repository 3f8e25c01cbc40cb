/**
 * `mrtd-agent diagnose` through pcscd + vpcd + the virtual passport (issue 4 item 4): a clean
 * link is judged good; a link where the card stops answering near the reader's timeout is
 * classified RF_TIMEOUT with the elapsed time, and the advice names the antenna and power.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { diagnoseReader, judge, type ReaderDiagnosis } from "../../agent/diagnostics/reader-diagnostics.ts";
import { PcscClient, type PcscCard } from "../../agent/transport/pcsc.ts";
import { FaultInjector, vpcdMedium } from "../virtual-passport/faults.ts";
import type { PcscdHandle } from "../support/pcscd.ts";
import { insertPassport, startPcscd, VIRTUAL_READER, type StartedPassport } from "../support/e2e.ts";

const CLI = join(import.meta.dir, "../../agent/cli.ts");
let pcscd: PcscdHandle;
beforeAll(async () => {
  pcscd = await startPcscd();
});
afterAll(async () => {
  await pcscd.stop();
});

async function diagnose(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([process.execPath, CLI, "diagnose", "--reader", VIRTUAL_READER, ...args], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

async function withCard<T>(injector: FaultInjector | undefined, fn: () => Promise<T>): Promise<T> {
  let card: StartedPassport | undefined;
  card = await insertPassport({ profile: "td3", ...(injector ? { intercept: injector.intercept(() => vpcdMedium(card!)) } : {}) });
  try {
    return await fn();
  } finally {
    if (injector) {
      injector.enabled = false;
      await Bun.sleep(1000); // let pcscd's presence poll catch up (read-faults-e2e.test.ts)
    }
    await card.stop();
  }
}

describe("mrtd-agent diagnose (through pcscd)", () => {
  test("clean link: verdict good, ATR decoded, extended APDUs pass, latency percentiles", async () => {
    const { code, stdout } = await withCard(undefined, () => diagnose(["--count", "60", "--json"]));
    expect(code).toBe(0);
    const d = JSON.parse(stdout) as ReaderDiagnosis;
    expect(d.reader.name).toBe(VIRTUAL_READER);
    expect(d.reader.missing).toContain("firmware version"); // vpcd reports no vendor attributes
    expect(d.card.contactless).toBe(true);
    expect(d.card.extendedLengthClaimed).toBe(true);
    expect(d.card.historicalDecoded.join(" ")).toContain("extended Lc/Le yes");
    expect(d.card.atsNote).toContain("does not give the ATS");
    expect(d.extendedApdu.passes).toBe(true);
    expect(d.accessControl).toEqual({ pace: [], note: "no EF.CardAccess: the document offers BAC only" });
    expect(d.stability.exchanges).toBe(60);
    expect(d.stability.failed).toBe(0);
    const l = d.stability.latencyMs!;
    expect(l.min).toBeLessThanOrEqual(l.p50);
    expect(l.p50).toBeLessThanOrEqual(l.p95);
    expect(l.p95).toBeLessThanOrEqual(l.p99);
    expect(l.p99).toBeLessThanOrEqual(l.max);
    expect(d.verdict).toBe("good");
  }, 30_000);

  test("the card stops answering near the reader timeout in ~30% of exchanges: RF_TIMEOUT, advice on antenna and power", async () => {
    // Faults only in the stability loop (APDUs after the 8 of the attribute, ATS and extended checks).
    const injector = new FaultInjector({ seed: 4, rate: 0.3, kinds: ["sw-6f01"], readerTimeoutMs: 250, filter: (a) => a[1] === 0x84 && a.length === 5 });
    const { code, stdout } = await withCard(injector, () => diagnose(["--count", "80", "--reader-timeout", "250", "--json"]));
    const d = JSON.parse(stdout) as ReaderDiagnosis;
    expect(code).toBe(5);
    const f = d.stability.failures.find((x) => x.code === "RF_TIMEOUT")!;
    expect(f).toBeDefined();
    expect(f.layer).toBe("rf-link");
    expect(f.count).toBe(injector.injected.length);
    expect(f.medianElapsedMs!).toBeGreaterThanOrEqual(250 * 0.8);
    expect(f.observed).toEqual({ RF_6F01: f.count });
    expect(d.stability.failed).toBe(f.count);
    expect(d.verdict).toBe("unreliable");
    expect(d.advice.join("\n")).toMatch(/stops answering after ~2\d\d(\.\d)? ms .* in \d+(\.\d+)?% of exchanges .*RF field or power too weak, check the antenna/);
  }, 60_000);

  test("a PACE document: EF.CardAccess read plain, its PACE parameters listed and the one used marked", async () => {
    const card = await insertPassport({ profile: "pace-gm" });
    try {
      const { code, stdout } = await diagnose(["--count", "5", "--json"]);
      expect(code).toBe(0);
      const d = JSON.parse(stdout) as ReaderDiagnosis;
      expect(d.accessControl).toEqual({ pace: [{ protocol: "PACE-GM ECDH brainpoolP256r1 AES-128", supported: true }], note: "the agent reads this document with PACE" });
      const human = await diagnose(["--count", "5"]);
      expect(human.stdout).toContain("Access    PACE-GM ECDH brainpoolP256r1 AES-128 (used): the agent reads this document with PACE");
    } finally {
      await card.stop();
    }
  }, 30_000);

  test("human output and usage errors", async () => {
    const { code, stdout } = await withCard(undefined, () => diagnose(["--count", "10"]));
    expect(code).toBe(0);
    expect(stdout).toContain("Verdict   GOOD");
    expect(stdout).toMatch(/Latency   min [\d.]+ ms, p50/);
    const bad = await diagnose(["--count", "0"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--count");
  }, 30_000);
});

/** A plain SELECT of the eMRTD application: what another application sends first. */
const PLAIN_SELECT = Uint8Array.from([0x00, 0xa4, 0x04, 0x0c, 0x07, 0xa0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01]);

describe("diagnose without false alarms (through pcscd)", () => {
  /**
   * Another application used the card and disconnects with a reset right after our connection
   * was made: pcsc-lite reports SCARD_W_RESET_CARD to our handle once. `claim` says whether our
   * connection then takes its transaction (the normal path) or not (the reset then meets the
   * first exchange).
   */
  async function diagnoseAfterForeignReset(claim: boolean): Promise<ReaderDiagnosis> {
    const client = await PcscClient.open();
    const other = await PcscClient.open();
    try {
      const otherCard = await other.connect(VIRTUAL_READER);
      await otherCard.transmit(PLAIN_SELECT);
      const connect = client.connect.bind(client);
      client.connect = async (reader: string, opts: Parameters<PcscClient["connect"]>[1] = {}): Promise<PcscCard> => {
        const c = await connect(reader, { ...opts, transaction: false });
        await otherCard.disconnect("reset");
        if (claim && opts.transaction) await c.claim();
        return c;
      };
      return await diagnoseReader({ reader: VIRTUAL_READER, count: 40, waitMs: 5000, client });
    } finally {
      await client.close();
      await other.close();
    }
  }

  for (const claim of [true, false]) {
    test(`a reset by the previous application just before the test (seen at the ${claim ? "transaction" : "first exchange"}) is acknowledged: good, extended length passes`, async () => {
      const card = await insertPassport({ profile: "td3" });
      try {
        const d = await diagnoseAfterForeignReset(claim);
        expect(d.stability.resetsBeforeStart).toBe(1);
        expect(d.extendedApdu.passes).toBe(true);
        expect(d.extendedApdu.le).not.toContain("reset");
        expect(d.stability.failed).toBe(0);
        expect(d.verdict).toBe("good");
        expect(d.advice.join("\n")).toContain("another application reset the card just before the test");
      } finally {
        await card.stop();
      }
    }, 30_000);
  }

  test("a failed extended-length probe is repeated after a reset: one failure does not say the reader cannot carry it", async () => {
    let failed = 0;
    const card = await insertPassport({
      profile: "td3",
      // The first extended GET CHALLENGE (case 2E, 7 bytes) gets the reader stack's 6F01, once.
      intercept: (a) => (a[1] === 0x84 && a.length === 7 && failed++ === 0 ? Uint8Array.of(0x6f, 0x01) : undefined),
    });
    try {
      const d = await diagnoseReader({ reader: VIRTUAL_READER, count: 20, waitMs: 5000 });
      expect(failed).toBeGreaterThanOrEqual(2); // probed twice
      expect(d.extendedApdu.passes).toBe(true);
      expect(d.extendedApdu.le).toContain("after a card reset");
      expect(d.advice.join("\n")).not.toContain("extended-length APDUs do not pass");
      expect(d.verdict).toBe("good");
    } finally {
      await card.stop();
    }
  }, 30_000);

  test("a virtual passport started right before diagnose: good, twice in a row", async () => {
    for (let i = 0; i < 2; i++) {
      const { code, stdout } = await withCard(undefined, () => diagnose(["--count", "100", "--json"]));
      const d = JSON.parse(stdout) as ReaderDiagnosis;
      expect([code, d.verdict, d.extendedApdu.passes, d.stability.failed]).toEqual([0, "good", true, 0]);
    }
  }, 60_000);
});

describe("judge: below good only on repeated evidence", () => {
  const reader: ReaderDiagnosis["reader"] = { name: "r", missing: [] };
  const card: ReaderDiagnosis["card"] = { atr: "", contactless: true, historical: "", historicalDecoded: [], extendedLengthClaimed: true };
  const ext: ReaderDiagnosis["extendedApdu"] = { passes: true, le: "", lc: "" };
  const stability = (over: Partial<ReaderDiagnosis["stability"]>): ReaderDiagnosis["stability"] => ({
    exchanges: 100,
    ok: 100,
    failed: 0,
    latencyMs: { min: 0.3, p50: 0.5, p95: 0.8, p99: 1, max: 2 },
    failures: [],
    presenceFlaps: 0,
    relinks: 0,
    resetsBeforeStart: 0,
    latencySpikes: 0,
    ...over,
  });
  test.each([
    ["nothing wrong", "good", {}],
    ["one failed exchange", "good", { ok: 99, failed: 1 }],
    ["one presence flap", "good", { presenceFlaps: 1 }],
    ["one latency spike", "good", { latencySpikes: 1 }],
    ["a reset before the start", "good", { resetsBeforeStart: 1 }],
    ["two failed exchanges in 200", "marginal", { exchanges: 200, ok: 198, failed: 2 }],
    ["two latency spikes", "marginal", { latencySpikes: 2 }],
    ["two presence flaps", "marginal", { presenceFlaps: 2 }],
    ["three failed exchanges in 100", "unreliable", { ok: 97, failed: 3 }],
    ["no exchange passed", "unusable", { ok: 0, failed: 100 }],
  ] as const)("%s: %s", (_what, verdict, over) => {
    expect(judge(reader, card, ext, stability(over), 3000).verdict).toBe(verdict);
  });
});
