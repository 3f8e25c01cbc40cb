/**
 * Test-only builders for the PKI of Passive Authentication: keys (WebCrypto for RSA and NIST
 * curves, noble for brainpool, which WebCrypto lacks), X.509 certificates (RFC 5280), CRLs,
 * CMS SignedData (RFC 5652), EF.SOD (ICAO 9303-10 §4.6.2) and CSCA master lists (9303-12 §7.1.1).
 * Every structure is written with agent/pki/asn1.ts's DER writer so tests can also build broken ones.
 */
import { brainpoolP256r1, brainpoolP384r1, brainpoolP512r1 } from "@noble/curves/misc.js";
import { concat } from "../../agent/bytes.ts";
import { fromBig as bigToBytes, modPow, toBig as bytesToBig } from "../../agent/pki/bigint.ts";
import { der, derTlv } from "../../agent/pki/asn1.ts";
import { digest } from "../../agent/pki/digest.ts";
import { HASH_OID, type HashName, OID } from "../../agent/pki/oids.ts";

export interface TestKey {
  /** DER SubjectPublicKeyInfo. */
  spki: Uint8Array;
  /** DER AlgorithmIdentifier of the signatures this key makes. */
  sigAlg: Uint8Array;
  /** Hash the signature algorithm uses. */
  hash: HashName;
  sign(data: Uint8Array): Promise<Uint8Array>;
  label: string;
  /** RSA only: the raw private-key operation on an encoded message of the modulus length. */
  rawSign?: (em: Uint8Array) => Uint8Array;
}

const WC_HASH: Record<HashName, string> = { sha1: "SHA-1", sha224: "SHA-224", sha256: "SHA-256", sha384: "SHA-384", sha512: "SHA-512" };
const RSA_SIG_OID: Record<HashName, string> = {
  sha1: OID.sha1WithRSA,
  sha224: OID.sha224WithRSA,
  sha256: OID.sha256WithRSA,
  sha384: OID.sha384WithRSA,
  sha512: OID.sha512WithRSA,
};
const ECDSA_SIG_OID: Record<HashName, string> = {
  sha1: OID.ecdsaWithSha1,
  sha224: OID.ecdsaWithSha224,
  sha256: OID.ecdsaWithSha256,
  sha384: OID.ecdsaWithSha384,
  sha512: OID.ecdsaWithSha512,
};

export async function rsaKey(opts: { bits?: number; hash?: HashName; pss?: { saltLength: number } } = {}): Promise<TestKey> {
  const bits = opts.bits ?? 2048;
  const hash = opts.hash ?? "sha256";
  // WebCrypto has no SHA-224; such keys sign with a hand-made PKCS#1 v1.5 block (RFC 8017 §9.2).
  const wcHash = hash === "sha224" ? "SHA-256" : WC_HASH[hash];
  const name = opts.pss ? "RSA-PSS" : "RSASSA-PKCS1-v1_5";
  const pair = (await crypto.subtle.generateKey(
    { name, modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]), hash: wcHash },
    true,
    ["sign", "verify"],
  )) as CryptoKeyPair;
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  // WebCrypto exports RSA-PSS keys as rsaEncryption SPKI, which is what passports carry too.
  const hashAlg = der.seq(der.oid(HASH_OID[hash]), der.null());
  const sigAlg = opts.pss
    ? der.seq(
        der.oid(OID.rsassaPss),
        der.seq(der.ctx(0, hashAlg), der.ctx(1, der.seq(der.oid(OID.mgf1), hashAlg)), der.ctx(2, der.int(opts.pss.saltLength))),
      )
    : der.seq(der.oid(RSA_SIG_OID[hash]), der.null());
  const salt = opts.pss?.saltLength ?? 0;
  let sign: (data: Uint8Array) => Promise<Uint8Array>;
  const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  const n = b64uToBig(jwk.n!);
  const d = b64uToBig(jwk.d!);
  const k = Math.ceil(bits / 8);
  const rawSign = (em: Uint8Array) => bigToBytes(modPow(bytesToBig(em), d, n), k);
  if (hash === "sha224" && !opts.pss) {
    sign = async (data) => rawSign(pkcs1Block(k, der.seq(hashAlg, der.octets(digest("sha224", data)))));
  } else {
    sign = async (data) =>
      new Uint8Array(await crypto.subtle.sign(opts.pss ? { name, saltLength: salt } : { name }, pair.privateKey, data as Uint8Array<ArrayBuffer>));
  }
  return { spki, sigAlg, hash, sign, rawSign, label: `RSA-${bits}${opts.pss ? "-PSS" : ""}/${hash}` };
}

