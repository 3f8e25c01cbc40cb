/**
 * The agent as integrators ship it: one `bun build --compile` binary (deploy/build-binary.sh).
 * x64: built here and used for a real read through pcscd. arm64: cross-compiled with Bun's
 * pinned aarch64 runtime, started under qemu as a Cortex-A53 (ARMv8.0, like many boards;
 * some Bun releases crashed there with illegal instructions), and used for a real read
 * through this machine's pcscd with Debian's arm64 libpcsclite (deploy/dev-setup.sh unpacks
 * it into dist/.arm64-pcsclite; pcsc-lite's socket protocol is the same for both 64-bit ABIs).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { PcscdHandle } from "../support/pcscd.ts";
import { insertPassport, SPECIMEN_KEY, startPcscd, VIRTUAL_READER } from "../support/e2e.ts";

const ROOT = join(import.meta.dir, "../..");
const out = mkdtempSync(join(tmpdir(), "mrtd-bin-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

async function sh(cmd: string[], opts: { cwd?: string } = {}) {
  const p = Bun.spawn(cmd, { cwd: opts.cwd ?? ROOT, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { stdout, stderr, code };
}

/** ELF e_machine: 62 = x86-64, 183 = AArch64. */
function elfMachine(file: string): number {
  const b = readFileSync(file).subarray(0, 20);
  expect([b[0], b[1], b[2], b[3]]).toEqual([0x7f, 0x45, 0x4c, 0x46]);
  return b[18]! | (b[19]! << 8);
}

describe("x64 binary", () => {
  const bin = join(out, "mrtd-agent-x64");
  let pcscd: PcscdHandle;
  beforeAll(async () => {
    const r = await sh(["bash", "deploy/build-binary.sh", "x64", bin]);
    if (r.code !== 0) throw new Error(`build failed: ${r.stderr}`);
    pcscd = await startPcscd();
  });
  afterAll(async () => {
    await pcscd.stop();
  });

  test("is an x86-64 ELF and answers --version and --help", async () => {
    expect(elfMachine(bin)).toBe(62);
    const v = await sh([bin, "--version"]);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe(JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version);
    const h = await sh([bin, "read", "--help"]);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain("--doc");
    // its usage line names the binary as the user typed it
    expect(h.stdout.split("\n")[0]).toStartWith(`Usage: ${basename(bin)} read --doc`);
  });

  test("reads the virtual passport through pcscd (PC/SC worker inside the binary)", async () => {
    const card = await insertPassport({ profile: "td3" });
    try {
      const r = await sh([bin, "read", "--reader", VIRTUAL_READER, "--doc", SPECIMEN_KEY.documentNumber, "--dob", SPECIMEN_KEY.dateOfBirth, "--expiry", SPECIMEN_KEY.dateOfExpiry, "--json"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.hashesMatchSod).toBe(true);
      expect(j.mrz.valid).toBe(true);
    } finally {
      await card.stop();
    }
  });
});

describe("arm64 binary", () => {
  const bin = join(out, "mrtd-agent-arm64");
  const qemu = ["/usr/bin/qemu-aarch64-static", "/usr/bin/qemu-aarch64"].find((p) => existsSync(p));

  test("cross-compiles to an AArch64 ELF", async () => {
    const r = await sh(["bash", "deploy/build-binary.sh", "arm64", bin]);
    if (r.code !== 0) throw new Error(`build failed: ${r.stderr}`);
    expect(elfMachine(bin)).toBe(183);
  }, 180_000);

  test.skipIf(!qemu || !existsSync("/usr/aarch64-linux-gnu/lib"))("starts on an ARMv8.0 Cortex-A53 (qemu)", async () => {
    const r = await sh([qemu!, "-cpu", "cortex-a53", "-L", "/usr/aarch64-linux-gnu", bin, "--version"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  }, 120_000);

  const armPcsclite = join(ROOT, "dist/.arm64-pcsclite/usr/lib/aarch64-linux-gnu");
  test.skipIf(!qemu || !existsSync(join(armPcsclite, "libpcsclite.so.1")))(
    "reads and verifies the virtual passport as a Cortex-A53 (qemu) through this machine's pcscd",
    async () => {
      const pcscd = await startPcscd();
      const card = await insertPassport({ profile: "td3" });
      try {
        const r = await sh([
          qemu!,
          "-cpu",
          "cortex-a53",
          "-L",
          "/usr/aarch64-linux-gnu",
          "-E",
          `LD_LIBRARY_PATH=${armPcsclite}`,
          bin,
          "read",
          "--reader",
          VIRTUAL_READER,
          "--doc",
          SPECIMEN_KEY.documentNumber,
          "--dob",
          SPECIMEN_KEY.dateOfBirth,
          "--expiry",
          SPECIMEN_KEY.dateOfExpiry,
          "--trust",
          join(ROOT, "test/fixtures/pki"),
          "--json",
        ]);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        const j = JSON.parse(r.stdout);
        expect(j.hashesMatchSod).toBe(true);
        expect(j.mrz.valid).toBe(true);
        expect(j.verification.overall).toBe("verified");
      } finally {
        await card.stop();
        await pcscd.stop();
      }
    },
    180_000,
  );

  test.skipIf(!qemu || !existsSync(join(armPcsclite, "libpcsclite.so.1")))(
    "reads pace-gm with PACE and Chip Authentication as a Cortex-A53 (qemu), and reports its time",
    async () => {
      const pcscd = await startPcscd();
      const card = await insertPassport({ profile: "pace-gm" });
      try {
        const t0 = performance.now();
        const r = await sh([qemu!, "-cpu", "cortex-a53", "-L", "/usr/aarch64-linux-gnu", "-E", `LD_LIBRARY_PATH=${armPcsclite}`, bin, "read", "--reader", VIRTUAL_READER, "--doc", SPECIMEN_KEY.documentNumber, "--dob", SPECIMEN_KEY.dateOfBirth, "--expiry", SPECIMEN_KEY.dateOfExpiry, "--trust", join(ROOT, "test/fixtures/pki"), "--json"]);
        const ms = performance.now() - t0;
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        const j = JSON.parse(r.stdout);
        expect(j.authentication).toMatchObject({ protocol: "PACE", group: "brainpoolP256r1", cipher: "AES-128" });
        expect(j.verification.overall).toBe("verified");
        expect(j.verification.chipGenuine).toBe("CA");
        const auth = (j.steps as { name: string; ms: number }[]).find((s) => s.name === "authenticate");
        // qemu-user times are indicative only (an emulated Cortex-A53 on this x64 host)
        console.log(`arm64 under qemu (Cortex-A53): pace-gm read + verify ${Math.round(ms)} ms process time, authenticate step ${auth?.ms} ms, read ${j.durationMs} ms`);
      } finally {
        await card.stop();
        await pcscd.stop();
      }
    },
    240_000,
  );
});
