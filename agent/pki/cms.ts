/**
 * CMS SignedData (RFC 5652 §5) as carried by EF.SOD (ICAO 9303-10 §4.6.2) and by CSCA master
 * lists (9303-12 §7.1.1). Parses only; signature checks are in cms-verify.ts.
 */
import { ParseError } from "../errors.ts";
import {
  type Asn1,
  type Asn1Limits,
  child,
  expectSequence,
  expectTag,
  parseAsn1,
  readBigInt,
  readOctetString,
  readOid,
  readSmallInt,
  readTime,
  reencode,
} from "./asn1.ts";
import { OID } from "./oids.ts";

export interface AlgorithmIdentifier {
  oid: string;
  /** The parameters element, if present (NULL included). */
  params: Asn1 | undefined;
}

export type SignerIdentifier =
  | { kind: "issuer-serial"; issuer: Uint8Array; serial: bigint }
  | { kind: "subject-key-id"; keyId: Uint8Array };

export interface Attribute {
  oid: string;
  values: Asn1[];
}

export interface SignerInfo {
  version: number;
  sid: SignerIdentifier;
  digestAlgorithm: AlgorithmIdentifier;
  /** Signed attributes, with the DER `SET OF` encoding the signature covers (RFC 5652 §5.4). */
  signedAttrs: { der: Uint8Array; attributes: Attribute[] } | undefined;
  signatureAlgorithm: AlgorithmIdentifier;
  signature: Uint8Array;
}

export interface SignedData {
  version: number;
  digestAlgorithms: AlgorithmIdentifier[];
  eContentType: string;
  /** The encapsulated content octets (segments of a BER constructed OCTET STRING joined). */
  eContent: Uint8Array | undefined;
  /** DER encodings of the X.509 certificates in `certificates` (other choices skipped). */
  certificates: Uint8Array[];
  /** DER encodings of the CRLs in `crls` (other revocation formats skipped). */
  crls: Uint8Array[];
  signerInfos: SignerInfo[];
}

export function readAlgorithmIdentifier(node: Asn1 | undefined, what: string): AlgorithmIdentifier {
  const seq = expectSequence(node, what);
  if (seq.children.length < 1 || seq.children.length > 2) {
    throw new ParseError(`${what}: AlgorithmIdentifier with ${seq.children.length} fields`, { offset: seq.offset });
  }
  return { oid: readOid(seq.children[0], `${what} algorithm`), params: seq.children[1] };
}

/** Parses a ContentInfo holding SignedData (RFC 5652 §3, §5.1). */
export function parseContentInfoSignedData(bytes: Uint8Array, limits?: Asn1Limits): SignedData {
  const root = parseAsn1(bytes, limits);
  return readContentInfoSignedData(root);
}

export function readContentInfoSignedData(root: Asn1): SignedData {
  const ci = expectSequence(root, "ContentInfo");
  const type = readOid(child(ci, 0, "ContentInfo contentType"), "ContentInfo contentType");
  if (type !== OID.signedData) throw new ParseError(`ContentInfo: content type ${type} is not signedData`, { offset: ci.offset });
  const wrapped = expectTag(child(ci, 1, "ContentInfo content"), 0xa0, "ContentInfo content");
  if (wrapped.children.length !== 1) throw new ParseError("ContentInfo: [0] must hold one element", { offset: wrapped.offset });
  return readSignedData(wrapped.children[0]!);
}

