/** EF.SOD parsing and data-group hash comparison (ICAO 9303-10 §4.6.2), including BER and hostile input. */
import { beforeAll, describe, expect, test } from "bun:test";
import { concat, equalBytes } from "../../agent/bytes.ts";
import { ParseError } from "../../agent/errors.ts";
import { compareHashes, parseSod } from "../../agent/lds/sod.ts";
import { der, derTlv } from "../../agent/pki/asn1.ts";
import { digest } from "../../agent/pki/digest.ts";
import { type HashName, OID } from "../../agent/pki/oids.ts";
import {
  type Scenario,
  ldsSecurityObject,
  makeScenario,
  makeSignedData,
  rsaKey,
  specimenFiles,
  toIndefinite,
  wrapSod,
} from "../pki/pki-builder.ts";

let base: Scenario;
beforeAll(async () => {
  base = await makeScenario();
});

/** A SOD whose LDSSecurityObject is `eContent` verbatim (signed like a real one). */
async function sodWithContent(eContent: Uint8Array, eContentType: string = OID.ldsSecurityObject): Promise<Uint8Array> {
  return wrapSod(
    await makeSignedData({
      eContentType,
      eContent,
      signerKey: base.ds,
      signerCert: base.dsCert,
      signerIssuer: base.cscaName,
      signerSerial: base.dsSerial,
    }),
  );
}

function expectParseError(bytes: Uint8Array): ParseError {
  let caught: unknown;
  try {
    parseSod(bytes);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ParseError);
  return caught as ParseError;
}

describe("parseSod (9303-10 §4.6.2)", () => {
  test("DER, LDSSecurityObject v0: algorithm, hashes and the signed data pieces", () => {
    const sod = parseSod(base.sod);
    expect(sod.hashAlgorithm).toBe("sha256");
    expect(sod.hashAlgorithmOid).toBe(OID.sha256);
    expect(sod.version).toBe(0);
    expect(sod.ldsVersion).toBeUndefined();
    expect([...sod.dataGroupHashes.keys()]).toEqual([1, 2, 14]);
    for (const [dg, bytes] of base.files) expect(equalBytes(sod.dataGroupHashes.get(dg)!, digest("sha256", bytes))).toBe(true);
    expect(sod.signedData.certificates).toHaveLength(1);
    expect(equalBytes(sod.signedData.certificates[0]!, base.dsCert)).toBe(true);
    expect(sod.signedData.signerInfos).toHaveLength(1);
    const si = sod.signedData.signerInfos[0]!;
    expect(si.sid).toEqual({ kind: "issuer-serial", issuer: base.cscaName, serial: base.dsSerial });
    expect(si.signedAttrs?.der[0]).toBe(0x31);
    expect(si.signedAttrs?.attributes.map((a) => a.oid).sort()).toEqual([OID.contentType, OID.messageDigest, OID.signingTime].sort());
  });

  test("LDSSecurityObject v1 carries LDSVersionInfo", async () => {
    const s = await makeScenario({ versionInfo: true, ds: base.ds, csca: base.csca, cscaCert: base.cscaCert });
    const sod = parseSod(s.sod);
    expect(sod.version).toBe(1);
    expect(sod.ldsVersion).toBe("0108");
    expect(sod.unicodeVersion).toBe("040000");
  });

  for (const h of ["sha1", "sha224", "sha256", "sha384", "sha512"] as HashName[]) {
    test(`hash algorithm ${h}`, async () => {
      const sod = parseSod(await sodWithContent(ldsSecurityObject(h, base.files)));
      expect(sod.hashAlgorithm).toBe(h);
      expect(compareHashes(sod, base.files).every((r) => r.status === "ok")).toBe(true);
    });
  }

  test("BER indefinite lengths and a segmented eContent (US passports, proxmark3 PR #1145) parse like DER", () => {
    const der1 = parseSod(base.sod);
    for (const chunks of [undefined, 64]) {
      const ber = toIndefinite(base.sod, chunks);
      expect(ber.length).toBeGreaterThan(base.sod.length);
      expect(ber[1]).toBe(0x80);
      const sod = parseSod(ber);
      expect([...sod.dataGroupHashes]).toEqual([...der1.dataGroupHashes]);
      // the signed attributes are re-encoded to the DER the signature covers
      expect(equalBytes(sod.signedData.signerInfos[0]!.signedAttrs!.der, der1.signedData.signerInfos[0]!.signedAttrs!.der)).toBe(true);
      expect(equalBytes(sod.signedData.certificates[0]!, base.dsCert)).toBe(true);
      expect(equalBytes(sod.signedData.eContent!, der1.signedData.eContent!)).toBe(true);
    }
  });

  test("padding after tag 77 is tolerated, other trailing data is not", () => {
    expect(parseSod(concat(base.sod, new Uint8Array(5))).dataGroupHashes.size).toBe(3);
    expectParseError(concat(base.sod, Uint8Array.of(0x30, 0x00)));
  });
});

