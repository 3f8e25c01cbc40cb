/**
 * The agent as a fleet sees it (issue 5, item 8): the real `mrtd-agent run` process, a real
 * Mosquitto on loopback, a real pcscd with the virtual passport in vpcd. An operator client
 * watches every topic and sends commands by MQTT 5 request/response.
 *
 * Covered: birth (retained online) and will on kill -9; health on card insert/removal and on
 * pcscd going away and back (readers gone = "unplugged"; vpcd readers cannot be unplugged
 * otherwise); a remote read with a sealed access key whose sealed reply the test opens with the
 * agent's key from its birth (the other reads here use the test-bench form, an access key in
 * clear: commands.allow_plaintext_access_key; test/agent-service/command-channel.test.ts covers
 * the default, which refuses it); malformed commands against
 * the running agent; SIGTERM (offline, exit 0); no personal data in logs or telemetry; every
 * payload checked against deploy/asyncapi.yaml. The whole file runs once per MQTT protocol (5 and
 * 3.1.1: the agent's mqtt.protocol, the operator speaking the same wire form, command-wire.ts).
 * Run isolated from other users of vpcd with:
 *   unshare -mn bash -c 'mount -t tmpfs tmpfs /run/pcscd && ip link set lo up && bun test test/agent-service'
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import { b64, generateKeyPair, open, parsePublicKey } from "../../agent/service/envelope.ts";
import { sealAccessKey } from "../../agent/service/sealed-access-key.ts";
import { MAX_COMMAND_BYTES } from "../../agent/service/command-validation.ts";
import { readerSlug } from "../../agent/service/topics.ts";
import { MQTT_PROTOCOLS, protocolVersion, replyCorrelation } from "../../agent/service/command-wire.ts";
import { insertPassport, SPECIMEN_KEY, VIRTUAL_READER, type StartedPassport } from "../support/e2e.ts";
import { pcscdRunning, type PcscdHandle } from "../support/pcscd.ts";
import type { Mosquitto } from "../support/mosquitto.ts";
import { validate } from "../support/json-schema.ts";
import { observe, type Observer, type Received } from "../service/fixtures/mqtt-observer.ts";
import { type AgentEnv, startAgentEnv } from "./fixtures/agent-env.ts";
import { AgentProcess, writeAgentConfig } from "./fixtures/agent-process.ts";
import { removeTempDir } from "../support/temp-dir.ts";

const asyncapi = Bun.YAML.parse(await Bun.file(resolve(import.meta.dir, "../../deploy/asyncapi.yaml")).text()) as {
  operations: Record<string, { bindings: { mqtt: { qos: number; retain: boolean } } }>;
};
const schemaErrors = (name: string, v: unknown) => validate({ $ref: `#/components/schemas/${name}` }, v, asyncapi);

/** A pcscd this run did not start cannot be restarted by it: that test is then reported skipped. */
const SHARED_PCSCD = await pcscdRunning();
const SHARED_REASON = "a pcscd this run did not start is running (run the suite isolated, see the file comment)";
if (SHARED_PCSCD) console.warn(`pcscd restart test skipped: ${SHARED_REASON}`);

const AGENT = "e2e-agent";
const TRUST_DIR = resolve(import.meta.dir, "../fixtures/pki");
const BASE = `mrtd/v1/${AGENT}`;
const REPLY = `${BASE}/reply/operator-e2e`;
const HEALTH = `${BASE}/readers/${readerSlug(VIRTUAL_READER)}/health`;
/** ICAO 9303 specimen personal data (ERIKSSON ANNA MARIA) as it could leak. */
const PERSONAL = ["L898902C3", "740812", "120415", "ERIKSSON", "ANNA", "MARIA", "ZE184226B", "P<UTOERIKSSON", "L898902C36UTO7408122F1204159"];

