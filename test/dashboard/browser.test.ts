/**
 * The dashboard in a real browser: Playwright (playwright-core) driving Debian's chromium
 * against the dashboard process, a real Mosquitto and simulated agents. An operator logs in,
 * sees the fleet, watches a reader's success rate change live when its agent publishes, opens
 * an agent page with failure-class advice; a reader named with HTML shows as text and runs
 * nothing; a viewer gets no command button and the server refuses its command. Screenshots go
 * to a temporary directory the test removes (MRTD_SCREENSHOTS=<dir> keeps them there).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { readerSlug } from "../../agent/service/topics.ts";
import { startMosquitto, type Mosquitto } from "../support/mosquitto.ts";
import { DashboardProcess, USERS } from "./fixtures/dashboard-process.ts";
import { SimAgent } from "./fixtures/sim-agent.ts";

const CHROMIUM = "/usr/bin/chromium";
const HTML_READER = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
const ACS = "ACS ACR122U PICC Interface 00 00";
const tmp = mkdtempSync(join(tmpdir(), "mrtd-dashboard-browser-"));
const shots = process.env.MRTD_SCREENSHOTS ?? join(tmp, "screenshots");
let broker: Mosquitto;
let dash: DashboardProcess;
let context: BrowserContext;
const sims: SimAgent[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error("chromium is not installed: run deploy/dev-setup.sh");
  mkdirSync(shots, { recursive: true });
  broker = await startMosquitto({ config: "tls-acl", agents: ["kiosk-1", "kiosk-2", "kiosk-3", "kiosk-evil"] });
  dash = await DashboardProcess.start(broker, { sampleIntervalS: 1 });
  for (const [id, readers] of [["kiosk-1", [ACS]], ["kiosk-2", ["Virtual PCD 00 00"]], ["kiosk-3", [ACS, "Virtual PCD 00 00"]], ["kiosk-evil", [HTML_READER]]] as const) {
    const s = new SimAgent(broker, id, [...readers]);
    await s.start();
    for (const r of readers) await s.reads(r, [true, true, true, true]);
    await s.publishMetrics();
    sims.push(s);
  }
  context = await chromium.launchPersistentContext(join(tmp, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}, 90_000);

afterAll(async () => {
  await context?.close();
  for (const s of sims) await s.stop().catch(() => undefined);
  await dash?.stop();
  await broker?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/**
 * Page functions run in the browser (functions, not strings: the page's CSP forbids eval). The
 * test's tsconfig has no DOM library, hence this much of `document`.
 */
type BrowserGlobals = { document: { querySelector(s: string): { textContent: string | null } | null; querySelectorAll(s: string): { length: number } }; __pwned?: number };
const textIs = (page: Page, selector: string, text: string, timeout = 5000) =>
  page.waitForFunction(([sel, want]) => (globalThis as unknown as BrowserGlobals).document.querySelector(sel!)?.textContent === want, [selector, text], { timeout });
const rowsAre = (page: Page, n: number) => page.waitForFunction((k) => (globalThis as unknown as BrowserGlobals).document.querySelectorAll("[data-testid=fleet] tbody tr").length === k, n);
const pwned = (page: Page) => page.evaluate(() => (globalThis as unknown as BrowserGlobals).__pwned);

