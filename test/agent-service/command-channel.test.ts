/**
 * The command channel as an attacker tries it (issue 10, items 1-3 and 7): the real agent
 * process, Mosquitto with the shipped TLS + ACL configuration (deploy/mosquitto, certificates
 * from deploy/make-test-pki.sh), pcscd and the virtual passport.
 *
 *   - a plaintext accessKey is refused before any card access;
 *   - a sealed access key works, nothing on the broker carries the key or personal data in
 *     clear, and the sealed result opens only with the agent's key from its birth;
 *   - a captured sealed command replayed with another replyPublicKey gets nothing;
 *   - a response topic that is the agent's own status, events or health gets nothing there;
 *     a 1,000-level response topic leaves the agent connected;
 *   - `mrtd-agent remote read|ping` end to end with exit codes, and a forged reply (or a birth
 *     with another key) refused by the CLI.
 * The whole suite runs once per MQTT protocol: 5 (properties) and 3.1.1 (the command's reply
 * object and the replies' correlation in the payload, agent/service/command-wire.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import mqtt from "mqtt";
import { b64, generateKeyPair, open, parsePublicKey, seal } from "../../agent/service/envelope.ts";
import { sealAccessKey } from "../../agent/service/sealed-access-key.ts";
import { MQTT_PROTOCOLS, protocolVersion, readCommandRouting, replyCorrelation, stampReply } from "../../agent/service/command-wire.ts";
import { agentTopics } from "../../agent/service/topics.ts";
import { insertPassport, SPECIMEN_KEY, VIRTUAL_READER, type StartedPassport } from "../support/e2e.ts";
import { ensurePcscd, type PcscdHandle } from "../support/pcscd.ts";
import { startMosquitto, type Mosquitto } from "../support/mosquitto.ts";
import { validate } from "../support/json-schema.ts";
import { observe, type Observer, type Received } from "../service/fixtures/mqtt-observer.ts";
import { AgentProcess, writeAgentConfig } from "./fixtures/agent-process.ts";

const ROOT = resolve(import.meta.dir, "../..");
const asyncapi = Bun.YAML.parse(await Bun.file(join(ROOT, "deploy/asyncapi.yaml")).text()) as object;
const schemaErrors = (name: string, v: unknown) => validate({ $ref: `#/components/schemas/${name}` }, v, asyncapi);

const AGENT = "chan-agent";
const OPERATOR = "operator-test";
const BASE = `mrtd/v1/${AGENT}`;
const STATUS = `${BASE}/status`;
const REPLY = `${BASE}/reply/${OPERATOR}`;
const HEALTH = `${BASE}/readers/virtual-pcd-00-00/health`;
const PERSONAL = ["L898902C3", "740812", "120415", "ERIKSSON", "ANNA", "MARIA", "ZE184226B"];

for (const protocol of MQTT_PROTOCOLS) describe(`MQTT ${protocol}`, () => {
  let pcscd: PcscdHandle;
  let broker: Mosquitto;
  let op: Observer | undefined;
  let agent: AgentProcess;
  let configFile: string;
  let stateDir: string;
  let card: StartedPassport | undefined;
  const operator = generateKeyPair();
  const work = mkdtempSync(join(tmpdir(), "mrtd-chan-"));
  const v5 = protocol === "5";

  beforeAll(async () => {
    pcscd = await ensurePcscd();
    broker = await startMosquitto({ config: "tls-acl", agents: [AGENT] });
    op = await observe(broker, OPERATOR, { protocolVersion: protocolVersion(protocol) });
    await op.client.subscribeAsync("mrtd/v1/#", { qos: 1 });
    const cfg = writeAgentConfig({ agentId: AGENT, broker, tls: true, dir: work, protocol });
    configFile = cfg.file;
    stateDir = join(cfg.dir, "state");
    agent = new AgentProcess(configFile);
    await agent.waitForLog((l) => l.msg === "agent started", 15_000, "agent started");
    await op.waitFor((m) => m.some((x) => x.topic === STATUS && (x.json as { state?: string }).state === "online"), 10_000, "birth");
    card = await insertPassport({ profile: "td3" });
  }, 40_000);

  afterAll(async () => {
    await card?.stop().catch(() => undefined);
    await op?.close().catch(() => undefined);
    await agent?.kill("SIGKILL");
    await broker?.stop();
    await pcscd?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const json = (m: Received) => m.json as Record<string, unknown>;
  const birth = () => json(op!.on(STATUS).filter((m) => json(m).state === "online").at(-1)!);
  const agentKey = () => parsePublicKey((birth().hpke as { publicKey: string }).publicKey, "birth");

  let seq = 0;
  /** A raw command (any response topic, also a wrong one): MQTT 5 properties or the 3.1.1 reply object. */
  async function send(name: string, body: object, responseTopic = REPLY): Promise<Buffer> {
    const corr = Buffer.from(`chan-${++seq}`);
    if (v5) await op!.client.publishAsync(`${BASE}/cmd/${name}`, JSON.stringify(body), { qos: 1, properties: { responseTopic, correlationData: corr } });
    else {
      const reply = { topic: responseTopic, correlation: corr.toString("base64"), expiresAt: new Date(Date.now() + 120_000).toISOString() };
      await op!.client.publishAsync(`${BASE}/cmd/${name}`, JSON.stringify({ ...body, reply }), { qos: 1 });
    }
    return corr;
  }
  const corrOf = (m: Received) => replyCorrelation(protocol, { json: m.json, correlationData: m.packet.properties?.correlationData });
  const repliesTo = (corr: Buffer, topic = REPLY) =>
    op!.on(topic)
      .filter((m) => {
        const c = corrOf(m);
        return c !== undefined && Buffer.from(c).equals(corr);
      })
      .map(json);
  async function final(corr: Buffer, timeoutMs = 15_000, topic = REPLY): Promise<{ final: Record<string, unknown>; all: Record<string, unknown>[] }> {
    await op!.waitFor(() => repliesTo(corr, topic).some((m) => m.kind === "result"), timeoutMs, `reply ${corr.toString()}`);
    const all = repliesTo(corr, topic);
    return { final: all.find((m) => m.kind === "result")!, all };
  }
  function sealedRead(id: string, over: Partial<Parameters<typeof sealAccessKey>[0]> = {}) {
    return {
      id,
      command: "read",
      replyPublicKey: b64(operator.publicKey),
      includePersonalData: true,
      files: ["COM", "SOD", "DG1", "DG2"],
      timeoutS: 10,
      sealedAccessKey: sealAccessKey({ agentId: AGENT, commandId: id, agentPublicKey: agentKey(), operatorPrivateKey: operator.privateKey, accessKey: { ...SPECIMEN_KEY }, expiresAt: Math.floor(Date.now() / 1000) + 120, ...over }),
    };
  }

  describe("sealed access keys and replies (shipped TLS + ACL broker)", () => {
    test("the birth carries the agent's HPKE public key; the key file was created 0600 in state_dir", () => {
      const b = birth();
      expect(schemaErrors("Status", b)).toEqual([]);
      expect((b.hpke as { alg: string }).alg).toBe("HPKE-v1 X25519-SHA256-ChaCha20Poly1305");
      expect(statSync(join(stateDir, "agent-hpke.key")).mode & 0o777).toBe(0o600);
    });

    test("a plaintext accessKey is refused PLAINTEXT_ACCESS_KEY before any card access", async () => {
      const eventsBefore = op!.on(`${BASE}/events`).length;
      const corr = await send("read", { id: "plain-1", accessKey: SPECIMEN_KEY, files: ["COM", "DG1"], timeoutS: 5 });
      const r = await final(corr);
      expect(r.final).toMatchObject({ id: "plain-1", ok: false, error: { code: "PLAINTEXT_ACCESS_KEY" } });
      expect(r.all.filter((m) => m.kind === "progress")).toEqual([]);
      await Bun.sleep(300);
      expect(op!.on(`${BASE}/events`).slice(eventsBefore).filter((m) => json(m).type === "read")).toEqual([]);
      expect(String((r.final.error as { message: string }).message)).not.toContain("L898902C3");
    });

    test("a sealed read: the result opens only with the agent's key from its birth; nothing personal in clear on the broker", async () => {
      const from = op!.messages.length;
      const corr = await send("read", sealedRead("sealed-1"));
      const r = await final(corr, 20_000);
      expect(r.final).toMatchObject({ id: "sealed-1", command: "read", kind: "result", ok: true });
      expect(r.final.result).toBeUndefined();
      expect(schemaErrors("Reply", r.final)).toEqual([]);
      const result = JSON.parse(new TextDecoder().decode(open({ key: operator.privateKey, from: agentKey(), envelope: r.final.sealed, expect: { kind: "reply", agentId: AGENT, id: "sealed-1" } }))) as {
        outcome: string;
        report: { mrz: { documentNumber: string }; verification: { overall: string } };
        faceImage: { format: string; image: string };
      };
      expect(result.outcome).toBe("success");
      expect(result.report.mrz.documentNumber).toBe("L898902C3");
      expect([...Buffer.from(result.faceImage.image, "base64").subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
      // a key other than the agent's (a forger's) does not open it
      expect(() => open({ key: operator.privateKey, from: generateKeyPair().publicKey, envelope: r.final.sealed, expect: { kind: "reply", agentId: AGENT, id: "sealed-1" } })).toThrow(/authentication failed/);
      // everything the broker carried meanwhile (the command, progress, the reply, the event): no access key, no personal data
      await Bun.sleep(300);
      for (const m of op!.messages.slice(from)) for (const s of PERSONAL) expect({ topic: m.topic, leaks: m.text.includes(s) ? s : undefined }).toEqual({ topic: m.topic, leaks: undefined });
    }, 30_000);

    test("a captured sealed command replayed with another replyPublicKey (or for another id) is refused before the card", async () => {
      const genuine = sealedRead("replay-1");
      const thief = generateKeyPair();
      const corr = await send("read", { ...genuine, id: "replay-1", replyPublicKey: b64(thief.publicKey) });
      const r = await final(corr);
      expect(r.final).toMatchObject({ ok: false, error: { code: "BAD_FIELD" } });
      expect(r.all.filter((m) => m.kind === "progress")).toEqual([]);
      const moved = await final(await send("read", { ...genuine, id: "replay-2" }));
      expect(moved.final).toMatchObject({ ok: false, error: { code: "BAD_FIELD" } });
      const expired = await final(await send("read", sealedRead("old-1", { expiresAt: Math.floor(Date.now() / 1000) - 3600 })));
      expect(expired.final).toMatchObject({ ok: false, error: { code: "EXPIRED" } });
    });
  });

  describe("replies only on reply topics", () => {
    test("a response topic that is the agent's own status, events or health gets nothing; one log line each", async () => {
      const logsBefore = agent.logs().length;
      const from = op!.messages.length;
      for (const [i, t] of [STATUS, `${BASE}/events`, HEALTH, `${BASE}/reply/${OPERATOR}/more`, `mrtd/v1/other-agent/reply/${OPERATOR}`].entries()) {
        await send("ping", { id: `rt-${i}` }, t);
      }
      // a ping to the right topic after them: once it is answered, the earlier ones were handled
      const ok = await final(await send("ping", { id: "rt-ok" }));
      expect(ok.final).toMatchObject({ ok: true, result: { pong: true, agentId: AGENT } });
      await Bun.sleep(300);
      const strays = op!.messages.slice(from).filter((m) => m.topic !== REPLY && !m.topic.includes("/cmd/") && (json(m)?.kind !== undefined || /"id":"rt-/.test(m.text)));
      expect(strays.map((m) => m.topic)).toEqual([]);
      const dropped = agent.logs().slice(logsBefore).filter((l) => l.msg === "ignored a command: nowhere to reply");
      expect(dropped.length).toBe(5);
      for (const l of dropped) expect(l.why).toBe(v5 ? "the response topic is not a reply topic of this agent" : "reply.topic is not a reply topic of this agent");
    });

    test("a 1,000-level response topic leaves the agent connected (no will, no new birth)", async () => {
      const from = op!.messages.length;
      await send("ping", { id: "deep-1" }, `${BASE}/reply` + "/l".repeat(996));
      const after = await final(await send("ping", { id: "deep-after" }), 6000);
      expect(after.final.ok).toBe(true);
      await Bun.sleep(500);
      expect(op!.messages.slice(from).filter((m) => m.topic === STATUS).map((m) => json(m).state)).toEqual([]);
      expect(agent.logs().filter((l) => l.msg === "broker connection lost")).toEqual([]);
    });
  });

  describe("mrtd-agent remote (operator CLI)", () => {
    const home = join(work, "home");
    const opKey = join(work, "operator.key");
    const known = join(work, "known-agents");
    const conn = () => {
      const c = broker.certs!;
      return ["--broker", broker.url, "--mqtt-protocol", protocol, "--ca", c.ca, "--cert", c.client(OPERATOR).cert, "--key", c.client(OPERATOR).key, "--operator-key", opKey, "--known-agents", known];
    };
    async function remote(args: string[], timeoutMs = 40_000) {
      const p = Bun.spawn([process.execPath, join(ROOT, "agent/cli.ts"), "remote", ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe", env: { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, ".config") } });
      const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
      const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      clearTimeout(t);
      return { stdout, stderr, code };
    }

    beforeAll(async () => {
      // The CLI connects with the operator certificate: the watching client steps aside.
      await op!.close();
      op = undefined;
      expect((await remote(["keygen", opKey])).code).toBe(0);
    });

    test("remote ping pins the agent's key on first use and answers sealed", async () => {
      const r = await remote(["ping", "--agent", AGENT, ...conn()]);
      expect({ code: r.code, err: r.stderr }).toMatchObject({ code: 0 });
      expect(r.stdout).toContain(`pong from ${AGENT}`);
      expect(r.stderr).toContain("(first use)");
      expect(readFileSync(known, "utf8")).toStartWith(`${AGENT} `);
    });

    test("remote read prints the local read's report, exit 0; --json; wrong key exit 4; no such reader exit 3", async () => {
      const key = ["--doc", SPECIMEN_KEY.documentNumber, "--dob", SPECIMEN_KEY.dateOfBirth, "--expiry", SPECIMEN_KEY.dateOfExpiry];
      const saved = join(work, "reply.json");
      const r = await remote(["read", "--agent", AGENT, ...conn(), ...key, "--save", saved]);
      expect({ code: r.code, err: r.stderr.slice(-500) }).toMatchObject({ code: 0 });
      expect(r.stdout).toContain(`Reader    ${VIRTUAL_READER}`);
      expect(r.stdout).toContain("Document  P TD3, issued by UTO, number L898902C3");
      expect(r.stdout).toContain("Holder    ERIKSSON, ANNA MARIA");
      expect(r.stdout).toMatch(/^Verdict   /m);
      expect(r.stderr).toContain("DG2");
      // the saved reply is sealed; remote open opens it with the pinned key
      expect(readFileSync(saved, "utf8")).not.toContain("ERIKSSON");
      const opened = await remote(["open", saved, "--operator-key", opKey, "--known-agents", known]);
      expect(opened.code).toBe(0);
      expect(JSON.parse(opened.stdout).sealed.report.mrz.documentNumber).toBe("L898902C3");

      const j = await remote(["read", "--agent", AGENT, ...conn(), ...key, "--json", "--files", "COM,SOD,DG1"]);
      expect(j.code).toBe(0);
      expect(JSON.parse(j.stdout)).toMatchObject({ reader: VIRTUAL_READER, mrz: { documentNumber: "L898902C3" }, remote: { agent: AGENT } });

      const denied = await remote(["read", "--agent", AGENT, ...conn(), "--doc", "L898902C3", "--dob", "740813", "--expiry", "120415", "--files", "DG1"]);
      expect({ code: denied.code, err: denied.stderr.slice(-300) }).toMatchObject({ code: 4 });
      expect(denied.stderr).toContain("ACCESS_DENIED");
      const noReader = await remote(["read", "--agent", AGENT, ...conn(), ...key, "--reader", "no such reader"]);
      expect(noReader.code).toBe(3);
    }, 90_000);

    test("an operator config file instead of flags; remote diagnose; --json", async () => {
      const c = broker.certs!;
      const cfg = join(work, "operator.toml");
      await Bun.write(cfg, `[mqtt]\nurl = "${broker.url}"\nprotocol = "${protocol}"\nca = "${c.ca}"\nclient_cert = "${c.client(OPERATOR).cert}"\nclient_key = "${c.client(OPERATOR).key}"\n[operator]\nkey_file = "${opKey}"\nknown_agents = "${known}"\n`);
      const ping = await remote(["ping", "--agent", AGENT, "--config", cfg, "--json"]);
      expect({ code: ping.code, err: ping.stderr.slice(-300) }).toMatchObject({ code: 0 });
      expect(JSON.parse(ping.stdout)).toMatchObject({ pong: true, agentId: AGENT });
      const bad = join(work, "bad.toml");
      await Bun.write(bad, `[mqtt]\nurl = "${broker.url}"\nhost = "x"\n`);
      const refused = await remote(["ping", "--agent", AGENT, "--config", bad]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain("mqtt.host: unknown key");
      const diag = await remote(["diagnose", "--agent", AGENT, "--config", cfg, "--count", "3"]);
      expect([0, 5]).toContain(diag.code!);
      expect(diag.stdout).toMatch(/^Verdict   /m);
      expect(diag.stdout).toContain(`Reader    ${VIRTUAL_READER}`);
    }, 60_000);

    test("remote read --can: the ID card that has only a CAN reads through PACE, the CAN sealed like any access key", async () => {
      await card?.stop();
      card = await insertPassport({ profile: "can-only" });
      const r = await remote(["read", "--agent", AGENT, ...conn(), "--can", "123456"]);
      expect({ code: r.code, err: r.stderr.slice(-500) }).toMatchObject({ code: 0 });
      expect(r.stdout).toContain("number D23145890");
      expect(r.stdout).toMatch(/^Access    PACE-GM with the CAN/m);
      // the agent never logs the CAN or the document number (the broker side: the sealed-read test above)
      for (const secret of ["123456", "D23145890"]) expect(agent!.stdout + agent!.stderr).not.toContain(secret);
    }, 60_000);

    test("a forged reply (sealed by another key) and a birth with another key are refused by the CLI", async () => {
      const genuineBirth = readFileSync(join(stateDir, "agent-hpke.key"), "utf8").length > 0;
      expect(genuineBirth).toBe(true);
      // The agent stops; a forger holding the agent's TLS certificate (not its HPKE key) puts
      // the agent's genuine birth back and answers commands with results sealed by its own key.
      const lastBirth = { state: "online", agentId: AGENT, version: "0.1.0", readers: [VIRTUAL_READER], startedAt: new Date().toISOString(), connectedAt: new Date().toISOString(), hpke: { alg: "HPKE-v1 X25519-SHA256-ChaCha20Poly1305", publicKey: readFileSync(known, "utf8").split(/\s+/)[1]! } };
      await agent.kill("SIGTERM");
      const c = broker.certs!;
      const forger = await mqtt.connectAsync({ host: "127.0.0.1", port: broker.port, protocol: "mqtts", protocolVersion: protocolVersion(protocol), clientId: AGENT, reconnectPeriod: 0, ca: readFileSync(c.ca), cert: readFileSync(c.client(AGENT).cert), key: readFileSync(c.client(AGENT).key) });
      const forgerKey = generateKeyPair();
      try {
        await forger.publishAsync(STATUS, JSON.stringify(lastBirth), { qos: 1, retain: true });
        await forger.subscribeAsync(`${BASE}/cmd/+`, { qos: 1 });
        forger.on("message", (_t, payload, packet) => {
          const cmd = JSON.parse(payload.toString()) as { id: string; replyPublicKey: string };
          const sealed = seal({ to: parsePublicKey(cmd.replyPublicKey, "k"), from: forgerKey.privateKey, ctx: { kind: "reply", agentId: AGENT, id: cmd.id }, plaintext: new TextEncoder().encode('{"pong":true}') });
          // The forger answers in the contract's wire form, as the agent would.
          const routing = readCommandRouting(protocol, { payload: new Uint8Array(payload), responseTopic: packet.properties?.responseTopic, correlationData: packet.properties?.correlationData, receivedAt: Date.now() }, agentTopics("mrtd/v1", AGENT), Date.now());
          if (routing.kind !== "route") return;
          const wire = stampReply(routing.route, JSON.stringify({ id: cmd.id, command: "ping", kind: "result", ok: true, sealed }), Date.now())!;
          void forger.publishAsync(wire.topic, wire.payload, { qos: 1, ...(wire.properties ? { properties: wire.properties } : {}) });
        });
        const forged = await remote(["ping", "--agent", AGENT, ...conn(), "--timeout", "4"]);
        expect(forged.code).toBe(1);
        expect(forged.stderr).toContain("does not open with");
        expect(forged.stdout).not.toContain("pong");
        // a birth with the forger's key: refused against the pin, nothing sent
        await forger.publishAsync(STATUS, JSON.stringify({ ...lastBirth, hpke: { ...lastBirth.hpke, publicKey: b64(forgerKey.publicKey) } }), { qos: 1, retain: true });
        const swapped = await remote(["ping", "--agent", AGENT, ...conn(), "--timeout", "4"]);
        expect(swapped.code).toBe(1);
        expect(swapped.stderr).toContain("another public key than the one pinned");
      } finally {
        await forger.endAsync(true);
      }
    }, 60_000);
  });
});
