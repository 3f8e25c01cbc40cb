import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { x25519 } from "@noble/curves/ed25519.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ENVELOPE_ALG, EnvelopeError, b64, chacha20Poly1305InSlices, eventInfo, generateKeyPair, openSealed, publicKeyOf, replyInfo, sealForRecipient, sealForRecipientInSlices } from "../../agent/service/envelope.ts";
import { makeTempDir, removeTempDirs } from "../support/temp-dir.ts";

afterAll(removeTempDirs);

const enc = new TextEncoder();
const dec = new TextDecoder();
const CLI = resolve(import.meta.dir, "../../deploy/decrypt-reply.ts");

describe("sealed envelope (X25519-HKDF-SHA256-ChaCha20Poly1305)", () => {
  const { privateKey, publicKey } = generateKeyPair();
  const info = replyInfo("board-7", "cmd-1");
  const plaintext = enc.encode(JSON.stringify({ documentNumber: "L898902C3", surname: "ERIKSSON" }));

  test("RFC 7748 section 6.1: public keys by the ladder (X25519(k, 9)) match the RFC and noble's table path", () => {
    const hex = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));
    const alice = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    const bob = hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    expect(Buffer.from(publicKeyOf(alice)).toString("hex")).toBe("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    expect(Buffer.from(publicKeyOf(bob)).toString("hex")).toBe("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    for (let i = 0; i < 8; i++) {
      const k = generateKeyPair();
      expect(Buffer.from(k.publicKey).toString("hex")).toBe(Buffer.from(x25519.getPublicKey(k.privateKey)).toString("hex"));
    }
  });

  test("RFC 8439 section 2.8.2: the sliced AEAD gives the RFC's tag and noble's one-shot bytes", async () => {
    const hex = (h: string) => Uint8Array.from(Buffer.from(h.replace(/\s/g, ""), "hex"));
    const key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    const nonce = hex("070000004041424344454647");
    const aadBytes = hex("50515253c0c1c2c3c4c5c6c7");
    const pt = enc.encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
    const sealed = await chacha20Poly1305InSlices(key, nonce, aadBytes, pt, 64);
    expect(Buffer.from(sealed.subarray(pt.length)).toString("hex")).toBe("1ae10b594f09e26a7e902ecbd0600691");
    expect(Buffer.from(sealed.subarray(0, 16)).toString("hex")).toBe("d31a8d34648e60db7b86afbc53ef7ec2");
    expect(sealed).toEqual(chacha20poly1305(key, nonce, aadBytes).encrypt(pt));
    // every length around block and slice boundaries, every slice size, against the one-shot
    for (const n of [0, 1, 15, 16, 63, 64, 65, 127, 4095, 4096, 4097, 30_001]) {
      const data = Uint8Array.from({ length: n }, (_, i) => (i * 7 + n) & 0xff);
      const oneShot = chacha20poly1305(key, nonce, aadBytes.subarray(0, n % 13)).encrypt(data);
      for (const slice of [64, 128, 4096]) expect(await chacha20Poly1305InSlices(key, nonce, aadBytes.subarray(0, n % 13), data, slice)).toEqual(oneShot);
    }
    await expect(chacha20Poly1305InSlices(key, nonce, aadBytes, pt, 100)).rejects.toThrow("sliceBytes must be a positive multiple of 64, got 100");
  });

  test("sealing in slices lets the event loop run and gives the same envelope as the one-shot", async () => {
    let n = 0;
    const fixed = (len: number) => Uint8Array.from({ length: len }, () => ++n & 0xff);
    const big = Uint8Array.from({ length: 40_000 }, (_, i) => i & 0xff);
    n = 0;
    const oneShot = sealForRecipient(publicKey, big, info, fixed);
    n = 0;
    // Other work runs before it finishes (a one-shot seal would resolve before any macrotask).
    let ranBetween = false;
    const sealing = sealForRecipientInSlices(publicKey, big, info, 1024, fixed);
    setImmediate(() => (ranBetween = true));
    const sliced = await sealing;
    expect(ranBetween).toBe(true);
    expect(sliced).toEqual(oneShot);
    expect(openSealed(privateKey, sliced, info)).toEqual(big);
  });

  test("round trip; ciphertext hides the plaintext; fresh ephemeral key and nonce each time", () => {
    const a = sealForRecipient(publicKey, plaintext, info);
    const b = sealForRecipient(publicKey, plaintext, info);
    expect(a.alg).toBe(ENVELOPE_ALG);
    expect(dec.decode(openSealed(privateKey, a))).toBe(dec.decode(plaintext));
    expect(dec.decode(openSealed(privateKey, b, info))).toBe(dec.decode(plaintext));
    expect(a.epk).not.toBe(b.epk);
    expect(a.ct).not.toBe(b.ct);
    expect(Buffer.from(a.ct, "base64").length).toBe(plaintext.length + 16);
    expect(JSON.stringify(a)).not.toContain("ERIKSSON");
  });

  test("same input and randomness give the same envelope (deterministic given its random source)", () => {
    let n = 0;
    const rnd = (len: number) => Uint8Array.from({ length: len }, () => (n++ * 37) & 0xff);
    const a = sealForRecipient(publicKey, plaintext, info, rnd);
    n = 0;
    const b = sealForRecipient(publicKey, plaintext, info, rnd);
    expect(a).toEqual(b);
    // and the derivation is X25519(esk, pk): recompute the epk independently
    n = 0;
    expect(a.epk).toBe(b64(x25519.getPublicKey(rnd(32))));
  });

  test("tampering with ct, nonce, epk or info, or the wrong key, fails authentication", () => {
    const env = sealForRecipient(publicKey, plaintext, info);
    const flip = (s: string, i: number) => {
      const bytes = Buffer.from(s, "base64");
      bytes[i] = bytes[i]! ^ 1;
      return bytes.toString("base64");
    };
    expect(() => openSealed(privateKey, { ...env, ct: flip(env.ct, 0) })).toThrow(EnvelopeError);
    expect(() => openSealed(privateKey, { ...env, ct: flip(env.ct, Buffer.from(env.ct, "base64").length - 1) })).toThrow(/authentication failed/);
    expect(() => openSealed(privateKey, { ...env, nonce: flip(env.nonce, 3) })).toThrow(/authentication failed/);
    expect(() => openSealed(privateKey, { ...env, epk: flip(env.epk, 5) })).toThrow(EnvelopeError);
    expect(() => openSealed(privateKey, { ...env, info: replyInfo("board-7", "cmd-2") })).toThrow(/authentication failed/);
    expect(() => openSealed(privateKey, env, replyInfo("board-8", "cmd-1"))).toThrow(/another context/);
    expect(() => openSealed(generateKeyPair().privateKey, env)).toThrow(/authentication failed/);
  });

  test("malformed envelopes and keys are refused with exact errors", () => {
    const env = sealForRecipient(publicKey, plaintext, info);
    expect(() => openSealed(privateKey, null)).toThrow(/not an object/);
    expect(() => openSealed(privateKey, { ...env, alg: "AES" })).toThrow(/alg must be/);
    expect(() => openSealed(privateKey, { ...env, nonce: "AAAA" })).toThrow(/nonce must be 12 bytes, got 3/);
    expect(() => openSealed(privateKey, { ...env, epk: "not base64!" })).toThrow(/epk is not base64/);
    expect(() => openSealed(privateKey, { ...env, ct: "AAAA" })).toThrow(/shorter than the authentication tag/);
    expect(() => sealForRecipient(new Uint8Array(31), plaintext, info)).toThrow(/recipientPublicKey must be 32 bytes, got 31/);
    // a low-order point (all zero) gives an all-zero shared secret: refused
    expect(() => sealForRecipient(new Uint8Array(32), plaintext, info)).toThrow(/not a valid X25519 public key/);
  });
});

