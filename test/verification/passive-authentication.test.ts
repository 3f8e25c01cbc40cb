/** Passive Authentication verdicts (ICAO 9303-11 §5.1, 9303-12 §7) for good and broken documents. */
import { beforeAll, describe, expect, test } from "bun:test";
import { der } from "../../agent/pki/asn1.ts";
import { OID } from "../../agent/pki/oids.ts";
import { caProblem } from "../../agent/pki/chain.ts";
import { TrustStore } from "../../agent/pki/trust-store.ts";
import { parseCertificate } from "../../agent/pki/x509.ts";
import { type PaVerdict, verifyPassive } from "../../agent/verification/passive-authentication.ts";
import { REASONS } from "../../agent/verification/reasons.ts";
import {
  DAY,
  type Scenario,
  type ScenarioOptions,
  type TestKey,
  brainpoolKey,
  keyId,
  makeCert,
  makeSelfSignedCa,
  makeCrl,
  makeScenario,
  name,
  nistKey,
  rsaKey,
  toIndefinite,
} from "../pki/pki-builder.ts";

let csca: TestKey;
let ds: TestKey;
let base: Scenario;

beforeAll(async () => {
  csca = await rsaKey({ bits: 2048 });
  ds = await rsaKey({ bits: 2048 });
  base = await makeScenario({ csca, ds });
});

function storeWith(...certs: Uint8Array[]): TrustStore {
  const t = new TrustStore();
  for (const c of certs) t.addCertificate(c, "test");
  return t;
}

async function scenario(o: ScenarioOptions = {}): Promise<Scenario> {
  return makeScenario({ csca, ds, cscaCert: base.cscaCert, ...o });
}

function run(s: Scenario, extra: Partial<Parameters<typeof verifyPassive>[0]> = {}): PaVerdict {
  return verifyPassive({ sod: s.sod, files: s.files, trust: storeWith(s.cscaCert), issuingState: "UTO", now: s.now, ...extra });
}

