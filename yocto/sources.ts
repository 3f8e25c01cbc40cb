/**
 * The pinned sources of meta-mrtd's recipes, derived from one commit of this repository.
 *
 *   bun yocto/sources.ts update [--rev <commit>]   rewrite mrtd-agent-sources.inc (SRCREV, npm tarballs,
 *                                                  Bun runtimes) and the release sums in mrtd-agent-bin
 *   bun yocto/sources.ts check [--rev <commit>]    exit 1 when those files differ from what update writes
 *   bun yocto/sources.ts downloads <dir>           fill a bitbake DL_DIR with everything both recipes fetch,
 *                                                  so do_fetch runs offline and checks every pinned sha256
 *
 * The npm tarballs are the production dependencies of package-lock.json at the commit: their bytes come
 * from npm's cache when present (checked against the lockfile's sha512), else from `npm pack`. The Bun
 * runtimes are @oven/bun-linux-aarch64 and @oven/bun-linux-x64 at the version of the `bun` devDependency.
 * The release binaries are built at the commit by deploy/build-binary.sh (bun build --compile is
 * reproducible: same commit and version, same bytes), so `downloads` rebuilds them and bitbake's sha256
 * check proves the pinned sums.
 */
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");
const RECIPES = join(ROOT, "yocto/meta-mrtd/recipes-mrtd/mrtd-agent");
const SOURCES_INC = join(RECIPES, "mrtd-agent-sources.inc");
const BIN_INC = join(RECIPES, "mrtd-agent-bin-sums.inc");
const REGISTRY = "https://registry.npmjs.org";
/** Bun's Linux runtimes by the name build-binary.sh and the recipes give the architecture. */
const BUN_RUNTIMES = { arm64: "@oven/bun-linux-aarch64", x64: "@oven/bun-linux-x64" } as const;
type Arch = keyof typeof BUN_RUNTIMES;
const ARCHES = Object.keys(BUN_RUNTIMES) as Arch[];

export class SourcesError extends Error {
  override readonly name = "SourcesError";
}

interface LockEntry {
  version?: string;
  integrity?: string;
  dev?: boolean;
  link?: boolean;
  inBundle?: boolean;
  hasInstallScript?: boolean;
  name?: string;
}

export interface Tarball {
  /** key for SRC_URI's name= and the unpack subdir: unique, [a-z0-9._-] only */
  key: string;
  /** where npm puts it, e.g. node_modules/concat-stream/node_modules/readable-stream */
  location: string;
  name: string;
  version: string;
  integrity: string;
  url: string;
  /** DL_DIR file name: flat and unambiguous (scoped names would collide by basename) */
  file: string;
}