describe("deploy/decrypt-reply.ts CLI", () => {
  const dir = makeTempDir("decrypt");
  const run = (args: string[], stdin?: string) => {
    const r = Bun.spawnSync([process.execPath, CLI, ...args], { stdin: stdin === undefined ? "ignore" : Buffer.from(stdin), stdout: "pipe", stderr: "pipe" });
    return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
  };

  test("--help", () => {
    const r = run(["--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("--gen-key");
  });

  test("gen-key, then decrypt a reply from a file and from stdin; wrong key fails", () => {
    const keyFile = join(dir, "op.key");
    const g = run(["--gen-key", keyFile]);
    expect(g.code).toBe(0);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const pub = new Uint8Array(Buffer.from(g.out.trim(), "base64"));
    expect(pub.length).toBe(32);
    const personal = { documentNumber: "L898902C3", primaryIdentifier: "ERIKSSON" };
    const reply = { id: "cmd-9", command: "read", kind: "result", ok: true, result: { outcome: "success", personalData: sealForRecipient(pub, enc.encode(JSON.stringify(personal)), replyInfo("board-7", "cmd-9")) } };
    const replyFile = join(dir, "reply.json");
    writeFileSync(replyFile, JSON.stringify(reply));
    const fromFile = run(["--key", keyFile, replyFile]);
    expect(fromFile.code).toBe(0);
    expect(JSON.parse(fromFile.out).result.personalData).toEqual(personal);
    const fromStdin = run(["--key", keyFile, "-"], readFileSync(replyFile, "utf8"));
    expect(JSON.parse(fromStdin.out).result.personalData).toEqual(personal);
    // an envelope bound to another command id is refused
    const moved = run(["--key", keyFile, "-"], JSON.stringify({ ...reply, id: "cmd-10" }));
    expect(moved.code).toBe(1);
    expect(moved.err).toContain("another command id");
    const other = join(dir, "other.key");
    run(["--gen-key", other]);
    const wrong = run(["--key", other, replyFile]);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain("authentication failed");
    expect(wrong.out).not.toContain("ERIKSSON");
    // gen-key never overwrites
    expect(run(["--gen-key", keyFile]).code).toBe(1);
  });

  test("a read event's personalData (telemetry.include_personal_data) opens; moved to another event it is refused", () => {
    const keyFile = join(dir, "fleet.key");
    const pub = new Uint8Array(Buffer.from(run(["--gen-key", keyFile]).out.trim(), "base64"));
    const personal = { mrz: { documentNumber: "L898902C3" } };
    const eventId = "0192f0a0-0000-7000-8000-000000000001";
    const event = { eventId, agentId: "board-7", type: "read", outcome: "success", personalData: sealForRecipient(pub, enc.encode(JSON.stringify(personal)), eventInfo("board-7", eventId)) };
    const opened = run(["--key", keyFile, "-"], JSON.stringify(event));
    expect(opened.code).toBe(0);
    expect(JSON.parse(opened.out).personalData).toEqual(personal);
    const moved = run(["--key", keyFile, "-"], JSON.stringify({ ...event, eventId: "0192f0a0-0000-7000-8000-000000000002" }));
    expect(moved.code).toBe(1);
    expect(moved.err).toContain("sealed for another event");
  });
});
