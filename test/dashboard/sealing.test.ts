/**
 * The page's sealing (agent/dashboard/web/remote.ts) against the agent's own code: a sealed
 * access key made by the page opens with the agent's openAccessKey (AgentKey), a result the
 * agent seals (AgentKey.sealReply) opens in the page, and nothing else does (another sender,
 * another command, an unsealed "result"). The server's check (agent/dashboard/commands.ts)
 * takes what the page builds and refuses anything holding an access key or MRZ text in clear.
 * The page bundle is built the way the dashboard builds it.
 */
import { describe, expect, test } from "bun:test";
import { AgentKey } from "../../agent/service/agent-key.ts";
import { b64, generateKeyPair, parsePublicKey, seal } from "../../agent/service/envelope.ts";
import { openAccessKey, SealedKeyProblem } from "../../agent/service/sealed-access-key.ts";
import { AccessKeyProblem } from "../../agent/service/access-key.ts";
import { checkCommand, CommandRefused } from "../../agent/dashboard/commands.ts";
import { buildAssets } from "../../agent/dashboard/server.ts";
import { keyFingerprint, prepareCommand, RemoteOpenError } from "../../agent/dashboard/web/remote.ts";
import { ERROR_HELP } from "../../agent/dashboard/web/error-help.ts";
import { COMMAND_ERROR_CODES } from "../../agent/service/command-types.ts";
import { SPECIMEN_KEY } from "../support/e2e.ts";

const AGENT = "kiosk-7";
const agentPair = generateKeyPair();
const agentKey = new AgentKey(AGENT, agentPair.privateKey.slice(), agentPair.publicKey);
const agentPublic = b64(agentPair.publicKey);

describe("page sealing with the agent's code", () => {
  test("a sealed access key from the page opens with the agent's key, for that command and reply key only", () => {
    const cmd = prepareCommand(AGENT, agentPublic, { name: "read", accessKey: { ...SPECIMEN_KEY }, timeoutS: 20 });
    const body = cmd.body;
    expect(body).toMatchObject({ command: "read", id: cmd.id, timeoutS: 20, includePersonalData: true });
    const text = JSON.stringify(body);
    for (const secret of Object.values(SPECIMEN_KEY)) expect(text).not.toContain(secret);
    const operator = parsePublicKey(body.replyPublicKey, "replyPublicKey");
    const opened = agentKey.openAccessKey(cmd.id, operator, body.sealedAccessKey);
    expect(opened).toEqual({ kind: "mrz", ...SPECIMEN_KEY });
    // Bound to the command id and the reply key it came with.
    expect(() => agentKey.openAccessKey("read-other", operator, body.sealedAccessKey)).toThrow(SealedKeyProblem);
    expect(() => agentKey.openAccessKey(cmd.id, generateKeyPair().publicKey, body.sealedAccessKey)).toThrow(SealedKeyProblem);
    // exp: the card wait + 90 s, as the CLI; an agent clock 10 minutes ahead refuses it EXPIRED.
    const later = Math.floor(Date.now() / 1000) + 20 + 90 + 301;
    try {
      openAccessKey({ agentId: AGENT, commandId: cmd.id, agentPrivateKey: agentPair.privateKey, operatorPublicKey: operator, envelope: body.sealedAccessKey, now: later });
      throw new Error("opened after exp");
    } catch (e) {
      expect((e as SealedKeyProblem).code).toBe("EXPIRED");
    }
  });

  test("a CAN seals too; a bad MRZ key is refused in the page by the agent's rules, naming the field only", () => {
    const cmd = prepareCommand(AGENT, agentPublic, { name: "read", accessKey: { can: "123456" } });
    expect(agentKey.openAccessKey(cmd.id, parsePublicKey(cmd.body.replyPublicKey, "k"), cmd.body.sealedAccessKey)).toEqual({ kind: "can", can: "123456" });
    try {
      prepareCommand(AGENT, agentPublic, { name: "read", accessKey: { ...SPECIMEN_KEY, dateOfBirth: "741312" } });
      throw new Error("accepted");
    } catch (e) {
      expect(e).toBeInstanceOf(AccessKeyProblem);
      expect((e as Error).message).not.toContain("741312");
    }
    expect(() => prepareCommand(AGENT, agentPublic, { name: "read", accessKey: { documentNumber: "<<<<", dateOfBirth: "740812", dateOfExpiry: "120415" } })).toThrow(AccessKeyProblem);
    expect(() => prepareCommand(AGENT, b64(new Uint8Array(32)), { name: "ping" })).toThrow(/not a usable X25519 public key/);
  });

  test("the agent's sealed result opens in the page; forgeries and other commands' results do not", async () => {
    const cmd = prepareCommand(AGENT, agentPublic, { name: "read", accessKey: { ...SPECIMEN_KEY } });
    const to = parsePublicKey(cmd.body.replyPublicKey, "k");
    const face = new Uint8Array(30_000).map((_, i) => (i * 7) & 0xff);
    const result = { eventId: "e-1", report: { mrz: { documentNumber: "L898902C3" } }, faceImage: { format: "jpeg", image: b64(face) } };
    const sealed = await agentKey.sealReply(cmd.id, to, result);
    expect(sealed.ct.length).toBeGreaterThan(1); // several 4 KiB messages, as a face makes
    expect(cmd.openResult({ kind: "result", ok: true, id: cmd.id, sealed })).toEqual(result);

    const impostor = generateKeyPair();
    const forged = seal({ to, from: impostor.privateKey, ctx: { kind: "reply", agentId: AGENT, id: cmd.id }, plaintext: new TextEncoder().encode("{}") });
    expect(() => cmd.openResult({ kind: "result", ok: true, sealed: forged })).toThrow(RemoteOpenError);
    const other = prepareCommand(AGENT, agentPublic, { name: "ping" });
    const forOther = await agentKey.sealReply(other.id, parsePublicKey(other.body.replyPublicKey, "k"), { pong: true });
    expect(() => cmd.openResult({ kind: "result", ok: true, sealed: forOther })).toThrow(RemoteOpenError);
    expect(() => cmd.openResult({ kind: "result", ok: true, result: { pong: true } })).toThrow(/not sealed/);
    cmd.forget();
    expect(() => cmd.openResult({ kind: "result", ok: true, sealed })).toThrow(/gone/);
    expect(other.openResult({ kind: "result", ok: true, sealed: forOther })).toEqual({ pong: true });
  });

  test("the page explains every code a reply can carry", () => {
    expect(COMMAND_ERROR_CODES.filter((c) => !Object.hasOwn(ERROR_HELP, c))).toEqual([]);
  });

  test("fingerprint: 16 bytes of SHA-256 in hex pairs", () => {
    expect(keyFingerprint(agentPublic)).toMatch(/^([0-9A-F]{2}:){15}[0-9A-F]{2}$/);
    expect(keyFingerprint(agentPublic)).not.toBe(keyFingerprint(b64(generateKeyPair().publicKey)));
  });
});

