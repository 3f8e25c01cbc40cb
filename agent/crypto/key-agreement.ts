/**
 * Key-agreement groups for PACE and Chip Authentication (ICAO 9303-11 §9.5.1, BSI TR-03110-3
 * §A.2.1 and Table 4, BSI TR-03111 §4.3): elliptic curves over prime fields through
 * @noble/curves' public Point API (the one module using it for key agreement), and prime-order
 * subgroups of MODP groups (RFC 5114 §2.1–2.3) with native BigInt.
 *
 * A group carries its generator, so Generic and Integrated Mapping return a new group with the
 * mapped generator. Elements are opaque to callers; they go in and out as bytes:
 *   EC: uncompressed point 04 ‖ X ‖ Y (SEC 1 §2.3.3); shared secret: X (TR-03111 §4.3.1)
 *   DH: the integer as big-endian bytes of p's length; shared secret: the same encoding
 * Public values received from the chip are validated (on the curve / in the subgroup, not the
 * identity) before use. Scalar multiplication is noble's constant-time `multiply`; DH
 * exponentiation uses BigInt and is not constant time (no constant-time BigInt exists in JS).
 */
import { brainpoolP256r1, brainpoolP384r1, brainpoolP512r1 } from "@noble/curves/misc.js";
import { p256, p384, p521 } from "@noble/curves/nist.js";
import { weierstrass, type WeierstrassPoint, type WeierstrassPointCons } from "@noble/curves/abstract/weierstrass.js";

/** The error for a public value that is not a valid group element (a hostile or broken chip). */
export class InvalidPublicValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidPublicValueError";
  }
}

export interface KeyAgreementGroup {
  readonly kind: "ecdh" | "dh";
  /** e.g. "brainpoolP256r1", "RFC 5114 2048-bit MODP, 256-bit subgroup", "explicit EC (256-bit)". */
  readonly name: string;
  /** Order of the generator (EC n, DH q): private keys are drawn from [1, order - 1]. */
  readonly order: bigint;
  /** Bytes of an encoded public value. */
  readonly publicLength: number;
  /** Bytes of a shared secret (EC: field element; DH: p). */
  readonly secretLength: number;
  /** g^k (DH) or k·G (EC) with this group's generator. */
  publicKey(k: bigint): Uint8Array;
  /** k·P (EC) or P^k (DH) for a validated public value P: the shared secret bytes. */
  sharedSecret(k: bigint, peer: Uint8Array): Uint8Array;
  /** Generic Mapping (9303-11 §4.4.3.3.1): Ĝ = s·G + H (EC) or ĝ = g^s · h (DH), H = k·peer. */
  mapGeneric(s: bigint, k: bigint, peerMappingKey: Uint8Array): KeyAgreementGroup;
  /** The generator, encoded like a public value (for tests and the mapping examples). */
  generator(): Uint8Array;
  /** Validates a received public value; throws InvalidPublicValueError. */
  checkPublic(bytes: Uint8Array): void;
  /** A private key from uniformly random bytes (reduced into [1, order - 1]); random(n) gives n bytes. */
  randomPrivateKey(random: (n: number) => Uint8Array): bigint;
  /** Same group, another generator (encoded); used by Integrated Mapping. */
  withGenerator(g: Uint8Array): KeyAgreementGroup;
  /** k·P (EC) or P^k (DH) of a validated public value, encoded like one (PACE-CAM's check, Appendix G's H). */
  scalarMultiply(k: bigint, peer: Uint8Array): Uint8Array;
  /**
   * Integrated Mapping's generator from the pseudo-random field element x (9303-11 §4.4.3.3.2):
   * EC: the point encoding of x (affine formulas of ICAO's TR-SAC §5.2, needing p ≡ 3 mod 4);
   * DH: ĝ = x^((p-1)/q) mod p.
   */
  mapIntegrated(x: bigint): KeyAgreementGroup;
  /** The field prime (EC) or the modulus (DH): the pseudo-random function reduces modulo it. */
  readonly prime: bigint;
}