/** EMSA-PKCS1-v1_5 block 00 01 FF..FF 00 T (RFC 8017 §9.2) of k bytes. */
export function pkcs1Block(k: number, t: Uint8Array): Uint8Array {
  const em = new Uint8Array(k);
  em[1] = 1;
  em.fill(0xff, 2, k - t.length - 1);
  em.set(t, k - t.length);
  return em;
}

export async function nistKey(curve: "P-256" | "P-384" | "P-521" = "P-256", hash: HashName = "sha256"): Promise<TestKey> {
  const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: curve }, true, ["sign", "verify"])) as CryptoKeyPair;
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  return {
    spki,
    sigAlg: der.seq(der.oid(ECDSA_SIG_OID[hash])),
    hash,
    sign: async (data) =>
      rawToDerSig(new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: WC_HASH[hash] }, pair.privateKey, data as Uint8Array<ArrayBuffer>))),
    label: `ECDSA-${curve}/${hash}`,
  };
}

const BRAINPOOL = {
  brainpoolP256r1: { curve: brainpoolP256r1, oid: OID.brainpoolP256r1 },
  brainpoolP384r1: { curve: brainpoolP384r1, oid: OID.brainpoolP384r1 },
  brainpoolP512r1: { curve: brainpoolP512r1, oid: OID.brainpoolP512r1 },
} as const;

/**
 * A brainpool key (noble signs). `explicit` writes the curve as SpecifiedECDomain parameters
 * (RFC 3279 §2.3.5) instead of a named-curve OID, as some CSCAs do.
 */
export function brainpoolKey(
  name: keyof typeof BRAINPOOL = "brainpoolP256r1",
  hash: HashName = "sha256",
  opts: { explicit?: boolean; plain?: boolean } = {},
): TestKey {
  const { curve, oid } = BRAINPOOL[name];
  const { secretKey, publicKey } = curve.keygen();
  const point = curve.getPublicKey(secretKey, false);
  void publicKey;
  const params = opts.explicit ? explicitParams(curve) : der.oid(oid);
  const spki = der.seq(der.seq(der.oid(OID.ecPublicKey), params), der.bits(point));
  const plainOid: Record<HashName, string> = {
    sha1: OID.ecdsaPlainSha1,
    sha224: OID.ecdsaPlainSha224,
    sha256: OID.ecdsaPlainSha256,
    sha384: OID.ecdsaPlainSha384,
    sha512: OID.ecdsaPlainSha512,
  };
  return {
    spki,
    sigAlg: der.seq(der.oid(opts.plain ? plainOid[hash] : ECDSA_SIG_OID[hash])),
    hash,
    sign: async (data) =>
      curve.sign(digest(hash, data), secretKey, { prehash: false, lowS: false, format: opts.plain ? "compact" : "der" }),
    label: `ECDSA-${name}${opts.explicit ? "-explicit" : ""}/${hash}`,
  };
}

function explicitParams(curve: typeof brainpoolP256r1): Uint8Array {
  const c = curve.Point.CURVE();
  const len = curve.Point.Fp.BYTES;
  const fe = (x: bigint) => bigToBytes(x, len);
  return der.seq(
    der.int(1),
    der.seq(der.oid(OID.primeField), der.int(c.p)),
    der.seq(der.octets(fe(c.a)), der.octets(fe(c.b))),
    der.octets(concat(Uint8Array.of(4), fe(c.Gx), fe(c.Gy))),
    der.int(c.n),
    der.int(c.h),
  );
}

// ---------------------------------------------------------------------------------------------

export function name(parts: { C?: string; O?: string; OU?: string; CN?: string }): Uint8Array {
  const rdn = (oid: string, v: string, printable = true) => der.set(der.seq(der.oid(oid), printable ? der.printable(v) : der.utf8(v)));
  const rdns: Uint8Array[] = [];
  if (parts.C) rdns.push(rdn(OID.countryName, parts.C));
  if (parts.O) rdns.push(rdn("2.5.4.10", parts.O));
  if (parts.OU) rdns.push(rdn("2.5.4.11", parts.OU));
  if (parts.CN) rdns.push(rdn(OID.commonName, parts.CN, false));
  return der.seq(...rdns);
}

