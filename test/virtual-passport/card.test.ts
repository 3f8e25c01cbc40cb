/**
 * The virtual passport's chip logic, driven through handle(): ICAO 9303-11 Appendix D
 * (BAC, 3DES secure messaging) replayed byte for byte, then ISO 7816-4 behaviour of
 * SELECT / READ BINARY / access control / secure-messaging failures.
 */
import { describe, expect, test } from "bun:test";
import { fromHex, hex } from "../../agent/bytes.ts";
import { decodeResponse } from "../../agent/iso7816/apdu.ts";
import { VirtualPassport } from "./card.ts";
import { documentBacKeys, mrzInformation } from "./card-sm.ts";
import type { PassportFiles } from "./file-system.ts";
import { atrAnnouncesExtendedLength, contactlessAtr, type CardOptionsInput } from "./options.ts";
import { TestReaderSm } from "./test-reader-sm.ts";

// ICAO 9303-11 Appendix D (see /work/shared/reference/icao-9303-11-vectors.md)
const D = {
  mrzKey: { documentNumber: "L898902C", dateOfBirth: "690806", dateOfExpiry: "940623" },
  kEnc: "AB94FDECF2674FDFB9B391F85D7F76F2",
  kMac: "7962D9ECE03D1ACD4C76089DCE131543",
  rndIc: "4608F91988702212",
  kIc: "0B4F80323EB3191CB04970CB4052790B",
  externalAuthenticate: "008200002872C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F25F1448EEA8AD90A728",
  externalAuthenticateResponse: "46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F2F2D235D074D74499000",
  ksEnc: "979EC13B1CBFE9DCD01AB0FED307EAE5",
  ksMac: "F1CB1F1FB5ADF208806B89DC579DC1F8",
  ssc: "887022120C06C226",
  // D.4: protected SELECT EF.COM, READ BINARY (0, 4), READ BINARY (4, 0x12)
  exchanges: [
    ["0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800", "990290008E08FA855A5D4C50A8ED9000"],
    ["0CB000000D9701048E08ED6705417E96BA5500", "8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000"],
    ["0CB000040D9701128E082EA28A70F3C7B53500", "871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A990290008E08C8B2787EAEA07D749000"],
  ],
  sscAfter: "887022120C06C22C",
  efCom: "60145F0104303130365F36063034303030305C026175",
};

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed + (i >> 8)) & 0xff;
  return out;
}

const DG1 = pattern(93, 1);
const DG2 = pattern(40_000, 2);
const SOD = pattern(1_500, 3);

function files(): PassportFiles {
  return { com: fromHex(D.efCom), sod: SOD, dgs: new Map([[1, DG1], [2, DG2]]) };
}

/** Random source that plays back fixed values (RND.IC, then K.IC), then fails the test if asked again. */
function scripted(...values: string[]): (n: number) => Uint8Array {
  const queue = values.map(fromHex);
  return (n) => {
    const v = queue.shift();
    if (!v || v.length !== n) throw new Error(`unexpected random request of ${n} bytes`);
    return v;
  };
}

function card(opts: Partial<CardOptionsInput> = {}, random = scripted(D.rndIc, D.kIc)): VirtualPassport {
  return new VirtualPassport(files(), { mrzKey: D.mrzKey, random, ...opts });
}

function send(c: VirtualPassport, apduHex: string): string {
  return hex(c.handle(fromHex(apduHex)));
}

function sw(resp: Uint8Array): number {
  return decodeResponse(resp).sw;
}

const SELECT_APPLET = "00A4040C07A0000002471001";

/** SELECT applet + BAC with the Appendix D values; returns a reader-side SM wrapper in step with the chip. */
function authenticated(opts: Partial<CardOptionsInput> = {}): { c: VirtualPassport; sm: TestReaderSm } {
  const c = card(opts);
  expect(send(c, SELECT_APPLET)).toBe("9000");
  expect(send(c, "0084000008")).toBe(D.rndIc + "9000");
  expect(send(c, D.externalAuthenticate)).toBe(D.externalAuthenticateResponse);
  return { c, sm: new TestReaderSm(fromHex(D.ksEnc), fromHex(D.ksMac), fromHex(D.ssc)) };
}

function protectedCall(c: VirtualPassport, sm: TestReaderSm, cmd: Parameters<TestReaderSm["protect"]>[0], extended = false) {
  return sm.unprotect(c.handle(sm.protect(cmd, { extended })));
}

const readAt = (offset: number, ne: number) => ({ ins: 0xb0, p1: offset >> 8, p2: offset & 0xff, ne });
const selectEf = (fid: number) => ({ ins: 0xa4, p1: 0x02, p2: 0x0c, data: Uint8Array.of(fid >> 8, fid & 0xff) });