function toBig(b: Uint8Array): bigint {
  let x = 0n;
  for (const v of b) x = (x << 8n) | BigInt(v);
  return x;
}

function fromBig(x: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let v = x;
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function byteLength(x: bigint): number {
  return Math.ceil(x.toString(16).length / 2);
}

function drawPrivateKey(order: bigint, random: (n: number) => Uint8Array): bigint {
  // 64 extra bits make the bias of the reduction negligible (FIPS 186-5 A.2.1)
  const n = byteLength(order) + 8;
  const r = random(n);
  if (r.length !== n) throw new RangeError(`randomPrivateKey: random(${n}) returned ${r.length} bytes`);
  const k = (toBig(r) % (order - 1n)) + 1n;
  r.fill(0);
  return k;
}

type Point = WeierstrassPoint<bigint>;

class EcGroup implements KeyAgreementGroup {
  readonly kind = "ecdh";
  readonly order: bigint;
  readonly publicLength: number;
  readonly secretLength: number;
  private readonly fieldLength: number;

  constructor(
    readonly name: string,
    private readonly Point: WeierstrassPointCons<bigint>,
    private readonly g: Point,
  ) {
    const c = Point.CURVE();
    this.order = c.n;
    this.fieldLength = byteLength(c.p);
    this.publicLength = 1 + 2 * this.fieldLength;
    this.secretLength = this.fieldLength;
  }

  private decode(bytes: Uint8Array): Point {
    if (bytes.length !== this.publicLength || bytes[0] !== 0x04) {
      throw new InvalidPublicValueError(`${this.name}: public key must be an uncompressed point of ${this.publicLength} bytes, got ${bytes.length}`);
    }
    let p: Point;
    try {
      p = this.Point.fromBytes(bytes);
      p.assertValidity();
    } catch {
      throw new InvalidPublicValueError(`${this.name}: public key is not a point on the curve`);
    }
    if (p.is0()) throw new InvalidPublicValueError(`${this.name}: public key is the point at infinity`);
    // cofactor 1 for every standardized curve; with h > 1 a small-subgroup point must be refused
    if (this.Point.CURVE().h !== 1n && p.multiplyUnsafe(this.order).is0() === false) {
      throw new InvalidPublicValueError(`${this.name}: public key is outside the prime-order subgroup`);
    }
    return p;
  }

  private encode(p: Point): Uint8Array {
    return p.toBytes(false);
  }

  publicKey(k: bigint): Uint8Array {
    return this.encode(this.g.multiply(k));
  }

  sharedSecret(k: bigint, peer: Uint8Array): Uint8Array {
    const s = this.decode(peer).multiply(k);
    if (s.is0()) throw new InvalidPublicValueError(`${this.name}: shared point is the point at infinity`);
    return fromBig(s.toAffine().x, this.fieldLength);
  }

  mapGeneric(s: bigint, k: bigint, peerMappingKey: Uint8Array): KeyAgreementGroup {
    const h = this.decode(peerMappingKey).multiply(k);
    const mapped = this.g.multiply(s).add(h);
    if (mapped.is0()) throw new InvalidPublicValueError(`${this.name}: mapped generator is the point at infinity`);
    return new EcGroup(this.name, this.Point, mapped);
  }

  generator(): Uint8Array {
    return this.encode(this.g);
  }

  checkPublic(bytes: Uint8Array): void {
    this.decode(bytes);
  }

  randomPrivateKey(random: (n: number) => Uint8Array): bigint {
    return drawPrivateKey(this.order, random);
  }

  withGenerator(g: Uint8Array): KeyAgreementGroup {
    return new EcGroup(this.name, this.Point, this.decode(g));
  }

  scalarMultiply(k: bigint, peer: Uint8Array): Uint8Array {
    return this.encode(this.decode(peer).multiply(k));
  }

  get prime(): bigint {
    return this.Point.CURVE().p;
  }

  mapIntegrated(t: bigint): KeyAgreementGroup {
    const { p, a, b, h } = this.Point.CURVE();
    if (p % 4n !== 3n || a === 0n) throw new InvalidPublicValueError(`${this.name}: Integrated Mapping's point encoding needs p ≡ 3 mod 4 and a ≠ 0`);
    const m = (x: bigint) => ((x % p) + p) % p;
    const pow = (x: bigint, e: bigint) => modPow(m(x), e, p);
    const alpha = m(-t * t);
    const alpha2 = m(alpha * alpha);
    // X2 = -b(1 + α + α²) / (a(α + α²)), X3 = α·X2; one of f(X2), f(X3) is a square (TR-SAC §5.2)
    const x2 = m(-b * (1n + alpha + alpha2) * pow(a * (alpha + alpha2), p - 2n));
    const x3 = m(alpha * x2);
    const h2 = m(x2 * x2 * x2 + a * x2 + b);
    const u = m(pow(t, 3n) * h2);
    const aa = pow(h2, p - 1n - (p + 1n) / 4n);
    const onX2 = m(aa * aa * h2) === 1n;
    let point: Point;
    try {
      point = this.Point.fromAffine(onX2 ? { x: x2, y: m(aa * h2) } : { x: x3, y: m(aa * u) });
      point.assertValidity();
    } catch {
      throw new InvalidPublicValueError(`${this.name}: Integrated Mapping produced no curve point`);
    }
    if (h !== 1n) point = point.multiply(h);
    if (point.is0()) throw new InvalidPublicValueError(`${this.name}: mapped generator is the point at infinity`);
    return new EcGroup(this.name, this.Point, point);
  }
}

/** base^exp mod m with a 4-bit window (fewer multiplications than binary for 2048-bit moduli). */
function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  const table: bigint[] = [1n, base % m];
  for (let i = 2; i < 16; i++) table.push((table[i - 1]! * table[1]!) % m);
  const bits = exp.toString(16);
  let r = 1n;
  for (const ch of bits) {
    r = (r * r) % m;
    r = (r * r) % m;
    r = (r * r) % m;
    r = (r * r) % m;
    const d = parseInt(ch, 16);
    if (d !== 0) r = (r * table[d]!) % m;
  }
  return r;
}

