/**
 * Operator actions from the page, end to end with real parts: the real agent (`mrtd-agent run`)
 * on the virtual passport through pcscd, Mosquitto with the shipped TLS + ACL configuration
 * (the dashboard under the operator identity `operator-dashboard` of the shipped ACL), the
 * dashboard process, and Debian's chromium driven by Playwright.
 *
 * An operator pings the agent, runs diagnose and a remote read with the ICAO specimen MRZ key
 * and sees the decrypted document (MRZ fields, face) in the page, then the same with a CAN
 * (PACE, the specimen ID card); a wrong key shows ACCESS_DENIED, a read without a card TIMEOUT; an access key in clear is refused by the
 * server; a changed agent key stops the actions until accepted; a viewer has no actions and
 * is refused. Every request and response body between browser and server, the live SSE
 * stream, every message on the broker under mrtd/v1/# (seen by another operator), the audit
 * log and the dashboard's log are searched for the access key, the MRZ and the face: none
 * holds them in clear. Screenshots go to test/artifacts/dashboard-actions/ (gitignored).
 *
 * Needs pcscd and the virtual reader: run under the PC/SC lock
 * (flock /tmp/mrtd-pcsc.lock node_modules/.bin/bun test test/dashboard/actions-e2e.test.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { b64 } from "../../agent/service/envelope.ts";
import { readerSlug } from "../../agent/service/topics.ts";
import { keyFingerprint } from "../../agent/dashboard/web/remote.ts";
import { insertPassport, SPECIMEN_KEY, type StartedPassport } from "../support/e2e.ts";
import { ensurePcscd, type PcscdHandle } from "../support/pcscd.ts";
import { startMosquitto, type Mosquitto } from "../support/mosquitto.ts";
import { observe, type Observer } from "../service/fixtures/mqtt-observer.ts";
import { loadProfile } from "../virtual-passport/fixtures/index.ts";
import { AgentProcess, writeAgentConfig } from "../agent-service/fixtures/agent-process.ts";
import { apiLogin, DashboardProcess, USERS } from "./fixtures/dashboard-process.ts";

const CHROMIUM = "/usr/bin/chromium";
const AGENT = "board-e2e";
const DASHBOARD_ID = "operator-dashboard";
const SNIFFER = "operator-test";
const ARTIFACTS = resolve(import.meta.dir, "../artifacts/dashboard-actions");
/**
 * What must never cross in clear: the access keys (the specimen passport's MRZ key, the ID card's
 * CAN), both documents' MRZ lines and names, and their faces. Filled in beforeAll from the
 * virtual passport's profiles. Digit-only secrets count only when no digit or point touches
 * them (a timing of 12.740812 ms is not a birth date).
 */
const SECRETS: string[] = [];
const FACES: Uint8Array[] = [];
const WRONG_DOC = "X12345675";

const tmp = mkdtempSync(join(tmpdir(), "mrtd-dashboard-actions-"));
let pcscd: PcscdHandle;
let broker: Mosquitto;
let sniffer: Observer;
let agent: AgentProcess;
let dash: DashboardProcess;
let card: StartedPassport | undefined;
let context: BrowserContext;
let canCard: { can: string; documentNumber: string };

/** Everything that crossed between the browser and the server, as text and bytes. */
const http: Array<{ what: string; bytes: Uint8Array }> = [];
const pendingBodies: Array<Promise<void>> = [];
let liveFrames = "";
let liveStop: AbortController | undefined;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error("chromium is not installed: run deploy/dev-setup.sh");
  mkdirSync(ARTIFACTS, { recursive: true });
  const td3 = await loadProfile("td3");
  const id = await loadProfile("can-only");
  canCard = { can: id.can!, documentNumber: id.mrzKey.documentNumber };
  SECRETS.push(...Object.values(td3.mrzKey), ...td3.mrzLines, "ERIKSSON", "MARIA", id.can!, ...Object.values(id.mrzKey), ...id.mrzLines);
  FACES.push(td3.portrait.jpeg, id.portrait.jpeg);
  pcscd = await ensurePcscd();
  // operator-dashboard gets its certificate like any name; its ACL block is the shipped file's.
  broker = await startMosquitto({ config: "tls-acl", agents: [AGENT, DASHBOARD_ID] });
  sniffer = await observe(broker, SNIFFER);
  await sniffer.client.subscribeAsync("mrtd/v1/#", { qos: 1 });
  mkdirSync(join(tmp, "agent"));
  const cfg = writeAgentConfig({ agentId: AGENT, broker, tls: true, dir: join(tmp, "agent"), healthIntervalS: 5 });
  agent = new AgentProcess(cfg.file);
  await agent.waitForLog((l) => l.msg === "agent started", 20_000, "agent started");
  dash = await DashboardProcess.start(broker, { clientId: DASHBOARD_ID });
  card = await insertPassport({ profile: "td3" });
  context = await chromium.launchPersistentContext(join(tmp, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  // The live stream, as an operator's page receives it, for the whole test.
  const op = await apiLogin(dash.url, USERS.operator);
  liveStop = new AbortController();
  const live = await fetch(`${dash.url}/api/live`, { headers: { cookie: op.cookie }, signal: liveStop.signal });
  void (async () => {
    const dec = new TextDecoder();
    try {
      for await (const chunk of live.body!) liveFrames += dec.decode(chunk, { stream: true });
    } catch {
      // aborted at the end
    }
  })();
}, 90_000);

