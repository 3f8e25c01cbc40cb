/**
 * Sealed envelopes (agent/service/envelope.ts: HPKE auth mode), sealed access keys
 * (sealed-access-key.ts), key files (key-file.ts), and the operator's `remote open` / `remote
 * keygen` on them.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { x25519 } from "@noble/curves/ed25519.js";
import { b64, EnvelopeError, generateKeyPair, open, parsePublicKey, publicKeyOf, seal, SEALED_ALG, sealInSlices, type SealContext } from "../../agent/service/envelope.ts";
import { KeyFileError, loadOrCreatePrivateKeyFile, readPrivateKeyFile } from "../../agent/service/key-file.ts";
import { openAccessKey, SealedKeyProblem, sealAccessKey, SEALED_KEY_PLAINTEXT_BYTES } from "../../agent/service/sealed-access-key.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const CLI = resolve(import.meta.dir, "../../agent/cli.ts");
const dir = mkdtempSync(join(tmpdir(), "mrtd-envelope-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const agent = generateKeyPair();
const operator = generateKeyPair();
const ctx: SealContext = { kind: "reply", agentId: "board-7", id: "cmd-1" };
const plaintext = enc.encode(JSON.stringify({ documentNumber: "L898902C3", surname: "ERIKSSON" }));

describe("sealed envelope (HPKE auth mode)", () => {
  test("RFC 7748 section 6.1: public keys by the ladder match the RFC and noble's table path", () => {
    const hex = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));
    expect(Buffer.from(publicKeyOf(hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))).toString("hex")).toBe(
      "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    );
    for (let i = 0; i < 4; i++) {
      const k = generateKeyPair();
      expect(Buffer.from(k.publicKey).toString("hex")).toBe(Buffer.from(x25519.getPublicKey(k.privateKey)).toString("hex"));
    }
  });

  test("round trip; the envelope names its context and algorithm, never the plaintext", () => {
    const env = seal({ to: operator.publicKey, from: agent.privateKey, ctx, plaintext });
    expect(env).toMatchObject({ alg: SEALED_ALG, mode: "auth", kind: "reply", agent: "board-7", id: "cmd-1" });
    expect(JSON.stringify(env)).not.toContain("ERIKSSON");
    expect(dec.decode(open({ key: operator.privateKey, from: agent.publicKey, envelope: env, expect: ctx }))).toBe(dec.decode(plaintext));
  });

  test("a caller-held own public key gives the same result (one scalar multiplication less)", () => {
    const env = seal({ to: operator.publicKey, from: agent.privateKey, fromPublic: agent.publicKey, ctx, plaintext });
    expect(open({ key: operator.privateKey, keyPublic: operator.publicKey, from: agent.publicKey, envelope: env, expect: ctx })).toEqual(plaintext);
    expect(open({ key: operator.privateKey, from: agent.publicKey, envelope: env, expect: ctx })).toEqual(plaintext);
  });

  test("sealing in slices lets the event loop run; every slice is one HPKE message; it opens to the same bytes", async () => {
    const big = Uint8Array.from({ length: 40_000 }, (_, i) => i & 0xff);
    let ranBetween = false;
    const sealing = sealInSlices({ to: operator.publicKey, from: agent.privateKey, ctx, plaintext: big, sliceBytes: 1024 });
    setImmediate(() => (ranBetween = true));
    const env = await sealing;
    expect(ranBetween).toBe(true);
    expect(env.ct.length).toBe(40);
    expect(open({ key: operator.privateKey, from: agent.publicKey, envelope: env, expect: ctx })).toEqual(big);
    const empty = await sealInSlices({ to: operator.publicKey, from: agent.privateKey, ctx, plaintext: new Uint8Array(0) });
    expect(open({ key: operator.privateKey, from: agent.publicKey, envelope: empty, expect: ctx }).length).toBe(0);
  });

  test("a forged envelope (another sender key) does not open; nor one moved to another context, agent, id or kind", () => {
    const env = seal({ to: operator.publicKey, from: agent.privateKey, ctx, plaintext });
    const forger = generateKeyPair();
    const forged = seal({ to: operator.publicKey, from: forger.privateKey, ctx, plaintext: enc.encode('{"verdict":"verified"}') });
    expect(() => open({ key: operator.privateKey, from: agent.publicKey, envelope: forged, expect: ctx })).toThrow(/authentication failed/);
    // claiming another context in clear: checked against what the opener expects, then by the key schedule
    expect(() => open({ key: operator.privateKey, from: agent.publicKey, envelope: env, expect: { ...ctx, id: "cmd-2" } })).toThrow(/another command id/);
    expect(() => open({ key: operator.privateKey, from: agent.publicKey, envelope: env, expect: { ...ctx, agentId: "board-8" } })).toThrow(/another agent/);
    expect(() => open({ key: operator.privateKey, from: agent.publicKey, envelope: env, expect: { ...ctx, kind: "event" } })).toThrow(/expected event/);
    expect(() => open({ key: operator.privateKey, from: agent.publicKey, envelope: { ...env, id: "cmd-2" }, expect: { ...ctx, id: "cmd-2" } })).toThrow(/authentication failed/);
    expect(() => open({ key: operator.privateKey, from: agent.publicKey, envelope: { ...env, kind: "event" }, expect: { ...ctx, kind: "event" } })).toThrow(/authentication failed/);
    // the wrong recipient key
    expect(() => open({ key: generateKeyPair().privateKey, from: agent.publicKey, envelope: env, expect: ctx })).toThrow(/authentication failed/);
  });

  test("truncated, reordered or modified message sequences do not open", async () => {
    const big = Uint8Array.from({ length: 3000 }, (_, i) => i & 0xff);
    const env = await sealInSlices({ to: operator.publicKey, from: agent.privateKey, ctx, plaintext: big, sliceBytes: 1000 });
    const o = (e: unknown) => open({ key: operator.privateKey, from: agent.publicKey, envelope: e, expect: ctx });
    expect(() => o({ ...env, ct: env.ct.slice(0, 2) })).toThrow(EnvelopeError);
    expect(() => o({ ...env, ct: [env.ct[1], env.ct[0], env.ct[2]] })).toThrow(EnvelopeError);
    const b = Buffer.from(env.ct[1]!, "base64");
    b[5]! ^= 1;
    expect(() => o({ ...env, ct: [env.ct[0], b.toString("base64"), env.ct[2]] })).toThrow(/authentication failed/);
  });

  test("malformed envelopes and keys are refused with exact errors", () => {
    const env = seal({ to: operator.publicKey, from: agent.privateKey, ctx, plaintext });
    const o = (e: unknown) => open({ key: operator.privateKey, from: agent.publicKey, envelope: e, expect: ctx });
    expect(() => o(null)).toThrow(/not an object/);
    expect(() => o({ ...env, alg: "AES" })).toThrow(/alg must be/);
    expect(() => o({ ...env, mode: "base" })).toThrow(/mode must be "auth"/);
    expect(() => o({ ...env, enc: "AAAA" })).toThrow(/enc must be 32 bytes, got 3/);
    expect(() => o({ ...env, ct: [] })).toThrow(/ct must be a list/);
    expect(() => o({ ...env, extra: 1 })).toThrow(/unknown field extra/);
    expect(() => seal({ to: new Uint8Array(32), from: agent.privateKey, ctx, plaintext })).toThrow(/low-order/);
    expect(() => parsePublicKey(b64(new Uint8Array(32)), "replyPublicKey")).toThrow(/not a usable X25519 public key/);
    expect(() => parsePublicKey("AAAA", "replyPublicKey")).toThrow(/must be a base64 X25519 public key/);
  });
});

describe("sealed access key", () => {
  const now = 1_800_000_000;
  const base = { agentId: "board-7", commandId: "read-1", agentPublicKey: agent.publicKey, operatorPrivateKey: operator.privateKey, accessKey: { documentNumber: "L898902C3", dateOfBirth: "740812", dateOfExpiry: "120415" }, expiresAt: now + 60 };
  const openIt = (envelope: unknown, over: Partial<Parameters<typeof openAccessKey>[0]> = {}) =>
    openAccessKey({ agentId: "board-7", commandId: "read-1", agentPrivateKey: agent.privateKey, operatorPublicKey: operator.publicKey, envelope, now, ...over });

  test("opens to the validated key; the envelope's length does not depend on the key's form", () => {
    const env = sealAccessKey(base);
    expect(openIt(env)).toEqual({ kind: "mrz", documentNumber: "L898902C3", dateOfBirth: "740812", dateOfExpiry: "120415" });
    const can = sealAccessKey({ ...base, accessKey: { can: "123456" } });
    expect(Buffer.from(can.ct[0]!, "base64").length).toBe(Buffer.from(env.ct[0]!, "base64").length);
    expect(Buffer.from(env.ct[0]!, "base64").length).toBe(SEALED_KEY_PLAINTEXT_BYTES + 16);
    expect(JSON.stringify(env)).not.toContain("L898902C3");
  });

  test("bound to agent, command id, expiry and the operator key (a replay with another reply key does not open)", () => {
    const env = sealAccessKey(base);
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof SealedKeyProblem ? e.code : String(e);
      }
      return "opened";
    };
    expect(code(() => openIt(env, { commandId: "read-2" }))).toBe("BAD_FIELD");
    expect(code(() => openIt(env, { agentId: "board-8" }))).toBe("BAD_FIELD");
    expect(code(() => openIt(env, { operatorPublicKey: generateKeyPair().publicKey }))).toBe("BAD_FIELD");
    expect(code(() => openIt(env, { now: now + 60 + 301 }))).toBe("EXPIRED");
    expect(code(() => openIt(sealAccessKey({ ...base, expiresAt: now + 3 * 86400 })))).toBe("BAD_FIELD");
    expect(code(() => openIt(sealAccessKey({ ...base, accessKey: { documentNumber: "L898902C3", dateOfBirth: "741399", dateOfExpiry: "120415" } })))).toBe("BAD_FIELD");
  });
});

describe("key files", () => {
  test("created 0600 on first use, read back the same; group-readable or malformed files are refused", () => {
    const f = join(dir, "state", "agent.key");
    const a = loadOrCreatePrivateKeyFile(f);
    expect(a.created).toBe(true);
    expect(statSync(f).mode & 0o777).toBe(0o600);
    const b = loadOrCreatePrivateKeyFile(f);
    expect(b.created).toBe(false);
    expect(b.publicKey).toEqual(a.publicKey);
    chmodSync(f, 0o640);
    expect(() => readPrivateKeyFile(f)).toThrow(/readable or writable by group or others \(mode 640\)/);
    const bad = join(dir, "bad.key");
    writeFileSync(bad, "not a key\n", { mode: 0o600 });
    expect(() => readPrivateKeyFile(bad)).toThrow(KeyFileError);
    expect(() => readPrivateKeyFile(dir)).toThrow(/not a regular file/);
  });
});

describe("mrtd-agent remote keygen / open", () => {
  const env = { ...process.env, HOME: dir, XDG_CONFIG_HOME: join(dir, ".config") };
  const run = (args: string[], stdin?: string) => {
    const r = Bun.spawnSync([process.execPath, CLI, "remote", ...args], { stdin: stdin === undefined ? "ignore" : Buffer.from(stdin), stdout: "pipe", stderr: "pipe", env });
    return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
  };

  test("--help for remote and each subcommand", () => {
    const r = run(["--help"]);
    expect(r.code).toBe(0);
    for (const s of ["read", "diagnose", "ping", "open", "keygen", "--broker", "--ca", "--cert", "--key", "--operator-key", "--config", "--agent"]) expect(r.out).toContain(s);
    for (const sub of ["read", "diagnose", "ping", "open", "keygen"]) expect(run([sub, "--help"]).code).toBe(0);
    expect(run(["read", "--help"]).out).toContain("--can");
  });

  test("keygen, then open a saved reply and event sealed by the pinned agent key; forged or moved ones are refused", () => {
    const keyFile = join(dir, "op.key");
    const g = run(["keygen", keyFile]);
    expect(g.code).toBe(0);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(run(["keygen", keyFile]).code).toBe(2); // never overwrites
    const opPub = parsePublicKey(g.out.trim(), "pub");
    const known = join(dir, "known-agents");
    writeFileSync(known, `board-7 ${b64(agent.publicKey)}\n`);
    const personal = { mrz: { documentNumber: "L898902C3", primaryIdentifier: "ERIKSSON" } };
    const reply = { id: "cmd-9", command: "read", kind: "result", ok: true, sealed: seal({ to: opPub, from: agent.privateKey, ctx: { kind: "reply", agentId: "board-7", id: "cmd-9" }, plaintext: enc.encode(JSON.stringify(personal)) }) };
    const replyFile = join(dir, "reply.json");
    writeFileSync(replyFile, JSON.stringify(reply));
    const args = ["--operator-key", keyFile, "--known-agents", known];
    const opened = run(["open", replyFile, ...args]);
    expect(opened.code).toBe(0);
    expect(JSON.parse(opened.out).sealed).toEqual(personal);
    expect(JSON.parse(run(["open", "-", ...args], readFileSync(replyFile, "utf8")).out).sealed).toEqual(personal);
    // moved to another command id
    const moved = run(["open", "-", ...args], JSON.stringify({ ...reply, id: "cmd-10" }));
    expect(moved.code).toBe(1);
    expect(moved.err).toContain("another command id");
    // forged: sealed by another key claiming to be board-7
    const forger = generateKeyPair();
    const forged = { ...reply, sealed: seal({ to: opPub, from: forger.privateKey, ctx: { kind: "reply", agentId: "board-7", id: "cmd-9" }, plaintext: enc.encode('{"mrz":{"documentNumber":"X"}}') }) };
    const f = run(["open", "-", ...args], JSON.stringify(forged));
    expect(f.code).toBe(1);
    expect(f.err).toContain("authentication failed");
    expect(f.out).toBe("");
    // an event's personalData
    const eventId = "0192f0a0-0000-7000-8000-000000000001";
    const event = { eventId, agentId: "board-7", type: "read", personalData: seal({ to: opPub, from: agent.privateKey, ctx: { kind: "event", agentId: "board-7", id: eventId }, plaintext: enc.encode(JSON.stringify(personal)) }) };
    expect(JSON.parse(run(["open", "-", ...args], JSON.stringify(event)).out).personalData).toEqual(personal);
    expect(run(["open", "-", ...args], JSON.stringify({ ...event, eventId: "x" })).err).toContain("another event id");
    // no pin for the agent: a usage error naming the way out
    const unknown = run(["open", "-", "--operator-key", keyFile, "--known-agents", join(dir, "none")], JSON.stringify(reply));
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain("no key pinned for agent board-7");
  });

  test("usage errors before any network: missing --agent, bad access key, a CAN that is not 6 digits or comes with an MRZ key", () => {
    expect(run(["ping"]).code).toBe(2);
    const bad = run(["read", "--agent", "a", "--doc", "L898902C3", "--dob", "741399", "--expiry", "120415"]);
    expect(bad.code).toBe(2);
    expect(bad.err).not.toContain("741399");
    const can = run(["read", "--agent", "a", "--can", "12345"]);
    expect(can.code).toBe(2);
    expect(can.err).not.toContain("12345");
    const both = run(["read", "--agent", "a", "--can", "123456", "--doc", "L898902C3"]);
    expect(both.code).toBe(2);
    expect(both.err).toContain("either --can");
  });
});