export interface CertSpec {
  subject: Uint8Array;
  issuer: Uint8Array;
  serial: bigint;
  notBefore: Date;
  notAfter: Date;
  /** Public key certified. */
  subjectKey: TestKey;
  /** Key that signs the certificate. */
  issuerKey: TestKey;
  ca?: boolean;
  /** KeyUsage bits: 0 digitalSignature, 5 keyCertSign, 6 cRLSign. Default: CA 5+6, else 0. */
  keyUsage?: number[];
  skid?: Uint8Array;
  akid?: Uint8Array;
  extKeyUsage?: string[];
  /** Further DER Extension SEQUENCEs, appended as given (e.g. an unknown critical one). */
  extraExtensions?: Uint8Array[];
}

/** A self-signed CA certificate (a CSCA): issuer = subject, signed by its own key. */
export function makeSelfSignedCa(spec: Omit<CertSpec, "issuer" | "issuerKey" | "ca">): Promise<Uint8Array> {
  return makeCert({ ...spec, issuer: spec.subject, issuerKey: spec.subjectKey, ca: true });
}

export function keyId(key: TestKey): Uint8Array {
  return digest("sha1", key.spki).subarray(0, 20);
}

export async function makeCert(spec: CertSpec): Promise<Uint8Array> {
  const ku = spec.keyUsage ?? (spec.ca ? [5, 6] : [0]);
  const kuBytes = new Uint8Array(2);
  for (const b of ku) kuBytes[b >> 3]! |= 0x80 >> (b & 7);
  const kuLen = kuBytes[1] ? 2 : 1;
  const exts: Uint8Array[] = [
    der.seq(der.oid(OID.keyUsage), der.bool(true), der.octets(derTlv(0x03, Uint8Array.of(0), kuBytes.subarray(0, kuLen)))),
    der.seq(der.oid(OID.subjectKeyIdentifier), der.octets(der.octets(spec.skid ?? keyId(spec.subjectKey)))),
  ];
  if (spec.akid !== undefined || !spec.ca || spec.issuerKey !== spec.subjectKey) {
    exts.push(der.seq(der.oid(OID.authorityKeyIdentifier), der.octets(der.seq(der.ctxPrim(0, spec.akid ?? keyId(spec.issuerKey))))));
  }
  if (spec.ca) exts.push(der.seq(der.oid(OID.basicConstraints), der.bool(true), der.octets(der.seq(der.bool(true), der.int(0)))));
  if (spec.extKeyUsage) exts.push(der.seq(der.oid(OID.extKeyUsage), der.octets(der.seq(...spec.extKeyUsage.map((o) => der.oid(o))))));
  if (spec.extraExtensions) exts.push(...spec.extraExtensions);
  const tbs = der.seq(
    der.ctx(0, der.int(2)),
    der.int(spec.serial),
    spec.issuerKey.sigAlg,
    spec.issuer,
    der.seq(der.time(spec.notBefore), der.time(spec.notAfter)),
    spec.subject,
    spec.subjectKey.spki,
    der.ctx(3, der.seq(...exts)),
  );
  return der.seq(tbs, spec.issuerKey.sigAlg, der.bits(await spec.issuerKey.sign(tbs)));
}

export async function makeCrl(spec: {
  issuer: Uint8Array;
  issuerKey: TestKey;
  thisUpdate: Date;
  nextUpdate?: Date;
  revoked: { serial: bigint; date: Date }[];
}): Promise<Uint8Array> {
  const entries = spec.revoked.map((r) => der.seq(der.int(r.serial), der.time(r.date)));
  const tbs = der.seq(
    der.int(1),
    spec.issuerKey.sigAlg,
    spec.issuer,
    der.time(spec.thisUpdate),
    ...(spec.nextUpdate ? [der.time(spec.nextUpdate)] : []),
    ...(entries.length ? [der.seq(...entries)] : []),
  );
  return der.seq(tbs, spec.issuerKey.sigAlg, der.bits(await spec.issuerKey.sign(tbs)));
}