describe("verified documents", () => {
  test("RSA PKCS#1 v1.5 document signer under an RSA CSCA", () => {
    const v = run(base);
    expect(v.overall).toBe("verified");
    expect(v.reasons).toEqual([]);
    expect(v.sodSignature).toBe("ok");
    expect(v.chain).toBe("trusted");
    expect(v.dgHashes).toEqual([
      { dg: 1, status: "ok" },
      { dg: 2, status: "ok" },
      { dg: 14, status: "ok" },
    ]);
    expect(v.signer).toMatchObject({ subject: "C=UT, O=Utopia, CN=Document Signer 7", issuer: "C=UT, O=Utopia, CN=CSCA Utopia", serial: "1234" });
    expect(v.signer!.algorithm).toBe("RSA-2048 PKCS#1 v1.5 SHA-256");
    expect(v.csca).toEqual({ subject: "C=UT, O=Utopia, CN=CSCA Utopia", serial: "01", source: "test" });
    expect(v.signingTime).toBe(new Date(base.now.getTime() - DAY).toISOString());
    expect(v.revocation).toBe("no-crl");
    expect(v.summary).toStartWith("verified: 3 data groups match the SOD");
  });

  test("RSA-PSS, ECDSA P-256 and brainpoolP256r1 signers; brainpool CSCA with explicit parameters", async () => {
    const bpCsca = brainpoolKey("brainpoolP384r1", "sha384", { explicit: true });
    for (const [signer, cscaKey] of [
      [await rsaKey({ pss: { saltLength: 32 } }), csca],
      [await nistKey("P-256"), csca],
      [brainpoolKey(), bpCsca],
      [brainpoolKey("brainpoolP512r1", "sha512", { plain: true }), bpCsca],
    ] as [TestKey, TestKey][]) {
      const s = await makeScenario({ ds: signer, csca: cscaKey });
      const v = run(s);
      expect(`${signer.label}: ${v.overall} ${v.reasons}`).toBe(`${signer.label}: verified `);
    }
  });

  test("indefinite-length BER EF.SOD", () => {
    const v = run({ ...base, sod: toIndefinite(base.sod, 100) });
    expect(v.overall).toBe("verified");
  });

  test("SHA-512 data-group hashes with a SHA-256 signature", async () => {
    const v = run(await scenario({ ldsHash: "sha512" }));
    expect(v.hashAlgorithm).toBe("sha512");
    expect(v.overall).toBe("verified");
  });


  test("signer named by subjectKeyIdentifier", async () => {
    const v = run(await scenario({ sod: { sidSkid: keyId(ds) } }));
    expect(v.overall).toBe("verified");
  });

  test("bare rsaEncryption signature algorithm (common on passports)", async () => {
    const v = run(await scenario({ sod: { sigAlg: der.seq(der.oid(OID.rsaEncryption), der.null()) } }));
    expect(v.overall).toBe("verified");
  });

  test("a data group listed in the SOD but not read leaves the verdict verified", () => {
    const files = new Map(base.files);
    files.delete(14);
    const v = run({ ...base, files });
    expect(v.overall).toBe("verified");
    expect(v.dgHashes.find((d) => d.dg === 14)!.status).toBe("not-read");
  });

  test("CSCA key rollover: the DS's authority key identifier picks the right one of two same-named CSCAs", async () => {
    const newKey = await rsaKey();
    const newCscaCert = await makeSelfSignedCa({
      subject: base.cscaName,
      serial: 2n,
      notBefore: new Date(base.now.getTime() - 100 * DAY),
      notAfter: new Date(base.now.getTime() + 3650 * DAY),
      subjectKey: newKey,
    });
    const s = await makeScenario({ csca: newKey, ds, cscaCert: newCscaCert });
    const v = verifyPassive({ sod: s.sod, files: s.files, trust: storeWith(base.cscaCert, newCscaCert), issuingState: "UTO", now: s.now });
    expect(v.overall).toBe("verified");
    expect(v.csca!.serial).toBe("02");
  });
});

