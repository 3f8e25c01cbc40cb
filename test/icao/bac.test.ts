import { describe, expect, test } from "bun:test";
import {
  bacKeys,
  buildExternalAuthenticateData,
  initialSsc,
  performBac,
  verifyExternalAuthenticateResponse,
} from "../../agent/icao/bac.ts";
import { tdesCbcEncrypt } from "../../agent/crypto/des.ts";
import { pad, retailMac } from "../../agent/crypto/iso9797.ts";
import { concat, fromHex, hex } from "../../agent/bytes.ts";
import { AccessDeniedError, CardStatusError, ParseError, SecureMessagingError } from "../../agent/errors.ts";
import { ScriptedTransport } from "../../agent/transport/scripted-transport.ts";
import d2 from "../vectors/icao-9303-11-d2-bac-keys.json";
import v from "../vectors/icao-9303-11-d3-bac-authentication.json";

const kSeed = fromHex(d2.examples[0]!.kSeed);
const GET_CHALLENGE = v.apdus[0]!;
const EXT_AUTH = v.apdus[1]!;

/** RND.IFD then K.IFD from the worked example, fresh copies each call (performBac wipes them). */
function exampleRandom(): (n: number) => Uint8Array {
  const queue = [fromHex(v.rndIfd), fromHex(v.kIfd)];
  return (n) => {
    const next = queue.shift();
    if (!next || next.length !== n) throw new Error(`unexpected random(${n})`);
    return next;
  };
}

/** Card side of EXTERNAL AUTHENTICATE for a chosen R = RND.IC ‖ RND.IFD ‖ K.IC. */
function cardAnswer(r: Uint8Array): string {
  const eIc = tdesCbcEncrypt(fromHex(v.kEnc), r);
  return hex(concat(eIc, retailMac(fromHex(v.kMac), pad(eIc)))) + "9000";
}

describe("ICAO 9303-11 Appendix D.3: pure steps", () => {
  test("Kenc/Kmac from Kseed", () => {
    const k = bacKeys(kSeed);
    expect(hex(k.kEnc)).toBe(v.kEnc);
    expect(hex(k.kMac)).toBe(v.kMac);
  });
  test("EXTERNAL AUTHENTICATE data = E.IFD ‖ M.IFD", () => {
    const data = buildExternalAuthenticateData(fromHex(v.kEnc), fromHex(v.kMac), fromHex(v.rndIc), fromHex(v.rndIfd), fromHex(v.kIfd));
    expect(hex(data)).toBe(v.externalAuthenticateData);
    expect(hex(data.subarray(0, 32))).toBe(v.eIfd);
    expect(hex(data.subarray(32))).toBe(v.mIfd);
    // card side: E.IFD decrypts to S
    expect(hex(tdesCbcEncrypt(fromHex(v.kEnc), fromHex(v.s)))).toBe(v.eIfd);
  });
  test("card response E.IC ‖ M.IC verifies and gives KSenc, KSmac, SSC", () => {
    const s = verifyExternalAuthenticateResponse(
      fromHex(v.kEnc), fromHex(v.kMac), fromHex(v.cardResponseData), fromHex(v.rndIc), fromHex(v.rndIfd), fromHex(v.kIfd),
    );
    expect(hex(s.ksEnc)).toBe(v.ksEnc);
    expect(hex(s.ksMac)).toBe(v.ksMac);
    expect(s.ssc).toBe(BigInt("0x" + v.ssc));
    expect(initialSsc(fromHex(v.rndIc), fromHex(v.rndIfd))).toBe(BigInt("0x" + v.ssc));
    // The card's R is RND.IC ‖ RND.IFD ‖ K.IC.
    expect(hex(tdesCbcEncrypt(fromHex(v.kEnc), fromHex(v.r)))).toBe(v.eIc);
    expect(v.r).toBe(v.rndIc + v.rndIfd + v.kIc);
  });
});

