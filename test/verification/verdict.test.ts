/**
 * The verdict policy (agent/verification/verdict.ts) on the virtual passport's files, without a
 * card: what the chip did during the read (files it refused, Active Authentication, the caller's
 * file list) against what the signed EF.SOD lists. End-to-end runs are in verdict-e2e.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { fileURLToPath } from "node:url";
import { parseEfCom } from "../../agent/lds/ef-com.ts";
import type { FileKey } from "../../agent/lds/lds-files.ts";
import { loadTrustSources } from "../../agent/pki/trust-files.ts";
import { verdictLines } from "../../agent/verification/report.ts";
import { type ChipEvidence, verifyDocument } from "../../agent/verification/verdict.ts";
import { loadProfile } from "../virtual-passport/fixtures/index.ts";
import { PKI_DIR } from "../virtual-passport/fixtures/pki.ts";

const trust = loadTrustSources([fileURLToPath(PKI_DIR)]);
const NOW = new Date(Date.UTC(2026, 5, 1));

async function filesOf(profile: string, drop: number[] = []): Promise<Map<FileKey, Uint8Array>> {
  const p = await loadProfile(profile);
  const files = new Map<FileKey, Uint8Array>([
    ["COM", p.files.com],
    ["SOD", p.files.sod],
  ]);
  for (const [n, bytes] of p.files.dgs) if (!drop.includes(n)) files.set(`DG${n}`, bytes);
  return files;
}

async function verdict(profile: string, chip: ChipEvidence | undefined, opts: { drop?: number[]; withTrust?: boolean } = {}) {
  const files = await filesOf(profile, opts.drop);
  const comDataGroups = parseEfCom(files.get("COM")!).dataGroups;
  return verifyDocument({ files, comDataGroups, trust: opts.withTrust === false ? undefined : trust, trustSources: ["fixtures"], issuingState: "UTO", now: NOW, ...(chip ? { chip } : {}) });
}

const AA_OK = { status: "ok" as const, algorithm: "RSA-1024 ISO/IEC 9796-2 SHA-1" };

describe("EF.SOD lists DG15: Active Authentication is required", () => {
  test("AA passed and DG15 authenticated: verified, 'not a copy' claimed", async () => {
    const v = await verdict("aa-rsa", { activeAuthentication: true, aa: AA_OK, absent: [] });
    expect(`${v.overall} ${v.reasons}`).toBe("verified ");
    expect(v.proven.join("\n")).toContain("the chip holds the private key of the signed DG15: not a copy");
  });

  test("AA off: unverifiable AA_NOT_PERFORMED; offline (no chip) AA is only not-checked", async () => {
    const off = await verdict("aa-rsa", { activeAuthentication: false, absent: [] });
    expect(`${off.overall} ${off.reasons}`).toBe("unverifiable AA_NOT_PERFORMED");
    const offline = await verdict("aa-rsa", undefined);
    expect(`${offline.overall} ${offline.reasons} ${offline.aa}`).toBe("verified  not-checked");
    expect(offline.notProven.join("\n")).toContain("Active Authentication needs the chip");
  });

  test("the chip refuses DG15 (6A82): failed DG15_REFUSED, even when the caller did not ask for it", async () => {
    const v = await verdict("aa-rsa", { activeAuthentication: true, absent: [{ key: "DG15", sw: 0x6a82 }], requested: ["DG1", "DG2"] }, { drop: [15] });
    expect(`${v.overall} ${v.reasons}`).toBe("failed DG15_REFUSED");
    expect(v.notRead).toEqual([{ dg: 15, why: "refused", sw: "6A82" }]);
  });

  test("the chip answers INTERNAL AUTHENTICATE with a status word: failed AA_REFUSED; a lost link: unverifiable AA_ERROR", async () => {
    const refused = await verdict("aa-rsa", { activeAuthentication: true, aa: { status: "error", algorithm: "RSA-1024", sw: 0x6d00, detail: "INTERNAL AUTHENTICATE answered 6D00" }, absent: [] });
    expect(`${refused.overall} ${refused.reasons}`).toBe("failed AA_REFUSED");
    expect(verdictLines(refused).join("\n")).toContain("it REFUSED Active Authentication (INTERNAL AUTHENTICATE answered 6D00)");
    const lost = await verdict("aa-rsa", { activeAuthentication: true, aa: { status: "error", algorithm: "RSA-1024", detail: "INTERNAL AUTHENTICATE: card lost" }, absent: [] });
    expect(`${lost.overall} ${lost.reasons}`).toBe("unverifiable AA_ERROR");
    // a length or reader-stack status word is an exchange that did not get through, not a refusal
    for (const sw of [0x6700, 0x6c80, 0x6f01, 0x6600]) {
      const v = await verdict("aa-rsa", { activeAuthentication: true, aa: { status: "error", algorithm: "RSA-1024", sw, detail: "answered" }, absent: [] });
      expect(`${sw.toString(16)} ${v.overall} ${v.reasons}`).toBe(`${sw.toString(16)} unverifiable AA_ERROR`);
    }
  });

  test("AA passed but no trust store: DG15 is not authenticated, so no claim that the chip is not a copy", async () => {
    const v = await verdict("aa-rsa", { activeAuthentication: true, aa: AA_OK, absent: [] }, { withTrust: false });
    expect(v.proven.join("\n")).not.toContain("not a copy");
    expect(v.notProven.join("\n")).toContain("DG15 itself is not authenticated by a verified EF.SOD");
  });
});

describe("EF.SOD decides, EF.COM is advisory", () => {
  test("the clone's EF.COM omits DG15: COM_SOD_MISMATCH reported, never more trust", async () => {
    const v = await verdict("clone-hidden-dg15", { activeAuthentication: true, absent: [{ key: "DG15", sw: 0x6a82 }] });
    expect(`${v.overall} ${v.reasons} | ${v.warnings}`).toBe("failed DG15_REFUSED | COM_SOD_MISMATCH");
    expect(v.comMismatch).toEqual({ onlyInSod: [15], onlyInCom: [] });
  });

  test("data groups the caller left out are listed as not read and not proven (DG_NOT_READ), the verdict stands", async () => {
    const v = await verdict("td3", { activeAuthentication: true, absent: [], requested: ["DG1"] }, { drop: [2, 11, 12] });
    expect(`${v.overall} ${v.reasons} | ${v.warnings}`).toBe("verified  | DG_NOT_READ");
    expect(v.notRead.map((n) => `${n.dg}:${n.why}`)).toEqual(["2:not-requested", "11:not-requested", "12:not-requested"]);
    expect(verdictLines(v).join("\n")).toContain("warnings:   DG_NOT_READ (a data group EF.SOD lists was not read, so it is not proven)");
  });

  test("no DG15 in EF.SOD: AA not-supported, verified", async () => {
    const v = await verdict("td3", { activeAuthentication: true, absent: [] });
    expect(`${v.overall} ${v.aa}`).toBe("verified not-supported");
  });

  test("the human report names the reason codes", async () => {
    const v = await verdict("ds-is-ca", { activeAuthentication: true, absent: [] });
    const lines = verdictLines(v).join("\n");
    expect(lines).toContain("Verdict   FAILED: the document signer certificate is a CA certificate");
    expect(lines).toContain("reasons:    DS_IS_CA");
  });
});