function readSignedData(node: Asn1): SignedData {
  const sd = expectSequence(node, "SignedData");
  let i = 0;
  const next = (what: string) => child(sd, i++, `SignedData ${what}`);
  const version = readSmallInt(next("version"), "SignedData version");
  const digestSet = expectTag(next("digestAlgorithms"), 0x31, "SignedData digestAlgorithms");
  const digestAlgorithms = digestSet.children.map((c) => readAlgorithmIdentifier(c, "SignedData digestAlgorithm"));

  const eci = expectSequence(next("encapContentInfo"), "EncapsulatedContentInfo");
  const eContentType = readOid(child(eci, 0, "eContentType"), "eContentType");
  let eContent: Uint8Array | undefined;
  if (eci.children[1]) {
    const ec = expectTag(eci.children[1], 0xa0, "eContent");
    if (ec.children.length !== 1) throw new ParseError("eContent: [0] must hold one OCTET STRING", { offset: ec.offset });
    eContent = readOctetString(ec.children[0], "eContent");
  }

  const certificates: Uint8Array[] = [];
  const crls: Uint8Array[] = [];
  let n = sd.children[i];
  if (n && n.tag === 0xa0) {
    for (const c of n.children) if (c.tag === 0x30) certificates.push(c.indefinite ? reencode(c) : c.raw);
    n = sd.children[++i];
  }
  if (n && n.tag === 0xa1) {
    for (const c of n.children) if (c.tag === 0x30) crls.push(c.indefinite ? reencode(c) : c.raw);
    n = sd.children[++i];
  }
  const signerSet = expectTag(n, 0x31, "SignedData signerInfos");
  if (sd.children.length !== i + 1) throw new ParseError("SignedData: unexpected fields after signerInfos", { offset: sd.offset });
  const signerInfos = signerSet.children.map(readSignerInfo);
  return { version, digestAlgorithms, eContentType, eContent, certificates, crls, signerInfos };
}

function readSignerInfo(node: Asn1): SignerInfo {
  const si = expectSequence(node, "SignerInfo");
  let i = 0;
  const next = (what: string) => child(si, i++, `SignerInfo ${what}`);
  const version = readSmallInt(next("version"), "SignerInfo version");
  const sidNode = next("sid");
  let sid: SignerIdentifier;
  if (sidNode.tag === 0x30) {
    const issuer = expectSequence(child(sidNode, 0, "issuer"), "SignerInfo issuer");
    sid = { kind: "issuer-serial", issuer: issuer.indefinite ? reencode(issuer) : issuer.raw, serial: readBigInt(child(sidNode, 1, "serialNumber"), "serialNumber") };
  } else if (sidNode.tag === 0x80) {
    sid = { kind: "subject-key-id", keyId: sidNode.value };
  } else {
    throw new ParseError(`SignerInfo: unknown sid tag ${sidNode.tag.toString(16)}`, { offset: sidNode.offset, tag: sidNode.tag });
  }
  const digestAlgorithm = readAlgorithmIdentifier(next("digestAlgorithm"), "SignerInfo digestAlgorithm");
  let signedAttrs: SignerInfo["signedAttrs"];
  let n = next("signatureAlgorithm");
  if (n.tag === 0xa0) {
    const attributes = n.children.map((a) => {
      const seq = expectSequence(a, "Attribute");
      const values = expectTag(child(seq, 1, "Attribute values"), 0x31, "Attribute values");
      return { oid: readOid(seq.children[0], "Attribute type"), values: values.children };
    });
    signedAttrs = { der: reencode(n, 0x31), attributes };
    n = next("signatureAlgorithm");
  }
  const signatureAlgorithm = readAlgorithmIdentifier(n, "SignerInfo signatureAlgorithm");
  const signature = readOctetString(next("signature"), "SignerInfo signature");
  return { version, sid, digestAlgorithm, signedAttrs, signatureAlgorithm, signature };
}

/** The single value of a signed attribute, or undefined when absent. Several values are an error. */
export function attributeValue(signer: SignerInfo, oid: string): Asn1 | undefined {
  const matches = signer.signedAttrs?.attributes.filter((a) => a.oid === oid) ?? [];
  if (matches.length === 0) return undefined;
  if (matches.length > 1 || matches[0]!.values.length !== 1) {
    throw new ParseError(`signed attribute ${oid} must occur once with one value`);
  }
  return matches[0]!.values[0];
}

/** signingTime (RFC 5652 §11.3), if present. */
export function signingTime(signer: SignerInfo): Date | undefined {
  const v = attributeValue(signer, OID.signingTime);
  return v ? readTime(v, "signingTime") : undefined;
}
