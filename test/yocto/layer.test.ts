/**
 * yocto/meta-mrtd: the layer's files against the project's (unit, config), the pinned sources
 * against package-lock.json and the unit under `systemd-analyze verify`; each check that cannot
 * run here says why in its name. bitbake itself needs checkouts of bitbake, openembedded-core and
 * meta-openembedded (YOCTO_SCARTHGAP_DIR, YOCTO_WRYNOSE_DIR): `npm run test:yocto` runs it
 * (yocto/check.sh), outside `npm test`, which needs nothing beyond what deploy/dev-setup.sh installs.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lockedSources, resolveRev } from "../../yocto/sources.ts";

const ROOT = join(import.meta.dir, "../..");
const LAYER = join(ROOT, "yocto/meta-mrtd");
const RECIPES = join(LAYER, "recipes-mrtd/mrtd-agent");
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");
const tmp = mkdtempSync(join(tmpdir(), "mrtd-yocto-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Unit directives, comments and blank lines dropped: "[Section] Key=value". */
function directives(unit: string): string[] {
  let section = "";
  const out: string[] = [];
  for (const raw of unit.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("[")) section = line;
    else out.push(`${section} ${line}`);
  }
  return out;
}

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(":")) {
    if (existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

describe("layer files", () => {
  test("layer.conf: collection mrtd on core and openembedded-layer, for scarthgap and wrynose", () => {
    const conf = read("yocto/meta-mrtd/conf/layer.conf");
    expect(conf).toMatch(/^BBFILE_COLLECTIONS \+= "mrtd"$/m);
    expect(conf).toMatch(/^LAYERDEPENDS_mrtd = "core openembedded-layer"$/m);
    const compat = /^LAYERSERIES_COMPAT_mrtd = "([^"]*)"$/m.exec(conf)?.[1]?.split(/\s+/) ?? [];
    expect(compat).toContain("scarthgap");
    expect(compat).toContain("wrynose");
  });

  test("the installed config is deploy/config.example.toml", () => {
    expect(readFileSync(join(RECIPES, "files/config.toml"), "utf8")).toBe(read("deploy/config.example.toml"));
  });

  test("the installed unit is deploy/mrtd-agent.service with only the layer's adaptations", () => {
    const deploy = directives(read("deploy/mrtd-agent.service"));
    const layer = directives(readFileSync(join(RECIPES, "files/mrtd-agent.service"), "utf8"));
    expect(layer.filter((d) => !deploy.includes(d))).toEqual([
      "[Service] ExecStart=@BINDIR@/mrtd-agent run --config /etc/mrtd-agent/config.toml",
      "[Service] ImportCredential=mrtd-agent.*",
    ]);
    expect(deploy.filter((d) => !layer.includes(d))).toEqual([
      "[Unit] Documentation=file:///usr/share/doc/mrtd-agent/README.md",
      "[Service] ExecStart=/usr/local/bin/mrtd-agent run --config /etc/mrtd-agent/config.toml",
    ]);
  });

  test("the recipes never strip, need no C toolchain, install the service and config, depend on pcsc-lite", () => {
    const inc = readFileSync(join(RECIPES, "mrtd-agent.inc"), "utf8").split("\n");
    for (const line of [
      'INHIBIT_PACKAGE_STRIP = "1"',
      'INHIBIT_PACKAGE_DEBUG_SPLIT = "1"',
      'INHIBIT_DEFAULT_DEPS = "1"',
      'COMPATIBLE_HOST = "(aarch64|x86_64).*-linux"',
      'RDEPENDS:${PN} += "pcsc-lite pcsc-lite-lib ccid ca-certificates"',
    ]) {
      expect(inc).toContain(line);
    }
    for (const recipe of ["mrtd-agent_0.1.0.bb", "mrtd-agent-bin_0.1.0.bb"]) {
      const bb = readFileSync(join(RECIPES, recipe), "utf8").split("\n");
      expect(bb).toContain("require mrtd-agent.inc");
      expect(bb).toContain("inherit systemd");
      expect(bb).toContain('SYSTEMD_SERVICE:${PN} = "mrtd-agent.service"');
      expect(bb).toContain('SYSTEMD_AUTO_ENABLE:${PN} ??= "enable"');
      expect(bb).toContain('CONFFILES:${PN} = "${sysconfdir}/mrtd-agent/config.toml"');
    }
  });

  test("no old yocto/recipes-mrtd left beside the layer", () => {
    expect(existsSync(join(ROOT, "yocto/recipes-mrtd"))).toBe(false);
  });
});

