/**
 * Active Authentication (ICAO 9303-11 §6.1): the reader's verifier (agent/verification/active-authentication.ts)
 * against the virtual chip's signer (test/virtual-passport/card-aa.ts, written separately) with
 * the committed TEST-ONLY keys; ISO/IEC 9796-2 scheme 1 trailers, ECDSA plain and DER, clones,
 * wrong challenges, DG14/DG15 parsing and hostile input.
 */
import { describe, expect, test } from "bun:test";
import { ParseError } from "../../agent/errors.ts";
import { AA_CHALLENGE_LENGTH, internalAuthenticateCommand } from "../../agent/icao/active-authentication.ts";
import { activeAuthenticate, verifyActiveAuthentication } from "../../agent/verification/active-authentication.ts";
import type { CommandApdu } from "../../agent/iso7816/apdu.ts";
import { encodeTlv } from "../../agent/iso7816/tlv.ts";
import { ID_AA, parseDg14 } from "../../agent/lds/dg14.ts";
import { parseDg15 } from "../../agent/lds/dg15.ts";
import { concat } from "../../agent/bytes.ts";
import { der } from "../../agent/pki/asn1.ts";
import { fromBig, modPow, toBig } from "../../agent/pki/bigint.ts";
import { digest } from "../../agent/pki/digest.ts";
import { OID } from "../../agent/pki/oids.ts";
import { aaSign, type AaHash, type AaPrivateKey } from "../virtual-passport/card-aa.ts";
import { loadVariantPki, type EcPrivateKey, type RsaPrivateKey } from "../virtual-passport/fixtures/pki-variants.ts";

const pki = await loadVariantPki();
const rnd = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const dg15Of = (spki: Uint8Array) => encodeTlv(0x6f, spki);
const dg14Of = (sigOid: string) => encodeTlv(0x6e, der.set(der.seq(der.oid(ID_AA), der.int(1), der.oid(sigOid))));
const rsaChip = (k: RsaPrivateKey, hash: AaHash, minimal = false): AaPrivateKey => ({ kind: "rsa", n: k.n, d: k.d, hash, minimal });
const ecChip = (k: EcPrivateKey, hash: AaHash, format: "plain" | "der"): AaPrivateKey => ({ kind: "ec", curve: k.curve, secret: k.secret, hash, format });

function check(dg15: Uint8Array, dg14: Uint8Array | undefined, chip: AaPrivateKey, challenge = rnd(8), signed = challenge) {
  return verifyActiveAuthentication(parseDg15(dg15), dg14 ? parseDg14(dg14) : undefined, challenge, aaSign(chip, signed, rnd));
}

describe("ISO/IEC 9796-2 scheme 1 (RSA AA)", () => {
  test.each([
    ["RSA-1024", "sha1", false, "RSA-1024 ISO/IEC 9796-2 SHA-1"],
    ["RSA-1024", "sha256", false, "RSA-1024 ISO/IEC 9796-2 SHA-256"],
    ["RSA-1024", "sha224", true, "RSA-1024 ISO/IEC 9796-2 SHA-224"],
    ["RSA-2048", "sha1", true, "RSA-2048 ISO/IEC 9796-2 SHA-1"],
    ["RSA-2048", "sha384", false, "RSA-2048 ISO/IEC 9796-2 SHA-384"],
    ["RSA-2048", "sha512", false, "RSA-2048 ISO/IEC 9796-2 SHA-512"],
  ] as const)("%s, %s trailer (min(s, n-s): %p): ok", (bits, hash, minimal, label) => {
    const key = bits === "RSA-1024" ? pki.aaRsa1024 : pki.aaRsa2048;
    expect(check(dg15Of(key.spki), undefined, rsaChip(key, hash, minimal))).toEqual({ status: "ok", algorithm: label });
  });

  test("a clone (another key) fails; so does a signature over another challenge", () => {
    const dg15 = dg15Of(pki.aaRsa1024.spki);
    const clone = check(dg15, undefined, rsaChip(pki.aaCloneRsa1024, "sha1"));
    expect(clone.status).toBe("failed");
    expect(clone.detail).toBeDefined();
    const replay = check(dg15, undefined, rsaChip(pki.aaRsa1024, "sha1"), rnd(8), rnd(8));
    expect(replay).toMatchObject({ status: "failed", detail: "hash of M1 || challenge differs" });
  });

  test("every single-bit corruption of the signature fails, never throws", () => {
    const dg15 = parseDg15(dg15Of(pki.aaRsa1024.spki));
    const challenge = rnd(8);
    const sig = aaSign(rsaChip(pki.aaRsa1024, "sha1"), challenge, rnd);
    for (let i = 0; i < sig.length; i += 7) {
      const bad = sig.slice();
      bad[i]! ^= 1 << i % 8;
      expect(verifyActiveAuthentication(dg15, undefined, challenge, bad).status).toBe("failed");
    }
    for (const s of [new Uint8Array(0), sig.subarray(1), new Uint8Array(129).fill(0xff), new Uint8Array(128).fill(0xff)]) {
      expect(verifyActiveAuthentication(dg15, undefined, challenge, s).status).toBe("failed");
    }
  });
});

