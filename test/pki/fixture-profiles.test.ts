/**
 * The virtual passport's EF.SOD (test/virtual-passport/fixtures, built with its own DER writer and
 * pkijs-made certificates) verifies with this library against the committed TEST-ONLY Utopia CSCA.
 */
import { describe, expect, test } from "bun:test";
import { fileURLToPath } from "node:url";
import { parseSod } from "../../agent/lds/sod.ts";
import { loadTrustSources } from "../../agent/pki/trust-files.ts";
import { verifyPassive } from "../../agent/verification/passive-authentication.ts";
import { PROFILE_NAMES, loadProfile } from "../virtual-passport/fixtures/index.ts";
import { PKI_DIR } from "../virtual-passport/fixtures/pki.ts";

describe("virtual passport profiles", () => {
  const trust = loadTrustSources([fileURLToPath(PKI_DIR)]);

  test("the fixture PKI directory loads its two CSCAs and refuses the DS certificate as an anchor", () => {
    expect(trust.anchors.map((a) => a.cert.subject.text).sort()).toEqual(["C=UT, O=Utopia, CN=CSCA Utopia STALE CRL TEST ONLY", "C=UT, O=Utopia, CN=CSCA Utopia TEST ONLY"]);
    expect(trust.crls.map((c) => c.verified)).toEqual([true, true]);
    expect(trust.log.some((l) => l.status === "rejected" && l.detail === "not a CA certificate")).toBe(true);
  });

  /** Passive Authentication verdict each profile is built to give; the rest verify. */
  const EXPECTED: Record<string, string> = {
    "tampered-dg1": "failed DG_HASH_MISMATCH",
    "bad-sod-signature": "failed SOD_SIGNATURE_BAD",
    "expired-ds": "failed DS_EXPIRED",
    "revoked-ds": "failed DS_REVOKED",
    "unknown-csca": "unverifiable NO_CSCA",
    "ds-is-ca": "failed DS_IS_CA",
    "no-signed-attrs": "failed SOD_NO_SIGNED_ATTRIBUTES",
    "critical-ext": "failed DS_CRITICAL_EXTENSION",
  };

  for (const name of PROFILE_NAMES.filter((n) => EXPECTED[n])) {
    test(`${name}: ${EXPECTED[name]}`, async () => {
      const p = await loadProfile(name);
      const v = verifyPassive({ sod: p.files.sod, files: p.files.dgs, trust, issuingState: "UTO", now: new Date(Date.UTC(2026, 5, 1)) });
      expect(`${v.overall} ${v.reasons.join(",")}`).toBe(EXPECTED[name]!);
    });
  }

  for (const name of PROFILE_NAMES.filter((n) => !EXPECTED[n])) {
    test(`${name}: parses and verifies`, async () => {
      const p = await loadProfile(name);
      const sod = parseSod(p.files.sod);
      expect(sod.hashAlgorithm).toBe(p.hashAlg);
      // the clone serves every signed file except the DG15 it hides
      const served = [...p.files.dgs.keys(), ...(name === "clone-hidden-dg15" ? [15] : [])].sort((a, b) => a - b);
      expect([...sod.dataGroupHashes.keys()].sort((a, b) => a - b)).toEqual(served);
      const v = verifyPassive({ sod: p.files.sod, files: p.files.dgs, trust, issuingState: "UTO", now: new Date(Date.UTC(2026, 5, 1)) });
      expect(`${v.overall} ${v.reasons.join(",")}`).toBe("verified ");
      expect(v.chain).toBe("trusted");
      const tampered = new Map(p.files.dgs);
      const dg1 = tampered.get(1)!.slice();
      dg1[10]! ^= 1;
      tampered.set(1, dg1);
      expect(verifyPassive({ sod: p.files.sod, files: tampered, trust, issuingState: "UTO", now: new Date(Date.UTC(2026, 5, 1)) }).reasons).toEqual([
        "DG_HASH_MISMATCH",
      ]);
    });
  }
});
