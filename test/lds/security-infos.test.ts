import { describe, expect, test } from "bun:test";
import { fromHex, hex } from "../../agent/bytes.ts";
import { p256 } from "@noble/curves/nist.js";
import { brainpoolP256r1 } from "@noble/curves/misc.js";
import { der } from "../../agent/pki/asn1.ts";
import { encodeTlv } from "../../agent/iso7816/tlv.ts";
import { ParseError } from "../../agent/errors.ts";
import { parseDg14 } from "../../agent/lds/dg14.ts";
import { domainName, groupFor, paceDomain, parseCardAccess, parseSecurityInfos } from "../../agent/lds/security-infos.ts";
import g1 from "../vectors/icao-9303-11-g1-pace-ecdh-gm.json";

const unsigned = (x: bigint, len: number) => fromHex(x.toString(16).padStart(2 * len, "0"));
const octets = (x: bigint, len: number) => der.octets(unsigned(x, len));

/** SpecifiedECDomain of a noble curve (TR-03111 §4.1.1 / RFC 3279 ECParameters). */
function ecParameters(Point: typeof p256.Point): Uint8Array {
  const c = Point.CURVE();
  return der.seq(der.int(1), der.seq(der.oid("1.2.840.10045.1.1"), der.int(c.p)), der.seq(octets(c.a, 32), octets(c.b, 32)), der.octets(Point.BASE.toBytes(false)), der.int(c.n), der.int(c.h));
}

describe("EF.CardAccess (9303-11 §9.2.11)", () => {
  test("Appendix G.1: one PACEInfo, standardized brainpoolP256r1", () => {
    const infos = parseCardAccess(fromHex(g1.rows[0]!.hex));
    expect(infos.pace).toHaveLength(1);
    const d = paceDomain(infos, infos.pace[0]!)!;
    expect(d).toEqual({ kind: "standard", id: 13 });
    expect(domainName(d)).toBe("brainpoolP256r1");
  });
  test("PACEInfo with a proprietary parameter id resolved through PACEDomainParameterInfo with explicit parameters", () => {
    const ca = der.set(
      der.seq(der.oid("0.4.0.127.0.7.2.2.4.2.2"), der.int(2), der.int(32)),
      der.seq(der.oid("0.4.0.127.0.7.2.2.4.2"), der.seq(der.oid("1.2.840.10045.2.1"), ecParameters(brainpoolP256r1.Point as typeof p256.Point)), der.int(32)),
      der.seq(der.oid("0.4.0.127.0.7.2.2.4.2.4"), der.int(1), der.int(12)), // version 1: not PACE v2, ignored
      der.seq(der.oid("1.2.3.4"), der.int(1)), // unknown: kept by OID only
    );
    const infos = parseSecurityInfos(ca);
    expect(infos.pace).toHaveLength(1);
    expect(infos.protocols).toContain("1.2.3.4");
    const d = paceDomain(infos, infos.pace[0]!)!;
    expect(d.kind).toBe("explicit-ec");
    // explicit parameters equal to a named curve are recognised as that curve
    expect(groupFor(d)!.name).toBe("brainpoolP256r1");
  });
  test("explicit parameters of an unnamed curve build a working group", () => {
    // P-256 with another base point (2·G): not a named curve any more
    const c = p256.Point.CURVE();
    const g2 = p256.Point.BASE.double().toBytes(false);
    const params = der.seq(der.int(1), der.seq(der.oid("1.2.840.10045.1.1"), der.int(c.p)), der.seq(octets(c.a, 32), octets(c.b, 32)), der.octets(g2), der.int(c.n), der.int(1));
    const infos = parseSecurityInfos(der.set(der.seq(der.oid("0.4.0.127.0.7.2.2.4.2"), der.seq(der.oid("1.2.840.10045.2.1"), params))));
    const grp = groupFor(infos.paceDomainParameters[0]!.domainParameters)!;
    expect(grp.name).toBe("explicit EC (256-bit)");
    expect(hex(grp.publicKey(1n))).toBe(hex(g2));
    expect(hex(grp.sharedSecret(3n, grp.publicKey(5n)))).toBe(hex(grp.sharedSecret(5n, grp.publicKey(3n))));
  });
  test("malformed input is a ParseError", () => {
    expect(() => parseSecurityInfos(fromHex("3003300106"))).toThrow(ParseError);
    expect(() => parseSecurityInfos(fromHex("300100"))).toThrow(ParseError);
    expect(() => parseSecurityInfos(der.set(der.seq(der.oid("0.4.0.127.0.7.2.2.4.2.2"))))).toThrow(ParseError);
  });
});

describe("DG14 Chip Authentication infos (9303-11 §9.2.5, §9.2.6)", () => {
  test("ChipAuthenticationInfo and an ECDH ChipAuthenticationPublicKeyInfo with a standardized curve id", () => {
    const pk = p256.Point.BASE.multiply(7n).toBytes(false);
    const dg14 = encodeTlv(
      0x6e,
      der.set(
        der.seq(der.oid("0.4.0.127.0.7.2.2.3.2.4"), der.int(1)),
        der.seq(der.oid("0.4.0.127.0.7.2.2.1.2"), der.seq(der.seq(der.oid("0.4.0.127.0.7.1.2"), der.int(12)), der.bits(pk))),
      ),
    );
    const d = parseDg14(dg14);
    expect(d.infos.chipAuthentication[0]).toMatchObject({ version: 1, protocol: { agreement: "ECDH", cipher: "AES-256" } });
    const k = d.infos.chipAuthenticationPublicKeys[0]!;
    expect(k).toMatchObject({ agreement: "ECDH", domainParameters: { kind: "standard", id: 12 } });
    expect(hex(k.publicKey)).toBe(hex(pk));
    expect(d.securityInfos.map((s) => s.name)).toEqual(["ChipAuthentication", "ChipAuthenticationPublicKey"]);
  });
  test("DH ChipAuthenticationPublicKeyInfo with X9.42 domain parameters and a key id", () => {
    const g = groupFor({ kind: "standard", id: 2 })!;
    const y = g.publicKey(12345n);
    const yInt = BigInt(`0x${hex(y)}`);
    const infos = parseSecurityInfos(
      der.set(der.seq(der.oid("0.4.0.127.0.7.2.2.1.1"), der.seq(der.seq(der.oid("0.4.0.127.0.7.1.2"), der.int(2)), der.bits(der.int(yInt))), der.int(9))),
    );
    const k = infos.chipAuthenticationPublicKeys[0]!;
    expect(k).toMatchObject({ agreement: "DH", keyId: 9n });
    expect(hex(k.publicKey)).toBe(hex(y).replace(/^(00)+/, ""));
  });
});