describe("failed documents", () => {
  test("tampered data group", () => {
    const files = new Map(base.files);
    const dg2 = files.get(2)!.slice();
    dg2[2000]! ^= 0x80;
    files.set(2, dg2);
    const v = run({ ...base, files });
    expect(v.overall).toBe("failed");
    expect(v.reasons).toEqual(["DG_HASH_MISMATCH"]);
    expect(v.sodSignature).toBe("ok");
    expect(v.chain).toBe("trusted");
    expect(v.summary).toBe("failed: DG2 does not match the SOD");
  });

  test("a data group read that the SOD does not cover", () => {
    const files = new Map(base.files);
    files.set(11, Uint8Array.of(0x6b, 0x00));
    const v = run({ ...base, files });
    expect(v.overall).toBe("failed");
    expect(v.reasons).toEqual(["DG_NOT_IN_SOD"]);
  });

  test("bad SOD signature", async () => {
    const v = run(await scenario({ sod: { corruptSignature: true } }));
    expect(v.overall).toBe("failed");
    expect(v.reasons).toEqual(["SOD_SIGNATURE_BAD"]);
    expect(v.sodSignature).toBe("bad");
    expect(v.dgHashes.every((d) => d.status === "ok")).toBe(true);
  });

  test("signed messageDigest that does not match the content", async () => {
    const v = run(await scenario({ sod: { messageDigest: new Uint8Array(32) } }));
    expect(v.overall).toBe("failed");
    expect(v.reasons).toEqual(["SOD_DIGEST_MISMATCH"]);
    expect(v.sodSignature).toBe("bad");
  });

  test("expired document signer: failed by default, accepted when policy checks only signing time", async () => {
    const s = await scenario({ dsValidDays: [-4000, -100], signingTime: new Date(Date.UTC(2020, 0, 1)) });
    const v = run(s);
    expect(v.overall).toBe("failed");
    expect(v.reasons).toEqual(["DS_EXPIRED"]);
    expect(v.chain).toBe("expired");
    expect(run(s, { policy: { validityAt: "signing-time" } }).overall).toBe("verified");
    expect(run(s, { policy: { validityAt: "now" } }).reasons).toEqual(["DS_EXPIRED"]);
    // signed after the DS expired: failed even at signing time
    const late = await scenario({ dsValidDays: [-4000, -100], signingTime: new Date(base.now.getTime() - 10 * DAY) });
    expect(run(late, { policy: { validityAt: "signing-time" } }).reasons).toEqual(["DS_EXPIRED"]);
  });

  test("document signer not yet valid", async () => {
    const v = run(await scenario({ dsValidDays: [10, 100] }));
    expect(v.reasons).toEqual(["DS_NOT_YET_VALID"]);
    expect(v.chain).toBe("expired");
  });

  test("revoked document signer via a CRL; a CRL with a bad signature is ignored", async () => {
    const crl = await makeCrl({
      issuer: base.cscaName,
      issuerKey: csca,
      thisUpdate: new Date(base.now.getTime() - DAY),
      revoked: [{ serial: 99n, date: base.now }, { serial: base.dsSerial, date: base.now }],
    });
    const trust = storeWith(base.cscaCert);
    expect(trust.addCrl(crl, "csca.crl")).toBe(true);
    const v = verifyPassive({ sod: base.sod, files: base.files, trust, issuingState: "UTO", now: base.now });
    expect(v.overall).toBe("failed");
    expect(v.reasons).toEqual(["DS_REVOKED"]);
    expect(v.chain).toBe("revoked");

    const forged = await makeCrl({ issuer: base.cscaName, issuerKey: await rsaKey(), thisUpdate: base.now, revoked: [{ serial: base.dsSerial, date: base.now }] });
    const trust2 = storeWith(base.cscaCert);
    expect(trust2.addCrl(forged, "forged.crl")).toBe(false);
    expect(trust2.log.at(-1)).toMatchObject({ kind: "crl", status: "rejected" });
    expect(verifyPassive({ sod: base.sod, files: base.files, trust: trust2, issuingState: "UTO", now: base.now }).overall).toBe("verified");
  });

  test("country mismatch: MRZ issuing state, and DS country against CSCA country", async () => {
    const v = run(base, { issuingState: "DEU" });
    expect(v.overall).toBe("failed");
    expect(v.reasons).toEqual(["COUNTRY_MISMATCH"]);
    expect(v.chain).toBe("country-mismatch");
    expect(run(base, { issuingState: "D<<" }).reasons).toEqual(["COUNTRY_MISMATCH"]);
    expect(run(base, { issuingState: "DEU", policy: { checkCountry: false } }).overall).toBe("verified");
    const s = await scenario({ dsCountry: "FR" });
    expect(run(s, { issuingState: undefined }).reasons).toEqual(["COUNTRY_MISMATCH"]);
    // an issuing state we cannot map is a warning, not a failure
    const unknown = run(base, { issuingState: "ZZZ" });
    expect(unknown.overall).toBe("verified");
    expect(unknown.warnings).toContain("COUNTRY_CODE_UNKNOWN");
  });

  test("DS certificate with the CSCA's key identifier but not its signature", async () => {
    const impostor = await rsaKey();
    const forgedDs = await makeCert({
      subject: name({ C: "UT", O: "Utopia", CN: "Document Signer 7" }),
      issuer: base.cscaName,
      serial: base.dsSerial,
      notBefore: new Date(base.now.getTime() - 30 * DAY),
      notAfter: new Date(base.now.getTime() + 3650 * DAY),
      subjectKey: ds,
      issuerKey: impostor,
      akid: keyId(csca),
    });
    const s = await scenario({ sod: { signerCert: forgedDs } });
    const v = run(s);
    expect(v.overall).toBe("failed");
    expect(v.reasons).toEqual(["DS_CERT_SIGNATURE_BAD"]);
    expect(v.chain).toBe("invalid");
  });

  test("DS certificate without digitalSignature key usage", async () => {
    const v = run(await scenario({ dsKeyUsage: [5] }));
    expect(v.reasons).toEqual(["DS_KEY_USAGE"]);
    expect(v.chain).toBe("invalid");
    expect(run(await scenario({ dsKeyUsage: [5] }), { policy: { checkKeyUsage: false } }).overall).toBe("verified");
  });

  test("malformed EF.SOD gives a failed verdict, not an exception", () => {
    const v = run({ ...base, sod: base.sod.subarray(0, 100) });
    expect(v.overall).toBe("failed");
    expect(v.reasons).toEqual(["SOD_MALFORMED"]);
    expect(v.summary).toBe("failed: EF.SOD is malformed");
  });

  test("several problems: all reasons listed, failures first, chain shows the worst", async () => {
    const s = await scenario({ dsValidDays: [-4000, -100], sod: { corruptSignature: true } });
    const files = new Map(s.files);
    files.set(1, Uint8Array.of(0x61, 0x00));
    const v = verifyPassive({ sod: s.sod, files, trust: new TrustStore(), issuingState: "DEU", now: s.now });
    expect(v.overall).toBe("failed");
    expect(v.reasons).toEqual(["DG_HASH_MISMATCH", "SOD_SIGNATURE_BAD", "DS_EXPIRED", "COUNTRY_MISMATCH", "NO_CSCA"]);
    expect(v.chain).toBe("expired");
    expect(v.summary).toBe("failed: DG1 does not match the SOD (+4 more: SOD_SIGNATURE_BAD, DS_EXPIRED, COUNTRY_MISMATCH, NO_CSCA)");
  });
});

