/** Trust store: CSCA files (PEM/DER), CSCA master lists (ICAO 9303-12 §7.1.1.2) and CRLs. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, ParseError } from "../../agent/errors.ts";
import { OID } from "../../agent/pki/oids.ts";
import { loadTrustSources } from "../../agent/pki/trust-files.ts";
import { TrustStore } from "../../agent/pki/trust-store.ts";
import { verifyPassive } from "../../agent/verification/passive-authentication.ts";
import {
  DAY,
  type Scenario,
  type TestKey,
  brainpoolKey,
  makeCert,
  makeSelfSignedCa,
  makeCrl,
  makeScenario,
  makeSignedData,
  masterListContent,
  name,
  rsaKey,
} from "./pki-builder.ts";

const NOW = new Date(Date.UTC(2026, 5, 1));

interface Csca {
  key: TestKey;
  name: Uint8Array;
  cert: Uint8Array;
}

async function makeCsca(country: string, key?: TestKey): Promise<Csca> {
  const k = key ?? (await rsaKey());
  const n = name({ C: country, O: `State ${country}`, CN: `CSCA ${country}` });
  const cert = await makeSelfSignedCa({
    subject: n,
    serial: 1n,
    notBefore: new Date(NOW.getTime() - 1000 * DAY),
    notAfter: new Date(NOW.getTime() + 3000 * DAY),
    subjectKey: k,
  });
  return { key: k, name: n, cert };
}

/** A master list of `certs` signed by a master list signer that `issuer` certified. */
async function makeMasterList(certs: Uint8Array[], issuer: Csca, opts: { corrupt?: boolean; contentType?: string; eku?: false; noSignedAttrs?: boolean } = {}): Promise<Uint8Array> {
  const signerKey = brainpoolKey();
  const signerName = name({ C: "UT", O: "Utopia", CN: "Master List Signer" });
  const signerCert = await makeCert({
    subject: signerName,
    issuer: issuer.name,
    serial: 77n,
    notBefore: new Date(NOW.getTime() - 10 * DAY),
    notAfter: new Date(NOW.getTime() + 300 * DAY),
    subjectKey: signerKey,
    issuerKey: issuer.key,
    ...(opts.eku === false ? {} : { extKeyUsage: [OID.ekuMasterListSigner] }),
  });
  return makeSignedData({
    eContentType: opts.contentType ?? OID.cscaMasterList,
    eContent: masterListContent(certs),
    signerKey,
    signerCert,
    signerIssuer: issuer.name,
    signerSerial: 77n,
    signingTime: NOW,
    corruptSignature: opts.corrupt,
    noSignedAttrs: opts.noSignedAttrs,
  });
}

function pem(label: string, der: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...der));
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

let ut: Csca;
let fr: Csca;
let nl: Csca;
let passport: Scenario;
let dir: string;

