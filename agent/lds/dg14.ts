/**
 * DG14, the chip's SecurityInfos (ICAO 9303-10 §4.7.14, 9303-11 §9.2): a SET OF SecurityInfo
 * { protocol OID, requiredData, optionalData? }. Active Authentication reads its
 * ActiveAuthenticationInfo (9303-11 §9.2.4: id-icao-mrtd-security-aaProtocolObject, version 1,
 * the signature algorithm the chip uses for ECDSA AA); the other infos are listed by name.
 */
import { ParseError } from "../errors.ts";
import { expectTag, parseAsn1, readOid, readSmallInt } from "../pki/asn1.ts";
import { type HashName, OID } from "../pki/oids.ts";
import { parseSecurityInfoSet, type SecurityInfos } from "./security-infos.ts";

export const DG14_TAG = 0x6e;
/** id-icao-mrtd-security-aaProtocolObject (9303-11 §9.2.4). */
export const ID_AA = "2.23.136.1.1.5";

export interface SecurityInfo {
  protocol: string;
  /** Human name of the protocol family, when known (e.g. "ChipAuthentication", "PACE"). */
  name: string | undefined;
}

export interface ActiveAuthenticationInfo {
  version: number;
  signatureAlgorithm: string;
  /** Hash and signature format the algorithm names; undefined when we do not know the OID. */
  hash: HashName | undefined;
  format: "plain" | "der" | undefined;
}

export interface Dg14 {
  securityInfos: SecurityInfo[];
  activeAuthentication: ActiveAuthenticationInfo | undefined;
  /** PACE, Chip Authentication infos and public keys (security-infos.ts). */
  infos: SecurityInfos;
}

/** BSI TR-03110 / 9303-11 §9.2 protocol prefixes, longest first. */
const PROTOCOL_NAMES: [string, string][] = [
  ["0.4.0.127.0.7.2.2.1", "ChipAuthenticationPublicKey"],
  ["0.4.0.127.0.7.2.2.2", "TerminalAuthentication"],
  ["0.4.0.127.0.7.2.2.3", "ChipAuthentication"],
  ["0.4.0.127.0.7.2.2.4", "PACE"],
  ["0.4.0.127.0.7.2.2.6", "CardInfo"],
  [ID_AA, "ActiveAuthentication"],
];

const AA_SIGNATURE: Record<string, { hash: HashName; format: "plain" | "der" }> = {
  [OID.ecdsaPlainSha1]: { hash: "sha1", format: "plain" },
  [OID.ecdsaPlainSha224]: { hash: "sha224", format: "plain" },
  [OID.ecdsaPlainSha256]: { hash: "sha256", format: "plain" },
  [OID.ecdsaPlainSha384]: { hash: "sha384", format: "plain" },
  [OID.ecdsaPlainSha512]: { hash: "sha512", format: "plain" },
  [OID.ecdsaWithSha1]: { hash: "sha1", format: "der" },
  [OID.ecdsaWithSha224]: { hash: "sha224", format: "der" },
  [OID.ecdsaWithSha256]: { hash: "sha256", format: "der" },
  [OID.ecdsaWithSha384]: { hash: "sha384", format: "der" },
  [OID.ecdsaWithSha512]: { hash: "sha512", format: "der" },
};

/** Parses DG14; throws ParseError when malformed. Unknown SecurityInfos are kept, unnamed. */
export function parseDg14(bytes: Uint8Array): Dg14 {
  const outer = parseAsn1(bytes, { allowTrailing: true });
  if (outer.tag !== DG14_TAG) throw new ParseError(`DG14: tag ${outer.tag.toString(16)} instead of 6E`, { tag: outer.tag });
  const set = expectTag(outer.children[0], 0x31, "SecurityInfos");
  const securityInfos: SecurityInfo[] = [];
  let activeAuthentication: ActiveAuthenticationInfo | undefined;
  for (const item of set.children) {
    const seq = expectTag(item, 0x30, "SecurityInfo");
    const protocol = readOid(seq.children[0], "SecurityInfo protocol");
    const name = PROTOCOL_NAMES.find(([prefix]) => protocol === prefix || protocol.startsWith(`${prefix}.`))?.[1];
    securityInfos.push({ protocol, name });
    if (protocol === ID_AA) {
      if (activeAuthentication) throw new ParseError("DG14: two ActiveAuthenticationInfos");
      const version = readSmallInt(seq.children[1], "ActiveAuthenticationInfo version");
      const signatureAlgorithm = readOid(seq.children[2], "ActiveAuthenticationInfo signatureAlgorithm");
      const known = AA_SIGNATURE[signatureAlgorithm];
      activeAuthentication = { version, signatureAlgorithm, hash: known?.hash, format: known?.format };
    }
  }
  return { securityInfos, activeAuthentication, infos: parseSecurityInfoSet(set) };
}
