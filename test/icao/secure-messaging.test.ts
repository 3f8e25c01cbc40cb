import { describe, expect, test } from "bun:test";
import {
  maxReadPlaintext,
  protect,
  SecureChannel,
  aesSmCipher,
  smCipherFor,
  sscBytes,
  tdesSmCipher,
  unprotect,
  unprotectInSlices,
  SM_SLICE_BYTES,
  type SmCipher,
} from "../../agent/icao/secure-messaging.ts";
import { performBac } from "../../agent/icao/bac.ts";
import { pad, unpad } from "../../agent/crypto/iso9797.ts";
import { concat, fromHex, hex } from "../../agent/bytes.ts";
import { MrtdError, SecureMessagingError, TransportError } from "../../agent/errors.ts";
import { decodeCommand } from "../../agent/iso7816/apdu.ts";
import { parseTlvList } from "../../agent/iso7816/tlv.ts";
import { ScriptedTransport } from "../../agent/transport/scripted-transport.ts";
import d2 from "../vectors/icao-9303-11-d2-bac-keys.json";
import d3 from "../vectors/icao-9303-11-d3-bac-authentication.json";
import v from "../vectors/icao-9303-11-d4-secure-messaging.json";
import traces from "../vectors/sm-traces-gmrtd-nfcpassportreader-jmrtd.json";

const big = (h: string) => BigInt("0x" + h);
const cipher = () => tdesSmCipher(fromHex(v.ksEnc), fromHex(v.ksMac));

/** Card side: a protected response carrying `plain` (may be empty) and status `sw`, MACed with `ssc`. */
function cardResponse(c: SmCipher, ssc: bigint, plain: Uint8Array, sw: number, opts: { do99?: number | null; flipMac?: boolean } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  if (plain.length > 0) {
    const ct = c.encrypt(ssc, pad(plain, c.blockSize));
    const len = ct.length + 1;
    parts.push(Uint8Array.of(0x87), len < 128 ? Uint8Array.of(len) : len < 256 ? Uint8Array.of(0x81, len) : Uint8Array.of(0x82, len >> 8, len & 0xff), Uint8Array.of(1), ct);
  }
  const inner = opts.do99 === undefined ? sw : opts.do99;
  if (inner !== null) parts.push(Uint8Array.of(0x99, 2, inner >> 8, inner & 0xff));
  const dos = concat(...parts);
  const mac = c.mac(ssc, dos);
  if (opts.flipMac) mac[7] = mac[7]! ^ 0x01;
  return concat(dos, Uint8Array.of(0x8e, 8), mac, Uint8Array.of(sw >> 8, sw & 0xff));
}

describe("ICAO 9303-11 Appendix D.4: protect (IFD side) and the card's view of it", () => {
  test.each(v.exchanges.map((e, i) => [i + 1, e] as const))("exchange %d: protected command, SSC and MAC input", (n, e) => {
    const c = cipher();
    const before = n === 1 ? big(v.sscInitial) : big(v.exchanges[n - 2]!.sscResponse);
    const p = protect(decodeCommand(fromHex(e.command)), c, before);
    expect(hex(p.apdu)).toBe(e.protectedCommand);
    expect(p.ssc).toBe(big(e.sscCommand));
    // Card side: parse, check N/CC, decrypt DO'87' back to the original data.
    const cmd = decodeCommand(p.apdu);
    expect(hex(p.apdu.subarray(0, 4))).toBe(e.maskedHeader);
    const dos = parseTlvList(cmd.data!);
    const m = concat(pad(p.apdu.subarray(0, 4)), ...dos.filter((d) => d.tag !== 0x8e).map((d) => cmd.data!.subarray(d.offset, d.end)));
    expect(hex(m)).toBe(e.m);
    expect(hex(pad(concat(sscBytes(p.ssc, 8), m)))).toBe(e.n);
    expect(hex(c.mac(p.ssc, m))).toBe(e.cc);
    expect(hex(dos.find((d) => d.tag === 0x8e)!.value)).toBe(e.cc);
    const do87 = dos.find((d) => d.tag === 0x87);
    const x = e as { do87?: string; do97?: string };
    if (x.do87 !== undefined) {
      expect(hex(cmd.data!.subarray(do87!.offset, do87!.end))).toBe(x.do87);
      expect(hex(unpad(c.decrypt(p.ssc, do87!.value.subarray(1))))).toBe(hex(decodeCommand(fromHex(e.command)).data!));
    }
    if (x.do97 !== undefined) {
      const do97 = dos.find((d) => d.tag === 0x97)!;
      expect(hex(cmd.data!.subarray(do97.offset, do97.end))).toBe(x.do97);
    }
    expect(cmd.ne).toBe(256); // outer Le 00
  });
});

