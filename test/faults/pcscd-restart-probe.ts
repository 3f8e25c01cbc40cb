/**
 * Child process of pcscd-restart.test.ts: starts its own pcscd (it must own the daemon to restart
 * it), inserts the virtual passport, and restarts pcscd in the middle of DG2. Prints one JSON line:
 * the read's outcome, file hashes and recoveries. Run inside a private mount + network namespace
 * so the daemon and vpcd's TCP port do not clash with a shared pcscd.
 */
import { hex } from "../../agent/bytes.ts";
import { sha256 } from "../../agent/crypto/hash.ts";
import { openCard } from "../../agent/reading/card-source.ts";
import { readDocument, readFailureReport } from "../../agent/reading/read-document.ts";
import { ensurePcscd } from "../support/pcscd.ts";
import { insertPassport, VIRTUAL_READER, type StartedPassport } from "../support/e2e.ts";
import { loadTd3With20kDg2 } from "./td3-20k.ts";

const pcscd = await ensurePcscd();
if (!pcscd.started) {
  console.log(JSON.stringify({ skipped: "a pcscd this process did not start is running: cannot restart it" }));
  process.exit(0);
}
const p = await loadTd3With20kDg2();
let card: StartedPassport | undefined;
let out: Record<string, unknown> = {};
try {
  card = await insertPassport({ files: p.files, mrzKey: p.mrzKey, extendedLength: false });
  const opened = await openCard({ reader: VIRTUAL_READER, waitMs: 5000 });
  let restart: Promise<void> | undefined;
  let restartMs = 0;
  try {
    const result = await readDocument(
      opened.connection,
      {
        accessKey: { ...p.mrzKey },
        recovery: { maxRecoveries: 20, cardWaitMs: 15_000, backoffMs: 10 },
        onProgress: (e) => {
          if (!restart && e.kind === "file" && e.key === "DG2" && e.offset > 5000) {
            const t = performance.now();
            // The document stays on the reader: once vpcd listens again the card reconnects to it.
            restart = pcscd.restart().then(async () => {
              restartMs = performance.now() - t;
              await card!.reinsert({ absentMs: 0 });
            });
          }
        },
      },
      opened.reconnect,
    );
    await restart;
    out = {
      ok: true,
      restarted: restart !== undefined,
      restartMs: Math.round(restartMs),
      hashes: Object.fromEntries([...result.files].map(([k, v]) => [k, hex(sha256(v))])),
      recoveries: result.summary.recoveries,
    };
  } catch (e) {
    await restart?.catch(() => undefined);
    out = { ok: false, error: (e as Error).message, code: (e as { code?: string }).code, report: readFailureReport(e) };
  } finally {
    await opened.close();
  }
} finally {
  await card?.stop().catch(() => undefined);
  await pcscd.stop();
}
console.log(JSON.stringify(out));
process.exit(0);
