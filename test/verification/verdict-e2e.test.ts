/**
 * Passive and Active Authentication through the real stack: agent → bun:ffi →
 * libpcsclite → pcscd → vpcd → virtual passport. Each verification profile gives exactly its
 * verdict with the TEST-ONLY Utopia CSCA (test/fixtures/pki) as trust; INTERNAL AUTHENTICATE
 * runs inside the secure channel during the read.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { fileURLToPath } from "node:url";
import { byKey, type LdsFileInfo } from "../../agent/lds/lds-files.ts";
import { verifyRead } from "../../agent/reading/verify-read.ts";
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

async function readAndVerify(passport: PassportOptions, opts: { aa?: boolean; withTrust?: boolean; files?: string[] } = {}) {
  const aa = opts.aa ?? true;
  const apdus: number[] = [];
  const card = await insertPassport({ ...passport, onApdu: (e) => apdus.push(e.ins) });
  try {
    const opened = await openCard({ reader: VIRTUAL_READER, waitMs: 5000 });
    try {
      const files = opts.files?.map((k) => byKey(k) as LdsFileInfo);
      const read = await readDocument(opened.connection, { accessKey: { ...card.mrzKey }, activeAuthentication: aa, ...(files ? { files } : {}) }, opened.reconnect);
      const verdict = verifyRead(read, { trust: opts.withTrust === false ? undefined : trust, trustSources });
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
  // the signed EF.SOD decides; one PKI policy violation per profile
  ["clone-hidden-dg15", "failed DG15_REFUSED | not-checked"],
  ["ds-is-ca", "failed DS_IS_CA | not-supported"],
  ["no-signed-attrs", "failed SOD_NO_SIGNED_ATTRIBUTES | not-supported"],
  ["critical-ext", "failed DS_CRITICAL_EXTENSION | not-supported"],
  ["stale-crl", "verified  | not-supported"],
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
      // EF.SOD is read right after EF.COM: its list decides the rest
      expect([...read.files.keys()].slice(0, 2)).toEqual(["COM", "SOD"]);
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

  test("AA switched off: no INTERNAL AUTHENTICATE, and a chip whose EF.SOD lists DG15 is not verified (AA_NOT_PERFORMED)", async () => {
    const { read, verdict, apdus } = await readAndVerify({ profile: "aa-clone" }, { aa: false });
    expect(apdus.includes(0x88)).toBe(false);
    expect(read.aa).toBeUndefined();
    expect(`${verdict.overall} ${verdict.reasons.join(",")} ${verdict.aa}`).toBe("unverifiable AA_NOT_PERFORMED not-checked");
    expect(verdict.notProven.join("\n")).toContain("Active Authentication was switched off");
  });

  test("aa-clone with the caller's files COM,SOD,DG1,DG2: DG15 is read and AA runs anyway, failed", async () => {
    const { read, verdict, apdus } = await readAndVerify({ profile: "aa-clone" }, { files: ["COM", "SOD", "DG1", "DG2"] });
    expect([...read.files.keys()]).toEqual(["COM", "SOD", "DG1", "DG2", "DG15"]);
    expect(apdus.filter((ins) => ins === 0x88).length).toBe(1);
    expect(`${verdict.overall} ${verdict.reasons.join(",")}`).toBe("failed AA_FAILED");
  });

  test("a caller who leaves out a data group the SOD lists gets it reported as not read and not proven", async () => {
    const { read, verdict } = await readAndVerify({ profile: "td3" }, { files: ["DG1"] });
    expect([...read.files.keys()]).toEqual(["COM", "SOD", "DG1"]);
    expect(verdict.overall).toBe("verified");
    expect(verdict.warnings).toContain("DG_NOT_READ");
    expect(verdict.notRead.map((n) => `DG${n.dg} ${n.why}`)).toEqual(["DG2 not-requested", "DG11 not-requested", "DG12 not-requested"]);
    expect(verdict.notProven.join("\n")).toContain("DG2, DG11, DG12: listed in EF.SOD but left out of the requested files, not read, not proven");
  });

  test("clone-hidden-dg15: EF.COM omits DG15, the reader asks for it because EF.SOD lists it; the chip's 6A82 fails the verdict", async () => {
    const { read, verdict } = await readAndVerify({ profile: "clone-hidden-dg15" });
    expect(read.com?.dataGroups).toEqual([1, 2]);
    expect(read.absent).toEqual([{ key: "DG15", sw: 0x6a82 }]);
    expect(verdict.warnings).toContain("COM_SOD_MISMATCH");
    expect(verdict.comMismatch).toEqual({ onlyInSod: [15], onlyInCom: [] });
    expect(verdict.notProven.join("\n")).toContain("it REFUSED DG15 (6A82)");
    expect(verdict.proven.join("\n")).not.toContain("not a copy");
  });

  test("stale-crl: verified, the CRL past nextUpdate is reported and revocation is not proven", async () => {
    const { verdict } = await readAndVerify({ profile: "stale-crl" });
    expect(verdict.revocation).toBe("stale");
    expect(verdict.warnings).toContain("CRL_STALE");
    expect(verdict.notProven.join("\n")).toContain("that the document signer is not revoked: the CSCA's CRL is past its nextUpdate");
  });

  test("AA passes but without trust DG15 is not authenticated: no claim that the chip is not a copy", async () => {
    const { verdict } = await readAndVerify({ profile: "aa-rsa" }, { withTrust: false });
    expect(verdict.aa).toBe("ok");
    expect(verdict.proven.join("\n")).not.toContain("not a copy");
    expect(verdict.notProven.join("\n")).toContain("that the chip is not a copy: DG15 itself is not authenticated by a verified EF.SOD");
  });
});
