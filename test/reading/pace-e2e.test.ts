/**
 * PACE reads through the real stack (agent → libpcsclite → pcscd → vpcd → virtual passport):
 * each PACE profile with the expected protocol, group and cipher, the CAN, the MSE:Set AT
 * form fallback, BAC fallback and refusal, the PACE failure classes, and recovery (link lost
 * and secure messaging broken inside DG2: reconnect, PACE again, resume at the verified offset).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { hex } from "../../agent/bytes.ts";
import { sha256 } from "../../agent/crypto/hash.ts";
import { openCard } from "../../agent/reading/card-source.ts";
import { readDocument, readFailureReport, type ReadOptions } from "../../agent/reading/read-document.ts";
import { loadProfile } from "../virtual-passport/fixtures/index.ts";
import { FaultInjector, vpcdMedium, type FaultKind } from "../virtual-passport/faults.ts";
import type { PcscdHandle } from "../support/pcscd.ts";
import { insertPassport, startPcscd, VIRTUAL_READER, type PassportOptions, type StartedPassport } from "../support/e2e.ts";

let pcscd: PcscdHandle;
beforeAll(async () => {
  pcscd = await startPcscd();
});
afterAll(async () => {
  await pcscd.stop();
});

async function readWith(passport: PassportOptions, opts: (card: StartedPassport) => Partial<ReadOptions>) {
  const card = await insertPassport(passport);
  try {
    const opened = await openCard({ reader: VIRTUAL_READER, waitMs: 5000 });
    try {
      return await readDocument(opened.connection, { recovery: { maxRecoveries: 20, cardWaitMs: 5000, backoffMs: 10 }, ...opts(card) }, opened.reconnect);
    } finally {
      await opened.close();
    }
  } finally {
    await card.stop();
  }
}

async function expectAsServed(read: Awaited<ReturnType<typeof readWith>>, profile: string) {
  const p = await loadProfile(profile);
  expect(hex(read.files.get("COM")!)).toBe(hex(p.files.com));
  expect(hex(sha256(read.files.get("SOD")!))).toBe(hex(sha256(p.files.sod)));
  for (const [n, bytes] of p.files.dgs) expect(hex(sha256(read.files.get(`DG${n}`)!))).toBe(hex(sha256(bytes)));
  expect(read.summary.hashesMatchSod).toBe(true);
}

describe("PACE reads through pcscd + vpcd", () => {
  const cases: [string, Record<string, unknown>][] = [
    ["pace-gm", { protocol: "PACE", mapping: "GM", group: "brainpoolP256r1", cipher: "AES-128", password: "MRZ", parameterIdSent: true }],
    ["pace-only", { protocol: "PACE", group: "P-256", cipher: "AES-128", parameterIdSent: false }],
    ["pace-aes256", { protocol: "PACE", group: "brainpoolP384r1", cipher: "AES-256" }],
    ["pace-dh", { protocol: "PACE", group: "RFC 5114 2048-bit MODP, 256-bit subgroup", cipher: "AES-128", parameterIdSent: true }],
    ["pace-cam", { protocol: "PACE", mapping: "CAM", group: "brainpoolP256r1" }],
    ["pace-im", { protocol: "PACE", mapping: "IM", group: "brainpoolP256r1", cipher: "AES-128" }],
  ];
  for (const [profile, facts] of cases) {
    test(`${profile}: every file as served, hashes match EF.SOD, ${JSON.stringify(facts)}`, async () => {
      const read = await readWith({ profile }, (c) => ({ accessKey: { ...c.mrzKey } }));
      await expectAsServed(read, profile);
      expect(read.summary.authentication).toMatchObject(facts);
      // AES: a short protected response carries at most 223 bytes
      expect(read.summary.link.blockSize).toBeLessThanOrEqual(223);
    });
  }
  test("can-only: the TD1 ID card reads with its CAN and no MRZ key", async () => {
    const p = await loadProfile("can-only");
    const read = await readWith({ profile: "can-only" }, () => ({ can: p.can! }));
    await expectAsServed(read, "can-only");
    expect(read.mrz?.format).toBe("TD1");
    expect(read.summary.authentication).toMatchObject({ protocol: "PACE", password: "CAN" });
  });
  test("can-only with the MRZ key: PACE_UNSUPPORTED (no MRZ password, BAC refused), no key material in the message", async () => {
    const e = await readWith({ profile: "can-only" }, (c) => ({ accessKey: { ...c.mrzKey } })).catch((x: unknown) => x);
    expect(readFailureReport(e)?.failure.code).toBe("PACE_UNSUPPORTED");
    expect((e as Error).message).not.toContain("D23145890");
  });
  test("a wrong CAN: PACE_ACCESS_DENIED", async () => {
    const e = await readWith({ profile: "pace-gm" }, () => ({ can: "000000" })).catch((x: unknown) => x);
    expect(readFailureReport(e)?.failure.code).toBe("PACE_ACCESS_DENIED");
    expect((e as Error).message).not.toContain("000000");
  });
  test("--auth bac on pace-gm reads with BAC; on pace-only it fails PACE_REQUIRED", async () => {
    const read = await readWith({ profile: "pace-gm" }, (c) => ({ accessKey: { ...c.mrzKey }, auth: "bac" }));
    await expectAsServed(read, "pace-gm");
    expect(read.summary.authentication).toMatchObject({ protocol: "BAC", cipher: "3DES" });
    const e = await readWith({ profile: "pace-only" }, (c) => ({ accessKey: { ...c.mrzKey }, auth: "bac" })).catch((x: unknown) => x);
    expect(readFailureReport(e)?.failure.code).toBe("PACE_REQUIRED");
  });
  test("--auth pace on a BAC-only chip: PACE_UNSUPPORTED; auto reads it with BAC", async () => {
    const e = await readWith({ profile: "td3-5k" }, (c) => ({ accessKey: { ...c.mrzKey }, auth: "pace" })).catch((x: unknown) => x);
    expect(readFailureReport(e)?.failure.code).toBe("PACE_UNSUPPORTED");
    const read = await readWith({ profile: "td3-5k" }, (c) => ({ accessKey: { ...c.mrzKey } }));
    expect(read.summary.authentication).toMatchObject({ protocol: "BAC", paceOffered: [] });
  });
});

describe("PACE recovery through pcscd + vpcd", () => {
  for (const kind of ["card-leaves", "corrupt", "sm-lost"] as FaultKind[]) {
    test(`${kind} inside DG2 of pace-gm: reconnect if needed, PACE again, resume; same files`, async () => {
      const p = await loadProfile("pace-gm");
      // APDU 20: inside DG2 (CardAccess 2, MSE + 4 GA, SELECT, COM, DG1, then DG2)
      const injector = new FaultInjector({ seed: 5, readerTimeoutMs: 300, absentMs: 200, at: new Map<number, FaultKind>([[20, kind]]) });
      let card: StartedPassport | undefined;
      card = await insertPassport({ profile: "pace-gm", extendedLength: false, intercept: injector.intercept(() => vpcdMedium(card!)) });
      let read;
      try {
        const opened = await openCard({ reader: VIRTUAL_READER, waitMs: 5000 });
        try {
          read = await readDocument(opened.connection, { accessKey: { ...p.mrzKey }, recovery: { maxRecoveries: 20, cardWaitMs: 5000, backoffMs: 10 } }, opened.reconnect);
        } finally {
          await opened.close();
        }
      } finally {
        if (kind === "card-leaves") await Bun.sleep(1000);
        await card.stop();
      }
      await expectAsServed(read, "pace-gm");
      expect(injector.injected.length).toBeGreaterThanOrEqual(1);
      const recs = read.summary.recoveries;
      expect(recs.length).toBeGreaterThanOrEqual(1);
      expect(recs.every((r) => r.ok)).toBe(true);
      const mid = recs.find((r) => r.file === "DG2")!;
      expect(mid).toBeDefined();
      // resumed at a MAC-verified block boundary of 223 bytes (AES)
      expect(mid.offset! % 223).toBe(0);
      // re-authentication: MSE:Set AT + 4 GENERAL AUTHENTICATE + SELECT (no second EF.CardAccess read)
      expect(mid.apdus).toBeGreaterThanOrEqual(6);
      expect(read.summary.authentication?.protocol).toBe("PACE");
    });
  }
});
