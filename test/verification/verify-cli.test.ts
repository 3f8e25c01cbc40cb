/**
 * `read --trust` and `verify` as a user runs them: separate processes, real pcscd, exit codes
 * 0 / 7, the `verification` object of --json, and offline `verify` of a saved --out directory.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { OID } from "../../agent/pki/oids.ts";
import { DAY, makeCert, makeSelfSignedCa, makeSignedData, masterListContent, name, rsaKey } from "../pki/pki-builder.ts";
import { testCscaCertificate } from "../virtual-passport/fixtures/index.ts";
import { PKI_DIR } from "../virtual-passport/fixtures/pki.ts";
import type { PcscdHandle } from "../support/pcscd.ts";
import { insertPassport, SPECIMEN_KEY, startPcscd, VIRTUAL_READER } from "../support/e2e.ts";

const CLI = join(import.meta.dir, "../../agent/cli.ts");
const PKI = fileURLToPath(PKI_DIR);
const CSCA = join(PKI, "csca-ut-test-only.cert.pem");
const CRL = join(PKI, "crl-ut-test-only.crl");
const KEY_ARGS = ["--doc", SPECIMEN_KEY.documentNumber, "--dob", SPECIMEN_KEY.dateOfBirth, "--expiry", SPECIMEN_KEY.dateOfExpiry];

async function run(args: string[]) {
  const p = Bun.spawn([process.execPath, CLI, ...args], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { stdout, stderr, code };
}

describe("mrtd-agent verify (usage, offline)", () => {
  test("--help documents --trust and exit code 7; read --help too", async () => {
    const v = await run(["verify", "--help"]);
    expect(v.code).toBe(0);
    for (const s of ["--trust", "--master-list-anchor", "--json", "7 failed"]) expect(v.stdout).toContain(s);
    const r = await run(["read", "--help"]);
    for (const s of ["--trust", "--no-aa", "7 read complete but the verdict is failed"]) expect(r.stdout).toContain(s);
  });

  test("no directory, a missing one, an empty one, a missing --trust path: exit 2", async () => {
    expect((await run(["verify"])).code).toBe(2);
    expect((await run(["verify", "/nonexistent/mrtd"])).code).toBe(2);
    const empty = mkdtempSync(join(tmpdir(), "mrtd-empty-"));
    try {
      const r = await run(["verify", empty]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("no saved files");
      const t = await run(["verify", empty, "--trust", "/nonexistent/csca"]);
      expect(t.code).toBe(2);
      expect(t.stderr).toContain("trust source not found");
      const a = await run(["verify", empty, "--master-list-anchor", PKI]);
      expect(a.code).toBe(2);
      expect(a.stderr).toContain("--master-list-anchor needs --trust");
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe("read --trust and verify (through pcscd)", () => {
  let pcscd: PcscdHandle;
  let out: string;
  beforeAll(async () => {
    pcscd = await startPcscd();
    out = mkdtempSync(join(tmpdir(), "mrtd-verify-"));
  });
  afterAll(async () => {
    rmSync(out, { recursive: true, force: true });
    await pcscd.stop();
  });

  async function readCli(profile: string, extra: string[]) {
    const card = await insertPassport({ profile });
    try {
      return await run(["read", ...KEY_ARGS, "--reader", VIRTUAL_READER, ...extra]);
    } finally {
      await card.stop();
    }
  }

  test("aa-rsa with --trust (two sources, comma-separated): exit 0, --json verification verified, AA ok; --out saved", async () => {
    const r = await readCli("aa-rsa", ["--json", "--trust", `${CSCA},${CRL}`, "--out", out]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout).verification;
    expect(v.overall).toBe("verified");
    expect(v.aa).toBe("ok");
    expect(v.activeAuthentication.algorithm).toBe("RSA-1024 ISO/IEC 9796-2 SHA-1");
    expect(v.chain).toBe("trusted");
    expect(v.trust).toEqual({ sources: [CSCA, CRL], cscas: 1, crls: 1, masterLists: [] });
    expect(JSON.parse(readFileSync(join(out, "result.json"), "utf8")).verification.overall).toBe("verified");
  });

  test("aa-clone (repeated --trust): exit 7, human report says the chip failed Active Authentication", async () => {
    const r = await readCli("aa-clone", ["--trust", CSCA, "--trust", CRL]);
    expect(r.code).toBe(7);
    expect(r.stdout).toContain("Verdict   FAILED: the chip failed Active Authentication");
    expect(r.stdout).toContain("NOT proven: the chip FAILED Active Authentication");
  });

  test("tampered-dg1 without trust: exit 7 (a hash mismatch fails whatever the trust)", async () => {
    const r = await readCli("tampered-dg1", ["--json"]);
    expect(r.code).toBe(7);
    const v = JSON.parse(r.stdout).verification;
    expect(v.overall).toBe("failed");
    expect(v.reasons).toEqual(["DG_HASH_MISMATCH", "NO_TRUST_STORE"]);
  });

  test("td3 without trust: exit 0, UNVERIFIABLE, and what was and was not proven", async () => {
    const r = await readCli("td3", []);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Verdict   UNVERIFIABLE: no trust store is configured");
    expect(r.stdout).toMatch(/proven: +DG1, DG2, DG11, DG12 match their hashes in EF.SOD \(SHA-256\)/);
    expect(r.stdout).toContain("NOT proven: that the document signer is genuine: no trust store");
    expect(r.stdout).toContain("NOT proven: that the chip is not a copy: EF.SOD lists no DG15, so the chip offers no Active Authentication");
  });

  test("clone-hidden-dg15: exit 7, DG15_REFUSED in the human report and --json; EF.COM's omission reported", async () => {
    const human = await readCli("clone-hidden-dg15", ["--trust", PKI]);
    expect(human.code).toBe(7);
    expect(human.stdout).toContain("Verdict   FAILED: the chip refused DG15, which EF.SOD lists");
    expect(human.stdout).toContain("reasons:    DG15_REFUSED");
    expect(human.stdout).toContain("warnings:   COM_SOD_MISMATCH");
    expect(human.stdout).toContain("NOT proven: that EF.COM is consistent: EF.COM omits DG15 (EF.SOD decided what was read)");
    const json = await readCli("clone-hidden-dg15", ["--trust", PKI, "--json"]);
    expect(json.code).toBe(7);
    const v = JSON.parse(json.stdout).verification;
    expect(`${v.overall} ${v.reasons.join(",")} ${v.warnings.join(",")}`).toBe("failed DG15_REFUSED COM_SOD_MISMATCH");
    expect(v.notRead).toEqual([{ dg: 15, why: "refused", sw: "6A82" }]);
  });

  test("aa-clone with --files COM,SOD,DG1,DG2: DG15 and AA anyway, exit 7 AA_FAILED", async () => {
    const r = await readCli("aa-clone", ["--trust", PKI, "--files", "COM,SOD,DG1,DG2", "--json"]);
    expect(r.code).toBe(7);
    const j = JSON.parse(r.stdout);
    expect(Object.keys(j.files)).toEqual(["COM", "SOD", "DG1", "DG2", "DG15"]);
    expect(`${j.verification.overall} ${j.verification.reasons.join(",")}`).toBe("failed AA_FAILED");
  });

  test("ds-is-ca, no-signed-attrs, critical-ext: exit 7 with their reason; stale-crl: exit 0, CRL_STALE reported", async () => {
    for (const [profile, reason] of [["ds-is-ca", "DS_IS_CA"], ["no-signed-attrs", "SOD_NO_SIGNED_ATTRIBUTES"], ["critical-ext", "DS_CRITICAL_EXTENSION"]] as const) {
      const r = await readCli(profile, ["--trust", PKI, "--json"]);
      expect(`${profile} ${r.code} ${JSON.parse(r.stdout).verification.reasons.join(",")}`).toBe(`${profile} 7 ${reason}`);
    }
    const stale = await readCli("stale-crl", ["--trust", PKI]);
    expect(stale.code).toBe(0);
    expect(stale.stdout).toContain("Verdict   VERIFIED");
    expect(stale.stdout).toContain("warnings:   CRL_STALE");
    expect(stale.stdout).toContain("NOT proven: that the document signer is not revoked: the CSCA's CRL is past its nextUpdate");
  });

  test("verify with a master list: taken on the operator's word without --master-list-anchor, vouched for with it, rejected under another anchor", async () => {
    const now = new Date();
    const dir = mkdtempSync(join(tmpdir(), "mrtd-ml-"));
    try {
      const ca = async (cn: string) => {
        const key = await rsaKey();
        const n = name({ C: "UT", O: "Utopia", CN: cn });
        const cert = await makeSelfSignedCa({ subject: n, serial: 1n, notBefore: new Date(now.getTime() - DAY), notAfter: new Date(now.getTime() + 3650 * DAY), subjectKey: key });
        return { key, name: n, cert };
      };
      const anchor = await ca("Master List Anchor TEST ONLY");
      const stranger = await ca("Another Anchor TEST ONLY");
      const signerKey = await rsaKey();
      const signerCert = await makeCert({
        subject: name({ C: "UT", O: "Utopia", CN: "Master List Signer TEST ONLY" }),
        issuer: anchor.name,
        serial: 7n,
        notBefore: new Date(now.getTime() - DAY),
        notAfter: new Date(now.getTime() + 300 * DAY),
        subjectKey: signerKey,
        issuerKey: anchor.key,
        extKeyUsage: [OID.ekuMasterListSigner],
      });
      const ml = await makeSignedData({
        eContentType: OID.cscaMasterList,
        // as a national list does: the CSCA that issued the list's signer is in the list too
        eContent: masterListContent([await testCscaCertificate(), anchor.cert]),
        signerKey,
        signerCert,
        signerIssuer: anchor.name,
        signerSerial: 7n,
        signingTime: now,
      });
      const [mlFile, anchorFile, strangerFile] = [join(dir, "ut.ml"), join(dir, "anchor.der"), join(dir, "stranger.der")];
      writeFileSync(mlFile, ml);
      writeFileSync(anchorFile, anchor.cert);
      writeFileSync(strangerFile, stranger.cert);

      const word = await run(["verify", out, "--trust", mlFile]);
      expect(word.code).toBe(0);
      expect(word.stdout).toContain("Verdict   VERIFIED");
      expect(word.stdout).toContain(`trust:      master list ${mlFile} taken on the operator's word`);
      expect(word.stdout).toContain("a master list taken on the operator's word: its signer chains to no master-list anchor");

      const vouched = await run(["verify", out, "--trust", mlFile, "--master-list-anchor", anchorFile, "--json"]);
      expect(vouched.code).toBe(0);
      const v = JSON.parse(vouched.stdout).verification;
      expect(v.overall).toBe("verified");
      expect(v.trust.masterLists).toEqual([{ source: mlFile, trust: "trusted", added: 2 }]);

      const other = await run(["verify", out, "--trust", mlFile, "--master-list-anchor", strangerFile, "--json"]);
      const o = JSON.parse(other.stdout).verification;
      expect(`${o.overall} ${o.reasons.join(",")}`).toBe("unverifiable NO_CSCA");
      expect(o.trust.masterLists).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("verify the saved directory: verified with the CSCA, unverifiable without, failed after flipping a DG1 byte", async () => {
    const withTrust = await run(["verify", out, "--trust", PKI, "--json"]);
    expect(withTrust.code).toBe(0);
    const v = JSON.parse(withTrust.stdout).verification;
    expect(`${v.overall} ${v.aa}`).toBe("verified not-checked");
    expect(v.dgHashes.map((d: { dg: number }) => d.dg)).toEqual([1, 2, 15]);

    const without = await run(["verify", out]);
    expect(without.code).toBe(0);
    expect(without.stdout).toContain("Verdict   UNVERIFIABLE: no trust store is configured");

    const dg1 = readFileSync(join(out, "DG1.bin"));
    dg1[dg1.length - 5]! ^= 0x01;
    writeFileSync(join(out, "DG1.bin"), dg1);
    const tampered = await run(["verify", out, "--trust", PKI]);
    expect(tampered.code).toBe(7);
    expect(tampered.stdout).toContain("Verdict   FAILED: DG1 does not match the SOD");
    expect(tampered.stdout).toContain("NOT proven: DG1 does NOT match EF.SOD");
  });
});