describe("ICAO 9303-11 Appendix D, chip side", () => {
  test("D.2 document basic access keys from MRZ_information", () => {
    expect(mrzInformation(D.mrzKey)).toBe("L898902C<369080619406236");
    const k = documentBacKeys(D.mrzKey);
    expect(hex(k.kEnc)).toBe(D.kEnc);
    expect(hex(k.kMac)).toBe(D.kMac);
  });

  test("D.3 GET CHALLENGE and EXTERNAL AUTHENTICATE answer the printed bytes; session SSC", () => {
    const { c } = authenticated();
    expect(c.authenticated).toBe(true);
    expect(hex(c.ssc!)).toBe(D.ssc);
  });

  test("D.4 three protected exchanges reproduce the printed responses and SSC", () => {
    const { c } = authenticated();
    for (const [command, response] of D.exchanges) expect(send(c, command!)).toBe(response!);
    expect(hex(c.ssc!)).toBe(D.sscAfter);
  });

  test("the test reader's wrapper reproduces the D.4 commands (so later tests can rely on it)", () => {
    const { c, sm } = authenticated();
    const cmds = [selectEf(0x011e), readAt(0, 4), readAt(4, 0x12)];
    const plain: Uint8Array[] = [];
    cmds.forEach((cmd, i) => {
      const apdu = sm.protect(cmd);
      expect(hex(apdu)).toBe(D.exchanges[i]![0]!);
      const r = sm.unprotect(c.handle(apdu));
      expect(r.sw).toBe(0x9000);
      plain.push(r.data);
    });
    expect(hex(plain[1]!) + hex(plain[2]!)).toBe(D.efCom);
  });
});

describe("BAC failures", () => {
  test("a chip with another MRZ answers 6300 to the Appendix D cryptogram", () => {
    const c = card({ mrzKey: { ...D.mrzKey, documentNumber: "L898902C4" } });
    send(c, SELECT_APPLET);
    expect(send(c, "0084000008")).toBe(D.rndIc + "9000");
    expect(send(c, D.externalAuthenticate)).toBe("6300");
    expect(c.authenticated).toBe(false);
  });

  test("a wrong M.IFD gets 6300, and the chip keeps refusing until the next GET CHALLENGE", () => {
    const c = card({}, scripted(D.rndIc, D.kIc, D.rndIc, D.kIc));
    send(c, SELECT_APPLET);
    send(c, "0084000008");
    const bad = fromHex(D.externalAuthenticate);
    bad[bad.length - 2]! ^= 0x01; // last byte of M.IFD
    expect(sw(c.handle(bad))).toBe(0x6300);
    expect(send(c, D.externalAuthenticate)).toBe("6300");
    expect(send(c, "0084000008")).toBe(D.rndIc + "9000");
    expect(send(c, D.externalAuthenticate)).toBe(D.externalAuthenticateResponse);
  });

  test("a valid MAC over a cryptogram for another RND.IC gets 6300 (echo check)", () => {
    const c = card({}, scripted("0102030405060708", D.kIc));
    send(c, SELECT_APPLET);
    send(c, "0084000008");
    expect(send(c, D.externalAuthenticate)).toBe("6300");
  });

  test("EXTERNAL AUTHENTICATE without GET CHALLENGE: 6985; wrong lengths: 6700", () => {
    const c = card();
    send(c, SELECT_APPLET);
    expect(send(c, D.externalAuthenticate)).toBe("6985");
    expect(send(c, "0084000004")).toBe("6700");
    expect(send(c, "00820000" + "08" + "0011223344556677")).toBe("6700");
  });
});

describe("SELECT and access control before BAC", () => {
  test("applet by AID: P2=0C no data, P2=00 FCI; wrong AID, MF and EF.CardAccess: 6A82", () => {
    const c = card();
    expect(send(c, "00A4040C07A0000002471001")).toBe("9000");
    expect(send(c, "00A4040007A000000247100100")).toBe("6F098407A00000024710019000");
    expect(send(c, "00A4040C07A0000002471002")).toBe("6A82");
    expect(send(c, "00A4000C023F00")).toBe("6A82");
    c.reset();
    expect(send(c, "00A4020C02011C")).toBe("6A82");
  });

  test("EF.COM, DG1 (SFI) and READ BINARY before BAC: 6982", () => {
    const c = card();
    send(c, SELECT_APPLET);
    expect(send(c, "00A4020C02011E")).toBe("6982");
    expect(send(c, "00B0810000")).toBe("6982");
    expect(send(c, "00B0000004")).toBe("6982");
    expect(send(c, "00B1000004540200000A")).toBe("6982");
  });

  test("unknown INS 6D00, unknown CLA 6E00, malformed APDUs 6700, never throwing", () => {
    const c = card();
    expect(send(c, "00CA010000")).toBe("6D00");
    expect(send(c, "80A4040C07A0000002471001")).toBe("6E00");
    expect(send(c, "00A404")).toBe("6700");
    expect(send(c, "00A4040C09A0000002471001")).toBe("6700");
    expect(send(c, "")).toBe("6700");
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
    const fuzz = new VirtualPassport(files(), { mrzKey: D.mrzKey });
    for (let i = 0; i < 3000; i++) {
      const a = new Uint8Array(rnd() % 24);
      for (let j = 0; j < a.length; j++) a[j] = rnd() & 0xff;
      if (a.length > 0 && i % 2 === 0) a[0] = i % 4 === 0 ? 0x0c : 0x00;
      const r = fuzz.handle(a);
      expect(r.length).toBeGreaterThanOrEqual(2);
    }
  });
});