class DhGroup implements KeyAgreementGroup {
  readonly kind = "dh";
  readonly publicLength: number;
  readonly secretLength: number;

  constructor(
    readonly name: string,
    private readonly p: bigint,
    private readonly g: bigint,
    readonly order: bigint,
  ) {
    this.publicLength = byteLength(p);
    this.secretLength = this.publicLength;
  }

  private decode(bytes: Uint8Array): bigint {
    if (bytes.length !== this.publicLength) throw new InvalidPublicValueError(`${this.name}: public value must be ${this.publicLength} bytes, got ${bytes.length}`);
    const y = toBig(bytes);
    // 1 < y < p - 1 and y in the order-q subgroup (NIST SP 800-56A §5.6.2.3.1)
    if (y <= 1n || y >= this.p - 1n) throw new InvalidPublicValueError(`${this.name}: public value out of range`);
    if (modPow(y, this.order, this.p) !== 1n) throw new InvalidPublicValueError(`${this.name}: public value is outside the prime-order subgroup`);
    return y;
  }

  private encode(y: bigint): Uint8Array {
    return fromBig(y, this.publicLength);
  }

  publicKey(k: bigint): Uint8Array {
    return this.encode(modPow(this.g, k, this.p));
  }

  sharedSecret(k: bigint, peer: Uint8Array): Uint8Array {
    const s = modPow(this.decode(peer), k, this.p);
    if (s === 1n) throw new InvalidPublicValueError(`${this.name}: shared secret is 1`);
    return this.encode(s);
  }

