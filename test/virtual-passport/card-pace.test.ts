/**
 * The virtual chip's PACE, CAM and AES secure messaging against the agent's reader side
 * (agent/icao/pace.ts, secure-messaging.ts): two implementations written apart, checking each
 * other; and the chip replaying ICAO 9303-11 Appendix G.1 byte for byte.
 */
import { describe, expect, test } from "bun:test";
import { fromHex, hex } from "../../agent/bytes.ts";
import { AccessDeniedError, CardStatusError, PaceError } from "../../agent/errors.ts";
import { readCardAccess } from "../../agent/icao/card-access.ts";
import { performPace, verifyCam, type PacePassword } from "../../agent/icao/pace.ts";
import { SecureChannel, smCipherFor } from "../../agent/icao/secure-messaging.ts";
import { performBac } from "../../agent/icao/bac.ts";
import { bacKeySeed } from "../../agent/icao/mrz-key.ts";
import { chooseChipAuthentication, choosePace, parseCardAccess } from "../../agent/lds/security-infos.ts";
import { parseDg14 } from "../../agent/lds/dg14.ts";
import { authenticate } from "../../agent/reading/authenticate.ts";
import { performChipAuthentication } from "../../agent/icao/chip-authentication.ts";
import type { CardTransport } from "../../agent/transport/transport.ts";
import { VirtualPassport } from "./card.ts";
import { loadProfile } from "./fixtures/index.ts";
import g1 from "../vectors/icao-9303-11-g1-pace-ecdh-gm.json";

const row = (prefix: string) => g1.rows.find((r) => r.what.startsWith(prefix))!.hex;

function transport(c: VirtualPassport): CardTransport & { count: number } {
  const t = { count: 0, transmit: async (apdu: Uint8Array) => (t.count++, c.handle(apdu)) };
  return t;
}

async function chip(profile: string) {
  const p = await loadProfile(profile);
  const card = new VirtualPassport(p.files, { mrzKey: p.mrzKey });
  return { p, card, t: transport(card) };
}

async function paceRead(profile: string, password?: (p: Awaited<ReturnType<typeof loadProfile>>) => PacePassword) {
  const { p, card, t } = await chip(profile);
  const ca = await readCardAccess(t);
  expect(ca).toBeDefined();
  const { parameters } = choosePace(parseCardAccess(ca!));
  const session = await performPace(t, { password: password ? password(p) : { kind: "mrz", key: p.mrzKey }, parameters: parameters!, random: (n) => crypto.getRandomValues(new Uint8Array(n)) });
  const ch = new SecureChannel(t, smCipherFor(session.cipher, session.ksEnc, session.ksMac), session.ssc);
  expect((await ch.send({ cla: 0, ins: 0xa4, p1: 4, p2: 0x0c, data: fromHex("A0000002471001") })).sw).toBe(0x9000);
  const dg1 = await ch.send({ cla: 0, ins: 0xb0, p1: 0x81, p2: 0, ne: 223 });
  expect([0x9000, 0x6282]).toContain(dg1.sw); // DG1 is shorter than 223 bytes: 6282 = end of file
  expect(hex(dg1.data)).toBe(hex(p.files.dgs.get(1)!));
  return { p, card, t, session, ch, parameters: parameters! };
}

describe("virtual chip vs the agent's PACE and AES secure messaging", () => {
  test("pace-gm: brainpoolP256r1 AES-128 with the MRZ, then DG1 over AES secure messaging", async () => {
    const r = await paceRead("pace-gm");
    expect(r.parameters.group.name).toBe("brainpoolP256r1");
    expect(r.session).toMatchObject({ cipher: "AES-128", withParameterId: true });
  });
  test("pace-gm with its CAN; a wrong CAN is refused with 6300 at the token", async () => {
    await paceRead("pace-gm", (p) => ({ kind: "can", can: p.can! }));
    const { t } = await chip("pace-gm");
    const { parameters } = choosePace(parseCardAccess((await readCardAccess(t))!));
    const e = await performPace(t, { password: { kind: "can", can: "000000" }, parameters: parameters!, random: (n) => new Uint8Array(n).fill(7) }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AccessDeniedError);
    expect((e as AccessDeniedError).sw).toBe(0x6300);
  });
  test("pace-only: P-256, tag 84 refused so the second MSE:Set AT form is used; BAC answers 6A88", async () => {
    const r = await paceRead("pace-only");
    expect(r.parameters.group.name).toBe("P-256");
    expect(r.session.withParameterId).toBe(false);
    const { p, t } = await chip("pace-only");
    expect(hex(await t.transmit(fromHex("00A4040C07A0000002471001")))).toBe("9000");
    const e = await performBac(t, bacKeySeed(p.mrzKey), (n) => new Uint8Array(n)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CardStatusError);
    expect((e as CardStatusError).sw).toBe(0x6a88);
  });
  test("pace-aes256: brainpoolP384r1 with AES-256 secure messaging", async () => {
    const r = await paceRead("pace-aes256");
    expect(r.parameters.group.name).toBe("brainpoolP384r1");
    expect(r.session.cipher).toBe("AES-256");
    expect(r.session.ksEnc.length).toBe(32);
  });
  test("pace-dh: RFC 5114 2048-bit DH, tag 84 required (first form)", async () => {
    const r = await paceRead("pace-dh");
    expect(r.parameters.group.kind).toBe("dh");
    expect(r.session.withParameterId).toBe(true);
  });
  test("can-only: the CAN works; the MRZ password is not accepted (PaceError unsupported)", async () => {
    await paceRead("can-only", (p) => ({ kind: "can", can: p.can! }));
    const { p, t } = await chip("can-only");
    const { parameters } = choosePace(parseCardAccess((await readCardAccess(t))!));
    const e = await performPace(t, { password: { kind: "mrz", key: p.mrzKey }, parameters: parameters!, random: (n) => new Uint8Array(n).fill(7) }).catch((x: unknown) => x);
    expect((e as PaceError).reason).toBe("unsupported");
  });
  test("pace-im: Integrated Mapping, brainpoolP256r1 AES-128", async () => {
    const r = await paceRead("pace-im");
    expect(r.parameters.mapping).toBe("IM");
    expect(r.session.cipher).toBe("AES-128");
  });
  test("pace-cam: the chip's CA data verify against DG14's key; another key does not", async () => {
    const r = await paceRead("pace-cam");
    expect(r.session.cam).toBeDefined();
    const dg14 = parseDg14(r.p.files.dgs.get(14)!);
    const pk = dg14.infos.chipAuthenticationPublicKeys[0]!.publicKey;
    expect(verifyCam(r.parameters.group, r.session.cam!, pk)).toBe(true);
    expect(verifyCam(r.parameters.group, r.session.cam!, r.parameters.group.publicKey(5n))).toBe(false);
  });
  test("EF.CardAccess is found again after the eMRTD application was selected (SELECT MF, then the file)", async () => {
    const { t } = await chip("pace-gm");
    expect(hex(await t.transmit(fromHex("00A4040C07A0000002471001")))).toBe("9000");
    // from inside the application the file is not readable (this chip says 6982, others 6A82)
    expect(hex(await t.transmit(fromHex("00A4020C02011C")))).toBe("6982");
    const before = t.count;
    expect(choosePace(parseCardAccess((await readCardAccess(t))!)).parameters?.group.name).toBe("brainpoolP256r1");
    // SELECT 011C (6982) and once more (a dropped session answers so too), SELECT MF, SELECT 011C, READ BINARY header and rest
    expect(t.count - before).toBe(6);
  });
  test("a BAC-only chip has no EF.CardAccess", async () => {
    const { t } = await chip("td3");
    expect(await readCardAccess(t)).toBeUndefined();
  });
});