for (const protocol of MQTT_PROTOCOLS) describe(`MQTT ${protocol}`, () => {
  const v5 = protocol === "5";
  let env: AgentEnv | undefined;
  let pcscd: PcscdHandle;
  let broker: Mosquitto;
  let op: Observer;
  let agent: AgentProcess;
  let card: StartedPassport | undefined;

  beforeAll(async () => {
    env = await startAgentEnv({
      operator: "operator-e2e",
      operatorOptions: { protocolVersion: protocolVersion(protocol) },
      subscribe: "mrtd/v1/#",
      // The test CSCA (and its CRL) as the trust store: read verdicts are complete.
      config: { agentId: AGENT, protocol, healthIntervalS: 2, metricsIntervalS: 1, trust: [TRUST_DIR], extraToml: "[commands]\nallow_plaintext_access_key = true" },
      readyLog: "agent started",
    });
    ({ pcscd, broker, op, agent } = env);
  }, 30_000);

  afterAll(async () => {
    await card?.stop().catch(() => undefined);
    await env?.stop();
  });

  const json = (m: Received) => m.json as Record<string, unknown>;
  const health = () => op.on(HEALTH).map((m) => json(m));
  const lastHealth = () => health().at(-1);

  let seq = 0;
  /** The payload as a JSON object, when it is one (3.1.1 can carry its reply object only then). */
  const objectOf = (payload: string | Uint8Array | object): Record<string, unknown> | undefined => {
    if (typeof payload !== "string" && !(payload instanceof Uint8Array)) return payload as Record<string, unknown>;
    try {
      const v = JSON.parse(typeof payload === "string" ? payload : new TextDecoder("utf-8", { fatal: true }).decode(payload)) as unknown;
      return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  };
  /** In 3.1.1, a payload that is no JSON object cannot say where to reply: the agent drops it (one log line). */
  const unroutable = (payload: string | Uint8Array | object) => !v5 && objectOf(payload) === undefined;
  async function command(name: string, payload: string | Uint8Array | object, timeoutMs = 15_000): Promise<{ final: Record<string, unknown>; all: Record<string, unknown>[]; ms: number }> {
    const corr = Buffer.from(`e2e-${++seq}`);
    const t0 = performance.now();
    if (v5) {
      const body = typeof payload === "string" || payload instanceof Uint8Array ? Buffer.from(payload) : JSON.stringify(payload);
      await op.client.publishAsync(`${BASE}/cmd/${name}`, body, { qos: 1, properties: { responseTopic: REPLY, correlationData: corr } });
    } else {
      const reply = { topic: REPLY, correlation: corr.toString("base64"), expiresAt: new Date(Date.now() + 120_000).toISOString() };
      await op.client.publishAsync(`${BASE}/cmd/${name}`, JSON.stringify({ ...objectOf(payload), reply }), { qos: 1 });
    }
    const mine = () =>
      op.on(REPLY).filter((m) => {
        const c = replyCorrelation(protocol, { json: m.json, correlationData: m.packet.properties?.correlationData });
        return c !== undefined && Buffer.from(c).equals(corr);
      });
    await op.waitFor(() => mine().some((m) => json(m).kind === "result"), timeoutMs, `reply to ${name} #${seq}`);
    const ms = performance.now() - t0;
    const all = mine().map(json);
    return { final: all.find((m) => m.kind === "result")!, all, ms };
  }

  describe("the agent process against Mosquitto, pcscd and the virtual passport", () => {
    test("birth: retained online with version, readers and start time", async () => {
      await op.waitFor((m) => m.some((x) => x.topic === `${BASE}/status`), 10_000, "birth");
      const birth = json(op.on(`${BASE}/status`)[0]!);
      expect(birth).toMatchObject({ state: "online", agentId: AGENT, version: "0.1.0", readers: [VIRTUAL_READER] });
      expect(schemaErrors("Status", birth)).toEqual([]);
      // retained: a client arriving later gets it at once
      const late = await observe(broker, "operator-late");
      await late.client.subscribeAsync(`${BASE}/status`, { qos: 1 });
      await late.waitFor((m) => m.length > 0, 5000, "retained birth");
      expect(late.messages[0]!.packet.retain).toBe(true);
      await late.close();
    });

    test("reader health and card events follow the card in and out", async () => {
      await op.waitFor(() => lastHealth()?.connected === true, 10_000, "health connected");
      expect(lastHealth()!.cardPresent).toBe(false);
      const eventsBefore = op.on(`${BASE}/events`).length;
      card = await insertPassport({ profile: "td3" });
      await op.waitFor(() => lastHealth()?.cardPresent === true, 5000, "health card present");
      await card.stop();
      card = undefined;
      await op.waitFor(() => lastHealth()?.cardPresent === false, 5000, "health card gone");
      await op.waitFor(() => op.on(`${BASE}/events`).length >= eventsBefore + 2, 5000, "card events");
      const cardEvents = op.on(`${BASE}/events`).slice(eventsBefore).map(json).filter((e) => e.type === "card");
      expect(cardEvents.map((e) => e.change)).toEqual(["inserted", "removed"]);
      expect(cardEvents[0]!.atr).toMatch(/^3B[0-9A-F]+$/);
      expect(op.on(HEALTH).at(-1)!.packet.retain).toBe(false); // live delivery; retained flag only for late subscribers
    }, 20_000);

    test("remote read: progress, then the result; personal data only sealed to the requester's key", async () => {
      card = await insertPassport({ profile: "td3" });
      const kp = generateKeyPair();
      const birth = json(op.on(`${BASE}/status`).find((m) => json(m).state === "online")!) as { hpke: { publicKey: string } };
      const agentKey = parsePublicKey(birth.hpke.publicKey, "birth");
      const sealedAccessKey = sealAccessKey({ agentId: AGENT, commandId: "read-1", agentPublicKey: agentKey, operatorPrivateKey: kp.privateKey, accessKey: { ...SPECIMEN_KEY }, expiresAt: Math.floor(Date.now() / 1000) + 60 });
      const r = await command("read", { id: "read-1", sealedAccessKey, includePersonalData: true, replyPublicKey: b64(kp.publicKey), timeoutS: 20 });
      expect(r.final).toMatchObject({ id: "read-1", command: "read", kind: "result", ok: true });
      expect(r.final.result).toBeUndefined();
      expect(schemaErrors("SealedEnvelope", r.final.sealed)).toEqual([]);
      const steps = r.all.filter((m) => m.kind === "progress").map((m) => m.step);
      expect(steps.slice(0, 3)).toEqual(["waiting-for-card", "card-present", "authenticate"]);
      expect(steps).toContain("file-done");
      // nothing personal in clear anywhere in the replies
      for (const s of PERSONAL) expect(JSON.stringify(r.all)).not.toContain(s);
      const ctx = { kind: "reply" as const, agentId: AGENT, id: "read-1" };
      const result = JSON.parse(new TextDecoder().decode(open({ key: kp.privateKey, from: agentKey, envelope: r.final.sealed, expect: ctx }))) as Record<string, unknown>;
      expect(result).toMatchObject({ outcome: "success", reader: VIRTUAL_READER, trigger: "command", commandId: "read-1", documentType: "P", issuingState: "UTO" });
      expect(result.verification).toEqual({ hashesMatchSod: true, verdict: "verified", reasons: [] });
      // no file list: every data group the signed EF.SOD lists
      expect(Object.keys(result.files as object).sort()).toEqual(["COM", "DG1", "DG11", "DG12", "DG2", "SOD"]);
      const report = result.report as { mrz: Record<string, unknown>; verification: { overall: string }; face: { format: string } };
      expect(report.mrz).toMatchObject({ documentNumber: "L898902C3", dateOfBirth: "740812", dateOfExpiry: "120415", primaryIdentifier: "ERIKSSON", secondaryIdentifier: "ANNA MARIA" });
      expect(report.verification.overall).toBe("verified");
      const face = result.faceImage as { format: string; image: string };
      expect(face.format).toBe("jpeg");
      expect([...Buffer.from(face.image, "base64").subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
      // another recipient key cannot open it, nor does it open as sealed by another sender
      expect(() => open({ key: generateKeyPair().privateKey, from: agentKey, envelope: r.final.sealed, expect: ctx })).toThrow();
      expect(() => open({ key: kp.privateKey, from: generateKeyPair().publicKey, envelope: r.final.sealed, expect: ctx })).toThrow();
      // the read event (QoS 1, from the outbox) carries the same id and no personal data
      await op.waitFor((m) => m.some((x) => x.topic === `${BASE}/events` && json(x).type === "read" && json(x).commandId === "read-1"), 5000, "read event");
      const ev = op.on(`${BASE}/events`).find((x) => json(x).commandId === "read-1")!;
      expect(json(ev).eventId).toBe(result.eventId);
      // MQTT 5 also carries the event id as a user property; 3.1.1 has no properties
      if (v5) expect(ev.packet.properties?.userProperties).toMatchObject({ "event-id": result.eventId });
      else expect(ev.packet.properties?.userProperties).toBeUndefined();
      expect(ev.packet.qos).toBe(1);
      // health counts the read and APDU latency; metrics have histograms per command kind
      await op.waitFor(() => (lastHealth()?.successRate as { windowReads: number }).windowReads >= 1, 5000, "health after read");
      expect((lastHealth()!.apduLatencyMs as { mean: number }).mean).toBeGreaterThan(0);
      await op.waitFor((m) => m.some((x) => x.topic === `${BASE}/metrics` && JSON.stringify(x.json).includes("mrtd_read_duration_seconds")), 5000, "metrics with reads");
      const metrics = json(op.on(`${BASE}/metrics`).at(-1)!) as { histograms: { name: string; labels: Record<string, string> }[]; counters: { name: string; labels: Record<string, string>; value: number }[]; gauges: { name: string; value: number }[] };
      const kinds = metrics.histograms.filter((h) => h.name === "mrtd_apdu_duration_seconds").map((h) => h.labels.command).sort();
      expect(kinds).toEqual(expect.arrayContaining(["external_authenticate", "get_challenge", "read_binary", "select"]));
      expect(metrics.counters.find((c) => c.name === "mrtd_apdu_status_total" && c.labels.sw === "9000")!.value).toBeGreaterThan(5);
      // the agent's memory, and the executable pages released after the read ([memory] defaults)
      const gauge = (name: string) => metrics.gauges.find((c) => c.name === name)?.value;
      expect(gauge("mrtd_process_resident_bytes")).toBeGreaterThan(gauge("mrtd_process_resident_anon_bytes")!);
      expect(gauge("mrtd_process_resident_anon_bytes")).toBeGreaterThan(1024 * 1024);
      await op.waitFor(() => ((op.on(`${BASE}/metrics`).at(-1)?.json as typeof metrics).counters.find((c) => c.name === "mrtd_memory_trimmed_bytes_total")?.value ?? 0) > 1024 * 1024, 5000, "trimmed pages after the read");
    }, 30_000);

    test("clones cannot talk a remote read into verified: aa-clone by default and with files COM,SOD,DG1,DG2, clone-hidden-dg15", async () => {
      await card?.stop();
      const verdictOf = async (profile: string, id: string, files?: string[]) => {
        await card?.stop();
        card = await insertPassport({ profile });
        const r = await command("read", { id, accessKey: card.mrzKey, timeoutS: 20, ...(files ? { files } : {}) });
        expect(r.final).toMatchObject({ id, kind: "result", ok: true });
        const v = (r.final.result as Record<string, unknown>).verification as { verdict: string; reasons: string[] };
        return `${v.verdict} ${v.reasons.join(",")}`;
      };
      try {
        expect(await verdictOf("aa-clone", "clone-default")).toBe("failed AA_FAILED");
        expect(await verdictOf("aa-clone", "clone-files", ["COM", "SOD", "DG1", "DG2"])).toBe("failed AA_FAILED");
        expect(await verdictOf("clone-hidden-dg15", "clone-hidden")).toBe("failed DG15_REFUSED");
      } finally {
        await card?.stop();
        card = await insertPassport({ profile: "td3" });
      }
    }, 60_000);

    test("a document altered after signing: the read succeeds, its verdict is failed (DG_HASH_MISMATCH)", async () => {
      await card?.stop();
      card = await insertPassport({ profile: "tampered-dg1" });
      try {
        const r = await command("read", { id: "read-tampered", accessKey: card.mrzKey, timeoutS: 20 });
        expect(r.final).toMatchObject({ id: "read-tampered", kind: "result", ok: true });
        const v = (r.final.result as Record<string, unknown>).verification as { hashesMatchSod: boolean; verdict: string; reasons: string[] };
        expect(v.hashesMatchSod).toBe(false);
        expect(v.verdict).toBe("failed");
        expect(v.reasons).toContain("DG_HASH_MISMATCH");
        await op.waitFor((m) => m.some((x) => x.topic === `${BASE}/events` && json(x).commandId === "read-tampered"), 5000, "tampered read event");
        const ev = json(op.on(`${BASE}/events`).find((x) => json(x).commandId === "read-tampered")!);
        expect(schemaErrors("ReadEvent", ev)).toEqual([]);
        expect((ev.verification as { verdict: string }).verdict).toBe("failed");
      } finally {
        // the next tests expect the specimen passport in the reader
        await card.stop();
        card = await insertPassport({ profile: "td3" });
      }
    }, 30_000);

    test("read failures answer with the right code and stay free of personal data", async () => {
      const wrongKey = await command("read", { id: "read-denied", accessKey: { ...SPECIMEN_KEY, dateOfBirth: "740813" }, timeoutS: 10 });
      expect(wrongKey.final).toMatchObject({ ok: false, error: { code: "ACCESS_DENIED" } });
      // a CAN reaches the read (PACE); this document offers no PACE, and says so
      const can = await command("read", { id: "read-can", accessKey: { can: "123456" } });
      expect(can.final).toMatchObject({ ok: false, error: { code: "CARD_ERROR" } });
      expect(String((can.final as { error: { message: string } }).error.message)).toContain("PACE");
      const noReader = await command("read", { id: "read-nr", accessKey: SPECIMEN_KEY, reader: "no such reader" });
      expect(noReader.final).toMatchObject({ ok: false, error: { code: "NO_READER" } });
      await card!.stop();
      card = undefined;
      await op.waitFor(() => lastHealth()?.cardPresent === false, 5000, "card gone");
      const noCard = await command("read", { id: "read-timeout", accessKey: SPECIMEN_KEY, timeoutS: 1 });
      expect(noCard.final).toMatchObject({ ok: false, error: { code: "TIMEOUT" } });
      expect(lastHealth()!.lastFailureClass).toBe("PACE_UNSUPPORTED"); // the CAN read, the last one that reached the card
      // reads that never reached a card are events too (and leave reader health alone)
      const eventOf = (commandId: string) => op.on(`${BASE}/events`).map(json).find((e) => e.commandId === commandId);
      await op.waitFor(() => eventOf("read-timeout") !== undefined, 5000, "event of the timed-out read");
      expect(eventOf("read-nr")).toMatchObject({ type: "read", trigger: "command", outcome: "failure", failureClass: "NO_READER", apdus: 0, reader: "no such reader" });
      expect(eventOf("read-timeout")).toMatchObject({ type: "read", outcome: "failure", failureClass: "NO_CARD", apdus: 0 });
      expect(eventOf("read-timeout")!.durationMs as number).toBeGreaterThanOrEqual(900);
      expect(schemaErrors("ReadEvent", eventOf("read-timeout"))).toEqual([]);
      for (const r of [wrongKey, can, noReader, noCard]) for (const s of PERSONAL) expect(JSON.stringify(r.all)).not.toContain(s);
    }, 30_000);

    test("a read waits for the card up to its timeout: the card arrives after the command", async () => {
      const pending = command("read", { id: "read-wait", accessKey: SPECIMEN_KEY, timeoutS: 15, files: ["DG1"] });
      await op.waitFor((m) => m.some((x) => x.topic === REPLY && json(x).id === "read-wait" && json(x).step === "waiting-for-card"), 5000, "waiting progress");
      await Bun.sleep(500);
      card = await insertPassport({ profile: "td3" });
      const r = await pending;
      expect(r.final).toMatchObject({ ok: true, result: { outcome: "success", files: { DG1: { bytes: 93 } } } });
      // no personal data requested: none sent, sealed or not
      expect((r.final.result as Record<string, unknown>).personalData).toBeUndefined();
    }, 30_000);

    const SPEC = SPECIMEN_KEY;
    const malformed: Array<[string, string, string | Uint8Array, string]> = [
      ["not JSON", "ping", "{id:", "BAD_JSON"],
      ["JSON array", "read", "[1]", "BAD_JSON"],
      ["invalid UTF-8", "ping", new Uint8Array([0x7b, 0xff, 0x7d]), "BAD_JSON"],
      ["oversized", "read", JSON.stringify({ id: "big", pad: "x".repeat(MAX_COMMAND_BYTES) }), "TOO_LARGE"],
      ["unknown command", "reboot", JSON.stringify({ id: "m1" }), "UNKNOWN_COMMAND"],
      ["unknown command in body", "ping", JSON.stringify({ id: "m2", command: "pong" }), "UNKNOWN_COMMAND"],
      ["topic/body mismatch", "ping", JSON.stringify({ id: "m3", command: "read" }), "BAD_FIELD"],
      ["missing id", "read", JSON.stringify({ accessKey: SPEC }), "MISSING_FIELD"],
      ["id not a string", "ping", JSON.stringify({ id: 1 }), "BAD_FIELD"],
      ["unknown field", "read", JSON.stringify({ id: "m4", accessKey: SPEC, pin: "1234" }), "BAD_FIELD"],
      ["no access key", "read", JSON.stringify({ id: "m5" }), "MISSING_FIELD"],
      ["access key a string", "read", JSON.stringify({ id: "m6", accessKey: "L898902C3" }), "BAD_FIELD"],
      ["missing expiry", "read", JSON.stringify({ id: "m7", accessKey: { documentNumber: "L898902C3", dateOfBirth: "740812" } }), "MISSING_FIELD"],
      ["bad birth date", "read", JSON.stringify({ id: "m8", accessKey: { ...SPEC, dateOfBirth: "741332" } }), "BAD_FIELD"],
      ["MRZ check digit", "read", JSON.stringify({ id: "m9", accessKey: { mrz: "L898902C37UTO7408122F1204159ZE184226B<<<<<10" } }), "BAD_CHECK_DIGIT"],
      ["CAN of 5 digits", "read", JSON.stringify({ id: "m10", accessKey: { can: "12345" } }), "BAD_FIELD"],
      ["files not a list", "read", JSON.stringify({ id: "m11", accessKey: SPEC, files: "DG1" }), "BAD_FIELD"],
      ["unknown file", "read", JSON.stringify({ id: "m12", accessKey: SPEC, files: ["DG42"] }), "BAD_FIELD"],
      ["timeout too long", "read", JSON.stringify({ id: "m13", accessKey: SPEC, timeoutS: 601 }), "BAD_FIELD"],
      ["timeout a float", "read", JSON.stringify({ id: "m14", accessKey: SPEC, timeoutS: 1.5 }), "BAD_FIELD"],
      ["personal data without a key", "read", JSON.stringify({ id: "m15", accessKey: SPEC, includePersonalData: true }), "MISSING_FIELD"],
      ["reply key too short", "read", JSON.stringify({ id: "m16", accessKey: SPEC, includePersonalData: true, replyPublicKey: "AAAA" }), "BAD_FIELD"],
      ["empty reader", "read", JSON.stringify({ id: "m17", accessKey: SPEC, reader: "" }), "BAD_FIELD"],
      ["diagnose count 0", "diagnose", JSON.stringify({ id: "m18", count: 0 }), "BAD_FIELD"],
      ["diagnose count huge", "diagnose", JSON.stringify({ id: "m19", count: 5000 }), "BAD_FIELD"],
    ];
    test(`${malformed.length} malformed commands: each answered with its error code, the agent keeps running`, async () => {
      for (const [title, name, payload, code] of malformed) {
        if (unroutable(payload)) {
          const logged = () => agent.logs().filter((l) => l.msg === "ignored a command: nowhere to reply").length;
          const before = logged();
          await op.client.publishAsync(`${BASE}/cmd/${name}`, Buffer.from(payload as string | Uint8Array), { qos: 1 });
          await agent.waitForLog(() => logged() > before, 5000, `${title}: dropped (no reply object)`);
          continue;
        }
        const r = await command(name, payload);
        expect({ title, ok: r.final.ok, code: (r.final.error as { code?: string } | undefined)?.code }).toEqual({ title, ok: false, code });
        expect(schemaErrors("Reply", r.final)).toEqual([]);
        for (const s of ["L898902C3", "740812", "120415"]) expect(JSON.stringify(r.all)).not.toContain(s);
      }
      expect(agent.proc.exitCode).toBeNull();
      const ping = await command("ping", { id: "ping-after" });
      expect(ping.final).toMatchObject({ ok: true, result: { pong: true, agentId: AGENT } });
    }, 60_000);

    test("diagnose runs the reader diagnostics (agent/diagnostics) remotely, with progress", async () => {
      const r = await command("diagnose", { id: "diag-1", count: 5 }, 30_000);
      expect(r.final).toMatchObject({ id: "diag-1", ok: true });
      const res = r.final.result as { verdict: string; stability: { exchanges: number }; card: { atr: string } };
      expect(["good", "marginal", "unreliable", "unusable"]).toContain(res.verdict);
      expect(res.stability.exchanges).toBe(5);
      expect(r.all.filter((m) => m.kind === "progress").length).toBeGreaterThanOrEqual(2);
    }, 40_000);

    test.skipIf(SHARED_PCSCD)(`pcscd going away and coming back: readers gone, then back; reads work again${SHARED_PCSCD ? ` (skipped: ${SHARED_REASON})` : ""}`, async () => {
      expect(pcscd.started).toBe(true);
      await card?.stop();
      card = undefined;
      const n = health().length;
      await pcscd.stop();
      await op.waitFor(() => health().slice(n).some((h) => h.connected === false), 10_000, "health disconnected");
      await pcscd.restart();
      await op.waitFor(() => health().slice(n).some((h) => h.connected === false) && lastHealth()?.connected === true, 15_000, "health reconnected");
      card = await insertPassport({ profile: "td3" });
      const r = await command("read", { id: "read-after-restart", accessKey: SPECIMEN_KEY, files: ["DG1"], timeoutS: 10 });
      expect(r.final).toMatchObject({ ok: true, result: { outcome: "success" } });
      const readerEvents = op.on(`${BASE}/events`).map(json).filter((e) => e.type === "reader").map((e) => e.change);
      expect(readerEvents.slice(-2)).toEqual(["detached", "attached"]);
      await agent.waitForLog((l) => l.msg === "pcscd reachable again", 1000, "reopen log");
    }, 60_000);

    test("SIGTERM: retained offline (shutdown), exit 0; no personal data in logs or telemetry", async () => {
      const code = await agent.kill("SIGTERM");
      expect(code).toBe(0);
      await op.waitFor(() => json(op.on(`${BASE}/status`).at(-1)!).state === "offline", 5000, "offline");
      expect(json(op.on(`${BASE}/status`).at(-1)!)).toMatchObject({ state: "offline", reason: "shutdown" });
      const logs = agent.logs();
      expect(logs.some((l) => l.msg === "agent stopped")).toBe(true);
      expect(logs.every((l) => ["debug", "info", "warn", "error"].includes(l.level))).toBe(true);
      expect(logs.filter((l) => l.msg === "read complete").length).toBeGreaterThanOrEqual(2);
      // Personal data: the logs, stderr, and everything the agent published except the operator's
      // own commands (which carry the access key by design; the broker ACL keeps them to operators).
      const published = op.messages.filter((m) => !m.topic.includes("/cmd/")).map((m) => m.text).join("\n");
      for (const s of PERSONAL) {
        expect({ s, where: "stdout", hit: agent.stdout.includes(s) }).toEqual({ s, where: "stdout", hit: false });
        expect({ s, where: "stderr", hit: agent.stderr.includes(s) }).toEqual({ s, where: "stderr", hit: false });
        expect({ s, where: "published", hit: published.includes(s) }).toEqual({ s, where: "published", hit: false });
      }
      // every payload the agent published matches its AsyncAPI schema, with the operation's QoS
      // (the operator subscribed with QoS 1, so a message arrives with the QoS it was sent with)
      const bySchema: Array<[RegExp, string, string]> = [
        [/\/status$/, "Status", "sendStatus"],
        [/\/health$/, "ReaderHealth", "sendReaderHealth"],
        [/\/metrics$/, "Metrics", "sendMetrics"],
        [/\/events$/, "Event", "sendEvents"],
        [/\/reply\//, "Reply", "sendReply"],
      ];
      let checked = 0;
      for (const m of op.messages.filter((x) => x.topic.startsWith(BASE) && !x.topic.includes("/cmd/"))) {
        const [, name, operation] = bySchema.find(([re]) => re.test(m.topic))!;
        expect({ topic: m.topic, errors: schemaErrors(name, m.json) }).toEqual({ topic: m.topic, errors: [] });
        expect({ topic: m.topic, qos: m.packet.qos as number }).toEqual({ topic: m.topic, qos: asyncapi.operations[operation]!.bindings.mqtt.qos });
        checked++;
      }
      expect(checked).toBeGreaterThan(50);
      // what a late subscriber gets is exactly the operations the document marks retained
      const late = await observe(broker, "operator-late");
      try {
        await late.client.subscribeAsync(`${BASE}/#`, { qos: 1 });
        await Bun.sleep(300);
        const retainedOps = new Set(late.messages.filter((m) => m.packet.retain).map((m) => bySchema.find(([re]) => re.test(m.topic))![2]));
        const documented = bySchema.map(([, , o]) => o).filter((o) => asyncapi.operations[o]!.bindings.mqtt.retain);
        expect([...retainedOps].sort()).toEqual(documented.sort());
      } finally {
        await late.close();
      }
    }, 30_000);
  });

  describe("will on kill -9", () => {
    test("the broker publishes the retained offline will (connection-lost) when the agent dies", async () => {
      const { file, dir } = writeAgentConfig({ agentId: "e2e-killed", broker, protocol });
      const victim = new AgentProcess(file);
      const status = () => op.on("mrtd/v1/e2e-killed/status").map(json);
      let code: number | null;
      try {
        await op.waitFor(() => status().some((s) => s.state === "online"), 15_000, "birth of the victim");
      } finally {
        code = await victim.kill("SIGKILL");
        removeTempDir(dir);
      }
      expect(code).toBeNull(); // killed, no exit code
      await op.waitFor(() => status().at(-1)?.state === "offline", 5000, "will");
      expect(status().at(-1)).toMatchObject({ state: "offline", agentId: "e2e-killed", reason: "connection-lost" });
      expect(schemaErrors("Status", status().at(-1))).toEqual([]);
    }, 30_000);
  });
});
