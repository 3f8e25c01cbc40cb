/**
 * SecurityInfos (ICAO 9303-11 §9.2, BSI TR-03110-3 §A.1): the SET OF SecurityInfo in
 * EF.CardAccess (read plain before authentication, §9.2.11) and in DG14. Parsed here:
 *   PACEInfo { id-PACE-*, version, parameterId? }                            (§9.2.1)
 *   PACEDomainParameterInfo { id-PACE-<agreement>-<mapping>, AlgorithmIdentifier, parameterId? } (§9.2.2)
 *   ChipAuthenticationInfo { id-CA-*, version, keyId? }                        (§9.2.5)
 *   ChipAuthenticationDomainParameterInfo { id-CA-DH|ECDH, AlgorithmIdentifier, keyId? }
 *   ChipAuthenticationPublicKeyInfo { id-PK-DH|ECDH, SubjectPublicKeyInfo, keyId? } (§9.2.6)
 * Domain parameters are standardized ids (TR-03110-3 Table 4) or explicit (ECParameters,
 * X9.42 DomainParameters). Unknown SecurityInfos are kept by OID only.
 */
import { ParseError } from "../errors.ts";
import type { KdfAlgorithm } from "../icao/kdf.ts";
import type { PaceParameters } from "../icao/pace.ts";
import { explicitDhGroup, explicitEcGroup, InvalidPublicValueError, standardGroup, STANDARD_DOMAIN_NAMES, type KeyAgreementGroup } from "../crypto/key-agreement.ts";
import { type Asn1, expectSequence, expectTag, parseAsn1, readBigInt, readBitStringBytes, readOctetString, readOid, readSmallInt } from "../pki/asn1.ts";

const BSI = "0.4.0.127.0.7";
export const ID_PACE = `${BSI}.2.2.4`;
export const ID_CA = `${BSI}.2.2.3`;
export const ID_PK = `${BSI}.2.2.1`;
/** BSI TR-03110-3 §A.2.1.1: AlgorithmIdentifier naming a standardized domain parameter id. */
export const ID_STANDARDIZED_DOMAIN_PARAMETERS = `${BSI}.1.2`;
const ID_EC_PUBLIC_KEY = "1.2.840.10045.2.1";
const ID_DH_PUBLIC_NUMBER = "1.2.840.10046.2.1";
const ID_PRIME_FIELD = "1.2.840.10045.1.1";

export type Agreement = "DH" | "ECDH";
export type Mapping = "GM" | "IM" | "CAM";

const CIPHERS: Record<number, KdfAlgorithm> = { 1: "3DES", 2: "AES-128", 3: "AES-192", 4: "AES-256" };
const MAPPINGS: Record<number, { agreement: Agreement; mapping: Mapping }> = {
  1: { agreement: "DH", mapping: "GM" },
  2: { agreement: "ECDH", mapping: "GM" },
  3: { agreement: "DH", mapping: "IM" },
  4: { agreement: "ECDH", mapping: "IM" },
  6: { agreement: "ECDH", mapping: "CAM" },
};

/** What a PACE protocol OID says: id-PACE-<agreement>-<mapping>-<cipher> (9303-11 §9.2.1). */
export interface PaceAlgorithm {
  oid: string;
  agreement: Agreement;
  mapping: Mapping;
  cipher: KdfAlgorithm;
}

export function paceAlgorithm(oid: string): PaceAlgorithm | undefined {
  const m = /^0\.4\.0\.127\.0\.7\.2\.2\.4\.(\d+)\.(\d+)$/.exec(oid);
  if (!m) return undefined;
  const map = MAPPINGS[Number(m[1])];
  const cipher = CIPHERS[Number(m[2])];
  if (!map || !cipher || (map.mapping === "CAM" && cipher === "3DES")) return undefined;
  return { oid, ...map, cipher };
}

/** What a Chip Authentication protocol OID says: id-CA-<agreement>-<cipher> (9303-11 §9.2.5). */
export function caAlgorithm(oid: string): { oid: string; agreement: Agreement; cipher: KdfAlgorithm } | undefined {
  const m = /^0\.4\.0\.127\.0\.7\.2\.2\.3\.([12])\.(\d+)$/.exec(oid);
  if (!m) return undefined;
  const cipher = CIPHERS[Number(m[2])];
  return cipher ? { oid, agreement: m[1] === "1" ? "DH" : "ECDH", cipher } : undefined;
}