describe("server check of a command from the page", () => {
  const refused = (agentId: string, body: unknown): CommandRefused => {
    try {
      checkCommand(agentId, body);
    } catch (e) {
      if (e instanceof CommandRefused) return e;
      throw e;
    }
    throw new Error("accepted");
  };

  test("takes what the page builds, publishes only the known fields", () => {
    const read = prepareCommand(AGENT, agentPublic, { name: "read", accessKey: { ...SPECIMEN_KEY }, files: ["DG1", "DG2"], reader: "Virtual PCD" });
    const c = checkCommand(AGENT, read.body);
    expect(c).toMatchObject({ id: read.id, name: "read", reader: "Virtual PCD", timeoutS: 30 + 90 });
    expect<unknown>(c.body).toEqual(read.body);
    const diag = prepareCommand(AGENT, agentPublic, { name: "diagnose", count: 5 });
    expect(checkCommand(AGENT, diag.body).body).toEqual({ id: diag.id, command: "diagnose", replyPublicKey: diag.body.replyPublicKey, count: 5 });
    const ping = prepareCommand(AGENT, agentPublic, { name: "ping" });
    expect(checkCommand(AGENT, ping.body).timeoutS).toBe(15);
  });

  test("refuses an access key or MRZ text in clear, and anything out of bounds", () => {
    const read = prepareCommand(AGENT, agentPublic, { name: "read", accessKey: { ...SPECIMEN_KEY } });
    const b = read.body as unknown as Record<string, unknown>;
    const messages: string[] = [];
    const expectCode = (body: unknown, code: string, agentId = AGENT) => {
      const e = refused(agentId, body);
      expect(e.code).toBe(code);
      expect(e.status).toBe(400);
      messages.push(e.message);
    };
    expectCode({ ...b, accessKey: SPECIMEN_KEY }, "PLAINTEXT_ACCESS_KEY");
    expectCode({ ...b, sealedAccessKey: undefined, documentNumber: SPECIMEN_KEY.documentNumber }, "PLAINTEXT_ACCESS_KEY");
    expectCode({ ...b, sealedAccessKey: { ...(b.sealedAccessKey as object), mrz: "x" } }, "PLAINTEXT_ACCESS_KEY");
    expectCode({ ...b, reader: "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<" }, "PLAINTEXT_ACCESS_KEY");
    expectCode({ ...b, reader: "L898902C36UTO7408122F1204159ZE184226B<<<<<10" }, "PLAINTEXT_ACCESS_KEY");
    expectCode({ ...b, can: "123456" }, "PLAINTEXT_ACCESS_KEY");
    expectCode({ ...b, sealedAccessKey: undefined }, "MISSING_FIELD");
    expectCode(b, "BAD_FIELD", "kiosk-8"); // sealed for another agent
    expectCode({ ...b, id: "read-1" }, "BAD_FIELD");
    expectCode({ ...b, timeoutS: 601 }, "BAD_FIELD");
    expectCode({ ...b, files: ["DG1", "DG1"] }, "BAD_FIELD");
    expectCode({ ...b, extra: 1 }, "BAD_FIELD");
    expectCode({ ...b, replyPublicKey: b64(new Uint8Array(32)) }, "BAD_FIELD");
    expectCode({ ...b, sealedAccessKey: { ...(b.sealedAccessKey as { ct: string[] }), ct: ["AAAA"] } }, "BAD_FIELD");
    expectCode({ ...b, command: "reboot" }, "UNKNOWN_COMMAND");
    const diag = prepareCommand(AGENT, agentPublic, { name: "diagnose", count: 5 }).body;
    expectCode({ ...diag, count: 0 }, "BAD_FIELD");
    expectCode({ ...diag, count: 1001 }, "BAD_FIELD");
    expectCode({ ...diag, reader: "x".repeat(129) }, "BAD_FIELD");
    for (const m of messages) for (const secret of Object.values(SPECIMEN_KEY)) expect(m).not.toContain(secret);
  });

  test("the page bundles the agent's modules for the browser (no Node or Bun API)", async () => {
    const a = await buildAssets();
    expect(a.js.length).toBeGreaterThan(10_000);
    expect(a.js).not.toMatch(/["']node:|\bBuffer\.|\bBun\./);
    expect(a.js).toContain("mrtd-agent sealed v2"); // envelope.ts's HPKE info, from the agent's module
  });
});
