/**
 * Temporary directories for tests, under the system temp directory as `mrtd-<name>-XXXXXX`.
 * `bun test` runs no process "exit" handlers, so only an explicit hook removes them: a file that
 * makes one calls removeTempDirs() in its afterAll (or removeTempDir in a finally). Some hold
 * the specimen access key or test private keys; none may outlive the run.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made = new Set<string>();

export function makeTempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `mrtd-${name}-`));
  made.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  made.delete(dir);
}

/** Removes every directory makeTempDir made and not yet removed. */
export function removeTempDirs(): void {
  for (const dir of [...made]) removeTempDir(dir);
}
