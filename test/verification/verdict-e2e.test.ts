/**
 * Passive and Active Authentication through the real stack (issue 3): agent → bun:ffi →
 * libpcsclite → pcscd → vpcd → virtual passport. Each verification profile gives exactly its
 * verdict with the TEST-ONLY Utopia CSCA (test/fixtures/pki) as trust; INTERNAL AUTHENTICATE
 * runs inside the secure channel during the read.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { fileURLToPath } from "node:url";
import { verifyDocument } from "../../agent/reading/verification.ts";
import { loadTrustSources } from "../../agent/pki/trust-files.ts";
import { openCard } from "../../agent/reading/card-source.ts";
import { readDocument } from "../../agent/reading/read-document.ts";
import { PKI_DIR } from "../virtual-passport/fixtures/pki.ts";
import type { PcscdHandle } from "../support/pcscd.ts";
import { insertPassport, startPcscd, VIRTUAL_READER, type PassportOptions } from "../support/e2e.ts";

let pcscd: PcscdHandle;
beforeAll(async () => {
  pcscd = await startPcscd();
});
afterAll(async () => {
  await pcscd.stop();
});

const trustSources = [fileURLToPath(PKI_DIR)];
const trust = loadTrustSources(trustSources);

async function readAndVerify(passport: PassportOptions, opts: { aa?: boolean; withTrust?: boolean } = {}) {
  const aa = opts.aa ?? true;
  const apdus: number[] = [];
  const card = await insertPassport({ ...passport, onApdu: (e) => apdus.push(e.ins) });
  try {
    const opened = await openCard({ reader: VIRTUAL_READER, waitMs: 5000 });
    try {
      const read = await readDocument(opened.connection, { accessKey: { ...card.mrzKey }, activeAuthentication: aa }, opened.reconnect);
      const verdict = verifyDocument({
        files: read.files,
        comDataGroups: read.com?.dataGroups,
        trust: opts.withTrust === false ? undefined : trust,
        trustSources,
        issuingState: read.mrz?.issuingState,
        aa: read.aa,
        aaAttempted: aa,
      });
      return { read, verdict, apdus };
    } finally {
      await opened.close();
    }
  } finally {
    await card.stop();
  }
}

/** profile -> "overall reasons... | aa" */
const EXPECTED: [string, string][] = [
  ["td3-ecdsa", "verified  | not-supported"],
  ["tampered-dg1", "failed DG_HASH_MISMATCH | not-supported"],
  ["bad-sod-signature", "failed SOD_SIGNATURE_BAD | not-supported"],
  ["expired-ds", "failed DS_EXPIRED | not-supported"],
  ["revoked-ds", "failed DS_REVOKED | not-supported"],
  ["unknown-csca", "unverifiable NO_CSCA | not-supported"],
  ["aa-rsa", "verified  | ok"],
  ["aa-ec", "verified  | ok"],
  ["aa-clone", "failed AA_FAILED | failed"],
];

describe("verdicts through pcscd + vpcd + virtual passport", () => {
  for (const [profile, expected] of EXPECTED) {
    test(`${profile}: ${expected}`, async () => {
      const { read, verdict, apdus } = await readAndVerify({ profile });
      expect(`${verdict.overall} ${verdict.reasons.join(",")} | ${verdict.aa}`).toBe(expected);
      expect(verdict.summary.startsWith(`${verdict.overall}: `)).toBe(true);
      // INTERNAL AUTHENTICATE is sent exactly when the chip has DG15
      const ia = apdus.filter((ins) => ins === 0x88).length;
      expect(ia).toBe(profile.startsWith("aa-") ? 1 : 0);
      expect(read.summary.steps.some((s) => s.name === "active authentication")).toBe(profile.startsWith("aa-"));
    });
  }

  test("aa-rsa / aa-ec: the algorithm is named and the verdict says the chip is authenticated", async () => {
    const rsa = await readAndVerify({ profile: "aa-rsa" });
    expect(rsa.read.aa).toEqual({ status: "ok", algorithm: "RSA-1024 ISO/IEC 9796-2 SHA-1" });
    expect(rsa.verdict.summary).toContain("chip authenticated (RSA-1024 ISO/IEC 9796-2 SHA-1)");
    expect(rsa.verdict.proven.some((p) => p.includes("not a copy"))).toBe(true);
    const ec = await readAndVerify({ profile: "aa-ec" });
    expect(ec.read.aa).toEqual({ status: "ok", algorithm: "ECDSA P-256 SHA-256 (plain)" });
  });

  test("without trust: unverifiable NO_TRUST_STORE, and the explanation says what was not proven", async () => {
    const { verdict } = await readAndVerify({ profile: "aa-rsa" }, { withTrust: false });
    expect(`${verdict.overall} ${verdict.reasons.join(",")}`).toBe("unverifiable NO_TRUST_STORE");
    expect(verdict.sodSignature).toBe("ok");
    expect(verdict.aa).toBe("ok");
    expect(verdict.notProven.join("\n")).toContain("no trust store");
    expect(verdict.proven.join("\n")).toContain("EF.SOD is signed by");
  });

  test("AA not requested: no INTERNAL AUTHENTICATE, aa not-checked, PA verdict unchanged", async () => {
    const { read, verdict, apdus } = await readAndVerify({ profile: "aa-clone" }, { aa: false });
    expect(apdus.includes(0x88)).toBe(false);
    expect(read.aa).toBeUndefined();
    expect(`${verdict.overall} ${verdict.aa}`).toBe("verified not-checked");
  });
});