  mapGeneric(s: bigint, k: bigint, peerMappingKey: Uint8Array): KeyAgreementGroup {
    const h = modPow(this.decode(peerMappingKey), k, this.p);
    return this.mapWithH(s, h);
  }

  /** ĝ = g^s · h mod p, for tests that start from the example's h. */
  mapWithH(s: bigint, h: bigint): DhGroup {
    const mapped = (modPow(this.g, s, this.p) * h) % this.p;
    if (mapped <= 1n) throw new InvalidPublicValueError(`${this.name}: mapped generator is degenerate`);
    return new DhGroup(this.name, this.p, mapped, this.order);
  }

  generator(): Uint8Array {
    return this.encode(this.g);
  }

  checkPublic(bytes: Uint8Array): void {
    this.decode(bytes);
  }

  randomPrivateKey(random: (n: number) => Uint8Array): bigint {
    return drawPrivateKey(this.order, random);
  }

  withGenerator(g: Uint8Array): KeyAgreementGroup {
    return new DhGroup(this.name, this.p, this.decode(g), this.order);
  }

  scalarMultiply(k: bigint, peer: Uint8Array): Uint8Array {
    return this.encode(modPow(this.decode(peer), k, this.p));
  }

  get prime(): bigint {
    return this.p;
  }

  mapIntegrated(x: bigint): KeyAgreementGroup {
    const g = modPow(x % this.p, (this.p - 1n) / this.order, this.p);
    if (g <= 1n) throw new InvalidPublicValueError(`${this.name}: mapped generator is degenerate`);
    return new DhGroup(this.name, this.p, g, this.order);
  }
}

export type { EcGroup, DhGroup };

