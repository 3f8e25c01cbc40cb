/**
 * Chip Authentication and PACE-CAM through the real stack (agent → libpcsclite → pcscd → vpcd →
 * virtual passport), with the TEST-ONLY Utopia CSCA as trust: the verdict says which method
 * proved the chip genuine; a chip without DG14's private key (ca-clone) is failed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { fileURLToPath } from "node:url";
import { verifyRead } from "../../agent/reading/verify-read.ts";
import { loadTrustSources } from "../../agent/pki/trust-files.ts";
import { openCard } from "../../agent/reading/card-source.ts";
import { readDocument } from "../../agent/reading/read-document.ts";
import { PKI_DIR } from "../virtual-passport/fixtures/pki.ts";
import type { PcscdHandle } from "../support/pcscd.ts";
import { insertPassport, startPcscd, VIRTUAL_READER } from "../support/e2e.ts";

let pcscd: PcscdHandle;
beforeAll(async () => {
  pcscd = await startPcscd();
});
afterAll(async () => {
  await pcscd.stop();
});

const trustSources = [fileURLToPath(PKI_DIR)];
const trust = loadTrustSources(trustSources);

async function readAndVerify(profile: string) {
  const ins: number[] = [];
  const card = await insertPassport({ profile, onApdu: (e) => ins.push((e.cla << 8) | e.ins) });
  try {
    const opened = await openCard({ reader: VIRTUAL_READER, waitMs: 5000 });
    try {
      const read = await readDocument(opened.connection, { accessKey: { ...card.mrzKey }, activeAuthentication: true }, opened.reconnect);
      const verdict = verifyRead(read, { trust, trustSources });
      return { read, verdict, ins };
    } finally {
      await opened.close();
    }
  } finally {
    await card.stop();
  }
}

describe("chip genuine by Chip Authentication or PACE-CAM, through pcscd + vpcd", () => {
  const cases: [string, "verified", "CA" | "CAM", "BAC" | "PACE"][] = [
    // profile, overall, chipGenuine, access protocol
    ["ca-ec", "verified", "CA", "BAC"],
    ["ca-dh", "verified", "CA", "BAC"],
    ["pace-gm", "verified", "CA", "PACE"],
    ["pace-cam", "verified", "CAM", "PACE"],
  ];
  for (const [profile, overall, by, access] of cases) {
    test(`${profile}: ${overall}, chip genuine by ${by} after ${access}`, async () => {
      const { read, verdict, ins } = await readAndVerify(profile);
      // the whole summary on a mismatch: how it authenticated and what it recovered from
      expect({ ...read.summary.authentication, recoveries: read.summary.recoveries }).toMatchObject({ protocol: access });
      expect(read.chipAuth?.status).toBe("ok");
      expect(verdict.overall).toBe(overall);
      expect(verdict.chipGenuine).toBe(by);
      expect(verdict.proven.some((p) => p.includes("not a copy"))).toBe(true);
      expect(verdict.summary).toContain(`chip authenticated by ${by}`);
      if (by === "CA") {
        // 3DES: MSE:Set KAT; AES: MSE:Set AT + GENERAL AUTHENTICATE, both inside secure messaging
        expect(ins.filter((x) => x === 0x0c22).length).toBeGreaterThanOrEqual(1);
      }
    });
  }
  test("ca-clone: the chip lacks DG14's key: CA fails (tried twice), verdict failed with CA_FAILED", async () => {
    const { read, verdict } = await readAndVerify("ca-clone");
    expect(read.chipAuth).toMatchObject({ method: "CA", status: "failed" });
    expect(read.summary.recoveries.length).toBe(1); // the second attempt after re-authentication
    expect(verdict.overall).toBe("failed");
    expect(verdict.reasons[0]).toBe("CA_FAILED");
    expect(verdict.chipGenuine).toBeUndefined();
    expect(verdict.notProven.some((p) => p.includes("FAILED Chip Authentication"))).toBe(true);
  });
});