describe("ISO/IEC 9796-2 recovered block fully validated (header, padding, trailer)", () => {
  const key = pki.aaRsa1024;
  const k = 128;
  /** Signs a hand-made recovered block F with the genuine key: only its layout can make it fail. */
  const signBlock = (f: Uint8Array) => fromBig(modPow(toBig(f), key.d, key.n), k);
  const rsa = () => parseDg15(dg15Of(key.spki));
  const block = (header: number[], m1: Uint8Array, challenge: Uint8Array, trailer = [0xbc]) => {
    const h = digest("sha1", concat(m1, challenge));
    const f = concat(Uint8Array.from(header), m1, h, Uint8Array.from(trailer));
    if (f.length !== k) throw new Error(`block of ${f.length} bytes`);
    return f;
  };

  test("6A || M1 || H || BC verifies; the same with padding nibbles BB..BA before M1 does not", () => {
    const challenge = rnd(8);
    const m1 = rnd(k - 1 - 20 - 1);
    expect(verifyActiveAuthentication(rsa(), undefined, challenge, signBlock(block([0x6a], m1, challenge))).status).toBe("ok");
    // a scan for the first nibble A (the old check) would take M1 after "BA" and accept this
    const padded = block([0x6b, 0xbb, 0xba], m1.subarray(2), challenge);
    const r = verifyActiveAuthentication(rsa(), undefined, challenge, signBlock(padded));
    expect(r).toMatchObject({ status: "failed", detail: "9796-2 header 6B instead of 6A (padding in a partial-recovery block)" });
  });

  test("total recovery (header 4A) and a wrong start (2A) fail; so does an unknown trailer or hash identifier", () => {
    const challenge = rnd(8);
    const m1 = rnd(k - 1 - 20 - 1);
    expect(verifyActiveAuthentication(rsa(), undefined, challenge, signBlock(block([0x4a], m1, challenge))).detail).toContain("total recovery");
    expect(verifyActiveAuthentication(rsa(), undefined, challenge, signBlock(block([0x2a], m1, challenge))).detail).toBe("no 9796-2 header in the recovered block");
    const twoByte = rnd(k - 1 - 20 - 2);
    expect(verifyActiveAuthentication(rsa(), undefined, challenge, signBlock(block([0x6a], twoByte, challenge, [0x31, 0xcc]))).detail).toBe("unknown 9796-2 hash identifier 31");
    expect(verifyActiveAuthentication(rsa(), undefined, challenge, signBlock(block([0x6a], twoByte, challenge, [0x33, 0xdc]))).status).toBe("failed");
  });
});