/** RFC 5114 §2.1–2.3 (p, g, q), as BSI TR-03110-3 Table 4 ids 0–2 name them. */
const RFC5114: Record<number, { name: string; p: string; g: string; q: string }> = {
  0: {
    name: "RFC 5114 1024-bit MODP, 160-bit subgroup",
    p: "B10B8F96A080E01DDE92DE5EAE5D54EC52C99FBCFB06A3C69A6A9DCA52D23B616073E28675A23D189838EF1E2EE652C013ECB4AEA906112324975C3CD49B83BFACCBDD7D90C4BD7098488E9C219A73724EFFD6FAE5644738FAA31A4FF55BCCC0A151AF5F0DC8B4BD45BF37DF365C1A65E68CFDA76D4DA708DF1FB2BC2E4A4371",
    g: "A4D1CBD5C3FD34126765A442EFB99905F8104DD258AC507FD6406CFF14266D31266FEA1E5C41564B777E690F5504F213160217B4B01B886A5E91547F9E2749F4D7FBD7D3B9A92EE1909D0D2263F80A76A6A24C087A091F531DBF0A0169B6A28AD662A4D18E73AFA32D779D5918D08BC8858F4DCEF97C2A24855E6EEB22B3B2E5",
    q: "F518AA8781A8DF278ABA4E7D64B7CB9D49462353",
  },
  1: {
    name: "RFC 5114 2048-bit MODP, 224-bit subgroup",
    p: "AD107E1E9123A9D0D660FAA79559C51FA20D64E5683B9FD1B54B1597B61D0A75E6FA141DF95A56DBAF9A3C407BA1DF15EB3D688A309C180E1DE6B85A1274A0A66D3F8152AD6AC2129037C9EDEFDA4DF8D91E8FEF55B7394B7AD5B7D0B6C12207C9F98D11ED34DBF6C6BA0B2C8BBC27BE6A00E0A0B9C49708B3BF8A317091883681286130BC8985DB1602E714415D9330278273C7DE31EFDC7310F7121FD5A07415987D9ADC0A486DCDF93ACC44328387315D75E198C641A480CD86A1B9E587E8BE60E69CC928B2B9C52172E413042E9B23F10B0E16E79763C9B53DCF4BA80A29E3FB73C16B8E75B97EF363E2FFA31F71CF9DE5384E71B81C0AC4DFFE0C10E64F",
    g: "AC4032EF4F2D9AE39DF30B5C8FFDAC506CDEBE7B89998CAF74866A08CFE4FFE3A6824A4E10B9A6F0DD921F01A70C4AFAAB739D7700C29F52C57DB17C620A8652BE5E9001A8D66AD7C17669101999024AF4D027275AC1348BB8A762D0521BC98AE247150422EA1ED409939D54DA7460CDB5F6C6B250717CBEF180EB34118E98D119529A45D6F834566E3025E316A330EFBB77A86F0C1AB15B051AE3D428C8F8ACB70A8137150B8EEB10E183EDD19963DDD9E263E4770589EF6AA21E7F5F2FF381B539CCE3409D13CD566AFBB48D6C019181E1BCFE94B30269EDFE72FE9B6AA4BD7B5A0F1C71CFFF4C19C418E1F6EC017981BC087F2A7065B384B890D3191F2BFA",
    q: "801C0D34C58D93FE997177101F80535A4738CEBCBF389A99B36371EB",
  },
  2: {
    name: "RFC 5114 2048-bit MODP, 256-bit subgroup",
    p: "87A8E61DB4B6663CFFBBD19C651959998CEEF608660DD0F25D2CEED4435E3B00E00DF8F1D61957D4FAF7DF4561B2AA3016C3D91134096FAA3BF4296D830E9A7C209E0C6497517ABD5A8A9D306BCF67ED91F9E6725B4758C022E0B1EF4275BF7B6C5BFC11D45F9088B941F54EB1E59BB8BC39A0BF12307F5C4FDB70C581B23F76B63ACAE1CAA6B7902D52526735488A0EF13C6D9A51BFA4AB3AD8347796524D8EF6A167B5A41825D967E144E5140564251CCACB83E6B486F6B3CA3F7971506026C0B857F689962856DED4010ABD0BE621C3A3960A54E710C375F26375D7014103A4B54330C198AF126116D2276E11715F693877FAD7EF09CADB094AE91E1A1597",
    g: "3FB32C9B73134D0B2E77506660EDBD484CA7B18F21EF205407F4793A1A0BA12510DBC15077BE463FFF4FED4AAC0BB555BE3A6C1B0C6B47B1BC3773BF7E8C6F62901228F8C28CBB18A55AE31341000A650196F931C77A57F2DDF463E5E9EC144B777DE62AAAB8A8628AC376D282D6ED3864E67982428EBC831D14348F6F2F9193B5045AF2767164E1DFC967C1FB3F2E55A4BD1BFFE83B9C80D052B985D182EA0ADB2A3B7313D3FE14C8484B1E052588B9B7D2BBD2DF016199ECD06E1557CD0915B3353BBB64E0EC377FD028370DF92B52C7891428CDC67EB6184B523D1DB246C32F63078490F00EF8D647D148D47954515E2327CFEF98C582664B4C0F6CC41659",
    q: "8CF83642A709A097B447997640129DA299B1A47D1EB3750BA308B0FE64F5FBD3",
  },
};

const NAMED_CURVES: Record<number, { name: string; Point: WeierstrassPointCons<bigint> }> = {
  12: { name: "P-256", Point: p256.Point },
  13: { name: "brainpoolP256r1", Point: brainpoolP256r1.Point },
  15: { name: "P-384", Point: p384.Point },
  16: { name: "brainpoolP384r1", Point: brainpoolP384r1.Point },
  17: { name: "brainpoolP512r1", Point: brainpoolP512r1.Point },
  18: { name: "P-521", Point: p521.Point },
};

/** BSI TR-03110-3 Table 4 ids this agent supports (8–11 and 14, the 192/224/320-bit curves, are not). */
export const SUPPORTED_STANDARD_IDS: readonly number[] = [0, 1, 2, 12, 13, 15, 16, 17, 18];