describe("ICAO 9303-11 Appendix D.4: unprotect (IFD side) and the card's MAC", () => {
  test.each(v.exchanges.map((e, i) => [i + 1, e] as const))("exchange %d: response MAC over K, SW and data", (_n, e) => {
    const c = cipher();
    const r = unprotect(fromHex(e.protectedResponse), c, big(e.sscCommand));
    expect(r.ssc).toBe(big(e.sscResponse));
    expect(r.protected).toBe(true);
    expect(r.sw).toBe(parseInt(e.sw, 16));
    expect(hex(r.data)).toBe(e.data);
    expect(hex(c.mac(r.ssc, fromHex(e.k).subarray(8)))).toBe(e.responseCc);
    // The card-side builder reproduces the example response exactly.
    expect(hex(cardResponse(c, r.ssc, r.data, r.sw))).toBe(e.protectedResponse);
  });
});

describe("ICAO 9303-11 Appendix D.3 + D.4 replayed through a strict scripted card", () => {
  test("BAC, SELECT EF.COM, two READ BINARYs: EF.COM and the final SSC", async () => {
    const card = new ScriptedTransport([
      ...d3.apdus,
      ...v.exchanges.map((e) => ({ command: e.protectedCommand, response: e.protectedResponse })),
    ]);
    const queue = [fromHex(d3.rndIfd), fromHex(d3.kIfd)];
    const session = await performBac(card, fromHex(d2.examples[0]!.kSeed), () => queue.shift()!);
    const channel = new SecureChannel(card, tdesSmCipher(session.ksEnc, session.ksMac), session.ssc);
    const ssc: bigint[] = [];
    const out: Uint8Array[] = [];
    for (const e of v.exchanges) {
      const r = await channel.send(decodeCommand(fromHex(e.command)));
      expect(r).toMatchObject({ sw: 0x9000, protected: true });
      out.push(r.data);
      ssc.push(channel.ssc);
    }
    card.assertDone();
    expect(hex(concat(...out))).toBe(v.efCom);
    expect(ssc).toEqual(v.exchanges.map((e) => big(e.sscResponse)));
    expect(channel.ssc).toBe(big(v.sscFinal));
    channel.close();
  });
});

