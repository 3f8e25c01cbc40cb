/**
 * X.509 certificates (RFC 5280 §4) as profiled for CSCA, document signer and master list signer
 * certificates by ICAO 9303-12 §7.1.1. Parsing only; signatures are checked in signature.ts.
 */
import { equalBytes } from "../bytes.ts";
import { ParseError } from "../errors.ts";
import {
  type Asn1,
  child,
  expectSequence,
  expectTag,
  parseAsn1,
  readBigInt,
  readBitFlags,
  readBitStringBytes,
  readOctetString,
  readOid,
  readSmallInt,
  readString,
  readTime,
} from "./asn1.ts";
import { type AlgorithmIdentifier, readAlgorithmIdentifier } from "./cms.ts";
import { NAME_ATTRIBUTE, OID } from "./oids.ts";

export interface Name {
  /** DER encoding, as received. */
  der: Uint8Array;
  /** RFC 4514-like display form, most significant RDN first as encoded ("C=UT, O=Utopia, CN=CSCA"). */
  text: string;
  /** countryName, if present. */
  country: string | undefined;
  /** Case- and space-folded form used when DER encodings differ (RFC 5280 §7.1). */
  folded: string;
}

export interface SubjectPublicKeyInfo {
  der: Uint8Array;
  algorithm: AlgorithmIdentifier;
  /** Contents of the subjectPublicKey BIT STRING. */
  key: Uint8Array;
}

export interface Certificate {
  der: Uint8Array;
  /** DER of TBSCertificate: what the issuer signed. */
  tbs: Uint8Array;
  version: number;
  serial: bigint;
  issuer: Name;
  subject: Name;
  notBefore: Date;
  notAfter: Date;
  publicKey: SubjectPublicKeyInfo;
  signatureAlgorithm: AlgorithmIdentifier;
  signature: Uint8Array;
  /** KeyUsage bits set (0 digitalSignature … 5 keyCertSign, 6 cRLSign), or undefined without the extension. */
  keyUsage: Set<number> | undefined;
  basicConstraintsCa: boolean | undefined;
  subjectKeyId: Uint8Array | undefined;
  authorityKeyId: Uint8Array | undefined;
  extKeyUsage: string[] | undefined;
  /**
   * Extensions marked critical that this code does not process. RFC 5280 §4.2: a certificate
   * with one of them must be rejected; the callers that judge certificates do so.
   */
  unknownCriticalExtensions: string[];
}

export const KEY_USAGE = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

export function parseCertificate(bytes: Uint8Array): Certificate {
  return readCertificate(parseAsn1(bytes));
}

export function readCertificate(node: Asn1): Certificate {
  const cert = expectSequence(node, "Certificate");
  if (cert.children.length !== 3) throw new ParseError("Certificate: expected 3 fields", { offset: cert.offset });
  const tbsNode = expectSequence(cert.children[0], "TBSCertificate");
  const signatureAlgorithm = readAlgorithmIdentifier(cert.children[1], "Certificate signatureAlgorithm");
  const signature = readBitStringBytes(cert.children[2], "Certificate signature");

  let i = 0;
  let version = 1;
  if (tbsNode.children[0]?.tag === 0xa0) {
    version = readSmallInt(child(tbsNode.children[0], 0, "version"), "Certificate version") + 1;
    i++;
  }
  const serial = readBigInt(child(tbsNode, i++, "serialNumber"), "serialNumber");
  const innerAlg = readAlgorithmIdentifier(child(tbsNode, i++, "signature"), "TBSCertificate signature");
  if (innerAlg.oid !== signatureAlgorithm.oid) throw new ParseError("Certificate: inner and outer signature algorithms differ");
  const issuer = readName(child(tbsNode, i++, "issuer"));
  const validity = expectSequence(child(tbsNode, i++, "validity"), "Validity");
  const notBefore = readTime(validity.children[0], "notBefore");
  const notAfter = readTime(validity.children[1], "notAfter");
  const subject = readName(child(tbsNode, i++, "subject"));
  const publicKey = readSpki(child(tbsNode, i++, "subjectPublicKeyInfo"));

  const out: Certificate = {
    der: cert.raw,
    tbs: tbsNode.raw,
    version,
    serial,
    issuer,
    subject,
    notBefore,
    notAfter,
    publicKey,
    signatureAlgorithm,
    signature,
    keyUsage: undefined,
    basicConstraintsCa: undefined,
    subjectKeyId: undefined,
    authorityKeyId: undefined,
    extKeyUsage: undefined,
    unknownCriticalExtensions: [],
  };
  for (; i < tbsNode.children.length; i++) {
    const n = tbsNode.children[i]!;
    if (n.tag === 0xa3) readExtensions(expectSequence(child(n, 0, "extensions"), "Extensions"), out);
    // issuerUniqueID [1] / subjectUniqueID [2] are ignored
  }
  return out;
}