describe("ECDSA AA (BSI TR-03111) with DG14's algorithm", () => {
  const dg15 = dg15Of(pki.aaEcP256.spki);
  test.each([
    [OID.ecdsaPlainSha256, "sha256", "plain", "ECDSA P-256 SHA-256 (plain)"],
    [OID.ecdsaPlainSha1, "sha1", "plain", "ECDSA P-256 SHA-1 (plain)"],
    [OID.ecdsaWithSha384, "sha384", "der", "ECDSA P-256 SHA-384 (der)"],
    // chips whose DG14 says plain but send DER (and the reverse) are accepted
    [OID.ecdsaPlainSha256, "sha256", "der", "ECDSA P-256 SHA-256 (der)"],
    [OID.ecdsaWithSha256, "sha256", "plain", "ECDSA P-256 SHA-256 (plain)"],
  ] as const)("DG14 %s, chip signs %s %s: ok", (oid, hash, format, label) => {
    expect(check(dg15, dg14Of(oid), ecChip(pki.aaEcP256, hash, format))).toEqual({ status: "ok", algorithm: label });
  });

  test("the hash DG14 names is the one used: a chip hashing differently fails", () => {
    expect(check(dg15, dg14Of(OID.ecdsaPlainSha256), ecChip(pki.aaEcP256, "sha1", "plain")).status).toBe("failed");
  });

  test("without DG14 the standard hashes are tried", () => {
    expect(check(dg15, undefined, ecChip(pki.aaEcP256, "sha384", "plain"))).toEqual({ status: "ok", algorithm: "ECDSA P-256 SHA-384 (plain)" });
  });

  test("another EC key (a clone) fails", () => {
    const other: AaPrivateKey = { kind: "ec", curve: "P-256", secret: pki.aaEcP256.secret.map((b, i) => (i === 31 ? b ^ 1 : b)), hash: "sha256", format: "plain" };
    expect(check(dg15, dg14Of(OID.ecdsaPlainSha256), other).status).toBe("failed");
  });
});

describe("DG15 and DG14 parsing (9303-10 §4.7.14-15)", () => {
  test("DG15 RSA and EC keys; DG14 lists its SecurityInfos by name", () => {
    expect(parseDg15(dg15Of(pki.aaRsa1024.spki)).label).toBe("RSA-1024");
    expect(parseDg15(dg15Of(pki.aaRsa2048.spki)).label).toBe("RSA-2048");
    expect(parseDg15(dg15Of(pki.aaEcP256.spki)).label).toBe("ECDSA P-256");
    const dg14 = encodeTlv(
      0x6e,
      der.set(der.seq(der.oid("0.4.0.127.0.7.2.2.3.2.2"), der.int(1)), der.seq(der.oid(ID_AA), der.int(1), der.oid(OID.ecdsaPlainSha256)), der.seq(der.oid("1.2.3.4"), der.int(0))),
    );
    const parsed = parseDg14(dg14);
    expect(parsed.securityInfos.map((i) => i.name)).toEqual(["ChipAuthentication", "ActiveAuthentication", undefined]);
    expect(parsed.activeAuthentication).toEqual({ version: 1, signatureAlgorithm: OID.ecdsaPlainSha256, hash: "sha256", format: "plain" });
  });

  test("an unknown key algorithm is reported, not guessed", () => {
    const dg15 = dg15Of(der.seq(der.seq(der.oid("1.2.840.10040.4.1")), der.bits(Uint8Array.of(2, 1, 5))));
    expect(parseDg15(dg15).key.kind).toBe("unsupported");
  });

  test("hostile DG14/DG15: every truncation and wrong tag is a ParseError", () => {
    const files = [dg15Of(pki.aaRsa1024.spki), dg15Of(pki.aaEcP256.spki), dg14Of(OID.ecdsaPlainSha256)];
    for (const f of files) {
      const parse = f[0] === 0x6e ? parseDg14 : parseDg15;
      for (let n = 0; n < f.length; n++) expect(() => parse(f.subarray(0, n))).toThrow(ParseError);
      const wrongTag = f.slice();
      wrongTag[0] = 0x61;
      expect(() => parse(wrongTag)).toThrow(ParseError);
    }
  });
});