describe("unprotect failures (the session is dead, never a crash)", () => {
  const e2 = v.exchanges[1]!;
  const ssc = big(e2.sscCommand);
  const reason = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(SecureMessagingError);
      return (e as SecureMessagingError).reason;
    }
    throw new Error("did not throw");
  };

  test("a wrong MAC byte", () => {
    const r = fromHex(e2.protectedResponse);
    r[r.length - 3] = r[r.length - 3]! ^ 0x01;
    expect(reason(() => unprotect(r, cipher(), ssc))).toBe("bad-mac");
    expect(reason(() => unprotect(cardResponse(cipher(), ssc + 1n, fromHex("60145F01"), 0x9000, { flipMac: true }), cipher(), ssc))).toBe("bad-mac");
  });
  test("the right response with the wrong SSC (out of step)", () => {
    expect(reason(() => unprotect(fromHex(e2.protectedResponse), cipher(), ssc + 1n))).toBe("bad-mac");
  });
  test("a correctly MACed response without DO'99'", () => {
    expect(reason(() => unprotect(cardResponse(cipher(), ssc + 1n, fromHex("60145F01"), 0x9000, { do99: null }), cipher(), ssc))).toBe("missing-status");
  });
  test("a correctly MACed DO'99' that differs from the outer status word", () => {
    expect(reason(() => unprotect(cardResponse(cipher(), ssc + 1n, fromHex("60145F01"), 0x9000, { do99: 0x6282 }), cipher(), ssc))).toBe("status-mismatch");
  });
  test("plain 9000 and plain data are missing-mac", () => {
    expect(reason(() => unprotect(fromHex("9000"), cipher(), ssc))).toBe("missing-mac");
    expect(reason(() => unprotect(fromHex("60145F019000"), cipher(), ssc))).toBe("missing-mac");
    expect(reason(() => unprotect(fromHex("990290009000"), cipher(), ssc))).toBe("missing-mac");
  });
  test("malformed objects: truncated, junk after DO'8E', short MAC, bad padding indicator", () => {
    const good = fromHex(e2.protectedResponse);
    expect(reason(() => unprotect(concat(good.subarray(0, 5), fromHex("9000")), cipher(), ssc))).toBe("malformed");
    expect(reason(() => unprotect(concat(good.subarray(0, good.length - 2), fromHex("01009000")), cipher(), ssc))).toBe("malformed");
    expect(reason(() => unprotect(fromHex("990290008E04010203049000"), cipher(), ssc))).toBe("malformed");
    expect(reason(() => unprotect(fromHex("01"), cipher(), ssc))).toBe("malformed");
    // Correctly MACed, but the padding-content indicator is 02 (not 01).
    const c = cipher();
    const dos = concat(fromHex("870902"), c.encrypt(ssc + 1n, pad(fromHex("60145F01"))), fromHex("99029000"));
    const badIndicator = concat(dos, fromHex("8E08"), c.mac(ssc + 1n, dos), fromHex("9000"));
    expect(reason(() => unprotect(badIndicator, cipher(), ssc))).toBe("malformed");
    badIndicator[2] = 0x01;
    expect(reason(() => unprotect(badIndicator, cipher(), ssc))).toBe("bad-mac");
  });
  test("random bytes never escape as anything but an MrtdError", () => {
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    const c = cipher();
    for (let i = 0; i < 2000; i++) {
      const r = Uint8Array.from({ length: 2 + (rnd() % 40) }, rnd);
      if (i % 2 === 0) r[0] = [0x85, 0x87, 0x99, 0x8e][i % 4]!;
      try {
        const out = unprotect(r, c, ssc);
        expect(out.protected).toBe(false); // only plain error status words may pass
      } catch (e) {
        expect(e).toBeInstanceOf(MrtdError);
      }
    }
  });
  test("a plain non-9000 status word comes back unprotected", () => {
    for (const sw of ["6987", "6988", "6A82"]) {
      const r = unprotect(fromHex(sw), cipher(), ssc);
      expect(r).toMatchObject({ sw: parseInt(sw, 16), protected: false, ssc: ssc + 1n });
      expect(r.data.length).toBe(0);
    }
  });
  test("a protected error status (no data) is accepted with its SW", () => {
    const r = unprotect(cardResponse(cipher(), ssc + 1n, new Uint8Array(0), 0x6a82), cipher(), ssc);
    expect(r).toMatchObject({ sw: 0x6a82, protected: true });
  });
});

describe("unprotectInSlices: large responses with the event loop running", () => {
  const ssc = big(v.sscInitial);
  const face = Uint8Array.from({ length: 17_000 }, (_, i) => (i * 7 + 3) & 0xff);
  test("the same data, SSC and status as unprotect at any slice size", async () => {
    for (const n of [0, 1, 7, 8, 1023, 1024, 1025, 17_000]) {
      const r = cardResponse(cipher(), ssc + 1n, face.subarray(0, n), 0x9000);
      const want = unprotect(r, cipher(), ssc);
      for (const slice of [8, 1024, 4096]) expect(await unprotectInSlices(r, cipher(), ssc, slice)).toEqual(want);
    }
    expect(unprotect(cardResponse(cipher(), ssc + 1n, face, 0x9000), cipher(), ssc).data).toEqual(face);
  });
  test("the same errors: bad MAC, wrong SSC, no DO'99', plain status", async () => {
    const reason = (p: Promise<unknown>) => p.then(() => "resolved", (e: unknown) => (e instanceof SecureMessagingError ? e.reason : String(e)));
    expect(await reason(unprotectInSlices(cardResponse(cipher(), ssc + 1n, face, 0x9000, { flipMac: true }), cipher(), ssc, 1024))).toBe("bad-mac");
    expect(await reason(unprotectInSlices(cardResponse(cipher(), ssc + 2n, face, 0x9000), cipher(), ssc, 1024))).toBe("bad-mac");
    expect(await reason(unprotectInSlices(cardResponse(cipher(), ssc + 1n, face, 0x9000, { do99: null }), cipher(), ssc, 1024))).toBe("missing-status");
    expect((await unprotectInSlices(Uint8Array.of(0x69, 0x88), cipher(), ssc, 1024)).protected).toBe(false);
  });
  test("SecureChannel verifies a response longer than SM_SLICE_BYTES in slices: other work runs before it returns", async () => {
    const cmd = { cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 65536, extended: true } as const;
    const sent = protect(cmd, cipher(), ssc);
    const response = cardResponse(cipher(), sent.ssc + 1n, face, 0x9000);
    expect(response.length).toBeGreaterThan(SM_SLICE_BYTES);
    const card = new ScriptedTransport([{ command: hex(sent.apdu), response: hex(response) }]);
    const ch = new SecureChannel(card, cipher(), ssc);
    let ranBetween = false;
    const sending = ch.send(cmd);
    // The transport answers in a microtask; a one-piece unprotect would resolve before this macrotask.
    setImmediate(() => (ranBetween = true));
    const r = await sending;
    expect(ranBetween).toBe(true);
    expect(r.data).toEqual(face);
    expect(ch.ssc).toBe(sent.ssc + 1n);
    card.assertDone();
  });
});