describe("unverifiable documents", () => {
  test("document signer from an unknown CSCA", async () => {
    const other = await makeScenario({ ds });
    const v = verifyPassive({ sod: other.sod, files: other.files, trust: storeWith(base.cscaCert), issuingState: "UTO", now: other.now });
    expect(v.overall).toBe("unverifiable");
    expect(v.reasons).toEqual(["NO_CSCA"]);
    expect(v.chain).toBe("no-csca");
    expect(v.sodSignature).toBe("ok");
    expect(v.csca).toBeUndefined();
  });

  test("DS certificate from an impostor key under the CSCA's name: no CSCA with that key", async () => {
    const impostor = await rsaKey();
    const s = await makeScenario({ ds, csca: impostor, cscaName: base.cscaName });
    const v = run({ ...s, cscaCert: base.cscaCert });
    expect(v.overall).toBe("unverifiable");
    expect(v.reasons).toEqual(["NO_CSCA"]);
  });

  test("no trust store", () => {
    const v = run(base, { trust: undefined });
    expect(v.overall).toBe("unverifiable");
    expect(v.reasons).toEqual(["NO_TRUST_STORE"]);
    expect(v.chain).toBe("not-checked");
  });

  test("document signer certificate missing from the SOD", async () => {
    const v = run(await scenario({ sod: { omitCert: true } }));
    expect(v.overall).toBe("unverifiable");
    expect(v.reasons).toEqual(["NO_DS_CERT"]);
    expect(v.sodSignature).toBe("not-checked");
  });

  test("unsupported signature algorithm (DSA)", async () => {
    const v = run(await scenario({ sod: { sigAlg: der.seq(der.oid("2.16.840.1.101.3.4.3.2")) } }));
    expect(v.overall).toBe("unverifiable");
    expect(v.reasons).toEqual(["UNSUPPORTED_ALGORITHM"]);
    expect(v.sodSignature).toBe("unsupported");
  });

  test("no data group read", () => {
    const v = run({ ...base, files: new Map() });
    expect(v.overall).toBe("unverifiable");
    expect(v.reasons).toEqual(["NO_DG_CHECKED"]);
  });
});

test("every reason code has a text", () => {
  for (const [code, r] of Object.entries(REASONS)) expect(`${code}: ${r.text.length > 10}`).toBe(`${code}: true`);
});

