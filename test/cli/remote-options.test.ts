/** `mrtd-agent remote` options checked before the network: --mqtt-protocol and --prefix (exit 2, one line). */
import { expect, test } from "bun:test";
import { join, resolve } from "node:path";

const CLI = join(resolve(import.meta.dir, "../.."), "agent/cli.ts");
const remote = (args: string[]) => {
  const r = Bun.spawnSync([process.execPath, CLI, "remote", ...args], { stdout: "pipe", stderr: "pipe", timeout: 20_000 });
  return { code: r.exitCode, stderr: r.stderr.toString() };
};

test("--mqtt-protocol other than 5 or 3.1.1, or a prefix with a wildcard, is a usage error before any connection", () => {
  // port 9 on loopback: nothing listens; a usage error must come first
  const base = ["ping", "--agent", "a1", "--broker", "mqtt://127.0.0.1:9", "--operator-key", "/nonexistent/key"];
  const p = remote([...base, "--mqtt-protocol", "4"]);
  expect(p.code).toBe(2);
  expect(p.stderr).toContain("--mqtt-protocol must be 5 or 3.1.1");
  const x = remote([...base, "--prefix", "mrtd/+"]);
  expect(x.code).toBe(2);
  expect(x.stderr).toContain("--prefix must not contain the MQTT wildcards");
  expect(Bun.spawnSync([process.execPath, CLI, "remote", "ping", "--help"]).stdout.toString()).toContain("--mqtt-protocol <5|3.1.1>");
});