export type DomainParameters =
  | { kind: "standard"; id: number }
  | { kind: "explicit-ec"; p: bigint; a: bigint; b: bigint; base: Uint8Array; n: bigint; h: bigint }
  | { kind: "explicit-dh"; p: bigint; g: bigint; q: bigint };

export interface PaceInfo {
  protocol: PaceAlgorithm;
  version: number;
  parameterId: number | undefined;
}

export interface PaceDomainParameterInfo {
  protocol: string;
  domainParameters: DomainParameters;
  parameterId: number | undefined;
}

export interface ChipAuthenticationInfo {
  protocol: { oid: string; agreement: Agreement; cipher: KdfAlgorithm };
  version: number;
  keyId: bigint | undefined;
}

export interface ChipAuthenticationPublicKeyInfo {
  agreement: Agreement;
  domainParameters: DomainParameters;
  /** EC: the uncompressed point; DH: the public value y as unsigned big-endian bytes. */
  publicKey: Uint8Array;
  keyId: bigint | undefined;
}

export interface SecurityInfos {
  pace: PaceInfo[];
  paceDomainParameters: PaceDomainParameterInfo[];
  chipAuthentication: ChipAuthenticationInfo[];
  chipAuthenticationDomainParameters: { protocol: string; domainParameters: DomainParameters; keyId: bigint | undefined }[];
  chipAuthenticationPublicKeys: ChipAuthenticationPublicKeyInfo[];
  /** Every SecurityInfo's protocol OID, in order (known or not). */
  protocols: string[];
}

/** Parses a DER SET OF SecurityInfo (EF.CardAccess's whole content). Throws ParseError. */
export function parseSecurityInfos(bytes: Uint8Array): SecurityInfos {
  return parseSecurityInfoSet(expectTag(parseAsn1(bytes, { allowTrailing: true }), 0x31, "SecurityInfos"));
}

/** EF.CardAccess (9303-11 §9.2.11; file 011C in the master file): the SecurityInfos of PACE. */
export const parseCardAccess = parseSecurityInfos;

export function parseSecurityInfoSet(set: Asn1): SecurityInfos {
  const out: SecurityInfos = { pace: [], paceDomainParameters: [], chipAuthentication: [], chipAuthenticationDomainParameters: [], chipAuthenticationPublicKeys: [], protocols: [] };
  for (const item of set.children) {
    const seq = expectSequence(item, "SecurityInfo");
    const oid = readOid(seq.children[0], "SecurityInfo protocol");
    out.protocols.push(oid);
    const pace = paceAlgorithm(oid);
    if (pace) {
      const version = readSmallInt(seq.children[1], "PACEInfo version");
      if (version !== 2) continue; // 9303-11 §9.2.1: version 2; others are not this protocol
      out.pace.push({ protocol: pace, version, parameterId: optionalSmallInt(seq.children[2], "PACEInfo parameterId") });
      continue;
    }
    if (/^0\.4\.0\.127\.0\.7\.2\.2\.4\.[12346]$/.test(oid)) {
      out.paceDomainParameters.push({
        protocol: oid,
        domainParameters: readAlgorithmIdentifier(seq.children[1], "PACEDomainParameterInfo domainParameter"),
        parameterId: optionalSmallInt(seq.children[2], "PACEDomainParameterInfo parameterId"),
      });
      continue;
    }
    const ca = caAlgorithm(oid);
    if (ca) {
      out.chipAuthentication.push({ protocol: ca, version: readSmallInt(seq.children[1], "ChipAuthenticationInfo version"), keyId: optionalBigInt(seq.children[2]) });
      continue;
    }
    if (oid === `${ID_CA}.1` || oid === `${ID_CA}.2`) {
      out.chipAuthenticationDomainParameters.push({ protocol: oid, domainParameters: readAlgorithmIdentifier(seq.children[1], "ChipAuthenticationDomainParameterInfo"), keyId: optionalBigInt(seq.children[2]) });
      continue;
    }
    if (oid === `${ID_PK}.1` || oid === `${ID_PK}.2`) {
      const spki = expectSequence(seq.children[1], "ChipAuthenticationPublicKeyInfo chipAuthenticationPublicKey");
      const domainParameters = readAlgorithmIdentifier(spki.children[0], "SubjectPublicKeyInfo algorithm");
      const bits = readBitStringBytes(spki.children[1], "subjectPublicKey");
      const agreement: Agreement = oid.endsWith(".1") ? "DH" : "ECDH";
      let publicKey: Uint8Array;
      if (agreement === "DH") {
        // DH public key: the BIT STRING holds INTEGER y (RFC 3279 §2.3.3)
        const y = readBigInt(parseAsn1(bits), "DH public key");
        if (y <= 0n) throw new ParseError("ChipAuthenticationPublicKeyInfo: DH public key not positive");
        publicKey = unsigned(y);
      } else publicKey = bits;
      out.chipAuthenticationPublicKeys.push({ agreement, domainParameters, publicKey, keyId: optionalBigInt(seq.children[2]) });
    }
  }
  return out;
}