beforeAll(async () => {
  ut = await makeCsca("UT");
  fr = await makeCsca("FR", brainpoolKey("brainpoolP256r1"));
  nl = await makeCsca("NL");
  passport = await makeScenario({ csca: ut.key, cscaCert: ut.cert, cscaName: ut.name, now: NOW });
  dir = mkdtempSync(join(tmpdir(), "mrtd-trust-"));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("master lists", () => {
  test("no master-list anchor: a list whose signer a CSCA inside it issued is taken on the operator's word", async () => {
    const ml = await makeMasterList([ut.cert, fr.cert, nl.cert], ut);
    const store = new TrustStore();
    const r = store.addMasterList(ml, "ut.ml", NOW);
    expect(r).toMatchObject({ certificates: 3, added: 3, signature: "ok", trust: "operator-word" });
    expect(r.signer!.subject).toBe("C=UT, O=Utopia, CN=Master List Signer");
    expect(store.size).toBe(3);
    expect(store.masterLists).toEqual([{ source: "ut.ml", trust: "operator-word", added: 3 }]);
    const v = verifyPassive({ sod: passport.sod, files: passport.files, trust: store, issuingState: "UTO", now: NOW });
    expect(v.overall).toBe("verified");
    expect(v.csca!.source).toBe("master list ut.ml");
    expect(store.anchors[0]!.masterList).toEqual({ source: "ut.ml", trust: "operator-word" });
  });

  test("a signer under a CSCA already in the store is still only the operator's word: CSCAs vouch for documents, not lists", async () => {
    const store = new TrustStore();
    store.addCertificate(nl.cert, "nl.der");
    const r = store.addMasterList(await makeMasterList([ut.cert, nl.cert], nl), "nl.ml", NOW);
    expect(r).toMatchObject({ trust: "operator-word", added: 1, signature: "ok" });
    expect(store.size).toBe(2);
  });

  test("with a master-list anchor: a list signed under it is trusted, any other list is rejected", async () => {
    const store = new TrustStore();
    expect(store.addMasterListAnchor(nl.cert, "nl-anchor.der")).toBe("loaded");
    const good = store.addMasterList(await makeMasterList([ut.cert, fr.cert], nl), "nl.ml", NOW);
    expect(good).toMatchObject({ trust: "trusted", added: 2 });
    const other = store.addMasterList(await makeMasterList([nl.cert], ut), "ut.ml", NOW);
    expect(other).toMatchObject({ trust: "operator-word", added: 0 });
    expect(store.size).toBe(2);
    expect(store.log.at(-1)).toMatchObject({ source: "ut.ml", status: "rejected" });
    expect(store.log.at(-1)!.detail).toContain("chains to no master-list anchor");
    // a document signer certificate is no anchor for anything
    expect(store.addMasterListAnchor(passport.dsCert, "ds.der")).toBe("NOT_CA");
  });

  test("list entries pass the CA checks of certificate files: a DS certificate in the list is skipped", async () => {
    const store = new TrustStore();
    const r = store.addMasterList(await makeMasterList([ut.cert, passport.dsCert], ut), "mixed.ml", NOW);
    expect(r).toMatchObject({ trust: "operator-word", added: 1, notCa: 1 });
    expect(store.log.at(-1)!.detail).toContain("1 entries that are no CA certificate skipped");
  });

  test("the master list signer needs its extended key usage, a validity covering now, and signed attributes", async () => {
    const noEku = store0().addMasterList(await makeMasterList([ut.cert], ut, { eku: false }), "no-eku.ml", NOW);
    expect(noEku).toMatchObject({ trust: "bad", added: 0 });
    expect(noEku.detail).toContain("extended key usage");
    const late = store0().addMasterList(await makeMasterList([ut.cert], ut), "late.ml", new Date(NOW.getTime() + 400 * DAY));
    expect(late).toMatchObject({ trust: "bad", added: 0 });
    expect(late.detail).toContain("not valid now");
    const bare = store0().addMasterList(await makeMasterList([ut.cert], ut, { noSignedAttrs: true }), "bare.ml", NOW);
    expect(bare).toMatchObject({ signature: "bad", trust: "bad", added: 0 });
  });

  test("a list whose signer no CSCA issued is rejected; so is a badly signed one", async () => {
    const stranger = await makeCsca("XX");
    const store = new TrustStore();
    const r = store.addMasterList(await makeMasterList([ut.cert], stranger), "x.ml", NOW);
    expect(r).toMatchObject({ trust: "untrusted", added: 0 });
    const bad = store.addMasterList(await makeMasterList([ut.cert], ut, { corrupt: true }), "bad.ml", NOW);
    expect(bad).toMatchObject({ signature: "bad", trust: "bad", added: 0 });
    expect(store.size).toBe(0);
    expect(store.log.map((l) => l.status)).toEqual(["rejected", "rejected"]);
  });

  test("wrong content type is a ParseError", async () => {
    const wrong = await makeMasterList([ut.cert], ut, { contentType: OID.ldsSecurityObject });
    expect(() => new TrustStore().addMasterList(wrong, "x")).toThrow(ParseError);
  });
});

describe("CRL freshness (RFC 5280 §5.1.2.5)", () => {
  test("a CRL past nextUpdate: revocation stale, reported, verdict unchanged; a revocation it lists still counts", async () => {
    const stale = await makeCrl({ issuer: ut.name, issuerKey: ut.key, thisUpdate: new Date(NOW.getTime() - 60 * DAY), nextUpdate: new Date(NOW.getTime() - DAY), revoked: [] });
    const store = store0();
    store.addCertificate(ut.cert, "ut.der");
    expect(store.addCrl(stale, "stale.crl")).toBe(true);
    const v = verifyPassive({ sod: passport.sod, files: passport.files, trust: store, issuingState: "UTO", now: NOW });
    expect(v.overall).toBe("verified");
    expect(v.revocation).toBe("stale");
    expect(v.warnings).toContain("CRL_STALE");
    expect(v.staleCrls).toEqual([{ source: "stale.crl", nextUpdate: new Date(NOW.getTime() - DAY).toISOString() }]);
    // the same CRL before its nextUpdate is current
    const before = verifyPassive({ sod: passport.sod, files: passport.files, trust: store, issuingState: "UTO", now: new Date(NOW.getTime() - 2 * DAY) });
    expect(before.revocation).toBe("not-revoked");
    const revoking = await makeCrl({ issuer: ut.name, issuerKey: ut.key, thisUpdate: new Date(NOW.getTime() - 60 * DAY), nextUpdate: new Date(NOW.getTime() - DAY), revoked: [{ serial: passport.dsSerial, date: new Date(NOW.getTime() - 59 * DAY) }] });
    store.addCrl(revoking, "stale-revoking.crl");
    const r = verifyPassive({ sod: passport.sod, files: passport.files, trust: store, issuingState: "UTO", now: NOW });
    expect(`${r.overall} ${r.reasons} ${r.revocation}`).toBe("failed DS_REVOKED revoked");
  });
});

function store0(): TrustStore {
  return new TrustStore();
}

describe("loadTrustSources", () => {
  test("a directory of PEM, DER, a PEM bundle, a master list and CRLs", async () => {
    const crl = await makeCrl({
      issuer: ut.name,
      issuerKey: ut.key,
      thisUpdate: NOW,
      revoked: [{ serial: passport.dsSerial, date: NOW }],
    });
    mkdirSync(join(dir, "nested"), { recursive: true });
    // the CRL sorts first by name but must be checked after the CSCAs load
    writeFileSync(join(dir, "a-ut.crl"), crl);
    writeFileSync(join(dir, "ut.pem"), pem("CERTIFICATE", ut.cert));
    writeFileSync(join(dir, "ut-copy.cer"), ut.cert);
    writeFileSync(join(dir, "nested", "fr.der"), fr.cert);
    writeFileSync(join(dir, "bundle.pem"), pem("CERTIFICATE", nl.cert) + "text between blocks\n" + pem("X509 CRL", crl));
    writeFileSync(join(dir, "list.ml"), await makeMasterList([ut.cert, fr.cert], ut));
    writeFileSync(join(dir, "junk.crt"), new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]));
    writeFileSync(join(dir, "broken.pem"), "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n");
    writeFileSync(join(dir, "notes.txt"), "not loaded");

    const store = loadTrustSources([dir], undefined, { now: NOW });
    expect(store.size).toBe(3);
    expect(store.crls.map((c) => c.verified)).toEqual([true, true]);
    const statuses = store.log.map((l) => `${l.source.slice(dir.length + 1)} ${l.kind} ${l.status}`).sort();
    expect(statuses).toEqual(
      [
        "a-ut.crl crl loaded",
        "broken.pem skipped rejected",
        "bundle.pem#1 csca loaded",
        "bundle.pem#2 crl loaded",
        "junk.crt skipped rejected",
        "list.ml master-list loaded",
        "nested/fr.der csca loaded",
        "ut-copy.cer csca loaded",
        "ut.pem csca duplicate",
      ].sort(),
    );
    const v = verifyPassive({ sod: passport.sod, files: passport.files, trust: store, issuingState: "UTO", now: NOW });
    expect(v.reasons).toEqual(["DS_REVOKED"]);
  });

  test("a single file by name, whatever its extension", () => {
    const f = join(dir, "csca.anything");
    writeFileSync(f, ut.cert);
    expect(loadTrustSources([f]).size).toBe(1);
  });

  test("a missing path is a ConfigError naming the file", () => {
    let err: unknown;
    try {
      loadTrustSources([join(dir, "missing")]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).file).toBe(join(dir, "missing"));
  });
});
