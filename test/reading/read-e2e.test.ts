/**
 * Reads through the real stack: agent → bun:ffi → libpcsclite → pcscd → vpcd driver →
 * TCP → virtual passport. Checks content, hashes against EF.SOD, APDU counts against the
 * minimum for each profile, and the typed failures of issue 2 (wrong key, no card,
 * no pcscd, card removed mid-read).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sha256 } from "../../agent/crypto/hash.ts";
import { hex } from "../../agent/bytes.ts";
import { AccessDeniedError, TransportError } from "../../agent/errors.ts";
import { openCard } from "../../agent/reading/card-source.ts";
import { readDocument, type ReadOptions } from "../../agent/reading/read-document.ts";
import { loadProfile } from "../virtual-passport/fixtures/index.ts";
import type { PcscdHandle } from "../support/pcscd.ts";
import { insertPassport, minimumApdus, SPECIMEN_KEY, startPcscd, VIRTUAL_READER, type PassportOptions } from "../support/e2e.ts";

let pcscd: PcscdHandle;
beforeAll(async () => {
  pcscd = await startPcscd();
});
afterAll(async () => {
  await pcscd.stop();
});

async function readWith(passport: PassportOptions, opts: Partial<ReadOptions> = {}) {
  const card = await insertPassport(passport);
  try {
    const opened = await openCard({ reader: VIRTUAL_READER, waitMs: 5000 });
    try {
      return await readDocument(opened.connection, { accessKey: { ...card.mrzKey }, ...opts }, opened.reconnect);
    } finally {
      await opened.close();
    }
  } finally {
    await card.stop();
  }
}

function expectFilesAsServed(read: Awaited<ReturnType<typeof readWith>>, profile: Awaited<ReturnType<typeof loadProfile>>) {
  expect(hex(read.files.get("COM")!)).toBe(hex(profile.files.com));
  expect(hex(sha256(read.files.get("SOD")!))).toBe(hex(sha256(profile.files.sod)));
  for (const [n, bytes] of profile.files.dgs) {
    const got = read.files.get(`DG${n}`);
    expect(got?.length).toBe(bytes.length);
    expect(hex(sha256(got!))).toBe(hex(sha256(bytes)));
  }
}

describe("read through pcscd + vpcd + virtual passport", () => {
  test("TD3 passport with a 15 KB DG2: every file, MRZ, face, hashes match EF.SOD, minimum APDUs", async () => {
    const profile = await loadProfile("td3");
    const read = await readWith({ profile: "td3", extendedLength: false });
    expectFilesAsServed(read, profile);
    expect(read.mrz?.format).toBe("TD3");
    expect(read.mrz?.documentNumber).toBe("L898902C3");
    expect(read.mrz?.primaryIdentifier).toBe("ERIKSSON");
    expect(read.mrz?.secondaryIdentifier).toBe("ANNA MARIA");
    expect(read.mrz?.valid).toBe(true);
    expect(read.summary.face?.format).toBe("jpeg");
    expect(read.summary.face!.width).toBeGreaterThan(0);
    expect(read.summary.hashesMatchSod).toBe(true);
    expect(read.sodHashes!.every((h) => h.status === "ok")).toBe(true);
    const sizes = [profile.files.com.length, ...profile.files.dgs.values()].map((b) => (b instanceof Uint8Array ? b.length : b));
    expect(read.summary.apdus).toBe(minimumApdus([...sizes, profile.files.sod.length]));
    expect(read.summary.link).toEqual({ blockSize: 231, extendedLength: false, readBySfi: true });
    expect(read.summary.recoveries).toEqual([]);
  });

  test("TD3 with a 40 KB DG2 and short Le: odd-INS READ BINARY beyond offset 32,767", async () => {
    const profile = await loadProfile("td3-40k");
    expect(profile.files.dgs.get(2)!.length).toBeGreaterThan(32768);
    const read = await readWith({ profile: "td3-40k", extendedLength: false }, { trace: true });
    expectFilesAsServed(read, profile);
    expect(read.summary.hashesMatchSod).toBe(true);
    expect(read.trace!.some((t) => t.ins === 0xb1)).toBe(true);
    const sizes = [profile.files.com.length, ...[...profile.files.dgs.values()].map((b) => b.length), profile.files.sod.length];
    expect(read.summary.apdus).toBe(minimumApdus(sizes));
  });

  test("TD3 with a 40 KB DG2 and extended length: about 10 APDUs", async () => {
    const profile = await loadProfile("td3-40k");
    const read = await readWith({ profile: "td3-40k", extendedLength: true }, { extendedLength: "auto" });
    expectFilesAsServed(read, profile);
    expect(read.summary.link.extendedLength).toBe(true);
    // EF.CardAccess probe + SELECT + 2 BAC + one 231-byte first read per file + one extended read for each larger file
    const files = [profile.files.com, ...profile.files.dgs.values(), profile.files.sod];
    const expected = 4 + files.reduce((n, f) => n + (f.length > 231 ? 2 : 1), 0);
    expect(read.summary.apdus).toBe(expected);
  });

  test("extended length probed on a card without it: falls back to short reads and still reads everything", async () => {
    const profile = await loadProfile("td3");
    const read = await readWith({ profile: "td3", extendedLength: false }, { extendedLength: "on" });
    expectFilesAsServed(read, profile);
    expect(read.summary.link.extendedLength).toBe(false);
    expect(read.summary.hashesMatchSod).toBe(true);
  });

  test("TD1 ID card", async () => {
    const profile = await loadProfile("td1");
    const read = await readWith({ profile: "td1" });
    expectFilesAsServed(read, profile);
    expect(read.mrz?.format).toBe("TD1");
    expect(read.mrz?.valid).toBe(true);
    expect(read.summary.hashesMatchSod).toBe(true);
  });

  test("a card that accepts only Le ≤ 192 (6700 above): the ladder settles on 192", async () => {
    const profile = await loadProfile("td3");
    const read = await readWith({ profile: "td3", extendedLength: false, maxLe: 192 }, { trace: true });
    expectFilesAsServed(read, profile);
    expect(read.summary.link.blockSize).toBe(192);
    expect(read.trace!.filter((t) => t.sw === 0x6700).length).toBeGreaterThan(0);
  });

  test("wrong MRZ: AccessDeniedError without any key material in it", async () => {
    const card = await insertPassport({ profile: "td3" });
    try {
      const opened = await openCard({ reader: VIRTUAL_READER, waitMs: 5000 });
      try {
        const err = await readDocument(opened.connection, { accessKey: { documentNumber: "X12345678", dateOfBirth: "010101", dateOfExpiry: "300101" } }).catch(
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(AccessDeniedError);
        const text = `${(err as Error).message} ${JSON.stringify(err)}`;
        for (const secret of ["X12345678", "010101", "300101", "L898902C3", "740812", "120415"]) expect(text).not.toContain(secret);
        expect((err as Error).message).toContain("check document number, date of birth and expiry");
      } finally {
        await opened.close();
      }
    } finally {
      await card.stop();
    }
  });

  test("no card in the reader: a typed NO_CARD error after the wait", async () => {
    const err = await openCard({ reader: VIRTUAL_READER, waitMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).code).toBe("NO_CARD");
  });

  test("card removed mid-read and never back: a typed transport error within the wait window, no hang", async () => {
    const card = await insertPassport({ profile: "td3-60k", extendedLength: false });
    const opened = await openCard({ reader: VIRTUAL_READER, waitMs: 5000 });
    let removed = false;
    try {
      const err = await readDocument(
        opened.connection,
        {
          accessKey: { ...SPECIMEN_KEY },
          recovery: { maxRecoveries: 3, cardWaitMs: 500, backoffMs: 10 },
          onProgress: (p) => {
            if (!removed && p.kind === "file" && p.key === "DG2" && p.offset > 5000) {
              removed = true;
              void card.stop();
            }
          },
        },
        opened.reconnect,
      ).catch((e: unknown) => e);
      expect(removed).toBe(true);
      // bun's per-test timeout catches a hang; the error must be typed.
      expect(err).toBeInstanceOf(TransportError);
    } finally {
      await opened.close();
      await card.stop();
    }
  });
});