describe("protect: data objects and lengths (ICAO 9303-11 §9.8.4/9.8.5)", () => {
  const c = cipher();
  const parse = (apdu: Uint8Array) => {
    const cmd = decodeCommand(apdu);
    return { cmd, dos: parseTlvList(cmd.data!) };
  };
  test("Le 256 is DO'97' 01 00; case 1 has only DO'8E'; CLA is masked", () => {
    const a = parse(protect({ cla: 0x00, ins: 0xb0, p1: 0, p2: 0, ne: 256 }, c, 0n).apdu);
    expect(hex(a.dos[0]!.value)).toBe("00");
    expect(a.cmd.cla).toBe(0x0c);
    const b = parse(protect({ cla: 0x00, ins: 0xa4, p1: 0, p2: 0x0c }, c, 0n).apdu);
    expect(b.dos.map((d) => d.tag)).toEqual([0x8e]);
    expect(b.cmd.ne).toBe(256);
  });
  test("odd INS uses DO'85' without a padding-content indicator", () => {
    const data = fromHex("54020000");
    const p = protect({ cla: 0, ins: 0xb1, p1: 0, p2: 0x1e, data, ne: 0xdf }, c, 7n);
    const { dos } = parse(p.apdu);
    expect(dos.map((d) => d.tag)).toEqual([0x85, 0x97, 0x8e]);
    expect(hex(unpad(c.decrypt(p.ssc, dos[0]!.value)))).toBe("54020000");
  });
  test("Ne above 256 uses a 2-byte DO'97' and extended outer Le 0000", () => {
    const p = protect({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 1000 }, c, 0n);
    const { cmd, dos } = parse(p.apdu);
    expect(cmd.extended).toBe(true);
    expect(cmd.ne).toBe(65536);
    expect(hex(dos[0]!.value)).toBe("03E8");
    expect(hex(parse(protect({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 65536 }, c, 0n).apdu).dos[0]!.value)).toBe("0000");
  });
  test("command data over 255 bytes after protection switches to extended length", () => {
    const p = protect({ cla: 0, ins: 0xd6, p1: 0, p2: 0, data: new Uint8Array(240) }, c, 0n);
    const { cmd, dos } = parse(p.apdu);
    expect(cmd.extended).toBe(true);
    expect(dos[0]!.value.length).toBe(1 + 248);
  });
  test("SSC wraps modulo 2^64 for 3DES", () => {
    expect(protect({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 1 }, c, 0xffffffffffffffffn).ssc).toBe(0n);
  });
});

describe("maxReadPlaintext", () => {
  test("231 for 3DES and 223 for AES with short Le; extended values fit 65536", () => {
    expect(maxReadPlaintext(cipher(), false)).toBe(231);
    expect(maxReadPlaintext({ blockSize: 16 }, false)).toBe(223);
    expect(maxReadPlaintext(cipher(), true)).toBe(65511);
    expect(maxReadPlaintext({ blockSize: 16 }, true)).toBe(65503);
  });
  test("a 231-byte protected response fits 256 data bytes and a 232-byte one does not", () => {
    const c = cipher();
    expect(cardResponse(c, 1n, new Uint8Array(231), 0x9000).length - 2).toBeLessThanOrEqual(256);
    expect(cardResponse(c, 1n, new Uint8Array(232), 0x9000).length - 2).toBeGreaterThan(256);
    expect(unprotect(cardResponse(c, 1n, new Uint8Array(231).fill(7), 0x9000), c, 0n).data.length).toBe(231);
  });
});