export function readSpki(node: Asn1): SubjectPublicKeyInfo {
  const spki = expectSequence(node, "SubjectPublicKeyInfo");
  return {
    der: spki.raw,
    algorithm: readAlgorithmIdentifier(spki.children[0], "SubjectPublicKeyInfo algorithm"),
    key: readBitStringBytes(spki.children[1], "subjectPublicKey"),
  };
}

/**
 * Extensions whose meaning is applied here or is informational (names, key identifiers, the
 * private key usage period, CRL locations, ICAO 9303-12 §7.1.1's document type list and name
 * change): one of them marked critical is fine. Any other critical extension fails the certificate.
 */
const UNDERSTOOD_EXTENSIONS = new Set<string>([
  OID.keyUsage,
  OID.basicConstraints,
  OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.issuerAltName,
  OID.privateKeyUsagePeriod,
  OID.crlDistributionPoints,
  OID.icaoDocumentTypeList,
  OID.icaoNameChange,
]);

function readExtensions(exts: Asn1, out: Certificate): void {
  const seen = new Set<string>();
  for (const e of exts.children) {
    const ext = expectSequence(e, "Extension");
    const oid = readOid(ext.children[0], "extnID");
    if (seen.has(oid)) throw new ParseError(`Certificate: extension ${oid} twice`, { offset: ext.offset });
    seen.add(oid);
    // Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
    const criticalNode = ext.children.length === 3 ? expectTag(ext.children[1], 0x01, "Extension critical") : undefined;
    const critical = criticalNode !== undefined && criticalNode.value[0] !== 0;
    if (critical && !UNDERSTOOD_EXTENSIONS.has(oid)) out.unknownCriticalExtensions.push(oid);
    const valueNode = ext.children[ext.children.length - 1];
    const value = parseAsn1(readOctetString(valueNode, "extnValue"));
    switch (oid) {
      case OID.keyUsage: {
        const flag = readBitFlags(value, "keyUsage");
        out.keyUsage = new Set([0, 1, 2, 3, 4, 5, 6, 7, 8].filter(flag));
        break;
      }
      case OID.basicConstraints: {
        const bc = expectSequence(value, "basicConstraints");
        const ca = bc.children[0];
        out.basicConstraintsCa = ca?.tag === 0x01 ? ca.value[0] !== 0 : false;
        break;
      }
      case OID.subjectKeyIdentifier:
        out.subjectKeyId = expectTag(value, 0x04, "subjectKeyIdentifier").value;
        break;
      case OID.authorityKeyIdentifier: {
        const aki = expectSequence(value, "authorityKeyIdentifier");
        const kid = aki.children.find((c) => c.tag === 0x80);
        out.authorityKeyId = kid?.value;
        break;
      }
      case OID.extKeyUsage:
        out.extKeyUsage = expectSequence(value, "extKeyUsage").children.map((c) => readOid(c, "KeyPurposeId"));
        break;
      default:
        break;
    }
  }
}

export function readName(node: Asn1): Name {
  const seq = expectSequence(node, "Name");
  const parts: string[] = [];
  const folded: string[] = [];
  let country: string | undefined;
  for (const rdn of seq.children) {
    const set = expectTag(rdn, 0x31, "RelativeDistinguishedName");
    for (const atv of set.children) {
      const a = expectSequence(atv, "AttributeTypeAndValue");
      const type = readOid(a.children[0], "attribute type");
      const v = a.children[1];
      if (!v) throw new ParseError("Name: attribute without value", { offset: a.offset });
      const text = v.constructed ? "#" : readString(v);
      if (type === OID.countryName) country = text.toUpperCase();
      parts.push(`${NAME_ATTRIBUTE[type] ?? type}=${text}`);
      folded.push(`${type}=${text.trim().replace(/\s+/g, " ").toLowerCase()}`);
    }
  }
  return { der: seq.raw, text: parts.join(", "), country, folded: folded.join("|") };
}

export function sameName(a: Name, b: Name): boolean {
  return equalBytes(a.der, b.der) || a.folded === b.folded;
}

/** Parses an issuer Name given as DER (e.g. a SignerInfo's issuerAndSerialNumber). */
export function parseName(der: Uint8Array): Name {
  return readName(parseAsn1(der));
}

/** Whether `d` lies inside the certificate's validity period. */
export function validAt(cert: Certificate, d: Date): boolean {
  return cert.notBefore.getTime() <= d.getTime() && d.getTime() <= cert.notAfter.getTime();
}

export function serialHex(serial: bigint): string {
  const s = (serial < 0n ? -serial : serial).toString(16).toUpperCase();
  return (serial < 0n ? "-" : "") + (s.length % 2 ? "0" + s : s);
}
