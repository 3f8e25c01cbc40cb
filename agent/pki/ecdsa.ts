/**
 * ECDSA verification (ANSI X9.62, SEC 1 §4.1.4) over NIST P-256/384/521 (FIPS 186-4) and
 * brainpoolP256r1/384r1/512r1 (RFC 5639) with @noble/curves; the one module using it for
 * signatures. EC keys may name their curve or spell it out as SpecifiedECDomain (RFC 3279 §2.3.5,
 * used by several CSCAs): explicit parameters are matched against the known curves.
 * Signatures come DER-encoded (RFC 5480 ECDSA-Sig-Value) or plain r||s (BSI TR-03111 §5.2.1).
 */
import { brainpoolP256r1, brainpoolP384r1, brainpoolP512r1 } from "@noble/curves/misc.js";
import { p256, p384, p521 } from "@noble/curves/nist.js";
import { ParseError } from "../errors.ts";
import { type Asn1, expectSequence, parseAsn1, readBigInt, readOctetString, readOid } from "./asn1.ts";
import { OID } from "./oids.ts";
import { fromBig, toBig } from "./bigint.ts";

type NobleEcdsa = typeof p256;

interface CurveEntry {
  name: string;
  oid: string;
  curve: NobleEcdsa;
}

const CURVES: CurveEntry[] = [
  { name: "P-256", oid: OID.p256, curve: p256 },
  { name: "P-384", oid: OID.p384, curve: p384 },
  { name: "P-521", oid: OID.p521, curve: p521 },
  { name: "brainpoolP256r1", oid: OID.brainpoolP256r1, curve: brainpoolP256r1 },
  { name: "brainpoolP384r1", oid: OID.brainpoolP384r1, curve: brainpoolP384r1 },
  { name: "brainpoolP512r1", oid: OID.brainpoolP512r1, curve: brainpoolP512r1 },
];

export interface EcPublicKey {
  curveName: string;
  curve: NobleEcdsa;
  /** SEC 1 encoded point (compressed or uncompressed), checked to be on the curve. */
  point: Uint8Array;
}

export class UnsupportedCurveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsupportedCurveError";
  }
}

/**
 * The curve named or described by ecPublicKey parameters, and the point. Throws
 * UnsupportedCurveError for a curve we do not know, ParseError for malformed input.
 */
export function parseEcPublicKey(params: Asn1 | undefined, point: Uint8Array): EcPublicKey {
  if (!params) throw new ParseError("EC key without curve parameters");
  let entry: CurveEntry | undefined;
  if (params.tag === 0x06) {
    const oid = readOid(params, "namedCurve");
    entry = CURVES.find((c) => c.oid === oid);
    if (!entry) throw new UnsupportedCurveError(`EC curve ${oid} not supported`);
  } else if (params.tag === 0x30) {
    entry = matchExplicit(params);
  } else {
    throw new UnsupportedCurveError("implicitlyCA EC parameters not supported");
  }
  try {
    entry.curve.Point.fromBytes(point).assertValidity();
  } catch {
    throw new ParseError(`EC public key is not a point of ${entry.name}`);
  }
  return { curveName: entry.name, curve: entry.curve, point };
}

/** SpecifiedECDomain { version, fieldID { prime-field, p }, curve { a, b, seed? }, base, order, cofactor? }. */
function matchExplicit(params: Asn1): CurveEntry {
  const seq = expectSequence(params, "ECParameters");
  const field = expectSequence(seq.children[1], "fieldID");
  if (readOid(field.children[0], "fieldType") !== OID.primeField) throw new UnsupportedCurveError("EC: only prime fields are supported");
  const p = readBigInt(field.children[1], "prime");
  const curve = expectSequence(seq.children[2], "curve");
  const a = toBig(readOctetString(curve.children[0], "curve a"));
  const b = toBig(readOctetString(curve.children[1], "curve b"));
  const base = readOctetString(seq.children[3], "base point");
  const n = readBigInt(seq.children[4], "order");
  for (const entry of CURVES) {
    const c = entry.curve.Point.CURVE();
    if (c.p !== p || c.a !== a || c.b !== b || c.n !== n) continue;
    let g;
    try {
      g = entry.curve.Point.fromBytes(base);
    } catch {
      throw new ParseError(`EC: explicit base point is not on ${entry.name}`);
    }
    if (!g.equals(entry.curve.Point.BASE)) throw new UnsupportedCurveError(`EC: ${entry.name} parameters with another base point`);
    return entry;
  }
  throw new UnsupportedCurveError("EC: explicit parameters match no supported curve");
}

/**
 * Verifies an ECDSA signature over a message digest `hash` (already computed by the caller).
 * `format` "der" is an ECDSA-Sig-Value, "plain" is r||s of twice the order's byte length.
 */
export function verifyEcdsa(key: EcPublicKey, hash: Uint8Array, signature: Uint8Array, format: "der" | "plain"): boolean {
  const len = key.curve.lengths.signature! / 2;
  let r: bigint;
  let s: bigint;
  if (format === "plain") {
    if (signature.length !== 2 * len) return false;
    r = toBig(signature.subarray(0, len));
    s = toBig(signature.subarray(len));
  } else {
    try {
      const seq = expectSequence(parseAsn1(signature), "ECDSA-Sig-Value");
      if (seq.children.length !== 2) return false;
      r = readBigInt(seq.children[0], "r");
      s = readBigInt(seq.children[1], "s");
    } catch (e) {
      if (e instanceof ParseError) return false;
      throw e;
    }
  }
  const n = key.curve.Point.CURVE().n;
  if (r <= 0n || s <= 0n || r >= n || s >= n) return false;
  const compact = new Uint8Array(2 * len);
  compact.set(fromBig(r, len), 0);
  compact.set(fromBig(s, len), len);
  try {
    // lowS: false — passports' signers do not normalise s (X9.62 allows either half)
    return key.curve.verify(compact, hash, key.point, { prehash: false, lowS: false, format: "compact" });
  } catch {
    return false;
  }
}