describe("SecureChannel state", () => {
  const e1 = v.exchanges[0]!;
  const start = big(v.sscInitial);
  test("dies after a bad MAC: the next send throws without transmitting", async () => {
    const bad = fromHex(e1.protectedResponse);
    bad[bad.length - 3] = bad[bad.length - 3]! ^ 0x80;
    const card = new ScriptedTransport([{ command: e1.protectedCommand, response: bad }]);
    const ch = new SecureChannel(card, cipher(), start);
    await expect(ch.send(decodeCommand(fromHex(e1.command)))).rejects.toBeInstanceOf(SecureMessagingError);
    expect(ch.dead).toBe(true);
    const again = await ch.send(decodeCommand(fromHex(e1.command))).catch((e: unknown) => e);
    expect((again as SecureMessagingError).reason).toBe("channel-dead");
    card.assertDone();
  });
  test("returns an unprotected 6988 to the caller, then refuses further use", async () => {
    const card = new ScriptedTransport([{ command: e1.protectedCommand, response: "6988" }]);
    const ch = new SecureChannel(card, cipher(), start);
    expect(await ch.send(decodeCommand(fromHex(e1.command)))).toMatchObject({ sw: 0x6988, protected: false });
    expect(ch.dead).toBe(true);
    await expect(ch.send(decodeCommand(fromHex(e1.command)))).rejects.toBeInstanceOf(SecureMessagingError);
    card.assertDone();
  });
  test("a transport failure leaves it dead and passes the TransportError through", async () => {
    const lost = new TransportError("SCARD_W_REMOVED_CARD", "card removed", { retryable: true });
    const card = new ScriptedTransport([{ command: e1.protectedCommand, response: lost }]);
    const ch = new SecureChannel(card, cipher(), start);
    await expect(ch.send(decodeCommand(fromHex(e1.command)))).rejects.toBe(lost);
    expect(ch.dead).toBe(true);
  });
  test("close() wipes the keys and ends the channel", async () => {
    const c = cipher();
    const ch = new SecureChannel(new ScriptedTransport([]), c, start);
    const before = hex(c.mac(1n, new Uint8Array(0)));
    ch.close();
    expect(hex(c.mac(1n, new Uint8Array(0)))).not.toBe(before);
    await expect(ch.send({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 4 })).rejects.toBeInstanceOf(SecureMessagingError);
  });
});

describe("3DES secure messaging regression traces (not ICAO: NFCPassportReader and JMRTD tests)", () => {
  test("NFCPassportReader: protected SELECT 0101 and two responses", () => {
    const t = traces.tdes.nfcPassportReader;
    const c = tdesSmCipher(fromHex(t.ksEnc), fromHex(t.ksMac));
    const p = protect(decodeCommand(fromHex(t.command)), c, big(t.sscBeforeCommand));
    expect(hex(p.apdu)).toBe(t.protectedCommand);
    for (const r of t.responses) {
      const u = unprotect(fromHex(r.response), c, big(r.sscBefore));
      expect(hex(u.data)).toBe(r.data);
      expect(u.sw).toBe(0x9000);
      expect(() => unprotect(fromHex(r.response), c, big(r.sscBefore) + 1n)).toThrow(SecureMessagingError);
    }
  });
  test("JMRTD: two commands protected in a row", () => {
    const t = traces.tdes.jmrtd;
    const c = tdesSmCipher(fromHex(t.ksEnc), fromHex(t.ksMac));
    let ssc = big(t.sscInitial);
    for (const x of t.commands) {
      const p = protect(decodeCommand(fromHex(x.command)), c, ssc);
      expect(hex(p.apdu)).toBe(x.protectedCommand);
      ssc = p.ssc;
    }
  });
});