describe("pinned sources", () => {
  const inc = readFileSync(join(RECIPES, "mrtd-agent-sources.inc"), "utf8");
  const rev = /^SRCREV_mrtd-agent = "([0-9a-f]{40})"$/m.exec(inc)?.[1];

  test("SRCREV is a commit of this repository", () => {
    expect(rev).toBeDefined();
    expect(resolveRev(rev!)).toBe(rev!);
  });

  test("the npm tarballs are exactly the production dependencies of package-lock.json at SRCREV", () => {
    const { deps, bunVersion } = lockedSources(rev!);
    expect(inc).toContain(`BUN_VERSION = "${bunVersion}"`);
    const listed = [...inc.matchAll(/^ {4}([a-z0-9._-]+):(node_modules\/\S+) \\$/gm)].map((m) => `${m[1]}:${m[2]}`);
    expect(listed).toEqual(deps.map((d) => `${d.key}:${d.location}`));
    for (const d of deps) {
      expect(inc).toContain(`    ${d.url};name=${d.key};subdir=npm/${d.key};downloadfilename=${d.file} \\`);
      expect(inc).toMatch(new RegExp(`^SRC_URI\\[${d.key}\\.sha256sum\\] = "[0-9a-f]{64}"$`, "m"));
    }
    expect(inc).toMatch(/^SRC_URI\[bun-arm64\.sha256sum\] = "[0-9a-f]{64}"$/m);
    expect(inc).toMatch(/^SRC_URI\[bun-x64\.sha256sum\] = "[0-9a-f]{64}"$/m);
  });

  // Rebuilding the release binaries at SRCREV needs node_modules as that commit's lockfile made them.
  const sameLock = rev !== undefined && Bun.spawnSync(["git", "-C", ROOT, "diff", "--quiet", rev, "--", "package-lock.json"]).exitCode === 0;
  test.skipIf(!sameLock)(
    `every sha256 (npm tarballs, Bun runtimes, release binaries rebuilt at SRCREV) matches: yocto/sources.ts check${sameLock ? "" : " (skipped: package-lock.json changed since SRCREV, so node_modules cannot rebuild that release; run bun yocto/sources.ts update)"}`,
    () => {
      const p = Bun.spawnSync([process.execPath, "yocto/sources.ts", "check"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
      expect(p.stderr.toString()).toBe("");
      expect(p.stdout.toString()).toContain(`up to date for ${rev}`);
      expect(p.exitCode).toBe(0);
    },
    120_000,
  );
});

const analyze = which("systemd-analyze");
describe("systemd", () => {
  test.skipIf(!analyze)(`systemd-analyze verify accepts the installed unit${analyze ? "" : " (skipped: systemd-analyze is not installed here)"}`, () => {
    // the unit as installed, its ExecStart pointing at a stand-in executable (verify checks that it exists)
    const bin = join(tmp, "bin");
    Bun.spawnSync(["mkdir", "-p", bin]);
    copyFileSync("/bin/true", join(bin, "mrtd-agent"));
    chmodSync(join(bin, "mrtd-agent"), 0o755);
    const unit = join(tmp, "mrtd-agent.service");
    writeFileSync(unit, readFileSync(join(RECIPES, "files/mrtd-agent.service"), "utf8").replaceAll("@BINDIR@", bin));
    const p = Bun.spawnSync([analyze!, "verify", unit], { stdout: "pipe", stderr: "pipe" });
    const version = Number(/systemd (\d+)/.exec(Bun.spawnSync([analyze!, "--version"], { stdout: "pipe" }).stdout.toString())?.[1] ?? 0);
    // ImportCredential= is systemd 254+ (the boards run 255 or later); older hosts warn and ignore it
    const messages = (p.stdout.toString() + p.stderr.toString())
      .split("\n")
      .filter((l) => l.trim() !== "")
      .filter((l) => !(version < 254 && l.includes("Unknown key 'ImportCredential'")));
    expect(messages).toEqual([]);
    expect(p.exitCode).toBe(0);
  });
});