afterAll(async () => {
  liveStop?.abort();
  await context?.close();
  await card?.stop().catch(() => undefined);
  await sniffer?.close().catch(() => undefined);
  await dash?.stop();
  await agent?.kill("SIGTERM");
  await broker?.close();
  await pcscd?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/**
 * Records the page's traffic with the server: request bodies (Playwright), response bodies
 * (Playwright; the command streams, which Chromium does not keep once read as a stream, through
 * the DevTools protocol's Network.streamResourceContent and dataReceived, chunk by chunk).
 */
async function record(page: Page): Promise<void> {
  page.on("request", (req) => {
    const body = req.postDataBuffer();
    http.push({ what: `request ${req.method()} ${req.url()}`, bytes: new TextEncoder().encode(`${req.url()}\n${JSON.stringify(req.headers())}\n`) });
    if (body) http.push({ what: `request body ${req.url()}`, bytes: new Uint8Array(body) });
  });
  page.on("response", (res) => {
    if (res.url().endsWith("/api/live") || res.url().endsWith("/command")) return; // streams: below, and the test's own live stream
    pendingBodies.push(res.body().then((b) => void http.push({ what: `response ${res.status()} ${res.url()}`, bytes: new Uint8Array(b) })));
  });
  const cdp = await page.context().newCDPSession(page);
  const streams = new Map<string, { what: string; chunks: Uint8Array[] }>();
  cdp.on("Network.responseReceived", (e) => {
    if (!e.response.url.endsWith("/command")) return;
    const s = { what: `response ${e.response.status} ${e.response.url}`, chunks: [] as Uint8Array[] };
    streams.set(e.requestId, s);
    pendingBodies.push(
      cdp.send("Network.streamResourceContent", { requestId: e.requestId }).then(
        (r) => void s.chunks.unshift(new Uint8Array(Buffer.from(r.bufferedData, "base64"))),
        () => undefined, // already complete: its body is kept, read at loadingFinished
      ),
    );
  });
  cdp.on("Network.dataReceived", (e) => {
    if (e.data) streams.get(e.requestId)?.chunks.push(new Uint8Array(Buffer.from(e.data, "base64")));
  });
  // Chromium reports a fetch stream the page read to its end as canceled (net::ERR_ABORTED) once
  // the page's reader is done; every byte came through dataReceived before that.
  cdp.on("Network.loadingFailed", (e) => {
    const s = streams.get(e.requestId);
    if (s) http.push({ what: s.what, bytes: Buffer.concat(s.chunks) });
  });
  cdp.on("Network.loadingFinished", (e) => {
    const s = streams.get(e.requestId);
    if (!s) return;
    pendingBodies.push(
      (async () => {
        if (s.chunks.length === 0) {
          const b = await cdp.send("Network.getResponseBody", { requestId: e.requestId }).catch(() => undefined);
          if (b) s.chunks.push(new Uint8Array(Buffer.from(b.body, b.base64Encoded ? "base64" : "utf8")));
        }
        http.push({ what: s.what, bytes: Buffer.concat(s.chunks) });
      })(),
    );
  });
  await cdp.send("Network.enable");
}

async function login(page: Page, user: { name: string; password: string }): Promise<void> {
  await page.goto(dash.url);
  await page.getByLabel("Name").fill(user.name);
  await page.getByLabel("Password").fill(user.password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByTestId("user").waitFor();
}

/** Where `needle` appears in `hay` (raw bytes), or -1. */
function indexOfBytes(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** The secrets as they could appear: text, and the faces raw or in base64 at any alignment. */
function leaks(bytes: Uint8Array): string[] {
  const text = new TextDecoder().decode(bytes);
  const found = SECRETS.filter((x) => (/^[0-9]+$/.test(x) ? new RegExp(`(?<![0-9.])${x}(?![0-9.])`).test(text) : text.includes(x)));
  for (const [i, face] of FACES.entries()) {
    const chunk = face.subarray(1000, 1600);
    if (indexOfBytes(bytes, chunk) >= 0) found.push(`face ${i} bytes`);
    for (let k = 0; k < 3; k++) {
      const enc = b64(chunk.subarray(k, k + 300)).slice(4, -4);
      if (text.includes(enc)) found.push(`face ${i} in base64 (offset ${k})`);
    }
  }
  return found;
}

describe("operator actions from the page (real agent, pcscd, Mosquitto, chromium)", () => {
  test("ping, diagnose and a remote read: the document shows in the page; a wrong key ACCESS_DENIED, no card TIMEOUT, a CAN; nothing in clear anywhere", async () => {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await record(page);
    await login(page, USERS.operator);
    await page.goto(`${dash.url}/#/agent/${AGENT}`);
    await page.getByTestId("actions").waitFor();

    // The agent's key from its birth, with its fingerprint.
    const birth = sniffer.on(`mrtd/v1/${AGENT}/status`).map((m) => m.json as { state?: string; hpke?: { publicKey: string } }).filter((j) => j.state === "online").at(-1)!;
    await page.getByTestId("agent-key-fingerprint").waitFor();
    expect(await page.getByTestId("agent-key-b64").textContent()).toBe(birth.hpke!.publicKey);
    expect(await page.getByTestId("agent-key-fingerprint").textContent()).toBe(keyFingerprint(birth.hpke!.publicKey));

    // Ping.
    await page.getByTestId("ping").click();
    await page.getByTestId("pong").waitFor({ timeout: 20_000 });
    expect(await page.getByTestId("pong").textContent()).toContain(`pong from ${AGENT}`);

    // Diagnose, 3 exchanges, on the virtual reader.
    await page.getByTestId("reader-select").selectOption("Virtual PCD 00 00");
    await page.getByTestId("diagnose-count").fill("3");
    await page.getByTestId("diagnose").click();
    await page.getByTestId("diagnose-verdict").waitFor({ timeout: 60_000 });
    expect(["GOOD", "MARGINAL"]).toContain((await page.getByTestId("diagnose-verdict").textContent())!);
    expect(await page.getByTestId("command-progress").textContent()).toContain("stability loop");
    // The result stays next to its reader on the agent page (kept in this page only: agents send it to the requester alone).
    const verdict = (await page.getByTestId("diagnose-verdict").textContent())!;
    const diagSel = `[data-testid=readers] tr[data-reader="${readerSlug("Virtual PCD 00 00")}"] [data-testid=reader-diagnose]`;
    await page.waitForFunction(([sel, want]) => ((globalThis as unknown as { document: { querySelector(s: string): { textContent: string | null } | null } }).document.querySelector(sel!)?.textContent ?? "").startsWith(want!), [diagSel, verdict], { timeout: 5000 });
    const diagCell = page.locator(diagSel);
    expect(await diagCell.textContent()).toContain("/3 exchanges ok");
    await page.screenshot({ path: join(ARTIFACTS, "diagnose.png"), fullPage: true });

    // Remote read with the specimen MRZ key.
    await page.getByTestId("read-doc").fill(SPECIMEN_KEY.documentNumber);
    await page.getByTestId("read-dob").fill(SPECIMEN_KEY.dateOfBirth);
    await page.getByTestId("read-expiry").fill(SPECIMEN_KEY.dateOfExpiry);
    await page.getByTestId("read-wait").fill("20");
    await page.getByTestId("read").click();
    expect(await page.getByTestId("read-doc").inputValue()).toBe(""); // the typed key does not stay in the form
    await page.getByTestId("read-result").waitFor({ timeout: 90_000 });
    const progress = await page.getByTestId("command-progress").textContent();
    expect(progress).toContain("card in Virtual PCD 00 00");
    expect(progress).toContain("DG1:");
    expect(progress).toContain("DG2:");
    const field = (k: string) => page.locator(`[data-testid=mrz] td[data-field=${k}]`).textContent();
    expect(await field("documentNumber")).toBe(SPECIMEN_KEY.documentNumber);
    expect(await field("primaryIdentifier")).toBe("ERIKSSON");
    expect(await field("dateOfBirth")).toBe(SPECIMEN_KEY.dateOfBirth);
    expect(await page.getByTestId("read-verdict").textContent()).toMatch(/verified|unverifiable/);
    // The face: a decoded JPEG in the page, from a data: URL made in the page.
    const img = page.getByTestId("face");
    await img.waitFor();
    const natural = await img.evaluate((el) => ({ w: (el as unknown as { naturalWidth: number }).naturalWidth, h: (el as unknown as { naturalHeight: number }).naturalHeight, src: (el as unknown as { src: string }).src.slice(0, 23) }));
    expect(natural.w).toBeGreaterThan(0);
    expect(natural.h).toBeGreaterThan(0);
    expect(natural.src).toBe("data:image/jpeg;base64,");
    expect(await page.getByTestId("command-status").textContent()).toContain("sealed by board-e2e's key and opened in this browser");
    await page.screenshot({ path: join(ARTIFACTS, "remote-read.png"), fullPage: true });
    await page.getByTestId("actions").screenshot({ path: join(ARTIFACTS, "remote-read-actions.png") }); // docs/dashboard-remote-read.png

    // An impossible date: the agent's own rules refuse it in the page, and nothing is sent.
    const posts = () => http.filter((x) => x.what.startsWith("request POST") && x.what.endsWith("/command")).length;
    const before = posts();
    await page.getByTestId("read-doc").fill(SPECIMEN_KEY.documentNumber);
    await page.getByTestId("read-dob").fill("741399");
    await page.getByTestId("read-expiry").fill(SPECIMEN_KEY.dateOfExpiry);
    await page.getByTestId("read").click();
    await page.getByTestId("error-code").waitFor();
    expect(await page.getByTestId("error-code").textContent()).toBe("BAD_FIELD");
    expect(await page.getByTestId("command-error").textContent()).toContain("nothing was sent");
    expect(await page.getByTestId("command-error").textContent()).not.toContain("741399");
    expect(posts()).toBe(before);

    // A wrong access key: the card refuses it, shown as ACCESS_DENIED with what to check.
    await page.getByTestId("read-doc").fill(WRONG_DOC);
    await page.getByTestId("read-dob").fill(SPECIMEN_KEY.dateOfBirth);
    await page.getByTestId("read-expiry").fill(SPECIMEN_KEY.dateOfExpiry);
    await page.getByTestId("read").click();
    await page.getByTestId("error-code").waitFor({ timeout: 90_000 });
    expect(await page.getByTestId("error-code").textContent()).toBe("ACCESS_DENIED");
    expect(await page.getByTestId("command-error").textContent()).toContain("the card refused the access key");
    expect(await page.getByTestId("read-result").count()).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, "access-denied.png"), fullPage: true });

    // No card: the agent waits, then answers TIMEOUT; the stream stays open meanwhile (keep-alive comments every 15 s).
    await card!.stop();
    card = undefined;
    await page.getByTestId("read-doc").fill(SPECIMEN_KEY.documentNumber);
    await page.getByTestId("read-dob").fill(SPECIMEN_KEY.dateOfBirth);
    await page.getByTestId("read-expiry").fill(SPECIMEN_KEY.dateOfExpiry);
    await page.getByTestId("read-wait").fill("17");
    await page.getByTestId("read").click();
    await page.getByTestId("error-code").filter({ hasText: "TIMEOUT" }).waitFor({ timeout: 60_000 });
    expect(await page.getByTestId("command-error").textContent()).toContain("no card was presented on the reader within the wait");

    // A CAN: the specimen ID card that accepts only its CAN is read with PACE.
    card = await insertPassport({ profile: "can-only" });
    await page.getByTestId("read-can").fill(canCard.can);
    await page.getByTestId("read-wait").fill("20");
    await page.getByTestId("read").click();
    expect(await page.getByTestId("read-can").inputValue()).toBe("");
    await page.getByTestId("read-result").waitFor({ timeout: 90_000 });
    expect(await field("documentNumber")).toBe(canCard.documentNumber);
    expect(await page.getByTestId("command-progress").textContent()).toContain("DG2:");
    await page.getByTestId("face").waitFor();
    await page.screenshot({ path: join(ARTIFACTS, "remote-read-can.png"), fullPage: true });

    // An access key in clear never gets past the server (this request, made by the test, is the
    // only traffic below that holds one: it is left out of the scan; its answer is scanned).
    await Promise.all(pendingBodies);
    const pageTraffic = http.length;
    const clear = await page.evaluate(async ([agentId, key]) => {
      const s = (await (await fetch("/api/session")).json()) as { csrf: string };
      const r = await fetch(`/api/agents/${agentId}/command`, { method: "POST", headers: { "x-csrf-token": s.csrf, "content-type": "application/json" }, body: JSON.stringify({ command: "read", id: `read-${crypto.randomUUID()}`, accessKey: key }) });
      return { status: r.status, body: (await r.json()) as { code?: string } };
    }, [AGENT, SPECIMEN_KEY] as const);
    expect(clear.status).toBe(400);
    expect(clear.body.code).toBe("PLAINTEXT_ACCESS_KEY");
    expect(errors).toEqual([]);
    // While the page is open (its bodies go with it): every command request has its response recorded.
    const sent = () => http.filter((x) => x.what.startsWith("request POST") && x.what.endsWith("/command")).length;
    const answered = () => http.filter((x) => x.what.startsWith("response") && x.what.endsWith("/command")).length;
    for (const until = Date.now() + 10_000; answered() < sent() && Date.now() < until; ) await Bun.sleep(50);
    await Promise.all(pendingBodies);
    await page.close();

    // The audit log: who, which agent and reader, the command and its outcome; no key.
    const op = await apiLogin(dash.url, USERS.operator);
    const auditText = await (await op.get("/api/audit")).text();
    const audit = (JSON.parse(auditText) as { audit: Array<{ user: string; action: string; agentId: string; reader: string | null; outcome: string }> }).audit;
    expect(audit.filter((a) => a.user === USERS.operator.name && a.agentId === AGENT).map((a) => `${a.action} ${a.reader ?? "-"} ${a.outcome}`).reverse()).toEqual([
      "ping - ok",
      "diagnose Virtual PCD 00 00 ok",
      "read Virtual PCD 00 00 ok",
      "read Virtual PCD 00 00 error: ACCESS_DENIED",
      "read Virtual PCD 00 00 error: TIMEOUT",
      "read Virtual PCD 00 00 ok",
      "read - refused: PLAINTEXT_ACCESS_KEY",
    ]);

    // Nothing between browser and server, on the live stream, on the broker, in the audit or the dashboard's log holds the key, the MRZ or the face in clear.
    const commandStreams = http.filter((x) => x.what.startsWith("response 200") && x.what.endsWith("/command"));
    expect(commandStreams.length).toBe(6); // ping, diagnose, read, read with the wrong key, read without a card, read with a CAN; the refused one is a 400
    const streamText = new TextDecoder().decode(commandStreams[2]!.bytes);
    expect(streamText).toContain("event: reply");
    expect(streamText).toContain('"sealed":{"alg":"HPKE-v1');
    expect(new TextDecoder().decode(commandStreams[4]!.bytes)).toContain(": keep-alive");
    expect(http.some((x) => x.what.startsWith("request body") && new TextDecoder().decode(x.bytes).includes('"sealedAccessKey"'))).toBe(true);
    const found: string[] = [];
    const crafted = http.slice(pageTraffic).filter((x) => x.what.startsWith("request body"));
    expect(crafted.length).toBe(1);
    expect(leaks(crafted[0]!.bytes).length).toBeGreaterThan(0); // the scan finds a key in clear where there is one
    expect(leaks(FACES[0]!.slice(7))).toContain("face 0 bytes"); // and a face, raw or in base64 at any offset
    for (const cut of [0, 1, 2]) expect(leaks(new TextEncoder().encode(JSON.stringify({ image: b64(FACES[1]!.slice(cut)) }))).some((l) => l.startsWith("face 1 in base64"))).toBe(true);
    for (const x of http) if (!crafted.includes(x)) for (const l of leaks(x.bytes)) found.push(`${x.what}: ${l}`);
    for (const l of leaks(new TextEncoder().encode(JSON.stringify(clear.body)))) found.push(`refusal: ${l}`);
    for (const l of leaks(new TextEncoder().encode(liveFrames))) found.push(`live stream: ${l}`);
    const onBroker = sniffer.messages;
    expect(onBroker.some((m) => m.topic === `mrtd/v1/${AGENT}/cmd/read`)).toBe(true);
    expect(onBroker.some((m) => m.topic === `mrtd/v1/${AGENT}/reply/${DASHBOARD_ID}` && (m.json as { kind?: string }).kind === "result")).toBe(true);
    for (const m of onBroker) for (const l of leaks(new Uint8Array(m.packet.payload as Buffer))) found.push(`broker ${m.topic}: ${l}`);
    for (const l of leaks(new TextEncoder().encode(auditText))) found.push(`audit: ${l}`);
    for (const l of leaks(new TextEncoder().encode(JSON.stringify(dash.lines) + dash.stderr))) found.push(`dashboard log: ${l}`);
    expect(found).toEqual([]);
    expect(liveFrames).toContain("event: change");
    expect(http.length).toBeGreaterThan(20);
  }, 300_000);

  test("the page remembers the first agent key it saw: another one stops the actions until the operator accepts it", async () => {
    const page = await context.newPage();
    const birthKey = (sniffer.on(`mrtd/v1/${AGENT}/status`).map((m) => m.json as { hpke?: { publicKey: string } }).at(-1)!.hpke!).publicKey;
    const pin = `mrtd-agent-key:${AGENT}`;
    await page.goto(`${dash.url}/#/agent/${AGENT}`);
    await page.getByTestId("agent-key-fingerprint").waitFor();
    expect(await page.evaluate((k) => (globalThis as unknown as { localStorage: { getItem(k: string): string | null } }).localStorage.getItem(k), pin)).toBe(birthKey);
    // As if the agent had published another key before: the one it publishes now is not trusted yet.
    await page.evaluate(([k, v]) => (globalThis as unknown as { localStorage: { setItem(k: string, v: string): void } }).localStorage.setItem(k!, v!), [pin, b64(new Uint8Array(32).fill(9))]);
    await page.reload();
    await page.getByTestId("trust-key").waitFor();
    expect(await page.getByTestId("ping").isDisabled()).toBe(true);
    expect(await page.getByTestId("read").isDisabled()).toBe(true);
    expect(await page.getByTestId("command-error").textContent()).toContain("another public key");
    await page.screenshot({ path: join(ARTIFACTS, "key-changed.png"), fullPage: true });
    await page.getByTestId("trust-key").click();
    expect(await page.getByTestId("ping").isEnabled()).toBe(true);
    expect(await page.evaluate((k) => (globalThis as unknown as { localStorage: { getItem(k: string): string | null } }).localStorage.getItem(k), pin)).toBe(birthKey);
    await page.close();
  }, 30_000);

  test("a viewer has no actions on the real agent's page, and the server refuses its command", async () => {
    const page = await context.newPage();
    await page.goto(dash.url);
    await page.getByRole("button", { name: "Log out" }).click();
    await login(page, USERS.viewer);
    await page.goto(`${dash.url}/#/agent/${AGENT}`);
    await page.getByTestId("readers").waitFor();
    expect(await page.getByTestId("actions").count()).toBe(0);
    expect(await page.getByTestId("read").count()).toBe(0);
    const status = await page.evaluate(async (agentId) => {
      const s = (await (await fetch("/api/session")).json()) as { csrf: string };
      const r = await fetch(`/api/agents/${agentId}/command`, { method: "POST", headers: { "x-csrf-token": s.csrf, "content-type": "application/json" }, body: JSON.stringify({ command: "ping", id: `ping-${crypto.randomUUID()}` }) });
      return r.status;
    }, AGENT);
    expect(status).toBe(403);
    await page.screenshot({ path: join(ARTIFACTS, "viewer.png"), fullPage: true });
    await page.close();
    // The broker got no command from it.
    expect(sniffer.messages.filter((m) => m.topic === `mrtd/v1/${AGENT}/cmd/ping`).length).toBe(1);
  }, 60_000);
});