describe("AES secure messaging (9303-11 §9.8.6.2): AES-256 trace of a real card (gmrtd nfc_session_test.go)", () => {
  const r = (prefix: string) => traces.rows.find((x) => x.what.startsWith(prefix))!.hex;
  const c = () => aesSmCipher(fromHex(r("AES-256 SM (gmrtd trace): KSenc")), fromHex(r("… KSmac")));
  test("SELECT EF.COM, READ BINARY 4 and 0x16 bytes: protected commands byte for byte, responses verified, SSC at every step", () => {
    const rows = traces.rows.filter((x) => x.what.startsWith("…") && !x.what.includes("KSmac") && !x.what.includes("SSC"));
    const responses = rows.filter((x) => x.what.startsWith("… response")).map((x) => x.hex);
    const commands = [
      { plain: "00A4020C02011E", protected: r("… protected SELECT EF.COM"), data: "" },
      { plain: "00B0000004", protected: r("… protected READ BINARY (0, 4)"), data: "60185F01" },
      { plain: "00B0000416", protected: r("… protected READ BINARY (4, 0x16)"), data: r("… EF.COM").slice(8) },
    ];
    const cipher = c();
    let ssc = big(r("… initial SSC"));
    expect(ssc).toBe(0x20n);
    commands.forEach((cmd, i) => {
      const p = protect(decodeCommand(fromHex(cmd.plain)), cipher, ssc);
      expect(hex(p.apdu)).toBe(cmd.protected);
      expect(p.ssc).toBe(ssc + 1n);
      const u = unprotect(fromHex(responses[i]!), cipher, p.ssc);
      expect(u).toMatchObject({ sw: 0x9000, protected: true, ssc: ssc + 2n });
      expect(hex(u.data)).toBe(cmd.data);
      // the same response under a neighbouring SSC does not verify
      expect(() => unprotect(fromHex(responses[i]!), c(), p.ssc + 1n)).toThrow(SecureMessagingError);
      ssc = u.ssc;
    });
    expect(hex(sscBytes(ssc, 16))).toBe("00000000000000000000000000000026");
  });
  test("the cryptogram IV is E(KSenc, SSC): encrypting under another SSC gives other bytes, and decryption inverts it", () => {
    const cipher = c();
    const data = pad(fromHex("0102030405"), 16);
    const a = cipher.encrypt(1n, data), b = cipher.encrypt(2n, data);
    expect(hex(a)).not.toBe(hex(b));
    expect(hex(cipher.decrypt(1n, a))).toBe(hex(data));
    expect(hex(cipher.decrypt(2n, a))).not.toBe(hex(data));
  });
  test("round trip for AES-128/192/256 through protect and a card-built response; SSC wraps modulo 2^128", () => {
    for (const n of [16, 24, 32]) {
      const k = new Uint8Array(n).map((_, i) => i * 7 + n);
      const cipher = smCipherFor(n === 16 ? "AES-128" : n === 24 ? "AES-192" : "AES-256", k, k.map((x) => x ^ 0x5a));
      expect(cipher.name).toBe("AES");
      const resp = cardResponse(cipher, 5n, fromHex("A1B2C3"), 0x9000);
      expect(hex(unprotect(resp, cipher, 4n).data)).toBe("A1B2C3");
      expect(() => unprotect(resp, cipher, 5n)).toThrow(SecureMessagingError);
    }
    const cipher = aesSmCipher(new Uint8Array(16), new Uint8Array(16).fill(1));
    expect(protect({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 1 }, cipher, (1n << 128n) - 1n).ssc).toBe(0n);
    expect(protect({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 1 }, cipher, 0xffffffffffffffffn).ssc).toBe(1n << 64n);
  });
  test("a 223-byte AES response fits a short Le, 224 bytes do not", () => {
    const cipher = c();
    expect(maxReadPlaintext(cipher, false)).toBe(223);
    expect(cardResponse(cipher, 1n, new Uint8Array(223), 0x9000).length - 2).toBeLessThanOrEqual(256);
    expect(cardResponse(cipher, 1n, new Uint8Array(224), 0x9000).length - 2).toBeGreaterThan(256);
  });
  test("bad key lengths are RangeErrors; close() wipes the AES keys", () => {
    expect(() => aesSmCipher(new Uint8Array(16), new Uint8Array(32))).toThrow(/differ in length/);
    expect(() => aesSmCipher(new Uint8Array(20), new Uint8Array(20))).toThrow(/ksEnc must be 16, 24 or 32 bytes, got 20/);
    const cipher = c();
    const before = hex(cipher.mac(1n, new Uint8Array(0)));
    new SecureChannel(new ScriptedTransport([]), cipher, 0n).close();
    expect(hex(cipher.mac(1n, new Uint8Array(0)))).not.toBe(before);
  });
});
