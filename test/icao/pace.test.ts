import { describe, expect, test } from "bun:test";
import { fromHex, hex } from "../../agent/bytes.ts";
import { standardGroup, type DhGroup, type EcGroup } from "../../agent/crypto/key-agreement.ts";
import { AccessDeniedError, PaceError } from "../../agent/errors.ts";
import { deriveKey } from "../../agent/icao/kdf.ts";
import {
  authenticationToken,
  bytesToBig,
  decryptNonce,
  generalAuthenticate,
  integratedMappingPrf,
  mseSetAt,
  passwordBytes,
  performPace,
  publicKeyDataObject,
  sessionKeys,
  type PaceParameters,
} from "../../agent/icao/pace.ts";
import { encodeCommand } from "../../agent/iso7816/apdu.ts";
import { paceAlgorithm, paceDomain, parseCardAccess, groupFor } from "../../agent/lds/security-infos.ts";
import { ScriptedTransport } from "../../agent/transport/scripted-transport.ts";
import g1 from "../vectors/icao-9303-11-g1-pace-ecdh-gm.json";
import g12 from "../vectors/icao-9303-11-g1-2-pace-dh-gm.json";
import h1 from "../vectors/icao-9303-11-h1-pace-ecdh-im.json";

const row = (prefix: string) => g1.rows.find((r) => r.what.startsWith(prefix))!.hex;
const MRZ = { kind: "mrz" as const, key: { documentNumber: "T22000129", dateOfBirth: "640812", dateOfExpiry: "101031" } };
const point = (x: string, y: string) => `04${row(x)}${row(y)}`;

/** random(n) that makes the group's reduction (r mod (order-1)) + 1 give exactly `keys`, in turn. */
function keySource(...keys: string[]): (n: number) => Uint8Array {
  let i = 0;
  return (n) => {
    const k = BigInt(`0x${keys[i++]!}`) - 1n;
    return fromHex(k.toString(16).padStart(2 * n, "0"));
  };
}

function g1Parameters(): PaceParameters {
  const infos = parseCardAccess(fromHex(row("EF.CardAccess")));
  const info = infos.pace[0]!;
  return { ...info.protocol, parameterId: info.parameterId, group: groupFor(paceDomain(infos, info)!)! };
}

