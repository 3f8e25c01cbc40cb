/**
 * Object identifiers used by Passive Authentication: CMS (RFC 5652), PKCS #1 (RFC 8017),
 * ECDSA (RFC 5758, ANSI X9.62), BSI TR-03111 plain ECDSA, RFC 5639 brainpool curves,
 * X.509 (RFC 5280) and ICAO 9303-10 §4.6.2 / 9303-12 (LDS security object, CSCA master list).
 */

export const OID = {
  // CMS / PKCS #9
  signedData: "1.2.840.113549.1.7.2",
  contentType: "1.2.840.113549.1.9.3",
  messageDigest: "1.2.840.113549.1.9.4",
  signingTime: "1.2.840.113549.1.9.5",
  // ICAO
  ldsSecurityObject: "2.23.136.1.1.1",
  cscaMasterList: "2.23.136.1.1.2",
  /** Extended key usage of a master list signer (9303-12 §7.1.1.2). */
  ekuMasterListSigner: "2.23.136.1.1.3",
  // hashes
  sha1: "1.3.14.3.2.26",
  sha224: "2.16.840.1.101.3.4.2.4",
  sha256: "2.16.840.1.101.3.4.2.1",
  sha384: "2.16.840.1.101.3.4.2.2",
  sha512: "2.16.840.1.101.3.4.2.3",
  // RSA
  rsaEncryption: "1.2.840.113549.1.1.1",
  sha1WithRSA: "1.2.840.113549.1.1.5",
  sha224WithRSA: "1.2.840.113549.1.1.14",
  sha256WithRSA: "1.2.840.113549.1.1.11",
  sha384WithRSA: "1.2.840.113549.1.1.12",
  sha512WithRSA: "1.2.840.113549.1.1.13",
  rsassaPss: "1.2.840.113549.1.1.10",
  mgf1: "1.2.840.113549.1.1.8",
  // EC
  ecPublicKey: "1.2.840.10045.2.1",
  primeField: "1.2.840.10045.1.1",
  ecdsaWithSha1: "1.2.840.10045.4.1",
  ecdsaWithSha224: "1.2.840.10045.4.3.1",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  ecdsaWithSha384: "1.2.840.10045.4.3.3",
  ecdsaWithSha512: "1.2.840.10045.4.3.4",
  // BSI TR-03111 §5.2.1: r || s instead of a DER SEQUENCE
  ecdsaPlainSha1: "0.4.0.127.0.7.1.1.4.1.1",
  ecdsaPlainSha224: "0.4.0.127.0.7.1.1.4.1.2",
  ecdsaPlainSha256: "0.4.0.127.0.7.1.1.4.1.3",
  ecdsaPlainSha384: "0.4.0.127.0.7.1.1.4.1.4",
  ecdsaPlainSha512: "0.4.0.127.0.7.1.1.4.1.5",
  p256: "1.2.840.10045.3.1.7",
  p384: "1.3.132.0.34",
  p521: "1.3.132.0.35",
  brainpoolP256r1: "1.3.36.3.3.2.8.1.1.7",
  brainpoolP384r1: "1.3.36.3.3.2.8.1.1.11",
  brainpoolP512r1: "1.3.36.3.3.2.8.1.1.13",
  // X.509
  countryName: "2.5.4.6",
  commonName: "2.5.4.3",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  basicConstraints: "2.5.29.19",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  issuerAltName: "2.5.29.18",
  privateKeyUsagePeriod: "2.5.29.16",
  crlDistributionPoints: "2.5.29.31",
  // ICAO 9303-12 §7.1.1 certificate extensions
  icaoDocumentTypeList: "2.23.136.1.1.6.2",
  icaoNameChange: "2.23.136.1.1.6.1",
} as const;

export type HashName = "sha1" | "sha224" | "sha256" | "sha384" | "sha512";

const HASH_BY_OID: Record<string, HashName> = {
  [OID.sha1]: "sha1",
  [OID.sha224]: "sha224",
  [OID.sha256]: "sha256",
  [OID.sha384]: "sha384",
  [OID.sha512]: "sha512",
};

export function hashNameByOid(oid: string): HashName | undefined {
  return HASH_BY_OID[oid];
}

/** Display names of the hashes, e.g. in "RSA-2048 PKCS#1 v1.5 SHA-256". */
export const HASH_LABEL: Record<HashName, string> = { sha1: "SHA-1", sha224: "SHA-224", sha256: "SHA-256", sha384: "SHA-384", sha512: "SHA-512" };

export const HASH_OID: Record<HashName, string> = {
  sha1: OID.sha1,
  sha224: OID.sha224,
  sha256: OID.sha256,
  sha384: OID.sha384,
  sha512: OID.sha512,
};

/** Short names for X.520 attribute types in a displayed distinguished name. */
export const NAME_ATTRIBUTE: Record<string, string> = {
  "2.5.4.6": "C",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "2.5.4.3": "CN",
  "2.5.4.5": "SERIALNUMBER",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "1.2.840.113549.1.9.1": "E",
};