export interface SignedDataSpec {
  eContentType: string;
  eContent: Uint8Array;
  signerKey: TestKey;
  /** Certificate of the signer, placed in `certificates` unless `omitCert`. */
  signerCert: Uint8Array;
  /** Issuer name + serial of the signer, for the sid. */
  signerIssuer: Uint8Array;
  signerSerial: bigint;
  /** Hash of the content and attributes (default: the key's). */
  digestHash?: HashName;
  signingTime?: Date;
  /** Sign the content directly, without signed attributes. */
  noSignedAttrs?: boolean;
  /** Override the messageDigest attribute (to test a mismatch). */
  messageDigest?: Uint8Array;
  omitCert?: boolean;
  extraCerts?: Uint8Array[];
  /** Use the subjectKeyIdentifier sid (SignerInfo v3). */
  sidSkid?: Uint8Array;
  /** Signature algorithm identifier override (e.g. bare rsaEncryption). */
  sigAlg?: Uint8Array;
  /** Flip a bit of the signature. */
  corruptSignature?: boolean;
}

export async function makeSignedData(spec: SignedDataSpec): Promise<Uint8Array> {
  const h = spec.digestHash ?? spec.signerKey.hash;
  const digestAlg = der.seq(der.oid(HASH_OID[h]), der.null());
  let signedAttrs: Uint8Array | undefined;
  let toSign = spec.eContent;
  if (!spec.noSignedAttrs) {
    const attrs = [
      der.seq(der.oid(OID.contentType), der.set(der.oid(spec.eContentType))),
      ...(spec.signingTime ? [der.seq(der.oid(OID.signingTime), der.set(der.time(spec.signingTime)))] : []),
      der.seq(der.oid(OID.messageDigest), der.set(der.octets(spec.messageDigest ?? digest(h, spec.eContent)))),
    ];
    const set = der.set(...attrs);
    toSign = set;
    signedAttrs = concat(Uint8Array.of(0xa0), set.subarray(1));
  }
  const signature = await spec.signerKey.sign(toSign);
  if (spec.corruptSignature) signature[signature.length >> 1]! ^= 0x01;
  const sid = spec.sidSkid ? der.ctxPrim(0, spec.sidSkid) : der.seq(spec.signerIssuer, der.int(spec.signerSerial));
  const signerInfo = der.seq(
    der.int(spec.sidSkid ? 3 : 1),
    sid,
    digestAlg,
    ...(signedAttrs ? [signedAttrs] : []),
    spec.sigAlg ?? spec.signerKey.sigAlg,
    der.octets(signature),
  );
  const certs = [...(spec.omitCert ? [] : [spec.signerCert]), ...(spec.extraCerts ?? [])];
  const signedData = der.seq(
    der.int(spec.sidSkid ? 3 : 1),
    der.set(digestAlg),
    der.seq(der.oid(spec.eContentType), der.ctx(0, der.octets(spec.eContent))),
    ...(certs.length ? [der.ctx(0, ...certs)] : []),
    der.set(signerInfo),
  );
  return der.seq(der.oid(OID.signedData), der.ctx(0, signedData));
}

export function ldsSecurityObject(hash: HashName, files: Map<number, Uint8Array>, versionInfo?: { lds: string; unicode: string }): Uint8Array {
  const entries = [...files].map(([dg, bytes]) => der.seq(der.int(dg), der.octets(digest(hash, bytes))));
  return der.seq(
    der.int(versionInfo ? 1 : 0),
    der.seq(der.oid(HASH_OID[hash]), der.null()),
    der.seq(...entries),
    ...(versionInfo ? [der.seq(der.printable(versionInfo.lds), der.printable(versionInfo.unicode))] : []),
  );
}

export function wrapSod(contentInfo: Uint8Array): Uint8Array {
  return derTlv(0x77, contentInfo);
}

export function masterListContent(certs: Uint8Array[]): Uint8Array {
  return der.seq(der.int(0), der.set(...certs));
}

/**
 * Re-encodes a DER structure with BER indefinite lengths on every constructed element, the way
 * some US passports' EF.SOD is written (proxmark3 PR #1145). `octetChunks` also splits OCTET
 * STRINGs of more than that many bytes into a constructed string of segments.
 */
export function toIndefinite(bytes: Uint8Array, octetChunks?: number): Uint8Array {
  const out: Uint8Array[] = [];
  let p = 0;
  const walk = (end: number) => {
    while (p < end) {
      const tag = bytes[p++]!;
      let len = bytes[p++]!;
      if (len & 0x80) {
        const n = len & 0x7f;
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + bytes[p++]!;
      }
      if (tag & 0x20) {
        out.push(Uint8Array.of(tag, 0x80));
        walk(p + len);
        out.push(Uint8Array.of(0, 0));
      } else if (tag === 0x04 && octetChunks && len > octetChunks) {
        out.push(Uint8Array.of(0x24, 0x80));
        for (let o = 0; o < len; o += octetChunks) out.push(derTlv(0x04, bytes.subarray(p + o, p + Math.min(len, o + octetChunks))));
        out.push(Uint8Array.of(0, 0));
        p += len;
      } else {
        out.push(derTlv(tag, bytes.subarray(p, p + len)));
        p += len;
      }
    }
  };
  walk(bytes.length);
  return concat(...out);
}