describe("certificate and CMS policy (RFC 5280 §4.2, ICAO 9303-10 §4.6.2, 9303-12 §7.1.1)", () => {
  const UNKNOWN_CRITICAL = der.seq(der.oid("1.3.6.1.4.1.55555.1.1"), der.bool(true), der.octets(der.null()));

  test("no signed attributes: failed SOD_NO_SIGNED_ATTRIBUTES, though the signature over the content verifies", async () => {
    const v = run(await scenario({ sod: { noSignedAttrs: true } }));
    expect(`${v.overall} ${v.reasons}`).toBe("failed SOD_NO_SIGNED_ATTRIBUTES");
    expect(v.sodSignature).toBe("ok");
    expect(v.signingTime).toBeUndefined();
  });

  test("a document signer that is a CA: failed DS_IS_CA", async () => {
    const dsCert = await makeCert({
      subject: name({ C: "UT", O: "Utopia", CN: "Document Signer 7" }),
      issuer: base.cscaName,
      serial: base.dsSerial,
      notBefore: new Date(base.now.getTime() - 30 * DAY),
      notAfter: new Date(base.now.getTime() + 3650 * DAY),
      subjectKey: ds,
      issuerKey: csca,
      ca: true,
      keyUsage: [0],
      akid: keyId(csca),
    });
    const v = run(await scenario({ sod: { signerCert: dsCert } }));
    expect(`${v.overall} ${v.reasons} ${v.chain}`).toBe("failed DS_IS_CA invalid");
  });

  test("an unknown critical extension fails the document signer; the same extension non-critical is ignored", async () => {
    const make = (critical: boolean) =>
      makeCert({
        subject: name({ C: "UT", O: "Utopia", CN: "Document Signer 7" }),
        issuer: base.cscaName,
        serial: base.dsSerial,
        notBefore: new Date(base.now.getTime() - 30 * DAY),
        notAfter: new Date(base.now.getTime() + 3650 * DAY),
        subjectKey: ds,
        issuerKey: csca,
        extraExtensions: [critical ? UNKNOWN_CRITICAL : der.seq(der.oid("1.3.6.1.4.1.55555.1.1"), der.octets(der.null()))],
      });
    const v = run(await scenario({ sod: { signerCert: await make(true) } }));
    expect(`${v.overall} ${v.reasons}`).toBe("failed DS_CRITICAL_EXTENSION");
    expect(run(await scenario({ sod: { signerCert: await make(false) } })).overall).toBe("verified");
  });

  test("a CSCA must be a CA with keyCertSign and no unknown critical extension (caProblem, used for files, lists and anchors)", async () => {
    const mk = (o: Partial<Parameters<typeof makeCert>[0]>) =>
      makeCert({
        subject: base.cscaName,
        issuer: base.cscaName,
        serial: 5n,
        notBefore: new Date(base.now.getTime() - DAY),
        notAfter: new Date(base.now.getTime() + DAY),
        subjectKey: csca,
        issuerKey: csca,
        ca: true,
        ...o,
      });
    const problem = async (o: Partial<Parameters<typeof makeCert>[0]>) => caProblem(parseCertificate(await mk(o)));
    expect(await problem({})).toBeUndefined();
    expect(await problem({ ca: false, keyUsage: [5, 6] })).toBe("NOT_CA");
    expect(await problem({ keyUsage: [6] })).toBe("KEY_USAGE");
    expect(await problem({ extraExtensions: [UNKNOWN_CRITICAL] })).toBe("CRITICAL_EXTENSION");
    const store = new TrustStore();
    expect(store.addCertificate(await mk({ keyUsage: [6] }), "no-certsign.der")).toBe("KEY_USAGE");
    expect(store.addCertificate(await mk({ extraExtensions: [UNKNOWN_CRITICAL] }), "crit.der")).toBe("CRITICAL_EXTENSION");
    expect(store.size).toBe(0);
  });
});