function optionalSmallInt(node: Asn1 | undefined, what: string): number | undefined {
  return node === undefined ? undefined : readSmallInt(node, what);
}

function optionalBigInt(node: Asn1 | undefined): bigint | undefined {
  return node === undefined || node.tag !== 0x02 ? undefined : readBigInt(node, "keyId");
}

function unsigned(x: bigint): Uint8Array {
  const h = x.toString(16);
  const s = h.length % 2 ? `0${h}` : h;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** AlgorithmIdentifier of domain parameters: standardized id, ECParameters, or X9.42 DomainParameters. */
function readAlgorithmIdentifier(node: Asn1 | undefined, what: string): DomainParameters {
  const seq = expectSequence(node, what);
  const alg = readOid(seq.children[0], `${what} algorithm`);
  const params = seq.children[1];
  if (alg === ID_STANDARDIZED_DOMAIN_PARAMETERS) return { kind: "standard", id: readSmallInt(params, `${what} standardized id`) };
  if (alg === ID_EC_PUBLIC_KEY) {
    if (params?.tag === 0x02) return { kind: "standard", id: readSmallInt(params, `${what} standardized id`) };
    const ec = expectSequence(params, `${what} ECParameters`);
    const field = expectSequence(ec.children[1], "fieldID");
    if (readOid(field.children[0], "fieldType") !== ID_PRIME_FIELD) throw new ParseError(`${what}: only prime-field curves are supported`);
    const curve = expectSequence(ec.children[2], "curve");
    const toBig = (b: Uint8Array) => b.reduce((x, v) => (x << 8n) | BigInt(v), 0n);
    return {
      kind: "explicit-ec",
      p: readBigInt(field.children[1], "prime"),
      a: toBig(readOctetString(curve.children[0], "curve a")),
      b: toBig(readOctetString(curve.children[1], "curve b")),
      base: readOctetString(ec.children[3], "base point"),
      n: readBigInt(ec.children[4], "order"),
      h: ec.children[5] ? readBigInt(ec.children[5], "cofactor") : 1n,
    };
  }
  if (alg === ID_DH_PUBLIC_NUMBER) {
    const dp = expectSequence(params, `${what} DomainParameters`);
    return { kind: "explicit-dh", p: readBigInt(dp.children[0], "p"), g: readBigInt(dp.children[1], "g"), q: readBigInt(dp.children[2], "q") };
  }
  throw new ParseError(`${what}: unsupported algorithm ${alg}`);
}

/** Human name of domain parameters, for reports ("brainpoolP256r1", "explicit EC (256-bit)"). */
export function domainName(d: DomainParameters): string {
  if (d.kind === "standard") return STANDARD_DOMAIN_NAMES[d.id] ?? `standardized id ${d.id}`;
  return d.kind === "explicit-ec" ? `explicit EC (${d.p.toString(2).length}-bit)` : `explicit DH (${d.p.toString(2).length}-bit)`;
}

/** The key-agreement group for domain parameters, or undefined when this agent does not support them. */
export function groupFor(d: DomainParameters): KeyAgreementGroup | undefined {
  try {
    if (d.kind === "standard") return standardGroup(d.id);
    if (d.kind === "explicit-ec") return explicitEcGroup(d);
    return explicitDhGroup(d.p, d.g, d.q);
  } catch (e) {
    if (e instanceof InvalidPublicValueError) throw new ParseError(`domain parameters rejected: ${e.message}`);
    throw e;
  }
}

/**
 * The domain parameters a PACEInfo means: its standardized parameterId, or the
 * PACEDomainParameterInfo of the same mapping whose parameterId matches (9303-11 §9.2.2).
 */
export function paceDomain(infos: SecurityInfos, pace: PaceInfo): DomainParameters | undefined {
  const id = pace.parameterId;
  if (id !== undefined && id <= 31) return { kind: "standard", id };
  const prefix = pace.protocol.oid.split(".").slice(0, -1).join(".");
  const candidates = infos.paceDomainParameters.filter((d) => d.protocol === prefix);
  const hit = id === undefined ? (candidates.length === 1 ? candidates[0] : undefined) : candidates.find((d) => d.parameterId === id);
  return hit?.domainParameters;
}

/** Mapping preference: Chip Authentication Mapping proves the chip too; then GM, then IM (AES-128 only here). */
const MAPPING_ORDER = { CAM: 0, GM: 1, IM: 2 } as const;

/**
 * The PACE parameters to use from parsed SecurityInfos: the supported PACEInfo with the
 * preferred mapping (CAM, then GM), in the chip's order otherwise. Undefined when none is supported.
 */
export function choosePace(infos: SecurityInfos): { parameters: PaceParameters | undefined; offered: string[] } {
  const offered = infos.pace.map((p) => p.protocol.oid);
  const candidates = [...infos.pace].filter((p) => p.protocol.mapping !== "IM" || p.protocol.cipher === "AES-128").sort((a, b) => MAPPING_ORDER[a.protocol.mapping] - MAPPING_ORDER[b.protocol.mapping]);
  for (const p of candidates) {
    const domain = paceDomain(infos, p);
    const group = domain ? groupFor(domain) : undefined;
    if (!group) continue;
    if ((group.kind === "ecdh") !== (p.protocol.agreement === "ECDH")) continue;
    return { parameters: { ...p.protocol, parameterId: p.parameterId !== undefined && p.parameterId <= 31 ? p.parameterId : undefined, group }, offered };
  }
  return { parameters: undefined, offered };
}

/** A Chip Authentication to run (9303-11 §6.2), in the terms agent/icao/chip-authentication.ts takes. */
export interface CaChoice {
  oid: string;
  cipher: KdfAlgorithm;
  group: KeyAgreementGroup;
  /** The chip's static public key, encoded like the group's public values (DH left-padded). */
  publicKey: Uint8Array;
  keyId: bigint | undefined;
  /** e.g. "CA ECDH brainpoolP256r1 AES-128". */
  label: string;
}

/** The Chip Authentication DG14 offers: an info whose agreement (and key id) matches a supported key. */
export function chooseChipAuthentication(infos: SecurityInfos): CaChoice | undefined {
  for (const info of infos.chipAuthentication) {
    const key = infos.chipAuthenticationPublicKeys.find((k) => k.agreement === info.protocol.agreement && (info.keyId === undefined || k.keyId === info.keyId));
    if (!key) continue;
    const group = groupFor(key.domainParameters);
    if (!group || (group.kind === "ecdh") !== (key.agreement === "ECDH")) continue;
    let publicKey = key.publicKey;
    // DG14 stores a DH y as an INTEGER, without leading zeros
    if (key.agreement === "DH" && publicKey.length < group.publicLength) {
      publicKey = new Uint8Array(group.publicLength);
      publicKey.set(key.publicKey, group.publicLength - key.publicKey.length);
    }
    return { oid: info.protocol.oid, cipher: info.protocol.cipher, group, publicKey, keyId: info.keyId, label: `CA ${info.protocol.agreement} ${domainName(key.domainParameters)} ${info.protocol.cipher}` };
  }
  return undefined;
}
