/** The BER reader / DER writer (ITU-T X.690) under agent/pki. */
import { describe, expect, test } from "bun:test";
import { fromHex, hex } from "../../agent/bytes.ts";
import { ParseError } from "../../agent/errors.ts";
import { der, derTlv, encodeOid, intBytes, parseAsn1, readBigInt, readOctetString, readOid, readString, readTime, reencode } from "../../agent/pki/asn1.ts";

describe("X.690 primitives", () => {
  test("OBJECT IDENTIFIER both ways (§8.19)", () => {
    for (const oid of ["2.23.136.1.1.1", "1.2.840.113549.1.1.10", "0.4.0.127.0.7.1.1.4.1.3", "2.999.3", "1.3.36.3.3.2.8.1.1.7"]) {
      expect(readOid(parseAsn1(der.oid(oid)))).toBe(oid);
    }
    expect(hex(encodeOid("1.2.840.113549"))).toBe("2A864886F70D");
    expect(() => readOid(parseAsn1(fromHex("06 02 2A 80")))).toThrow(ParseError); // truncated arc
    expect(() => readOid(parseAsn1(fromHex("06 02 80 01")))).toThrow(ParseError); // non-minimal arc
  });

  test("INTEGER two's complement both ways (§8.3)", () => {
    for (const x of [0n, 1n, 127n, 128n, 255n, 256n, -1n, -128n, -129n, -256n, 1n << 2047n, -(1n << 100n)]) {
      expect(readBigInt(parseAsn1(der.int(x)))).toBe(x);
    }
    expect(hex(intBytes(128n))).toBe("0080");
    expect(hex(intBytes(-128n))).toBe("80");
    expect(hex(intBytes(-129n))).toBe("FF7F");
  });

  test("UTCTime century rule (RFC 5280 §4.1.2.5.1) and GeneralizedTime", () => {
    const t = (tag: number, s: string) => readTime(parseAsn1(derTlv(tag, new TextEncoder().encode(s)))).toISOString();
    expect(t(0x17, "491231235959Z")).toBe("2049-12-31T23:59:59.000Z");
    expect(t(0x17, "500101000000Z")).toBe("1950-01-01T00:00:00.000Z");
    expect(t(0x17, "2601011200+0130")).toBe("2026-01-01T10:30:00.000Z");
    expect(t(0x18, "20591231235959.5Z")).toBe("2059-12-31T23:59:59.000Z");
    expect(() => t(0x17, "261301000000Z")).toThrow(ParseError);
    expect(() => t(0x17, "2601")).toThrow(ParseError);
    expect(() => t(0x02, "260101000000Z")).toThrow(ParseError);
    expect(readTime(parseAsn1(der.time(new Date(Date.UTC(2070, 1, 2))))).toISOString()).toBe("2070-02-02T00:00:00.000Z");
  });

  test("strings: UTF8, BMP, Printable", () => {
    expect(readString(parseAsn1(der.utf8("Ünïcødé")))).toBe("Ünïcødé");
    expect(readString(parseAsn1(fromHex("1E 04 00 C4 00 41")))).toBe("ÄA");
    expect(readString(parseAsn1(der.printable("UT")))).toBe("UT");
  });
});

describe("BER (§8.1.3.6) and re-encoding", () => {
  test("indefinite lengths and a segmented OCTET STRING", () => {
    const ber = fromHex("30 80 24 80 04 02 01 02 04 01 03 00 00 02 01 05 00 00");
    const n = parseAsn1(ber);
    expect(n.indefinite).toBe(true);
    expect(hex(readOctetString(n.children[0]))).toBe("010203");
    expect(hex(reencode(n))).toBe("300C240704020102040103020105"); // definite lengths; segments kept
    expect(hex(reencode(n, 0x31))[0]).toBe("3");
  });

  test("a definite element keeps its bytes when re-tagged", () => {
    const n = parseAsn1(fromHex("A0 03 02 01 01"));
    expect(hex(reencode(n, 0x31))).toBe("3103020101");
  });

  test("trailing bytes are an error unless allowed", () => {
    expect(() => parseAsn1(fromHex("05 00 00"))).toThrow(ParseError);
    expect(parseAsn1(fromHex("05 00 00"), { allowTrailing: true }).raw.length).toBe(2);
  });
});
