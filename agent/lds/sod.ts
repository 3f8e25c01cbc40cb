/**
 * EF.SOD, the Document Security Object (ICAO 9303-10 §4.6.2): tag 77 around a CMS SignedData
 * whose content is the LDSSecurityObject (OID 2.23.136.1.1.1) listing a hash per data group.
 * Parsing and hash comparison only; the signature and chain are checked in
 * agent/verification/passive-authentication.ts.
 */
import { equalBytes } from "../bytes.ts";
import { ParseError } from "../errors.ts";
import { child, expectSequence, parseAsn1, readOctetString, readSmallInt, readString } from "../pki/asn1.ts";
import { type SignedData, readAlgorithmIdentifier, readContentInfoSignedData } from "../pki/cms.ts";
import { digest, digestLength } from "../pki/digest.ts";
import { type HashName, OID, hashNameByOid } from "../pki/oids.ts";

export interface SodInfo {
  hashAlgorithm: HashName;
  hashAlgorithmOid: string;
  /** LDSSecurityObject version: 0, or 1 with LDSVersionInfo (9303-10 §4.6.2.2). */
  version: number;
  dataGroupHashes: Map<number, Uint8Array>;
  ldsVersion?: string;
  unicodeVersion?: string;
  /** The parsed CMS SignedData, for signature and chain verification. */
  signedData: SignedData;
}

export type DgHashStatus = "ok" | "mismatch" | "not-read" | "not-in-sod";

/** EF.SOD's application tag (9303-10 Table 35). */
export const SOD_TAG = 0x77;

export function parseSod(bytes: Uint8Array): SodInfo {
  const outer = parseAsn1(bytes, { allowTrailing: true });
  if (outer.tag !== SOD_TAG) throw new ParseError(`EF.SOD: expected tag 77, got ${outer.tag.toString(16)}`, { offset: 0, tag: outer.tag });
  // Trailing bytes after tag 77 are tolerated only as padding (some chips report a rounded file size).
  for (let i = outer.raw.length; i < bytes.length; i++) {
    if (bytes[i] !== 0x00 && bytes[i] !== 0xff) throw new ParseError("EF.SOD: data after tag 77", { offset: i });
  }
  if (outer.children.length !== 1) throw new ParseError("EF.SOD: tag 77 must hold one ContentInfo", { offset: 0, tag: SOD_TAG });
  const signedData = readContentInfoSignedData(outer.children[0]!);
  if (signedData.eContentType !== OID.ldsSecurityObject) {
    throw new ParseError(`EF.SOD: content type ${signedData.eContentType} is not LDSSecurityObject`);
  }
  if (!signedData.eContent) throw new ParseError("EF.SOD: no encapsulated LDSSecurityObject");
  if (signedData.signerInfos.length !== 1) throw new ParseError(`EF.SOD: ${signedData.signerInfos.length} signers, expected 1`);
  return { ...readLdsSecurityObject(signedData.eContent), signedData };
}

function readLdsSecurityObject(bytes: Uint8Array): Omit<SodInfo, "signedData"> {
  const so = expectSequence(parseAsn1(bytes), "LDSSecurityObject");
  const version = readSmallInt(child(so, 0, "LDSSecurityObject version"), "LDSSecurityObject version");
  if (version !== 0 && version !== 1) throw new ParseError(`LDSSecurityObject: version ${version}`);
  const alg = readAlgorithmIdentifier(child(so, 1, "hashAlgorithm"), "LDSSecurityObject hashAlgorithm");
  const hashAlgorithm = hashNameByOid(alg.oid);
  if (!hashAlgorithm) throw new ParseError(`LDSSecurityObject: unsupported hash algorithm ${alg.oid}`);
  const list = expectSequence(child(so, 2, "dataGroupHashValues"), "dataGroupHashValues");
  const dataGroupHashes = new Map<number, Uint8Array>();
  for (const entry of list.children) {
    const e = expectSequence(entry, "DataGroupHash");
    if (e.children.length !== 2) throw new ParseError("DataGroupHash: expected 2 fields", { offset: e.offset });
    const dg = readSmallInt(e.children[0], "dataGroupNumber");
    if (dg < 1 || dg > 16) throw new ParseError(`DataGroupHash: data group number ${dg}`, { offset: e.offset });
    if (dataGroupHashes.has(dg)) throw new ParseError(`DataGroupHash: DG${dg} listed twice`, { offset: e.offset });
    const value = readOctetString(e.children[1], "dataGroupHashValue");
    if (value.length !== digestLength(hashAlgorithm)) {
      throw new ParseError(`DataGroupHash: DG${dg} hash of ${value.length} bytes for ${hashAlgorithm}`, { offset: e.offset });
    }
    dataGroupHashes.set(dg, value);
  }
  if (dataGroupHashes.size === 0) throw new ParseError("LDSSecurityObject: no data group hashes");
  const out: Omit<SodInfo, "signedData"> = { hashAlgorithm, hashAlgorithmOid: alg.oid, version, dataGroupHashes };
  const info = so.children[3];
  if (info) {
    if (version !== 1) throw new ParseError("LDSSecurityObject: LDSVersionInfo in a version 0 object");
    const vi = expectSequence(info, "LDSVersionInfo");
    out.ldsVersion = readString(child(vi, 0, "ldsVersion"));
    out.unicodeVersion = readString(child(vi, 1, "unicodeVersion"));
  }
  if (so.children.length > 4) throw new ParseError("LDSSecurityObject: unexpected fields");
  return out;
}

/**
 * Digests of data groups already computed from the same bytes (by the reader, as each file
 * completed), so that a read hashes each data group once: hashing a 60 KB face costs ~17 ms
 * in JavaScriptCore's interpreter. Used only when `algorithm` is the SOD's.
 */
export interface KnownDigests {
  algorithm: HashName;
  byDg: ReadonlyMap<number, Uint8Array>;
}

/**
 * Hash of each data group read (`files`, keyed by DG number, whole file with its tag) against the
 * SOD. Every DG in either the SOD or `files` appears once, sorted by number.
 */
export function compareHashes(sod: SodInfo, files: Map<number, Uint8Array>, known?: KnownDigests): { dg: number; status: DgHashStatus }[] {
  const reuse = known?.algorithm === sod.hashAlgorithm ? known.byDg : undefined;
  const dgs = [...new Set([...sod.dataGroupHashes.keys(), ...files.keys()])].sort((a, b) => a - b);
  return dgs.map((dg) => {
    const expected = sod.dataGroupHashes.get(dg);
    const file = files.get(dg);
    if (!expected) return { dg, status: "not-in-sod" as const };
    if (!file) return { dg, status: "not-read" as const };
    // Hashes are public values (they are in the SOD): a plain comparison is fine.
    const actual = reuse?.get(dg) ?? digest(sod.hashAlgorithm, file);
    return { dg, status: equalBytes(actual, expected) ? ("ok" as const) : ("mismatch" as const) };
  });
}