describe("ICAO 9303-11 Appendix G.1: PACE GM, ECDH brainpoolP256r1, AES-128, value by value", () => {
  test("EF.CardAccess names id-PACE-ECDH-GM-AES-CBC-CMAC-128, version 2, parameter id 13", () => {
    const p = g1Parameters();
    expect(p).toMatchObject({ oid: "0.4.0.127.0.7.2.2.4.2.2", agreement: "ECDH", mapping: "GM", cipher: "AES-128", parameterId: 13 });
    expect(p.group.name).toBe("brainpoolP256r1");
  });
  test("password, K_pi and the nonce", () => {
    expect(hex(passwordBytes(MRZ))).toBe(row("Password"));
    const kPi = deriveKey(passwordBytes(MRZ), 3, "AES-128");
    expect(hex(kPi)).toBe(row("K_π"));
    expect(hex(decryptNonce(kPi, fromHex(row("Encrypted nonce z")), "AES-128"))).toBe(row("Decrypted nonce s"));
  });
  test("mapping: both mapping public keys, H from either side, the mapped generator", () => {
    const g = g1Parameters().group as EcGroup;
    const pcdSk = bytesToBig(fromHex(row("PCD mapping private key")));
    const piccSk = bytesToBig(fromHex(row("PICC mapping private key")));
    const pcdPk = point("PCD mapping public key X", "PCD mapping public key Y");
    const piccPk = point("PICC mapping public key X", "PICC mapping public key Y");
    expect(hex(g.publicKey(pcdSk))).toBe(pcdPk);
    expect(hex(g.publicKey(piccSk))).toBe(piccPk);
    const h = point("Shared point H, X", "Shared point H, Y");
    expect(hex(g.scalarMultiply(pcdSk, fromHex(piccPk)))).toBe(h);
    expect(hex(g.scalarMultiply(piccSk, fromHex(pcdPk)))).toBe(h);
    const s = bytesToBig(fromHex(row("Decrypted nonce s")));
    const mapped = g.mapGeneric(s, pcdSk, fromHex(piccPk));
    expect(hex(mapped.generator())).toBe(point("Mapped generator G\u0303, X", "Mapped generator G\u0303, Y"));
    expect(hex(g.mapGeneric(s, piccSk, fromHex(pcdPk)).generator())).toBe(hex(mapped.generator()));
  });
  test("key agreement on the mapped generator, session keys and both tokens", () => {
    const g = g1Parameters().group;
    const s = bytesToBig(fromHex(row("Decrypted nonce s")));
    const mapped = g.mapGeneric(s, bytesToBig(fromHex(row("PCD mapping private key"))), fromHex(point("PICC mapping public key X", "PICC mapping public key Y")));
    const pcdSk = bytesToBig(fromHex(row("PCD ephemeral private key")));
    const piccSk = bytesToBig(fromHex(row("PICC ephemeral private key")));
    const pcdPk = point("PCD ephemeral public key X", "PCD ephemeral public key Y");
    const piccPk = point("PICC ephemeral public key X", "PICC ephemeral public key Y");
    expect(hex(mapped.publicKey(pcdSk))).toBe(pcdPk);
    expect(hex(mapped.publicKey(piccSk))).toBe(piccPk);
    const k = mapped.sharedSecret(pcdSk, fromHex(piccPk));
    expect(hex(k)).toBe(row("Shared secret K"));
    expect(hex(mapped.sharedSecret(piccSk, fromHex(pcdPk)))).toBe(row("Shared secret K"));
    const { ksEnc, ksMac } = sessionKeys(k, "AES-128");
    expect(hex(ksEnc)).toBe(row("KSenc"));
    expect(hex(ksMac)).toBe(row("KSmac"));
    const oid = "0.4.0.127.0.7.2.2.4.2.2";
    expect(hex(publicKeyDataObject(oid, "ECDH", fromHex(piccPk)))).toBe(row("Token input for T_PCD"));
    expect(hex(publicKeyDataObject(oid, "ECDH", fromHex(pcdPk)))).toBe(row("Token input for T_PICC"));
    expect(hex(authenticationToken("AES-128", ksMac, fromHex(row("Token input for T_PCD"))))).toBe(row("T_PCD"));
    expect(hex(authenticationToken("AES-128", ksMac, fromHex(row("Token input for T_PICC"))))).toBe(row("T_PICC"));
  });
  test("both MSE:Set AT forms and the GENERAL AUTHENTICATE commands, byte for byte", () => {
    expect(hex(encodeCommand(mseSetAt("0.4.0.127.0.7.2.2.4.2.2", 1, undefined)))).toBe(row("APDU: MSE:Set AT (dmrtd form"));
    expect(hex(encodeCommand(mseSetAt("0.4.0.127.0.7.2.2.4.2.2", 1, 13)))).toBe(row("APDU: MSE:Set AT (gmrtd form"));
    expect(hex(encodeCommand(generalAuthenticate(undefined, undefined, false)))).toBe(row("APDU: GA step 1"));
    expect(hex(encodeCommand(generalAuthenticate(0x85, fromHex(row("T_PCD")), true)))).toBe(row("APDU: GA step 4"));
  });

  const transcript = () => [
    { command: row("APDU: MSE:Set AT (gmrtd form"), response: "9000" },
    { command: row("APDU: GA step 1"), response: row("APDU response: GA step 1") },
    { command: row("APDU: GA step 2"), response: row("APDU response: GA step 2") },
    { command: row("APDU: GA step 3"), response: row("APDU response: GA step 3") },
  ];
  const random = () => keySource(row("PCD mapping private key"), row("PCD ephemeral private key"));

  test("performPace replays the whole transcript and ends with the example's session keys and SSC 0", async () => {
    const card = new ScriptedTransport([...transcript(), { command: row("APDU: GA step 4"), response: row("APDU response: GA step 4") }]);
    const session = await performPace(card, { password: MRZ, parameters: g1Parameters(), random: random() });
    card.assertDone();
    expect(hex(session.ksEnc)).toBe(row("KSenc"));
    expect(hex(session.ksMac)).toBe(row("KSmac"));
    expect(session).toMatchObject({ ssc: 0n, cipher: "AES-128", withParameterId: true });
  });
  test("a chip that refuses tag 84 (6A80) gets the form without it", async () => {
    const [mse, ...rest] = transcript();
    const card = new ScriptedTransport([
      { command: mse!.command, response: "6A80" },
      { command: row("APDU: MSE:Set AT (dmrtd form"), response: "9000" },
      ...rest,
      { command: row("APDU: GA step 4"), response: row("APDU response: GA step 4") },
    ]);
    const session = await performPace(card, { password: MRZ, parameters: g1Parameters(), random: random() });
    card.assertDone();
    expect(session.withParameterId).toBe(false);
  });
  test("a remembered form is used directly; refused in every form is PaceError unsupported", async () => {
    const card = new ScriptedTransport([{ command: row("APDU: MSE:Set AT (dmrtd form"), response: "6A80" }]);
    const e = await performPace(card, { password: MRZ, parameters: g1Parameters(), random: random(), parameterIdForms: [false] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PaceError);
    expect((e as PaceError).reason).toBe("unsupported");
    card.assertDone();
  });
  test("wrong password: the chip answers 6300 to our token: AccessDeniedError (PACE), no key material in the message", async () => {
    const card = new ScriptedTransport([...transcript(), { command: row("APDU: GA step 4"), response: "6300" }]);
    const e = (await performPace(card, { password: MRZ, parameters: g1Parameters(), random: random() }).catch((x: unknown) => x)) as AccessDeniedError;
    expect(e).toBeInstanceOf(AccessDeniedError);
    expect(e.protocol).toBe("PACE");
    expect(e.message).not.toContain("T22000129");
  });
  test("a chip token that does not verify is PaceError token-mismatch", async () => {
    const bad = row("APDU response: GA step 4").replace("3ABB9674", "3ABB9675");
    const card = new ScriptedTransport([...transcript(), { command: row("APDU: GA step 4"), response: bad }]);
    const e = await performPace(card, { password: MRZ, parameters: g1Parameters(), random: random() }).catch((x: unknown) => x);
    expect((e as PaceError).reason).toBe("token-mismatch");
  });
  test("a mapping key that is not on the curve is refused before any secret is used", async () => {
    const t = transcript();
    const badPoint = row("APDU response: GA step 2").replace("824FBA91", "824FBA92");
    const card = new ScriptedTransport([t[0]!, t[1]!, { command: t[2]!.command, response: badPoint }]);
    const e = await performPace(card, { password: MRZ, parameters: g1Parameters(), random: random() }).catch((x: unknown) => x);
    expect((e as PaceError).reason).toBe("protocol");
    card.assertDone();
  });
});

describe("ICAO 9303-11 Appendix G.1.2: PACE GM, DH (RFC 5114 1024-bit group), AES-128, value by value", () => {
  test("PACEInfo names id-PACE-DH-GM-AES-CBC-CMAC-128 with parameter id 0", () => {
    const infos = parseCardAccess(fromHex(`3114${g12.paceInfo}`));
    expect(infos.pace[0]).toMatchObject({ version: 2, parameterId: 0, protocol: { agreement: "DH", mapping: "GM", cipher: "AES-128" } });
  });
  test("mapped generator from s and h; public keys, shared secret, session keys, token inputs and tokens", () => {
    const g = standardGroup(0) as DhGroup;
    const mapped = g.mapWithH(bytesToBig(fromHex(g12.nonceS)), bytesToBig(fromHex(g12.mappingSharedSecretH)));
    expect(hex(mapped.generator())).toBe(g12.mappedGenerator);
    const sk = bytesToBig(fromHex(g12.pcdEphemeralPrivateKey));
    expect(hex(mapped.publicKey(sk))).toBe(g12.pcdEphemeralPublicKey);
    const k = mapped.sharedSecret(sk, fromHex(g12.piccEphemeralPublicKey));
    expect(hex(k)).toBe(g12.sharedSecret);
    const { ksEnc, ksMac } = sessionKeys(k, "AES-128");
    expect(hex(ksEnc)).toBe(g12.ksEnc);
    expect(hex(ksMac)).toBe(g12.ksMac);
    const oid = "0.4.0.127.0.7.2.2.4.1.2";
    expect(hex(publicKeyDataObject(oid, "DH", fromHex(g12.piccEphemeralPublicKey)))).toBe(g12.tokenInputPcd);
    expect(hex(publicKeyDataObject(oid, "DH", fromHex(g12.pcdEphemeralPublicKey)))).toBe(g12.tokenInputPicc);
    expect(hex(authenticationToken("AES-128", ksMac, fromHex(g12.tokenInputPcd)))).toBe(g12.tPcd);
    expect(hex(authenticationToken("AES-128", ksMac, fromHex(g12.tokenInputPicc)))).toBe(g12.tPicc);
  });
  test("DH public values outside the subgroup or out of range are refused", () => {
    const g = standardGroup(0)!;
    const len = g.publicLength;
    expect(() => g.checkPublic(new Uint8Array(len).fill(0xff))).toThrow(/out of range/);
    const one = new Uint8Array(len);
    one[len - 1] = 1;
    expect(() => g.checkPublic(one)).toThrow(/out of range/);
    const two = new Uint8Array(len);
    two[len - 1] = 2;
    expect(() => g.checkPublic(two)).toThrow(/subgroup/);
  });
});

describe("PACE OIDs (9303-11 §9.2.1)", () => {
  test("mapping, agreement and cipher from the OID; CAM has no 3DES variant", () => {
    expect(paceAlgorithm("0.4.0.127.0.7.2.2.4.2.4")).toMatchObject({ agreement: "ECDH", mapping: "GM", cipher: "AES-256" });
    expect(paceAlgorithm("0.4.0.127.0.7.2.2.4.1.1")).toMatchObject({ agreement: "DH", mapping: "GM", cipher: "3DES" });
    expect(paceAlgorithm("0.4.0.127.0.7.2.2.4.4.3")).toMatchObject({ agreement: "ECDH", mapping: "IM", cipher: "AES-192" });
    expect(paceAlgorithm("0.4.0.127.0.7.2.2.4.6.2")).toMatchObject({ mapping: "CAM", cipher: "AES-128" });
    expect(paceAlgorithm("0.4.0.127.0.7.2.2.4.6.1")).toBeUndefined();
    expect(paceAlgorithm("0.4.0.127.0.7.2.2.4.5.2")).toBeUndefined();
  });
});

describe("ICAO 9303-11 Appendix H.1: PACE IM, ECDH brainpoolP256r1, AES-128 (as cited by JMRTD)", () => {
  const h = (prefix: string) => h1.rows.find((r) => r.what.startsWith(prefix))!.hex;
  test("R_p(s, t), the pseudo-random field element", () => {
    const p = standardGroup(13)!.prime;
    const x = integratedMappingPrf(fromHex(h("Nonce s")), fromHex(h("Nonce t")), p);
    expect(x.toString(16).toUpperCase().padStart(64, "0")).toBe(h("R_p(s,t)"));
  });
  test("the point encoding of R_p gives the mapped generator", () => {
    const g = standardGroup(13)!;
    const mapped = g.mapIntegrated(BigInt(`0x${h("R_p(s,t)")}`));
    expect(hex(mapped.generator())).toBe(`04${h("Mapped generator X")}${h("Mapped generator Y")}`);
  });
  test("3DES or AES-256 nonces are refused as unsupported", () => {
    expect(() => integratedMappingPrf(new Uint8Array(8), new Uint8Array(16), 23n)).toThrow(PaceError);
  });
  test("DH: ĝ = x^((p-1)/q) lies in the order-q subgroup", () => {
    const g = standardGroup(2)!;
    const mapped = g.mapIntegrated(123456789n);
    expect(() => g.checkPublic(mapped.generator())).not.toThrow();
  });
});