async function login(page: Page, user: { name: string; password: string }): Promise<void> {
  await page.goto(dash.url);
  await page.getByLabel("Name").fill(user.name);
  await page.getByLabel("Password").fill(user.password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByTestId("user").waitFor();
}

describe("dashboard in chromium", () => {
  test("an operator logs in, sees the fleet, and watches a reader's health change live", async () => {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await login(page, USERS.operator);
    expect(await page.getByTestId("user").textContent()).toBe(`${USERS.operator.name} (operator)`);
    await textIs(page, "[data-testid=online]", "4");
    await rowsAre(page, 4);
    await page.screenshot({ path: join(shots, "fleet.png"), fullPage: true });
    const rate = page.locator(`tr[data-agent="kiosk-1"] [data-reader="${readerSlug(ACS)}"] [data-testid=rate]`);
    expect(await rate.textContent()).toBe("100%");
    const requests = new Set<string>();
    page.on("request", (r) => requests.add(new URL(r.url()).pathname));
    // kiosk-1 fails two reads: 4 of 6 succeeded = 67%, shown without reloading the page.
    const t0 = performance.now();
    await sims[0]!.reads(ACS, ["RF_TIMEOUT", "CARD_LOST"]);
    await textIs(page, `tr[data-agent="kiosk-1"] [data-reader="${readerSlug(ACS)}"] [data-testid=rate]`, "67%");
    const shownMs = performance.now() - t0;
    console.log(`health change published -> visible in the browser: ${shownMs.toFixed(0)} ms (SSE notices every 250 ms; shared machine)`);
    expect(shownMs).toBeLessThan(2000);
    expect(requests.has("/")).toBe(false); // no reload: the SSE notice made the view refetch its page
    await page.getByTestId("search").fill("kiosk-3");
    await rowsAre(page, 1);
    expect(errors).toEqual([]);
    await page.close();
  }, 30_000);

  test("an agent page shows its readers, trends and failure classes with explanation and advice", async () => {
    const page = await context.newPage();
    await page.goto(`${dash.url}/#/agent/kiosk-1`);
    await page.getByTestId("failure-classes").waitFor();
    const text = await page.getByTestId("failure-classes").textContent();
    expect(text).toContain("CARD_LOST");
    expect(text).toContain("Advice:");
    expect(text).toContain("place the document back on the reader");
    // A simulated agent publishes no HPKE key in its birth: the actions say so and send nothing.
    await page.getByTestId("agent-key").filter({ hasText: "published no HPKE public key" }).waitFor();
    expect(await page.getByTestId("ping").isDisabled()).toBe(true);
    expect(await page.getByTestId("read").isDisabled()).toBe(true);
    // History is sampled every second here (at each whole second): once two samples exist and the
    // newest was taken after the change to 67%, the reloaded page draws a line ending there.
    const historyUrl = `/api/agents/kiosk-1/readers/${readerSlug(ACS)}/history`;
    for (let i = 0; i < 100; i++) {
      const n = await page.evaluate(async (u) => {
        const s = ((await (await fetch(u)).json()) as { samples: Array<{ rate: number | null }> }).samples;
        return (s[s.length - 1]?.rate ?? 1) < 0.7 ? s.length : 0;
      }, historyUrl);
      if (n >= 2) break;
      await Bun.sleep(100);
    }
    await page.reload();
    await page.locator("[data-testid=trends] polyline").first().waitFor({ state: "attached", timeout: 5000 }); // a flat line has no height: "visible" would not do
    expect(await page.getByTestId("trends").textContent()).toContain("success rate: 67% now");
    // The APDU latency histogram of kiosk-1's metrics (published after its first 4 reads of 3
    // APDUs each: 4, 6 and 9 ms): 4 in the 5 ms bucket, 8 in the 10 ms one, none elsewhere.
    const bar = (le: string) => page.locator(`[data-testid=histogram-bars] rect[data-le="${le}"]`).getAttribute("data-count");
    expect([await bar("0.005"), await bar("0.01"), await bar("0.0025"), await bar("+Inf")]).toEqual(["4", "8", "0", "0"]);
    expect(await page.getByTestId("histogram-quantiles").textContent()).toStartWith("p50 ≤ 10 ms · p95 ≤ 10 ms · p99 ≤ 10 ms · 12 APDUs");
    await page.getByTestId("histogram-command").selectOption("read_binary");
    expect(await page.getByTestId("histogram-command").inputValue()).toBe("read_binary");
    expect(await bar("0.01")).toBe("8");
    await page.screenshot({ path: join(shots, "agent.png"), fullPage: true });
    await page.close();
  }, 20_000);

  test("an agent page shows each reader's read outcomes per sample interval", async () => {
    const page = await context.newPage();
    await page.goto(`${dash.url}/#/agent/kiosk-3`);
    await page.getByTestId("readers").waitFor();
    await sims[2]!.readEvents(ACS, [true, true, true, "RF_TIMEOUT", "CARD_LOST"]);
    await sims[2]!.readEvents("Virtual PCD 00 00", [true]);
    // Samples every second here: wait until the history holds all five reads of the ACS reader.
    const historyUrl = `/api/agents/kiosk-3/readers/${readerSlug(ACS)}/history`;
    let counted = [0, 0];
    for (let i = 0; i < 100 && counted[0]! + counted[1]! < 5; i++) {
      counted = await page.evaluate(async (u) => {
        const s = ((await (await fetch(u)).json()) as { samples: Array<{ readsOk: number; readsFailed: number }> }).samples;
        return [s.reduce((n, x) => n + x.readsOk, 0), s.reduce((n, x) => n + x.readsFailed, 0)];
      }, historyUrl);
      await Bun.sleep(100);
    }
    expect(counted).toEqual([3, 2]);
    await page.reload();
    const chart = page.locator(`[data-testid=trends] [data-reader="${readerSlug(ACS)}"] [data-testid=outcomes-chart]`);
    await chart.waitFor({ state: "attached", timeout: 5000 });
    await page.waitForFunction(() => ((globalThis as unknown as BrowserGlobals).document.querySelector("[data-testid=trends]")?.textContent ?? "").includes("3 ok, 2 failed"), undefined, { timeout: 5000 });
    const bars = await chart.locator("g[data-ok]").evaluateAll((gs) => gs.map((g) => [Number(g.getAttribute("data-ok")), Number(g.getAttribute("data-failed"))]));
    expect(bars.reduce((n, b) => n + b[0]!, 0)).toBe(3);
    expect(bars.reduce((n, b) => n + b[1]!, 0)).toBe(2);
    expect(await chart.locator("rect").count()).toBeGreaterThan(0);
    expect(await page.locator(`[data-testid=trends] [data-reader="${readerSlug("Virtual PCD 00 00")}"] [data-testid=outcomes-chart]`).textContent()).toContain("1 ok, 0 failed");
    await page.screenshot({ path: join(shots, "agent-outcomes.png"), fullPage: true });
    await page.close();
  }, 20_000);

  test("a reader named with HTML is shown as text and runs nothing", async () => {
    const page = await context.newPage();
    await page.goto(`${dash.url}/#/agent/kiosk-evil`);
    await page.getByTestId("reader-name").waitFor();
    expect(await page.getByTestId("reader-name").textContent()).toBe(HTML_READER);
    expect(await page.locator("main img, main script").count()).toBe(0);
    expect(await pwned(page)).toBeUndefined();
    await page.goto(`${dash.url}/#/`);
    await page.getByTestId("search").fill("kiosk-evil");
    await rowsAre(page, 1);
    expect(await page.locator("main img, main script").count()).toBe(0);
    expect(await page.locator('tr[data-agent="kiosk-evil"] .reader').textContent()).toContain(HTML_READER);
    expect(await pwned(page)).toBeUndefined();
    await page.close();
  });

  test("a viewer sees the fleet but no command button, and the server refuses its command", async () => {
    const page = await context.newPage();
    await page.goto(dash.url);
    await page.getByRole("button", { name: "Log out" }).click();
    await login(page, USERS.viewer);
    expect(await page.getByTestId("user").textContent()).toBe(`${USERS.viewer.name} (viewer)`);
    await page.goto(`${dash.url}/#/agent/kiosk-2`);
    await page.getByTestId("readers").waitFor();
    expect(await page.getByTestId("ping").count()).toBe(0);
    expect(await page.getByTestId("actions").count()).toBe(0);
    expect(await page.getByTestId("read").count()).toBe(0);
    // What a viewer who crafts the request gets: refused, with the session's own CSRF token.
    const status = await page.evaluate(async () => {
      const s = (await (await fetch("/api/session")).json()) as { csrf: string };
      const r = await fetch("/api/agents/kiosk-2/command", { method: "POST", headers: { "x-csrf-token": s.csrf, "content-type": "application/json" }, body: JSON.stringify({ command: "ping" }) });
      return r.status;
    });
    expect(status).toBe(403);
    await page.screenshot({ path: join(shots, "viewer.png"), fullPage: true });
    await page.close();
  });
});