describe("activeAuthenticate over a send function", () => {
  const dg15 = dg15Of(pki.aaRsa1024.spki);

  test("sends 00 88 00 00 08 <fresh challenge> Le 00 and verifies the answer", async () => {
    const sent: CommandApdu[] = [];
    const chip = rsaChip(pki.aaRsa1024, "sha1");
    const send = async (cmd: CommandApdu) => {
      sent.push(cmd);
      return { data: aaSign(chip, cmd.data!, rnd), sw: 0x9000 };
    };
    expect(await activeAuthenticate(send, { dg15, random: rnd })).toEqual({ status: "ok", algorithm: "RSA-1024 ISO/IEC 9796-2 SHA-1" });
    expect(await activeAuthenticate(send, { dg15, random: rnd })).toMatchObject({ status: "ok" });
    expect(sent.map((c) => [c.cla, c.ins, c.p1, c.p2, c.data?.length, c.ne])).toEqual([
      [0, 0x88, 0, 0, AA_CHALLENGE_LENGTH, 256],
      [0, 0x88, 0, 0, AA_CHALLENGE_LENGTH, 256],
    ]);
    expect(sent[0]!.data).not.toEqual(sent[1]!.data);
  });

  test("RSA-2048 asks for an extended Le (its signature does not fit a short SM response)", async () => {
    let ne: number | undefined;
    const chip = rsaChip(pki.aaRsa2048, "sha256");
    const r = await activeAuthenticate(
      async (cmd) => {
        ne = cmd.ne;
        return { data: aaSign(chip, cmd.data!, rnd), sw: 0x9000 };
      },
      { dg15: dg15Of(pki.aaRsa2048.spki), random: rnd },
    );
    expect(r.status).toBe("ok");
    expect(ne).toBe(65536);
  });

  test("a refusal is an error with the status word; a malformed DG15 an error; a lost link an error", async () => {
    expect(await activeAuthenticate(async () => ({ data: new Uint8Array(0), sw: 0x6d00 }), { dg15, random: rnd })).toMatchObject({ status: "error", sw: 0x6d00 });
    expect((await activeAuthenticate(async () => ({ data: new Uint8Array(0), sw: 0x9000 }), { dg15: dg15.subarray(0, 20), random: rnd })).status).toBe("error");
    const { TransportError } = await import("../../agent/errors.ts");
    const lost = await activeAuthenticate(
      async () => {
        throw new TransportError("SCARD_W_REMOVED_CARD", "card removed", { retryable: true });
      },
      { dg15, random: rnd },
    );
    expect(lost).toMatchObject({ status: "error", detail: "INTERNAL AUTHENTICATE: card removed" });
  });

  test("the command builder refuses a challenge that is not 8 bytes", () => {
    expect(() => internalAuthenticateCommand(new Uint8Array(7))).toThrow(RangeError);
  });
});

describe("virtual chip INTERNAL AUTHENTICATE (card.ts)", () => {
  test("outside secure messaging 6982; without an AA key 6D00", async () => {
    const { VirtualPassport } = await import("../virtual-passport/card.ts");
    const { loadProfile } = await import("../virtual-passport/fixtures/index.ts");
    const { encodeCommand } = await import("../../agent/iso7816/apdu.ts");
    const ia = encodeCommand(internalAuthenticateCommand(rnd(8)));
    const sw = (r: Uint8Array) => (r[r.length - 2]! << 8) | r[r.length - 1]!;
    const withKey = await loadProfile("aa-rsa");
    expect(withKey.files.aaKey?.kind).toBe("rsa");
    expect(sw(new VirtualPassport(withKey.files, { mrzKey: withKey.mrzKey }).handle(ia))).toBe(0x6982);
    const without = await loadProfile("td3");
    expect(sw(new VirtualPassport(without.files, { mrzKey: without.mrzKey }).handle(ia))).toBe(0x6d00);
  });
});