describe("virtual chip replays ICAO 9303-11 Appendix G.1 (chip side)", () => {
  test("with the example's nonce and PICC keys the chip answers every GENERAL AUTHENTICATE byte for byte", () => {
    const keys = [row("Decrypted nonce s"), row("PICC mapping private key"), row("PICC ephemeral private key")];
    let i = 0;
    const random = (n: number) => {
      const v = keys[i++]!;
      // the nonce is used as is; private keys are drawn as (r mod (order-1)) + 1
      const x = i === 1 ? BigInt(`0x${v}`) : BigInt(`0x${v}`) - 1n;
      return fromHex(x.toString(16).padStart(2 * n, "0"));
    };
    const card = new VirtualPassport(
      { com: fromHex("60145F0104303130365F36063034303030305C026175"), sod: new Uint8Array(16), dgs: new Map(), pace: { agreement: "ECDH", mapping: "GM", cipher: "AES-128", parameterId: 13, passwords: ["mrz"], parameterIdTag: "any" } },
      { mrzKey: { documentNumber: "T22000129", dateOfBirth: "640812", dateOfExpiry: "101031" }, random },
    );
    const say = (apdu: string) => hex(card.handle(fromHex(apdu)));
    expect(say(row("APDU: MSE:Set AT (gmrtd form"))).toBe("9000");
    for (const step of ["GA step 1", "GA step 2", "GA step 3", "GA step 4"]) {
      expect(say(row(`APDU: ${step}`))).toBe(row(`APDU response: ${step}`));
    }
    expect(card.authenticated).toBe(true);
    expect(hex(card.ssc!)).toBe("00000000000000000000000000000000");
  });
});

describe("virtual chip vs the agent's Chip Authentication (9303-11 §6.2)", () => {
  async function ca(profile: string) {
    const { p, t } = await chip(profile);
    const rnd = (n: number) => crypto.getRandomValues(new Uint8Array(n));
    const a = await authenticate(t, { mrz: p.mrzKey }, "auto", {}, rnd);
    const choice = chooseChipAuthentication(parseDg14(p.files.dgs.get(14)!).infos)!;
    const { cipher } = await performChipAuthentication((c) => a.channel.send(c), choice, rnd);
    const ch = new SecureChannel(t, cipher, 0n);
    return { choice, r: await ch.send({ cla: 0, ins: 0xa4, p1: 2, p2: 0x0c, data: Uint8Array.of(1, 0x1e) }).catch((e: unknown) => e) };
  }
  test("ca-ec (3DES, MSE:Set KAT), ca-dh (AES, MSE:Set AT + GA), pace-gm (after PACE): the next response verifies under the new keys", async () => {
    for (const [profile, label] of [["ca-ec", "CA ECDH P-256 3DES"], ["ca-dh", "CA DH RFC 5114 2048-bit MODP, 256-bit subgroup AES-128"], ["pace-gm", "CA ECDH brainpoolP256r1 AES-128"]] as const) {
      const { choice, r } = await ca(profile);
      expect(choice.label).toBe(label);
      expect(r).toMatchObject({ sw: 0x9000, protected: true });
    }
  });
  test("ca-clone: the chip lacks DG14's private key and answers 6988 unprotected", async () => {
    const { r } = await ca("ca-clone");
    expect(r).toMatchObject({ sw: 0x6988, protected: false });
  });
});
