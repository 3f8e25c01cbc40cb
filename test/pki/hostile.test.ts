/**
 * Hostile input to the Passive Authentication library: truncated CMS, wrong OIDs, huge lengths,
 * deep nesting, certificate loops, absurd numbers of candidate issuers, random corruption.
 * Expected: a typed error (ParseError) or a failed/unverifiable verdict, quickly; never a crash or hang.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { concat } from "../../agent/bytes.ts";
import { ParseError } from "../../agent/errors.ts";
import { der, derTlv, parseAsn1, readOid } from "../../agent/pki/asn1.ts";
import { parseContentInfoSignedData } from "../../agent/pki/cms.ts";
import { parseCrl } from "../../agent/pki/crl.ts";
import { OID } from "../../agent/pki/oids.ts";
import { TrustStore } from "../../agent/pki/trust-store.ts";
import { verifyPassive } from "../../agent/verification/passive-authentication.ts";
import { parseCertificate } from "../../agent/pki/x509.ts";
import {
  DAY,
  type Scenario,
  type TestKey,
  keyId,
  makeCert,
  makeSelfSignedCa,
  makeCrl,
  makeScenario,
  makeSignedData,
  masterListContent,
  name,
  rsaKey,
} from "./pki-builder.ts";

let s: Scenario;
let ml: Uint8Array;
let crl: Uint8Array;

beforeAll(async () => {
  s = await makeScenario();
  ml = await makeSignedData({
    eContentType: OID.cscaMasterList,
    eContent: masterListContent([s.cscaCert]),
    signerKey: s.ds,
    signerCert: s.dsCert,
    signerIssuer: s.cscaName,
    signerSerial: s.dsSerial,
  });
  crl = await makeCrl({ issuer: s.cscaName, issuerKey: s.csca, thisUpdate: s.now, revoked: [{ serial: 5n, date: s.now }] });
});

function throwsParseError(f: () => unknown): void {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ParseError);
}

function verdictOf(sod: Uint8Array, trust = storeWithCsca()) {
  return verifyPassive({ sod, files: s.files, trust, issuingState: "UTO", now: s.now });
}

function storeWithCsca(): TrustStore {
  const t = new TrustStore();
  t.addCertificate(s.cscaCert, "csca");
  return t;
}

describe("truncated input", () => {
  test("every prefix of a certificate, a CRL, a master list: ParseError", () => {
    for (const [what, bytes, parse] of [
      ["certificate", () => s.cscaCert, parseCertificate],
      ["CRL", () => crl, parseCrl],
      ["master list", () => ml, (b: Uint8Array) => new TrustStore().addMasterList(b, "x")],
    ] as [string, () => Uint8Array, (b: Uint8Array) => unknown][]) {
      const b = bytes();
      for (let n = 0; n < b.length; n++) {
        try {
          parse(b.subarray(0, n));
          throw new Error(`${what} prefix ${n} parsed`);
        } catch (e) {
          if (!(e instanceof ParseError)) throw e;
        }
      }
    }
  });

  test("every prefix of EF.SOD: a failed verdict, never an exception", () => {
    for (let n = 0; n < s.sod.length; n += 3) {
      const v = verdictOf(s.sod.subarray(0, n));
      expect(v.overall).toBe("failed");
      expect(v.reasons).toEqual(["SOD_MALFORMED"]);
    }
  });
});

describe("wrong OIDs", () => {
  test("ContentInfo that is not signedData, master list with LDS content, SOD with master-list content", async () => {
    throwsParseError(() => parseContentInfoSignedData(der.seq(der.oid("1.2.840.113549.1.7.1"), der.ctx(0, der.octets(new Uint8Array(3))))));
    const lds = await makeSignedData({
      eContentType: OID.ldsSecurityObject,
      eContent: masterListContent([s.cscaCert]),
      signerKey: s.ds,
      signerCert: s.dsCert,
      signerIssuer: s.cscaName,
      signerSerial: s.dsSerial,
    });
    throwsParseError(() => new TrustStore().addMasterList(lds, "x"));
    expect(verdictOf(derTlv(0x77, ml)).reasons).toEqual(["SOD_MALFORMED"]);
  });

  test("signed contentType attribute naming another type: failed", async () => {
    // sign a SOD whose eContentType is the LDS object but whose attribute says otherwise: build by hand
    const good = await makeScenario({ csca: s.csca, ds: s.ds, cscaCert: s.cscaCert });
    const at = findBytes(good.sod, der.oid(OID.ldsSecurityObject), 2); // second occurrence: the contentType attribute
    const tampered = good.sod.slice();
    tampered[at + der.oid(OID.ldsSecurityObject).length - 1]! ^= 0x01; // last arc 1 -> 0
    const v = verdictOf(tampered);
    expect(v.overall).toBe("failed");
    expect(v.reasons).toEqual(["SOD_CONTENT_TYPE_MISMATCH"]);
  });
});

describe("huge lengths and deep nesting", () => {
  test("length fields far beyond the input, and length-of-length overflow", () => {
    for (const bytes of [
      Uint8Array.of(0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01, 0x00),
      Uint8Array.of(0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
      Uint8Array.of(0x30, 0xff),
      Uint8Array.of(0x04, 0x80, 0x00, 0x00), // indefinite primitive
      Uint8Array.of(0x30, 0x80, 0x02, 0x01, 0x00), // no end-of-contents
      Uint8Array.of(0x1f, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00), // endless tag number
    ]) {
      throwsParseError(() => parseAsn1(bytes));
      throwsParseError(() => parseCertificate(bytes));
    }
    const cert = s.cscaCert.slice();
    cert[5] = 0x84; // TBSCertificate length
    throwsParseError(() => parseCertificate(cert));
  });

  test("100,000 levels of nesting in a certificate file are refused fast", () => {
    const depth = 100_000;
    const deep = new Uint8Array(depth * 2 + 2 * depth);
    for (let i = 0; i < depth; i++) deep.set([0x30, 0x80], i * 2);
    const t0 = performance.now();
    throwsParseError(() => new TrustStore().addCertificate(deep, "deep"));
    expect(performance.now() - t0).toBeLessThan(200);
  });

  test("a node budget besides depth: 4 MiB of empty elements inside EF.SOD are refused fast, not two million objects", () => {
    const body = new Uint8Array(4 * 1024 * 1024); // 05 00 05 00 ...: NULL after NULL
    for (let i = 0; i < body.length; i += 2) body[i] = 0x05;
    const sod = derTlv(0x77, derTlv(0x30, body));
    const t0 = performance.now();
    throwsParseError(() => parseAsn1(sod));
    expect(performance.now() - t0).toBeLessThan(500);
    let err: unknown;
    try {
      parseAsn1(sod);
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).toContain("more than 50000 elements");
    // the same shape within a larger budget parses: the budget, not the shape, refused it
    const small = derTlv(0x77, derTlv(0x30, body.subarray(0, 120_000)));
    expect(parseAsn1(small, { maxNodes: 70_000 }).children[0]!.children.length).toBe(60_000);
    // through the EF.SOD parser it is a failed verdict, as any malformed SOD
    expect(verifyPassive({ sod, files: new Map(), now: new Date() }).reasons).toEqual(["SOD_MALFORMED"]);
  });

  test("an OID with an absurd arc, an integer of 100 kB as DG number", () => {
    throwsParseError(() => readOid(parseAsn1(derTlv(0x06, new Uint8Array(100).fill(0xff)))));
    throwsParseError(() => readOid(parseAsn1(derTlv(0x06, concat(new Uint8Array(9).fill(0xff), Uint8Array.of(0x7f))))));
    throwsParseError(() => readOid(parseAsn1(derTlv(0x06, Uint8Array.of(0x2a, 0x86)))));
    throwsParseError(() => parseCertificate(der.seq(der.seq(derTlv(0x02, new Uint8Array(100_000).fill(1))))));
  });
});

describe("certificate loops and absurd chains", () => {
  test("two CSCAs that certify each other, and a DS issued by one of them: one step, verified", async () => {
    const a = await rsaKey();
    const b = await rsaKey();
    const nameA = name({ C: "UT", CN: "CSCA A" });
    const nameB = name({ C: "UT", CN: "CSCA B" });
    const period = { notBefore: new Date(s.now.getTime() - DAY), notAfter: new Date(s.now.getTime() + 900 * DAY) };
    const aByB = await makeCert({ subject: nameA, issuer: nameB, serial: 1n, subjectKey: a, issuerKey: b, ca: true, ...period });
    const bByA = await makeCert({ subject: nameB, issuer: nameA, serial: 2n, subjectKey: b, issuerKey: a, ca: true, ...period });
    const trust = new TrustStore();
    trust.addCertificate(aByB, "a");
    trust.addCertificate(bByA, "b");
    const doc = await makeScenario({ csca: a, cscaName: nameA, cscaCert: aByB, ds: s.ds, now: s.now });
    const t0 = performance.now();
    const v = verifyPassive({ sod: doc.sod, files: doc.files, trust, issuingState: "UTO", now: s.now });
    expect(v.overall).toBe("verified");
    // the same loop inside the SOD's certificates with an unknown CSCA: no CSCA, promptly
    const loopy = await makeScenario({ csca: a, cscaName: nameA, cscaCert: aByB, ds: s.ds, now: s.now, sod: { extraCerts: [aByB, bByA] } });
    const v2 = verifyPassive({ sod: loopy.sod, files: loopy.files, trust: storeWithCsca(), issuingState: "UTO", now: s.now });
    expect(v2.reasons).toEqual(["NO_CSCA"]);
    expect(performance.now() - t0).toBeLessThan(500);
  });

  test("a self-issued DS (issuer = subject) is not its own CSCA", async () => {
    const dsName = name({ C: "UT", CN: "Selfish DS" });
    const key = s.ds;
    const selfDs = await makeCert({
      subject: dsName,
      issuer: dsName,
      serial: 3n,
      notBefore: new Date(s.now.getTime() - DAY),
      notAfter: new Date(s.now.getTime() + DAY),
      subjectKey: key,
      issuerKey: key,
    });
    const doc = await makeScenario({ csca: s.csca, cscaCert: s.cscaCert, ds: key, now: s.now, sod: { signerCert: selfDs, signerIssuer: dsName, signerSerial: 3n } });
    expect(verdictOf(doc.sod).reasons).toEqual(["NO_CSCA"]);
  });

  test("500 same-named CSCAs with the wrong keys: bounded work, DS_CERT_SIGNATURE_BAD", async () => {
    const trust = new TrustStore();
    const wrong: TestKey = await rsaKey();
    for (let i = 0; i < 500; i++) {
      const cert = await makeSelfSignedCa({
        subject: s.cscaName,
        serial: BigInt(1000 + i),
        notBefore: new Date(s.now.getTime() - DAY),
        notAfter: new Date(s.now.getTime() + DAY),
        subjectKey: wrong,
        skid: keyId(s.csca), // the genuine CSCA's key id, so every one is a candidate
      });
      trust.addCertificate(cert, `c${i}`);
    }
    const t0 = performance.now();
    const v = verifyPassive({ sod: s.sod, files: s.files, trust, issuingState: "UTO", now: s.now });
    expect(performance.now() - t0).toBeLessThan(300);
    expect(v.overall).toBe("failed");
    expect(v.reasons).toEqual(["DS_CERT_SIGNATURE_BAD"]);
  });
});

test("random corruption of EF.SOD: a verdict every time, never an exception", () => {
  let seed = 4242;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const trust = storeWithCsca();
  const seen = new Set<string>();
  for (let i = 0; i < 400; i++) {
    const b = s.sod.slice();
    b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
    const v = verdictOf(b, trust);
    expect(["verified", "failed", "unverifiable"]).toContain(v.overall);
    seen.add(v.overall);
  }
  expect(seen.has("failed")).toBe(true);
});

test("random corruption of certificates and CRLs: ParseError or a parse", () => {
  let seed = 99;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (const src of [s.cscaCert, s.dsCert, crl]) {
    for (let i = 0; i < 500; i++) {
      const b = src.slice();
      b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      try {
        if (src === crl) parseCrl(b);
        else parseCertificate(b);
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
      }
    }
  }
});

function findBytes(hay: Uint8Array, needle: Uint8Array, occurrence = 1): number {
  let seen = 0;
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    if (++seen === occurrence) return i;
  }
  throw new Error("not found");
}