describe("READ BINARY after BAC (through secure messaging)", () => {
  test("short reads, reading to the end with 6282, offset at the end 6B00", () => {
    const { c, sm } = authenticated();
    expect(protectedCall(c, sm, selectEf(0x0101)).sw).toBe(0x9000);
    const a = protectedCall(c, sm, readAt(0, 0x20));
    expect(a.sw).toBe(0x9000);
    expect(a.data).toEqual(DG1.slice(0, 0x20));
    const b = protectedCall(c, sm, readAt(80, 0x20));
    expect(b.sw).toBe(0x6282);
    expect(b.outerSw).toBe(0x6282);
    expect(b.data).toEqual(DG1.slice(80));
    const e = protectedCall(c, sm, readAt(DG1.length, 1));
    expect(e).toEqual({ data: new Uint8Array(0), sw: 0x6b00, outerSw: 0x6b00 });
  });

  test("largest short protected read is 231 bytes; 232 gets 6700 (or 6CE7 when configured)", () => {
    for (const [leTooLargeSw, expected] of [["6700", 0x6700], ["6Cxx", 0x6ce7]] as const) {
      const { c, sm } = authenticated({ leTooLargeSw });
      protectedCall(c, sm, selectEf(0x0102));
      const ok = protectedCall(c, sm, readAt(100, 231));
      expect(ok.sw).toBe(0x9000);
      expect(ok.data).toEqual(DG2.slice(100, 331));
      expect(protectedCall(c, sm, readAt(100, 232)).sw).toBe(expected);
      expect(protectedCall(c, sm, readAt(100, 256)).sw).toBe(expected);
      expect(c.authenticated).toBe(true);
    }
  });

  test("maxLe option: reads above it get 6700 or 6Cxx", () => {
    const { c, sm } = authenticated({ maxLe: 160, extendedLength: false, leTooLargeSw: "6Cxx" });
    protectedCall(c, sm, selectEf(0x0102));
    expect(protectedCall(c, sm, readAt(0, 161)).sw).toBe(0x6ca0);
    expect(protectedCall(c, sm, readAt(0, 160)).sw).toBe(0x9000);
    protectedCall(c, sm, selectEf(0x0101));
    // near the end the chip names what is left (ISO 7816-4: 6Cxx = exact number of available bytes)
    expect(protectedCall(c, sm, readAt(80, 161)).sw).toBe(0x6c0d);
    const rest = protectedCall(c, sm, readAt(0, 160));
    expect(rest.sw).toBe(0x6282);
    expect(rest.data).toEqual(DG1);
  });

  test("SFI read selects the file; later offsets continue on it", () => {
    const { c, sm } = authenticated();
    const a = protectedCall(c, sm, { ins: 0xb0, p1: 0x82, p2: 0x10, ne: 8 });
    expect(a).toEqual({ data: DG2.slice(0x10, 0x18), sw: 0x9000, outerSw: 0x9000 });
    const b = protectedCall(c, sm, readAt(0x7fff, 8));
    expect(b.data).toEqual(DG2.slice(0x7fff, 0x7fff + 8));
    const sod = protectedCall(c, sm, { ins: 0xb0, p1: 0x9d, p2: 0, ne: 4 });
    expect(sod.data).toEqual(SOD.slice(0, 4));
    expect(protectedCall(c, sm, { ins: 0xb0, p1: 0x85, p2: 0, ne: 4 }).sw).toBe(0x6a82);
  });

  test("nothing selected after BAC: 6986", () => {
    const { c, sm } = authenticated();
    expect(protectedCall(c, sm, readAt(0, 4)).sw).toBe(0x6986);
  });

  test("odd-INS READ BINARY with DO'54' reaches offsets above 32767; Ne includes the DO'53' header", () => {
    const { c, sm } = authenticated();
    protectedCall(c, sm, selectEf(0x0102));
    const r = protectedCall(c, sm, { ins: 0xb1, p1: 0, p2: 0, data: fromHex("54030088B8"), ne: 0xe0 });
    expect(r.sw).toBe(0x9000);
    expect(hex(r.data.subarray(0, 3))).toBe("5381DD");
    expect(r.data.subarray(3)).toEqual(DG2.slice(35_000, 35_000 + 0xdd));
    const end = protectedCall(c, sm, { ins: 0xb1, p1: 0x01, p2: 0x02, data: fromHex("54029C36"), ne: 100 });
    expect(end.sw).toBe(0x6282);
    expect(hex(end.data.subarray(0, 2))).toBe("530A");
    expect(end.data.subarray(2)).toEqual(DG2.slice(39_990));
    expect(protectedCall(c, sm, { ins: 0xb1, p1: 0, p2: 0, data: fromHex("54029C40"), ne: 10 }).sw).toBe(0x6b00);
  });

  test("extended length: one protected READ BINARY returns 4096 bytes", () => {
    const { c, sm } = authenticated();
    protectedCall(c, sm, selectEf(0x0102));
    const r = protectedCall(c, sm, readAt(0, 4096), true);
    expect(r.sw).toBe(0x9000);
    expect(r.data).toEqual(DG2.slice(0, 4096));
  });

  test("extended APDUs on a chip without extended length: 6700 and the session ends", () => {
    const { c, sm } = authenticated({ extendedLength: false });
    protectedCall(c, sm, selectEf(0x0102));
    expect(sw(c.handle(sm.protect(readAt(0, 1024), { extended: true })))).toBe(0x6700);
    expect(c.authenticated).toBe(false);
  });

  test("errors inside the channel come back protected (6A82, 6D00)", () => {
    const { c, sm } = authenticated();
    expect(protectedCall(c, sm, selectEf(0x0199))).toEqual({ data: new Uint8Array(0), sw: 0x6a82, outerSw: 0x6a82 });
    expect(protectedCall(c, sm, { ins: 0xca, p1: 0, p2: 0, ne: 0 }).sw).toBe(0x6d00);
    expect(c.authenticated).toBe(true);
  });

  test("SELECT EF with P2=04 returns the FCP with the file size", () => {
    const { c, sm } = authenticated();
    const r = protectedCall(c, sm, { ...selectEf(0x011d), p2: 0x04, ne: 256 });
    expect(hex(r.data)).toBe("620B" + "8002" + "05DC" + "820101" + "8302011D");
  });
});