describe("compareHashes", () => {
  test("ok, mismatch, not read, not in SOD", () => {
    const sod = parseSod(base.sod);
    const files = new Map(base.files);
    const dg2 = files.get(2)!.slice();
    dg2[100]! ^= 1;
    files.set(2, dg2);
    files.delete(14);
    files.set(11, derTlv(0x6b, Uint8Array.of(1, 2, 3)));
    expect(compareHashes(sod, files)).toEqual([
      { dg: 1, status: "ok" },
      { dg: 2, status: "mismatch" },
      { dg: 11, status: "not-in-sod" },
      { dg: 14, status: "not-read" },
    ]);
  });

  test("all read and untouched: every DG ok", () => {
    expect(compareHashes(parseSod(base.sod), specimenFiles()).map((r) => r.status)).toEqual(["ok", "ok", "ok"]);
  });

  test("digests known from the read are used when the SOD's algorithm matches, ignored otherwise", () => {
    const sod = parseSod(base.sod);
    const files = specimenFiles();
    const wrong = new Map([[1, new Uint8Array(sod.dataGroupHashes.get(1)!.length)]]);
    // the known (here deliberately wrong) DG1 digest is what gets compared: proof it is not recomputed
    expect(compareHashes(sod, files, { algorithm: sod.hashAlgorithm, byDg: wrong }).map((r) => r.status)).toEqual(["mismatch", "ok", "ok"]);
    const other = sod.hashAlgorithm === "sha256" ? "sha512" : "sha256";
    expect(compareHashes(sod, files, { algorithm: other, byDg: wrong }).map((r) => r.status)).toEqual(["ok", "ok", "ok"]);
  });
});

describe("hostile EF.SOD -> ParseError, never a crash or hang", () => {
  test("every truncation", () => {
    for (let n = 0; n < base.sod.length; n++) expectParseError(base.sod.subarray(0, n));
    const ber = toIndefinite(base.sod, 50);
    for (let n = 0; n < ber.length; n += 7) expectParseError(ber.subarray(0, n));
  });

  test("wrong outer tag, wrong ContentInfo type, wrong eContent type", async () => {
    expectParseError(concat(Uint8Array.of(0x76), base.sod.subarray(1)));
    const ci = base.sod.subarray(4); // 77 82 LL LL
    const wrongCi = concat(ci.subarray(0, 4 + 2), der.oid("1.2.840.113549.1.7.1").subarray(2), ci.subarray(4 + 2 + 9));
    expect(wrongCi.length).toBe(ci.length);
    expect(expectParseError(derTlv(0x77, wrongCi)).message).toContain("not signedData");
    const err = expectParseError(await sodWithContent(ldsSecurityObject("sha256", base.files), OID.cscaMasterList));
    expect(err.message).toContain("not LDSSecurityObject");
  });

  test("bad LDSSecurityObject contents", async () => {
    const alg = der.seq(der.oid(OID.sha256), der.null());
    const h = der.octets(new Uint8Array(32));
    const cases: [string, Uint8Array][] = [
      ["unsupported hash", der.seq(der.int(0), der.seq(der.oid("1.2.840.113549.2.5")), der.seq(der.seq(der.int(1), h)))],
      ["DG 0", der.seq(der.int(0), alg, der.seq(der.seq(der.int(0), h)))],
      ["DG 17", der.seq(der.int(0), alg, der.seq(der.seq(der.int(17), h)))],
      ["duplicate DG", der.seq(der.int(0), alg, der.seq(der.seq(der.int(1), h), der.seq(der.int(1), h)))],
      ["short hash", der.seq(der.int(0), alg, der.seq(der.seq(der.int(1), der.octets(new Uint8Array(20)))))],
      ["no hashes", der.seq(der.int(0), alg, der.seq())],
      ["version 2", der.seq(der.int(2), alg, der.seq(der.seq(der.int(1), h)))],
      ["huge DG number", der.seq(der.int(0), alg, der.seq(der.seq(der.int(1n << 80n), h)))],
      ["not a sequence", der.octets(new Uint8Array(4))],
      ["version info in v0", der.seq(der.int(0), alg, der.seq(der.seq(der.int(1), h)), der.seq(der.printable("0108"), der.printable("040000")))],
    ];
    for (const [what, content] of cases) {
      const e = expectParseError(await sodWithContent(content));
      expect(`${what}: ${e.name}`).toBe(`${what}: ParseError`);
    }
  });

  test("huge lengths", () => {
    const huge = concat(Uint8Array.of(0x77, 0x84, 0xff, 0xff, 0xff, 0xf0), base.sod.subarray(4));
    expect(expectParseError(huge).message).toMatch(/bytes/);
    expectParseError(Uint8Array.of(0x77, 0x89, 1, 1, 1, 1, 1, 1, 1, 1, 1));
    // a huge length deep inside: the SignedData SEQUENCE
    const inner = base.sod.slice();
    const at = inner.indexOf(0x30, 4 + 4 + 11 + 4);
    inner[at + 1] = 0x84;
    expectParseError(inner);
  });

  test("deep nesting is bounded", () => {
    const depth = 100_000;
    const deep = new Uint8Array(2 + depth * 2);
    deep[0] = 0x77;
    deep[1] = 0x80;
    for (let i = 0; i < depth; i++) deep.set([0x30, 0x80], 2 + i * 2);
    const t0 = performance.now();
    expect(expectParseError(deep).message).toContain("nesting");
    expect(performance.now() - t0).toBeLessThan(500);
  });

  test("random corruption: ParseError or a parse, nothing else", () => {
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    let parsed = 0;
    for (let i = 0; i < 3000; i++) {
      const b = base.sod.slice();
      for (let k = 0; k < 1 + Math.floor(rnd() * 3); k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      try {
        parseSod(b);
        parsed++;
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
      }
    }
    // most flips land in the signature or certificate bytes, which parsing does not interpret
    expect(parsed).toBeGreaterThan(0);
  });
});

test("a SOD built by the test RSA key with SHA-512 content and SHA-256 signature parses (hash and signature vary independently)", async () => {
  const ds = await rsaKey({ hash: "sha256" });
  const s = await makeScenario({ ds, csca: base.csca, cscaCert: base.cscaCert, ldsHash: "sha512" });
  const sod = parseSod(s.sod);
  expect(sod.hashAlgorithm).toBe("sha512");
  expect(sod.signedData.signerInfos[0]!.digestAlgorithm.oid).toBe(OID.sha256);
});
