/**
 * Certificate revocation lists (RFC 5280 §5) as CSCAs publish them (ICAO 9303-12 §7.1.4):
 * which serial numbers a CSCA has revoked. Parsing only; the trust store checks the signature.
 */
import { ParseError } from "../errors.ts";
import { type Asn1Limits, child, expectSequence, parseAsn1, readBigInt, readBitStringBytes, readTime } from "./asn1.ts";
import { type AlgorithmIdentifier, readAlgorithmIdentifier } from "./cms.ts";
import { type Name, readName } from "./x509.ts";

export interface Crl {
  der: Uint8Array;
  tbs: Uint8Array;
  issuer: Name;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  /** Revoked serial numbers (as bigint) with their revocation dates. */
  revoked: Map<bigint, Date>;
  signatureAlgorithm: AlgorithmIdentifier;
  signature: Uint8Array;
}

/** Whether the CRL is past its nextUpdate at `now` (RFC 5280 §5.1.2.5): its revocation list is no longer current. */
export function crlStale(crl: Crl, now: Date): boolean {
  return crl.nextUpdate !== undefined && crl.nextUpdate.getTime() < now.getTime();
}

export function parseCrl(bytes: Uint8Array, limits?: Asn1Limits): Crl {
  const list = expectSequence(parseAsn1(bytes, limits), "CertificateList");
  if (list.children.length !== 3) throw new ParseError("CertificateList: expected 3 fields");
  const tbs = expectSequence(list.children[0], "TBSCertList");
  const signatureAlgorithm = readAlgorithmIdentifier(list.children[1], "CertificateList signatureAlgorithm");
  const signature = readBitStringBytes(list.children[2], "CertificateList signature");
  let i = 0;
  if (tbs.children[0]?.tag === 0x02) i++; // version
  const inner = readAlgorithmIdentifier(child(tbs, i++, "signature"), "TBSCertList signature");
  if (inner.oid !== signatureAlgorithm.oid) throw new ParseError("CRL: inner and outer signature algorithms differ");
  const issuer = readName(child(tbs, i++, "issuer"));
  const thisUpdate = readTime(child(tbs, i++, "thisUpdate"), "thisUpdate");
  let nextUpdate: Date | undefined;
  const n = tbs.children[i];
  if (n && (n.tag === 0x17 || n.tag === 0x18)) {
    nextUpdate = readTime(n, "nextUpdate");
    i++;
  }
  const revoked = new Map<bigint, Date>();
  const rc = tbs.children[i];
  if (rc && rc.tag === 0x30) {
    for (const entry of rc.children) {
      const e = expectSequence(entry, "revokedCertificate");
      revoked.set(readBigInt(e.children[0], "userCertificate"), readTime(e.children[1], "revocationDate"));
    }
  }
  return { der: list.raw, tbs: tbs.raw, issuer, thisUpdate, nextUpdate, revoked, signatureAlgorithm, signature };
}