describe("ICAO 9303-11 Appendix D.3: performBac through a scripted card", () => {
  test("replays GET CHALLENGE and EXTERNAL AUTHENTICATE exactly", async () => {
    const card = new ScriptedTransport([GET_CHALLENGE, EXT_AUTH]);
    const s = await performBac(card, kSeed, exampleRandom());
    card.assertDone();
    expect(hex(s.ksEnc)).toBe(v.ksEnc);
    expect(hex(s.ksMac)).toBe(v.ksMac);
    expect(s.ssc).toBe(BigInt("0x" + v.ssc));
    expect(hex(kSeed)).toBe(d2.examples[0]!.kSeed); // the caller's seed is left alone
  });

  async function failWith(response: string): Promise<unknown> {
    const card = new ScriptedTransport([GET_CHALLENGE, { command: EXT_AUTH.command, response }]);
    try {
      await performBac(card, kSeed, exampleRandom());
    } catch (e) {
      card.assertDone();
      return e;
    }
    throw new Error("performBac succeeded");
  }

  test("a wrong M.IC byte is a SecureMessagingError('bac-response')", async () => {
    const bad = fromHex(v.cardResponseData);
    bad[39] = bad[39]! ^ 0x01;
    const e = await failWith(hex(bad) + "9000");
    expect(e).toBeInstanceOf(SecureMessagingError);
    expect((e as SecureMessagingError).reason).toBe("bac-response");
  });

  test("a correctly MACed answer that does not echo RND.IFD is a SecureMessagingError('bac-response')", async () => {
    const wrongIfd = v.rndIfd.slice(0, 14) + "00";
    const e = await failWith(cardAnswer(fromHex(v.rndIc + wrongIfd + v.kIc)));
    expect(e).toBeInstanceOf(SecureMessagingError);
    expect((e as SecureMessagingError).reason).toBe("bac-response");
    expect((e as Error).message).toMatch(/echo/);
  });

  test("a correctly MACed answer that does not echo RND.IC is rejected too", async () => {
    const e = await failWith(cardAnswer(fromHex("0000000000000000" + v.rndIfd + v.kIc)));
    expect(e).toBeInstanceOf(SecureMessagingError);
  });

  test("the card-side helper itself produces the example answer (so the two cases above differ only in the echo)", () => {
    expect(cardAnswer(fromHex(v.r))).toBe(EXT_AUTH.response);
  });

  test("6300 at EXTERNAL AUTHENTICATE is AccessDeniedError without key material", async () => {
    const e = await failWith("6300");
    expect(e).toBeInstanceOf(AccessDeniedError);
    const a = e as AccessDeniedError;
    expect(a.sw).toBe(0x6300);
    const secrets = [d2.examples[0]!.kSeed, v.kEnc, v.kMac, v.rndIfd, v.kIfd, v.rndIc, d2.examples[0]!.documentNumber, d2.examples[0]!.mrzInformation];
    const exposed = [a.message, JSON.stringify({ ...a }), String(a.stack)].join("\n").toUpperCase();
    for (const s of secrets) expect(exposed).not.toContain(s.toUpperCase());
  });

  test.each([0x6982, 0x6985, 0x63c2])("status %p at EXTERNAL AUTHENTICATE is AccessDeniedError", async (sw) => {
    const e = await failWith(sw.toString(16).padStart(4, "0"));
    expect(e).toBeInstanceOf(AccessDeniedError);
    expect((e as AccessDeniedError).sw).toBe(sw);
  });

  test("other status words are CardStatusError naming the command", async () => {
    const e = await failWith("6A80");
    expect(e).toBeInstanceOf(CardStatusError);
    expect((e as CardStatusError).sw).toBe(0x6a80);
    expect((e as CardStatusError).command).toBe("EXTERNAL AUTHENTICATE");
    const card = new ScriptedTransport([{ command: GET_CHALLENGE.command, response: "6D00" }]);
    const g = await performBac(card, kSeed, exampleRandom()).catch((x: unknown) => x);
    card.assertDone();
    expect(g).toBeInstanceOf(CardStatusError);
    expect((g as CardStatusError).command).toBe("GET CHALLENGE");
  });

  test("a short challenge or a short EXTERNAL AUTHENTICATE answer is rejected", async () => {
    const card = new ScriptedTransport([{ command: GET_CHALLENGE.command, response: "4608F9199000" }]);
    expect(await performBac(card, kSeed, exampleRandom()).catch((x: unknown) => x)).toBeInstanceOf(ParseError);
    const e = await failWith(v.cardResponseData.slice(0, 70) + "9000");
    expect(e).toBeInstanceOf(SecureMessagingError);
  });
});
