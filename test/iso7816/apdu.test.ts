/** ISO/IEC 7816-4 §5.1 command/response APDU codec: cases 1–4, short and extended, both directions. */
import { describe, expect, test } from "bun:test";
import { fromHex, hex } from "../../agent/bytes.ts";
import { ParseError } from "../../agent/errors.ts";
import { commandName, decodeCommand, decodeResponse, encodeCommand, encodeResponse, needsExtended, type CommandApdu } from "../../agent/iso7816/apdu.ts";

const cases: [string, CommandApdu, string][] = [
  ["case 1", { cla: 0, ins: 0xa4, p1: 4, p2: 0x0c }, "00A4040C"],
  ["case 2 short, Ne 8", { cla: 0, ins: 0x84, p1: 0, p2: 0, ne: 8 }, "0084000008"],
  ["case 2 short, Ne 256 as Le 00", { cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 256 }, "00B0000000"],
  ["case 3 short (SELECT EF.COM, 9303-11 D.4)", { cla: 0, ins: 0xa4, p1: 2, p2: 0x0c, data: fromHex("011E") }, "00A4020C02011E"],
  ["case 4 short (EXTERNAL AUTHENTICATE Lc 28 Le 28)", { cla: 0, ins: 0x82, p1: 0, p2: 0, data: new Uint8Array(40).fill(0xab), ne: 40 }, "0082000028" + "AB".repeat(40) + "28"],
  ["case 2 extended, Ne 1000", { cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 1000 }, "00B00000" + "0003E8"],
  ["case 2 extended, Ne 65536 as Le 0000", { cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 65536 }, "00B00000" + "000000"],
  ["case 3 extended, Nc 300", { cla: 0, ins: 0xd6, p1: 0, p2: 0, data: new Uint8Array(300) }, "00D60000" + "00012C" + "00".repeat(300)],
  ["case 4 extended, Nc 2 Ne 512", { cla: 0x0c, ins: 0xb0, p1: 0, p2: 0, data: fromHex("9701"), ne: 512 }, "0CB00000" + "000002" + "9701" + "0200"],
  ["case 2 forced extended, Ne 231", { cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 231, extended: true }, "00B00000" + "0000E7"],
];

describe("command APDU (ISO 7816-4 §5.1)", () => {
  for (const [name, cmd, expected] of cases) {
    test(`${name}: encode, then decode back`, () => {
      expect(hex(encodeCommand(cmd))).toBe(expected);
      const back = decodeCommand(fromHex(expected));
      expect(back.cla).toBe(cmd.cla);
      expect(back.ins).toBe(cmd.ins);
      expect(hex(back.data ?? new Uint8Array(0))).toBe(hex(cmd.data ?? new Uint8Array(0)));
      expect(back.ne).toBe(cmd.ne);
      expect(back.extended).toBe(needsExtended(cmd));
    });
  }

  test("rejects values that do not fit", () => {
    expect(() => encodeCommand({ cla: 256, ins: 0, p1: 0, p2: 0 })).toThrow(RangeError);
    expect(() => encodeCommand({ cla: 0, ins: 0, p1: 0, p2: 0, ne: 0 })).toThrow(RangeError);
    expect(() => encodeCommand({ cla: 0, ins: 0, p1: 0, p2: 0, ne: 65537 })).toThrow(RangeError);
    expect(() => encodeCommand({ cla: 0, ins: 0, p1: 0, p2: 0, data: new Uint8Array(65536) })).toThrow(RangeError);
  });

  test("inconsistent lengths from a hostile reader side are ParseErrors", () => {
    for (const bad of ["00A4", "00A4040C0301", "00B000000000", "00B00000000005AB", "00B00000000002AA"]) {
      expect(() => decodeCommand(fromHex(bad))).toThrow(ParseError);
    }
  });
});

describe("response APDU", () => {
  test("data and status word, both directions", () => {
    const r = decodeResponse(fromHex("4608F919887022129000"));
    expect(hex(r.data)).toBe("4608F91988702212");
    expect(r.sw).toBe(0x9000);
    expect(hex(encodeResponse(r))).toBe("4608F919887022129000");
  });
  test("a status word alone", () => {
    expect(decodeResponse(fromHex("6982"))).toEqual({ data: new Uint8Array(0), sw: 0x6982 });
  });
  test("fewer than two bytes is a ParseError", () => {
    expect(() => decodeResponse(fromHex("90"))).toThrow(ParseError);
    expect(() => decodeResponse(new Uint8Array(0))).toThrow(ParseError);
  });
  test("command names never include data", () => {
    expect(commandName(0xb0)).toBe("READ BINARY");
    expect(commandName(0x99)).toBe("INS 99");
  });
});
