/**
 * Imports point one way (README, Architecture): transport → iso7816 → crypto/icao → pki → lds →
 * verification → reading → diagnostics → service → cli. Checked on the source: every relative
 * import of a file under agent/<layer>/ names its own layer or one listed below it.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const AGENT = join(import.meta.dir, "../agent");
/** Each layer and the layers it may import (besides itself and agent/*.ts at the root). */
const MAY_IMPORT: Record<string, string[]> = {
  transport: [],
  iso7816: ["transport"],
  crypto: [],
  icao: ["iso7816", "crypto", "transport"],
  pki: ["crypto", "iso7816"],
  lds: ["pki", "icao", "iso7816", "crypto"],
  verification: ["lds", "pki", "icao", "iso7816", "crypto"],
  reading: ["verification", "lds", "pki", "icao", "iso7816", "crypto", "transport"],
};

test("pki is generic X.509/CMS (no lds), verification sits above lds and pki and below reading", () => {
  const wrong: string[] = [];
  for (const [layer, allowed] of Object.entries(MAY_IMPORT)) {
    for (const file of readdirSync(join(AGENT, layer)).filter((f) => f.endsWith(".ts"))) {
      const text = readFileSync(join(AGENT, layer, file), "utf8");
      for (const m of text.matchAll(/(?:from|import\()\s*"\.\.\/([a-z0-9-]+)\//g)) {
        if (!allowed.includes(m[1]!)) wrong.push(`${layer}/${file} imports ${m[1]}/`);
      }
    }
  }
  expect(wrong).toEqual([]);
});