/** The names of all standardized domain parameter ids (TR-03110-3 Table 4; 9303-11 §9.5.1). */
export const STANDARD_DOMAIN_NAMES: Readonly<Record<number, string>> = {
  0: RFC5114[0]!.name,
  1: RFC5114[1]!.name,
  2: RFC5114[2]!.name,
  8: "P-192",
  9: "brainpoolP192r1",
  10: "P-224",
  11: "brainpoolP224r1",
  12: "P-256",
  13: "brainpoolP256r1",
  14: "brainpoolP320r1",
  15: "P-384",
  16: "brainpoolP384r1",
  17: "brainpoolP512r1",
  18: "P-521",
};

/** The group for a standardized domain parameter id, or undefined when not supported. */
export function standardGroup(id: number): KeyAgreementGroup | undefined {
  const dh = RFC5114[id];
  if (dh) return new DhGroup(dh.name, BigInt(`0x${dh.p}`), BigInt(`0x${dh.g}`), BigInt(`0x${dh.q}`));
  const ec = NAMED_CURVES[id];
  if (ec) return new EcGroup(ec.name, ec.Point, ec.Point.BASE);
  return undefined;
}

export interface ExplicitEcParameters {
  p: bigint;
  a: bigint;
  b: bigint;
  /** Uncompressed base point. */
  base: Uint8Array;
  n: bigint;
  h: bigint;
}

/**
 * A curve from explicit parameters (PACEDomainParameterInfo / CA domain parameters with
 * SpecifiedECDomain, TR-03111 §4.1.1). Matches a named curve first (faster tables); otherwise
 * builds one with noble's weierstrass(). Throws InvalidPublicValueError for a base point off the curve.
 */
export function explicitEcGroup(params: ExplicitEcParameters): KeyAgreementGroup {
  const len = byteLength(params.p);
  if (params.base.length !== 1 + 2 * len || params.base[0] !== 0x04) throw new InvalidPublicValueError("explicit EC parameters: base point must be uncompressed");
  const gx = toBig(params.base.subarray(1, 1 + len));
  const gy = toBig(params.base.subarray(1 + len));
  for (const c of Object.values(NAMED_CURVES)) {
    const k = c.Point.CURVE();
    if (k.p === params.p && k.a === params.a && k.b === params.b && k.n === params.n && k.Gx === gx && k.Gy === gy) return new EcGroup(c.name, c.Point, c.Point.BASE);
  }
  let Point: WeierstrassPointCons<bigint>;
  try {
    Point = weierstrass({ p: params.p, a: params.a, b: params.b, n: params.n, h: params.h, Gx: gx, Gy: gy });
    Point.BASE.assertValidity();
  } catch (e) {
    throw new InvalidPublicValueError(`explicit EC parameters rejected: ${(e as Error).message}`);
  }
  return new EcGroup(`explicit EC (${params.p.toString(2).length}-bit)`, Point, Point.BASE);
}

/** A DH group from explicit parameters (DomainParameters p, g, q of X9.42 / RFC 3279 §2.3.3). */
export function explicitDhGroup(p: bigint, g: bigint, q: bigint): KeyAgreementGroup {
  if (p < 3n || g <= 1n || g >= p || q < 2n) throw new InvalidPublicValueError("explicit DH parameters out of range");
  if (modPow(g, q, p) !== 1n) throw new InvalidPublicValueError("explicit DH parameters: g does not have order q");
  for (const d of Object.values(RFC5114)) {
    if (BigInt(`0x${d.p}`) === p && BigInt(`0x${d.g}`) === g && BigInt(`0x${d.q}`) === q) return new DhGroup(d.name, p, g, q);
  }
  return new DhGroup(`explicit DH (${p.toString(2).length}-bit)`, p, g, q);
}
