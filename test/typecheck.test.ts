/** The whole project type-checks under the strict tsconfig (tsc --noEmit), the browser code with the DOM library. */
import { expect, test } from "bun:test";
import { join } from "node:path";

test("tsc --noEmit reports no errors", async () => {
  const root = join(import.meta.dir, "..");
  const p = Bun.spawn([join(root, "node_modules/.bin/tsc"), "--noEmit", "-p", root], { stdout: "pipe", stderr: "pipe" });
  const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  expect(out).toBe("");
  expect(code).toBe(0);
}, 120_000);

test("the dashboard's browser code type-checks with the DOM library", async () => {
  const root = join(import.meta.dir, "..");
  const p = Bun.spawn([join(root, "node_modules/.bin/tsc"), "--noEmit", "-p", join(root, "agent/dashboard/web")], { stdout: "pipe", stderr: "pipe" });
  const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  expect(out).toBe("");
  expect(code).toBe(0);
}, 120_000);