function git(args: string[]): string {
  const p = Bun.spawnSync(["git", "-C", ROOT, ...args], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new SourcesError(`git ${args.join(" ")}: ${p.stderr.toString().trim()}`);
  return p.stdout.toString();
}

export function resolveRev(rev: string): string {
  return git(["rev-parse", "--verify", `${rev}^{commit}`]).trim();
}

function tarball(location: string, name: string, e: LockEntry): Tarball {
  if (!e.version || !e.integrity?.startsWith("sha512-")) throw new SourcesError(`${location}: no version or sha512 integrity in package-lock.json`);
  const key = location
    .replace(/^node_modules\//, "")
    .replace(/\/node_modules\//g, "__")
    .replace(/@/g, "")
    .replace(/\//g, "-")
    .toLowerCase();
  const base = name.split("/").pop()!;
  return {
    key,
    location,
    name,
    version: e.version,
    integrity: e.integrity,
    url: `${REGISTRY}/${name}/-/${base}-${e.version}.tgz`,
    file: `npm-${key}-${e.version}.tgz`,
  };
}

/** The production dependency tree (what `npm ci --omit=dev` installs) and the two Bun runtimes. */
export function lockedSources(rev: string): { deps: Tarball[]; bun: Record<Arch, Tarball>; bunVersion: string; version: string } {
  const lock = JSON.parse(git(["show", `${rev}:package-lock.json`])) as { packages: Record<string, LockEntry> };
  const pkg = JSON.parse(git(["show", `${rev}:package.json`])) as { version: string; devDependencies?: Record<string, string> };
  const bunVersion = pkg.devDependencies?.bun;
  if (!bunVersion || !/^\d+\.\d+\.\d+$/.test(bunVersion)) throw new SourcesError(`package.json at ${rev}: devDependencies.bun must be an exact version`);
  const deps: Tarball[] = [];
  for (const [location, e] of Object.entries(lock.packages)) {
    if (!location.startsWith("node_modules/") || e.dev) continue;
    if (e.link || e.inBundle) throw new SourcesError(`${location}: linked or bundled packages are not supported`);
    // bitbake unpacks the tarballs; nothing runs npm's lifecycle scripts
    if (e.hasInstallScript) throw new SourcesError(`${location}: has an install script, which the recipe does not run`);
    deps.push(tarball(location, e.name ?? location.split("node_modules/").pop()!, e));
  }
  if (new Set(deps.map((d) => d.key)).size !== deps.length) throw new SourcesError("two npm packages map to the same SRC_URI name");
  const bun = {} as Record<Arch, Tarball>;
  for (const arch of ARCHES) {
    const name = BUN_RUNTIMES[arch];
    const e = lock.packages[`node_modules/${name}`];
    if (!e || e.version !== bunVersion) throw new SourcesError(`package-lock.json at ${rev} has no ${name}@${bunVersion}`);
    const t = tarball(`node_modules/${name}`, name, e);
    bun[arch] = { ...t, key: `bun-${arch}`, file: `oven-${name.split("/").pop()}-${bunVersion}.tgz` };
  }
  return { deps, bun, bunVersion, version: pkg.version };
}

function checkIntegrity(bytes: Uint8Array, integrity: string): boolean {
  return createHash("sha512").update(bytes).digest("base64") === integrity.slice("sha512-".length);
}

/** The tarball's exact bytes: npm's content-addressed cache, else `npm pack` (the ordinary client). */
export function tarballBytes(t: Tarball): Uint8Array {
  const hex = Buffer.from(t.integrity.slice("sha512-".length), "base64").toString("hex");
  const cached = join(process.env.npm_config_cache ?? join(homedir(), ".npm"), "_cacache/content-v2/sha512", hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));
  if (existsSync(cached)) {
    const b = readFileSync(cached);
    if (checkIntegrity(b, t.integrity)) return b;
  }
  const dir = mkdtempSync(join(tmpdir(), "mrtd-npm-pack-"));
  try {
    const p = Bun.spawnSync(["npm", "pack", "--silent", "--prefer-offline", "--pack-destination", dir, `${t.name}@${t.version}`], { stdout: "pipe", stderr: "pipe" });
    const f = readdirSync(dir).find((n) => n.endsWith(".tgz"));
    if (p.exitCode !== 0 || !f) throw new SourcesError(`npm pack ${t.name}@${t.version}: ${p.stderr.toString().trim()}`);
    const b = readFileSync(join(dir, f));
    if (!checkIntegrity(b, t.integrity)) throw new SourcesError(`${t.name}@${t.version}: tarball does not match package-lock.json's integrity`);
    return b;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Builds both release binaries at `rev` in a scratch tree with build-binary.sh; returns their directory. */
export function buildRelease(rev: string, into: string): Record<Arch, string> {
  const lockNow = readFileSync(join(ROOT, "package-lock.json"), "utf8");
  if (git(["show", `${rev}:package-lock.json`]) !== lockNow) {
    throw new SourcesError(`package-lock.json at ${rev.slice(0, 12)} differs from the checkout's: its node_modules would not match (check out ${rev.slice(0, 12)} and run npm ci)`);
  }
  const tree = mkdtempSync(join(tmpdir(), "mrtd-release-"));
  try {
    const archive = Bun.spawnSync(["bash", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "_", ROOT, rev, tree], { stderr: "pipe" });
    if (archive.exitCode !== 0) throw new SourcesError(`git archive ${rev}: ${archive.stderr.toString().trim()}`);
    symlinkSync(join(ROOT, "node_modules"), join(tree, "node_modules"));
    // build-binary.sh's cache of the aarch64 runtime, from the pinned tarball (no `npm pack` at build time)
    const { bun, bunVersion } = lockedSources(rev);
    const runtime = join(tree, "dist", `.bun-linux-aarch64-${bunVersion}`);
    mkdirSync(runtime, { recursive: true });
    writeFileSync(join(runtime, "runtime.tgz"), tarballBytes(bun.arm64));
    const untar = Bun.spawnSync(["tar", "-xzf", "runtime.tgz"], { cwd: runtime, stderr: "pipe" });
    if (untar.exitCode !== 0) throw new SourcesError(`unpacking ${bun.arm64.name}: ${untar.stderr.toString().trim()}`);
    const out: Record<Arch, string> = { arm64: "", x64: "" };
    for (const arch of ARCHES) {
      // the file name is embedded in the binary (/$bunfs/root/<name>): always build under the release name
      const p = Bun.spawnSync(["bash", "deploy/build-binary.sh", arch], { cwd: tree, stdout: "pipe", stderr: "pipe" });
      if (p.exitCode !== 0) throw new SourcesError(`build-binary.sh ${arch} at ${rev.slice(0, 12)}: ${p.stderr.toString().trim()}`);
      out[arch] = join(into, `mrtd-agent-linux-${arch}`);
      copyFileSync(join(tree, "dist", `mrtd-agent-linux-${arch}`), out[arch]);
    }
    return out;
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}

function sourcesInc(rev: string): string {
  const { deps, bun, bunVersion } = lockedSources(rev);
  const lines = [
    `# Generated by yocto/sources.ts from package.json and package-lock.json at SRCREV: do not edit.`,
    `# Regenerate with: bun yocto/sources.ts update --rev <commit>`,
    ``,
    `SRCREV_mrtd-agent = "${rev}"`,
    `BUN_VERSION = "${bunVersion}"`,
    ``,
    `# Bun runtimes (${BUN_RUNTIMES.arm64}, ${BUN_RUNTIMES.x64}) at BUN_VERSION`,
    ...ARCHES.map((a) => `SRC_URI[${bun[a].key}.sha256sum] = "${sha256(tarballBytes(bun[a]))}"`),
    ``,
    `# npm production dependencies: "<SRC_URI name>:<node_modules location>"`,
    `MRTD_NPM_PACKAGES = "\\`,
    ...deps.map((t) => `    ${t.key}:${t.location} \\`),
    `"`,
    `MRTD_NPM_SRC_URI = "\\`,
    ...deps.map((t) => `    ${t.url};name=${t.key};subdir=npm/${t.key};downloadfilename=${t.file} \\`),
    `"`,
    ...deps.map((t) => `SRC_URI[${t.key}.sha256sum] = "${sha256(tarballBytes(t))}"`),
    ``,
  ];
  return lines.join("\n");
}

function binInc(rev: string): string {
  const dir = mkdtempSync(join(tmpdir(), "mrtd-release-out-"));
  try {
    const bins = buildRelease(rev, dir);
    return [
      `# Generated by yocto/sources.ts: SHA-256 of the release binaries deploy/build-binary.sh builds at`,
      `# ${rev} (the SRCREV of mrtd-agent, so both recipes install the same bytes). Do not edit.`,
      ``,
      ...ARCHES.map((a) => `SRC_URI[${a}.sha256sum] = "${sha256(readFileSync(bins[a]))}"`),
      ``,
    ].join("\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function pinnedRev(): string {
  const m = /^SRCREV_mrtd-agent = "([0-9a-f]{40})"$/m.exec(readFileSync(SOURCES_INC, "utf8"));
  if (!m) throw new SourcesError(`${SOURCES_INC}: no SRCREV_mrtd-agent`);
  return m[1]!;
}

/** Fills `dl` (a bitbake DL_DIR) with the git clone, npm tarballs, Bun runtimes and release binaries. */
export function fillDownloads(dl: string): string[] {
  const rev = pinnedRev();
  const { deps, bun, version } = lockedSources(rev);
  mkdirSync(dl, { recursive: true });
  const written: string[] = [];
  const put = (file: string, bytes: Uint8Array) => {
    writeFileSync(join(dl, file), bytes);
    written.push(file);
  };
  for (const t of [...deps, ...Object.values(bun)]) put(t.file, tarballBytes(t));
  const tmp = mkdtempSync(join(tmpdir(), "mrtd-release-out-"));
  try {
    const bins = buildRelease(rev, tmp);
    for (const a of ARCHES) put(`mrtd-agent-${version}-linux-${a}`, readFileSync(bins[a]));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  // The recipe's default git URL (MRTD_AGENT_GIT_URI) as bitbake's git fetcher names its clone in
  // DL_DIR/git2: a bare mirror of this repository, which holds SRCREV, so do_fetch needs no network.
  const clone = join(dl, "git2", "example.invalid.mrtd-agent.git");
  rmSync(clone, { recursive: true, force: true });
  mkdirSync(join(dl, "git2"), { recursive: true });
  const gitDir = git(["rev-parse", "--path-format=absolute", "--git-common-dir"]).trim();
  const p = Bun.spawnSync(["git", "clone", "--quiet", "--bare", "--mirror", gitDir, clone], { stderr: "pipe" });
  if (p.exitCode !== 0) throw new SourcesError(`git clone --mirror: ${p.stderr.toString().trim()}`);
  written.push("git2/example.invalid.mrtd-agent.git");
  return written;
}

function argRev(args: string[]): string {
  const i = args.indexOf("--rev");
  return resolveRev(i >= 0 ? (args[i + 1] ?? "") : "HEAD");
}

if (import.meta.main) {
  const [cmd, ...args] = process.argv.slice(2);
  try {
    if (cmd === "update") {
      const rev = argRev(args);
      writeFileSync(SOURCES_INC, sourcesInc(rev));
      writeFileSync(BIN_INC, binInc(rev));
      console.log(`pinned ${rev}: ${SOURCES_INC}, ${BIN_INC}`);
    } else if (cmd === "check") {
      const rev = args.includes("--rev") ? argRev(args) : pinnedRev();
      const stale = [
        [SOURCES_INC, sourcesInc(rev)],
        [BIN_INC, binInc(rev)],
      ].filter(([f, want]) => readFileSync(f!, "utf8") !== want);
      for (const [f] of stale) console.log(`stale: ${f} (bun yocto/sources.ts update --rev ${rev})`);
      if (stale.length > 0) process.exit(1);
      console.log(`up to date for ${rev}`);
    } else if (cmd === "downloads" && args[0]) {
      const files = fillDownloads(args[0]);
      console.log(`${files.length} downloads in ${args[0]}`);
    } else {
      console.error("usage: bun yocto/sources.ts update [--rev <commit>] | check [--rev <commit>] | downloads <DL_DIR>");
      process.exit(2);
    }
  } catch (e) {
    if (!(e instanceof SourcesError)) throw e;
    console.error(`yocto/sources.ts: ${e.message}`);
    process.exit(1);
  }
}