describe("secure-messaging failures destroy the session", () => {
  test("wrong MAC: plain 6988, then 6982 until a new BAC", () => {
    const { c, sm } = authenticated();
    const apdu = sm.protect(selectEf(0x011e));
    apdu[apdu.length - 2]! ^= 0x01; // last byte of DO'8E'
    expect(hex(c.handle(apdu))).toBe("6988");
    expect(c.authenticated).toBe(false);
    expect(hex(c.handle(sm.protect(selectEf(0x011e))))).toBe("6982");
  });

  test("a replayed command (SSC out of step): 6988", () => {
    const { c, sm } = authenticated();
    const apdu = sm.protect(selectEf(0x011e));
    sm.unprotect(c.handle(apdu));
    expect(hex(c.handle(apdu))).toBe("6988");
  });

  test("missing DO'8E': 6987", () => {
    const { c } = authenticated();
    expect(send(c, "0CB000000397010400")).toBe("6987");
    expect(c.authenticated).toBe(false);
  });

  test("CLA 08 (SM without header authentication): 6988", () => {
    const { c, sm } = authenticated();
    const apdu = sm.protect(selectEf(0x011e));
    apdu[0] = 0x08;
    expect(hex(c.handle(apdu))).toBe("6988");
    expect(c.authenticated).toBe(false);
  });

  test("an unprotected command after BAC: plain 6982 and the keys are dropped", () => {
    const { c, sm } = authenticated();
    expect(send(c, "00A4020C02011E")).toBe("6982");
    expect(c.authenticated).toBe(false);
    expect(hex(c.handle(sm.protect(selectEf(0x011e))))).toBe("6982");
  });

  test("power off ends the session and forgets the selected application", () => {
    const { c, sm } = authenticated();
    c.powerOff();
    expect(c.authenticated).toBe(false);
    expect(hex(c.handle(sm.protect(selectEf(0x011e))))).toBe("6982");
  });
});

describe("ATR (PC/SC Part 3 contactless)", () => {
  test("3B 8n 80 01, historical bytes, valid TCK; extended length announced only when supported", () => {
    for (const ext of [true, false]) {
      const atr = contactlessAtr(ext);
      expect(atr[0]).toBe(0x3b);
      expect(hex(atr.subarray(2, 4))).toBe("8001");
      expect(atr[1]! & 0x0f).toBe(atr.length - 5);
      let x = 0;
      for (const b of atr.subarray(1)) x ^= b;
      expect(x).toBe(0);
      expect(atrAnnouncesExtendedLength(atr)).toBe(ext);
    }
  });
});
