/**
 * The `read` command as a user runs it: a separate process, real pcscd, documented
 * exit codes, and no access key in any output.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PcscdHandle } from "../support/pcscd.ts";
import { insertPassport, SPECIMEN_KEY, startPcscd, VIRTUAL_READER } from "../support/e2e.ts";

const CLI = join(import.meta.dir, "../../agent/cli.ts");

async function run(args: string[], env: Record<string, string> = {}) {
  const p = Bun.spawn([process.execPath, CLI, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { stdout, stderr, code };
}

const KEY_ARGS = ["--doc", SPECIMEN_KEY.documentNumber, "--dob", SPECIMEN_KEY.dateOfBirth, "--expiry", SPECIMEN_KEY.dateOfExpiry];

describe("mrtd-agent read (usage)", () => {
  test("--help lists the options and exit codes", async () => {
    const r = await run(["read", "--help"]);
    expect(r.code).toBe(0);
    for (const s of ["--doc", "--dob", "--expiry", "--reader", "--files", "--out", "--json", "Exit codes"]) expect(r.stdout).toContain(s);
  });

  test("missing access key: exit 2 naming the option", async () => {
    const r = await run(["read", "--doc", "L898902C3"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--dob");
  });

  test("an impossible date: exit 2 without echoing the value", async () => {
    const r = await run(["read", "--doc", "L898902C3", "--dob", "741399", "--expiry", "120415"]);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain("741399");
    expect(r.stderr).not.toContain("L898902C3");
  });

  test("a document number the MRZ cannot hold: exit 2 before pcscd is asked, without echoing it", async () => {
    // PC/SC is pointed at a socket that does not exist: reaching it would exit 3, not 2.
    const r = await run(["read", "--doc", "<L898902C", "--dob", "740812", "--expiry", "120415", "--wait", "0"], { PCSCLITE_CSOCK_NAME: "/nonexistent/pcscd.comm" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--doc");
    expect(r.stderr).not.toContain("L898902C");
    expect(r.stderr).not.toContain("740812");
  });

  test("unknown option and unknown file name: exit 2", async () => {
    expect((await run(["read", "--bogus"])).code).toBe(2);
    expect((await run(["read", ...KEY_ARGS, "--files", "DG1,DG99"])).code).toBe(2);
  });

  test("pcscd not running: exit 3 with advice", async () => {
    const r = await run(["read", ...KEY_ARGS, "--wait", "0"], { PCSCLITE_CSOCK_NAME: "/nonexistent/pcscd.comm" });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("pcscd");
    expect(r.stderr).toContain("SCARD_E_NO_SERVICE");
  });
});

describe("mrtd-agent read (through pcscd)", () => {
  let pcscd: PcscdHandle;
  beforeAll(async () => {
    pcscd = await startPcscd();
  });
  afterAll(async () => {
    await pcscd.stop();
  });

  test("--json prints the documented fields and --out writes the files", async () => {
    const card = await insertPassport({ profile: "td3" });
    const out = mkdtempSync(join(tmpdir(), "mrtd-out-"));
    try {
      const r = await run(["read", ...KEY_ARGS, "--reader", VIRTUAL_READER, "--json", "--out", out]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.reader).toBe(VIRTUAL_READER);
      expect(typeof j.atr).toBe("string");
      for (const k of ["COM", "SOD", "DG1", "DG2"]) {
        expect(j.files[k].bytes).toBeGreaterThan(0);
        expect(j.files[k].sha256).toMatch(/^[0-9a-f]{64}$/);
      }
      expect(j.mrz.documentNumber).toBe("L898902C3");
      expect(j.face.format).toBe("jpeg");
      expect(j.face.width).toBeGreaterThan(0);
      expect(j.hashesMatchSod).toBe(true);
      expect(j.apdus.count).toBeGreaterThan(3);
      expect(j.durationMs).toBeGreaterThan(0);
      expect(j.steps.length).toBeGreaterThan(3);
      for (const f of ["COM.bin", "SOD.bin", "DG1.bin", "DG2.bin", "face.jpg", "result.json"]) expect(existsSync(join(out, f))).toBe(true);
      const face = readFileSync(join(out, "face.jpg"));
      expect([face[0], face[1]]).toEqual([0xff, 0xd8]);
    } finally {
      rmSync(out, { recursive: true, force: true });
      await card.stop();
    }
  });

  test("wrong MRZ: exit 4, the documented message, no key echoed", async () => {
    const card = await insertPassport({ profile: "td3" });
    try {
      const r = await run(["read", "--doc", "X1234567<", "--dob", "010101", "--expiry", "300101", "--reader", VIRTUAL_READER]);
      expect(r.code).toBe(4);
      expect(r.stderr).toContain("access denied: check document number, date of birth and expiry");
      for (const secret of ["X1234567", "010101", "300101"]) expect(r.stdout + r.stderr).not.toContain(secret);
    } finally {
      await card.stop();
    }
  });

  test("no card: exit 3", async () => {
    const r = await run(["read", ...KEY_ARGS, "--reader", VIRTUAL_READER, "--wait", "0"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("no card");
  });
});

describe("mrtd-agent read failure report", () => {
  let pcscd: PcscdHandle;
  beforeAll(async () => {
    pcscd = await startPcscd();
  });
  afterAll(async () => {
    await pcscd.stop();
  });

  test("--json on a wrong key prints the classified failure, no key material", async () => {
    const card = await insertPassport({ profile: "td3" });
    try {
      const r = await run(["read", "--doc", "X1234567<", "--dob", "010101", "--expiry", "300101", "--reader", VIRTUAL_READER, "--json"]);
      expect(r.code).toBe(4);
      const j = JSON.parse(r.stdout);
      expect(j.ok).toBe(false);
      expect(j.failure.code).toBe("ACCESS_DENIED");
      expect(j.failure.layer).toBe("access");
      expect(j.failure.action.length).toBeGreaterThan(10);
      expect(j.apdus).toBe(4); // SELECT EF.CardAccess (absent), SELECT applet, GET CHALLENGE, EXTERNAL AUTHENTICATE
      for (const secret of ["X1234567", "010101", "300101"]) expect(r.stdout + r.stderr).not.toContain(secret);
    } finally {
      await card.stop();
    }
  });
});