// ---------------------------------------------------------------------------------------------

export function rawToDerSig(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  return der.seq(der.int(bytesToBig(raw.subarray(0, half))), der.int(bytesToBig(raw.subarray(half))));
}

export { bytesToBig, bigToBytes };

function b64uToBig(s: string): bigint {
  return bytesToBig(Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)));
}


// ---------------------------------------------------------------------------------------------

export const DAY = 86_400_000;

/** ICAO specimen-like data groups (content is filler; only their hashes matter here). */
export function specimenFiles(): Map<number, Uint8Array> {
  const dg1 = derTlv(0x61, derTlv(0x5f1f, new TextEncoder().encode("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<L898902C36UTO7408122F1204159ZE184226B<<<<<10")));
  const dg2 = derTlv(0x75, new Uint8Array(3000).map((_, i) => (i * 7) & 0xff));
  const dg14 = derTlv(0x6e, der.set(der.seq(der.oid("0.4.0.127.0.7.2.2.4.2.2"), der.int(2))));
  return new Map([
    [1, dg1],
    [2, dg2],
    [14, dg14],
  ]);
}

export interface Scenario {
  csca: TestKey;
  cscaCert: Uint8Array;
  cscaName: Uint8Array;
  ds: TestKey;
  dsCert: Uint8Array;
  dsSerial: bigint;
  files: Map<number, Uint8Array>;
  sod: Uint8Array;
  now: Date;
}

export interface ScenarioOptions {
  csca?: TestKey;
  cscaCert?: Uint8Array;
  cscaName?: Uint8Array;
  ds?: TestKey;
  country?: string;
  dsCountry?: string;
  /** DS validity relative to `now`, in days. */
  dsValidDays?: [number, number];
  dsKeyUsage?: number[];
  ldsHash?: HashName;
  files?: Map<number, Uint8Array>;
  signingTime?: Date;
  now?: Date;
  sod?: Partial<SignedDataSpec>;
  versionInfo?: boolean;
}

/** A CSCA, a document signer under it and an EF.SOD over `files`. */
export async function makeScenario(o: ScenarioOptions = {}): Promise<Scenario> {
  const now = o.now ?? new Date(Date.UTC(2026, 5, 1));
  const country = o.country ?? "UT";
  const csca = o.csca ?? (await rsaKey({ bits: 2048 }));
  const cscaName = o.cscaName ?? name({ C: country, O: "Utopia", CN: "CSCA Utopia" });
  const cscaCert =
    o.cscaCert ??
    (await makeSelfSignedCa({
      subject: cscaName,
      serial: 1n,
      notBefore: new Date(now.getTime() - 3650 * DAY),
      notAfter: new Date(now.getTime() + 3650 * DAY),
      subjectKey: csca,
    }));
  const ds = o.ds ?? (await rsaKey({ bits: 2048 }));
  const dsSerial = 0x1234n;
  const [from, to] = o.dsValidDays ?? [-30, 3650];
  const dsCert = await makeCert({
    subject: name({ C: o.dsCountry ?? country, O: "Utopia", CN: "Document Signer 7" }),
    issuer: cscaName,
    serial: dsSerial,
    notBefore: new Date(now.getTime() + from * DAY),
    notAfter: new Date(now.getTime() + to * DAY),
    subjectKey: ds,
    issuerKey: csca,
    keyUsage: o.dsKeyUsage,
  });
  const files = o.files ?? specimenFiles();
  const lds = ldsSecurityObject(o.ldsHash ?? "sha256", files, o.versionInfo ? { lds: "0108", unicode: "040000" } : undefined);
  const sod = wrapSod(
    await makeSignedData({
      eContentType: OID.ldsSecurityObject,
      eContent: lds,
      signerKey: ds,
      signerCert: dsCert,
      signerIssuer: cscaName,
      signerSerial: dsSerial,
      signingTime: o.signingTime ?? new Date(now.getTime() - DAY),
      ...o.sod,
    }),
  );
  return { csca, cscaCert, cscaName, ds, dsCert, dsSerial, files, sod, now };
}
