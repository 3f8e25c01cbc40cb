import { describe, expect, test } from "bun:test";
import { createRetailMac, pad, retailMac, unpad } from "../../agent/crypto/iso9797.ts";
import { desEcbDecrypt, desEcbEncrypt, createDes } from "../../agent/crypto/des.ts";
import { fromHex, hex } from "../../agent/bytes.ts";
import { ParseError } from "../../agent/errors.ts";
import bac from "../vectors/icao-9303-11-d3-bac-authentication.json";
import sm from "../vectors/icao-9303-11-d4-secure-messaging.json";

describe("ISO/IEC 9797-1 padding method 2", () => {
  test("adds 0x80 then zeros to the next multiple of the block size, a full block when aligned", () => {
    expect(hex(pad(fromHex("011E")))).toBe("011E800000000000");
    expect(hex(pad(new Uint8Array(0)))).toBe("8000000000000000");
    expect(hex(pad(fromHex("0102030405060708")))).toBe("01020304050607088000000000000000");
    expect(pad(new Uint8Array(17), 16).length).toBe(32);
  });
  test("unpad inverts pad for every length 0..40", () => {
    for (let n = 0; n <= 40; n++) {
      const d = Uint8Array.from({ length: n }, (_, i) => (i * 31 + 1) & 0xff);
      expect(hex(unpad(pad(d)))).toBe(hex(d));
    }
  });
  test("unpad rejects data without the 0x80 marker with a ParseError", () => {
    expect(() => unpad(fromHex("0102030405060708"))).toThrow(ParseError);
    expect(() => unpad(fromHex("0000000000000000"))).toThrow(ParseError);
    expect(() => unpad(new Uint8Array(0))).toThrow(ParseError);
    expect(() => unpad(fromHex("0102038001000000"))).toThrow(ParseError);
  });
});

describe("ISO/IEC 9797-1 MAC algorithm 3 (retail MAC) — ICAO 9303-11 worked examples", () => {
  test("Appendix D.3: M.IFD = MAC(Kmac, E.IFD) and M.IC = MAC(Kmac, E.IC)", () => {
    expect(hex(retailMac(fromHex(bac.kMac), pad(fromHex(bac.eIfd))))).toBe(bac.mIfd);
    expect(hex(retailMac(fromHex(bac.kMac), pad(fromHex(bac.eIc))))).toBe(bac.mIc);
  });
  test.each(sm.exchanges.map((e, i) => [i + 1, e] as const))("Appendix D.4 exchange %d: command CC over N and response CC over K", (_n, e) => {
    const m = createRetailMac(fromHex(sm.ksMac));
    expect(hex(m.mac(fromHex(e.n)))).toBe(e.cc);
    expect(hex(m.mac(pad(fromHex(e.k))))).toBe(e.responseCc);
  });
  test("matches its definition: DES-CBC with Ka, then D(Kb), E(Ka)", () => {
    const key = fromHex("0123456789ABCDEFFEDCBA9876543210");
    const data = Uint8Array.from({ length: 24 }, (_, i) => i);
    const h = createDes(key.subarray(0, 8)).cbcLastBlock(data);
    const expected = desEcbEncrypt(key.subarray(0, 8), desEcbDecrypt(key.subarray(8), h));
    expect(hex(retailMac(key, data))).toBe(hex(expected));
  });
  test("macInSlices gives mac()'s result at every slice boundary, with the event loop running between slices", async () => {
    const m = createRetailMac(fromHex(sm.ksMac));
    for (const n of [8, 16, 1024, 1032, 17_000]) {
      const data = pad(Uint8Array.from({ length: n - 1 }, (_, i) => (i * 13 + n) & 0xff));
      for (const slice of [8, 24, 1024]) expect(hex(await m.macInSlices(data, slice))).toBe(hex(m.mac(data)));
    }
    let ranBetween = false;
    const macing = m.macInSlices(new Uint8Array(16 * 1024), 1024);
    setImmediate(() => (ranBetween = true));
    await macing;
    expect(ranBetween).toBe(true);
    await expect(m.macInSlices(new Uint8Array(16), 12)).rejects.toThrow("sliceBytes must be a positive multiple of 8, got 12");
    await expect(m.macInSlices(new Uint8Array(12), 8)).rejects.toThrow("non-zero multiple of 8");
  });
  test("a one-bit change in the data changes the MAC", () => {
    const key = fromHex(sm.ksMac);
    const data = pad(fromHex("0CA4020C"));
    const a = retailMac(key, data);
    data[0] = data[0]! ^ 1;
    expect(hex(retailMac(key, data))).not.toBe(hex(a));
  });
  test("unpadded input is a RangeError naming the length", () => {
    expect(() => retailMac(new Uint8Array(16), new Uint8Array(9))).toThrow(/paddedData length must be a non-zero multiple of 8, got 9/);
    expect(() => retailMac(new Uint8Array(16), new Uint8Array(0))).toThrow(RangeError);
    expect(() => retailMac(new Uint8Array(8), new Uint8Array(8))).toThrow(/key16 must be 16 bytes, got 8/);
  });
});
