/**
 * The chip's side of PACE (ICAO 9303-11 §4.4, BSI TR-03110-2 §3.2) with Generic Mapping and
 * Integrated Mapping (AES-128) on ECDH or DH and Chip Authentication Mapping (§4.4.3.5), and of Chip Authentication v1
 * (§6.2: MSE:Set KAT for 3DES, MSE:Set AT + GENERAL AUTHENTICATE for AES). Written from the
 * spec apart from the reader's agent/icao/pace.ts, so the two check each other; it shares only
 * the crypto layer (AES, 3DES, hashes, key-agreement groups). Randomness comes from the caller.
 */
import { constantTimeEqual } from "../../agent/bytes.ts";
import { aesCbcEncrypt, aesCmac, aesEncryptBlock } from "../../agent/crypto/aes.ts";
import { tdesCbcEncrypt } from "../../agent/crypto/des.ts";
import { sha1 } from "../../agent/crypto/hash.ts";
import { pad, retailMac } from "../../agent/crypto/iso9797.ts";
import type { KeyAgreementGroup } from "../../agent/crypto/key-agreement.ts";
import { standardGroup } from "../../agent/crypto/key-agreement.ts";
import { encodeOid } from "../../agent/pki/asn1.ts";
import { encodeTlv, parseTlv, parseTlvList } from "../../agent/iso7816/tlv.ts";
import { deriveSessionKey, mrzInformation, type MrzKey, type SmSession } from "./card-sm.ts";

export type Cipher = "3DES" | "AES-128" | "AES-192" | "AES-256";

const CIPHER_SUFFIX: Record<Cipher, number> = { "3DES": 1, "AES-128": 2, "AES-192": 3, "AES-256": 4 };

/** What the chip offers in EF.CardAccess and accepts in MSE:Set AT. */
export interface ChipPaceConfig {
  agreement: "DH" | "ECDH";
  mapping: "GM" | "IM" | "CAM";
  cipher: Cipher;
  /** Standardized domain parameter id (TR-03110-3 Table 4). */
  parameterId: number;
  /** Passwords the chip accepts (MSE:Set AT tag 83: 01 MRZ, 02 CAN). */
  passwords: ("mrz" | "can")[];
  /** Tag 84 in MSE:Set AT: accepted either way, required (some chips), or refused (others). */
  parameterIdTag: "any" | "required" | "refused";
}

/** The chip's Chip Authentication key pair (DG14 holds the public key). */
export interface ChipCaKey {
  agreement: "DH" | "ECDH";
  cipher: Cipher;
  parameterId: number;
  secret: bigint;
}

export function paceOid(c: Pick<ChipPaceConfig, "agreement" | "mapping" | "cipher">): string {
  const mapping = c.mapping === "CAM" ? 6 : c.mapping === "IM" ? (c.agreement === "DH" ? 3 : 4) : c.agreement === "DH" ? 1 : 2;
  return `0.4.0.127.0.7.2.2.4.${mapping}.${CIPHER_SUFFIX[c.cipher]}`;
}

export function caOid(k: Pick<ChipCaKey, "agreement" | "cipher">): string {
  return `0.4.0.127.0.7.2.2.3.${k.agreement === "DH" ? 1 : 2}.${CIPHER_SUFFIX[k.cipher]}`;
}

function group(id: number): KeyAgreementGroup {
  const g = standardGroup(id);
  if (!g) throw new RangeError(`virtual chip: domain parameter id ${id} not supported`);
  return g;
}

export function caPublicKey(k: ChipCaKey): Uint8Array {
  return group(k.parameterId).publicKey(k.secret);
}

function aesMode(c: Cipher): boolean {
  return c !== "3DES";
}

function encryptZeroIv(c: Cipher, key: Uint8Array, data: Uint8Array): Uint8Array {
  return aesMode(c) ? aesCbcEncrypt(key, new Uint8Array(16), data) : tdesCbcEncrypt(key, data, new Uint8Array(8));
}

function token(c: Cipher, kMac: Uint8Array, data: Uint8Array): Uint8Array {
  return aesMode(c) ? aesCmac(kMac, data).slice(0, 8) : retailMac(kMac, pad(data));
}

function pkdo(oid: string, agreement: "DH" | "ECDH", pk: Uint8Array): Uint8Array {
  return encodeTlv(0x7f49, encodeTlv(0x06, encodeOid(oid)), encodeTlv(agreement === "ECDH" ? 0x86 : 0x84, pk));
}

function toBig(b: Uint8Array): bigint {
  let x = 0n;
  for (const v of b) x = (x << 8n) | BigInt(v);
  return x;
}

function fromBig(x: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = len - 1, v = x; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

/** 9303-11 §4.4.3.3.2, AES-128 constants c0 and c1 for a 128-bit nonce. */
const C0 = Uint8Array.from([0xa6, 0x68, 0x89, 0x2a, 0x7c, 0x41, 0xe3, 0xca, 0x73, 0x9f, 0x40, 0xb0, 0x57, 0xd8, 0x59, 0x04]);
const C1 = Uint8Array.from([0xa4, 0xe1, 0x36, 0xac, 0x72, 0x5f, 0x73, 0x8b, 0x01, 0xc1, 0xf6, 0x02, 0x17, 0xc1, 0x88, 0xad]);

/** R_p(s, t): key = E(t, s); blocks E(key_i, c1) with key_{i+1} = E(key_i, c0) until bitlength(p) + 64 bits; mod p. */
function pseudoRandom(s: Uint8Array, t: Uint8Array, p: bigint): bigint {
  let key = aesEncryptBlock(t, s);
  let x = 0n;
  for (let bits = 0; bits < p.toString(2).length + 64; bits += 128) {
    x = (x << 128n) | toBig(aesEncryptBlock(key, C1));
    key = aesEncryptBlock(key, C0);
  }
  return x % p;
}

function modInverse(a: bigint, n: bigint): bigint {
  let [r0, r1, s0, s1] = [((a % n) + n) % n, n, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % n) + n) % n;
}

function sessionOf(c: Cipher, k: Uint8Array): SmSession {
  return { kEnc: deriveSessionKey(k, 1, c), kMac: deriveSessionKey(k, 2, c), ssc: new Uint8Array(aesMode(c) ? 16 : 8), cipher: aesMode(c) ? "AES" : "3DES" };
}

interface Result {
  data?: Uint8Array;
  sw: number;
  /** A new secure-messaging session that starts after this response. */
  session?: SmSession;
}

type PaceState =
  | { step: "set"; password: Uint8Array }
  | { step: "nonce"; s: Uint8Array }
  | { step: "mapped"; mapped: KeyAgreementGroup; mapSecret: bigint; mapPublic: Uint8Array }
  | { step: "agreed"; session: SmSession; pcdPublic: Uint8Array; piccPublic: Uint8Array; mapSecret: bigint; mapPublic: Uint8Array };

export class ChipPace {
  private state: PaceState | undefined;
  private failedOnce = false;

  constructor(
    private readonly config: ChipPaceConfig,
    private readonly mrzKey: MrzKey,
    private readonly can: string | undefined,
    private readonly caKey: ChipCaKey | undefined,
    private readonly random: (n: number) => Uint8Array,
  ) {}

  /** SecurityInfos of EF.CardAccess: the PACEInfo (version 2, standardized parameter id). */
  static cardAccessInfo(config: ChipPaceConfig): Uint8Array {
    return encodeTlv(0x30, encodeTlv(0x06, encodeOid(paceOid(config))), Uint8Array.of(0x02, 0x01, 0x02), Uint8Array.of(0x02, 0x01, config.parameterId));
  }

  reset(): void {
    this.state = undefined;
  }

  /** MSE:Set AT, P1-P2 C1A4 (9303-11 §4.4.4.1). */
  mseSetAt(data: Uint8Array): Result {
    this.state = undefined;
    let dos;
    try {
      dos = parseTlvList(data);
    } catch {
      return { sw: 0x6a80 };
    }
    const oid = dos.find((d) => d.tag === 0x80)?.value;
    const ref = dos.find((d) => d.tag === 0x83)?.value;
    const param = dos.find((d) => d.tag === 0x84)?.value;
    if (!oid || !constantTimeEqual(oid, encodeOid(paceOid(this.config)))) return { sw: 0x6a80 };
    if (param !== undefined && (param.length !== 1 || param[0] !== this.config.parameterId)) return { sw: 0x6a80 };
    if (param === undefined && this.config.parameterIdTag === "required") return { sw: 0x6a80 };
    if (param !== undefined && this.config.parameterIdTag === "refused") return { sw: 0x6a80 };
    if (!ref || ref.length !== 1) return { sw: 0x6a80 };
    let password: Uint8Array;
    if (ref[0] === 0x01 && this.config.passwords.includes("mrz")) password = sha1(new TextEncoder().encode(mrzInformation(this.mrzKey)));
    else if (ref[0] === 0x02 && this.config.passwords.includes("can") && this.can !== undefined) password = new TextEncoder().encode(this.can);
    else return { sw: 0x6a88 }; // referenced password not available
    this.state = { step: "set", password };
    return { sw: 0x9000 };
  }

  /** GENERAL AUTHENTICATE of PACE; `last` is false for the chained steps (CLA 10). */
  generalAuthenticate(data: Uint8Array, last: boolean): Result {
    const st = this.state;
    if (!st) return { sw: 0x6985 };
    let inner: Uint8Array;
    try {
      const t = parseTlv(data);
      if (t.tag !== 0x7c || t.end !== data.length) return this.abort(0x6a80);
      inner = t.value;
    } catch {
      return this.abort(0x6a80);
    }
    const field = (tag: number) => {
      try {
        return parseTlvList(inner).find((d) => d.tag === tag)?.value;
      } catch {
        return undefined;
      }
    };
    const c = this.config;
    const g = group(c.parameterId);
    try {
      switch (st.step) {
        case "set": {
          if (last || inner.length !== 0) return this.abort(0x6a80);
          const s = this.random(aesMode(c.cipher) ? 16 : 8).slice();
          const kPi = deriveSessionKey(st.password, 3, c.cipher);
          const z = encryptZeroIv(c.cipher, kPi, s);
          kPi.fill(0);
          st.password.fill(0);
          this.state = { step: "nonce", s };
          return { data: encodeTlv(0x7c, encodeTlv(0x80, z)), sw: 0x9000 };
        }
        case "nonce": {
          const pcdMap = field(0x81);
          if (last || !pcdMap) return this.abort(0x6a80);
          if (c.mapping === "IM") {
            // the terminal's nonce t; the mapping data of the answer are empty
            if (pcdMap.length !== 16) return this.abort(0x6a80);
            const mapped = g.mapIntegrated(pseudoRandom(st.s, pcdMap, g.prime));
            st.s.fill(0);
            this.state = { step: "mapped", mapped, mapSecret: 0n, mapPublic: new Uint8Array(0) };
            return { data: encodeTlv(0x7c), sw: 0x9000 };
          }
          const mapSecret = g.randomPrivateKey(this.random);
          const mapPublic = g.publicKey(mapSecret);
          const mapped = g.mapGeneric(toBig(st.s), mapSecret, pcdMap);
          st.s.fill(0);
          this.state = { step: "mapped", mapped, mapSecret, mapPublic };
          return { data: encodeTlv(0x7c, encodeTlv(0x82, mapPublic)), sw: 0x9000 };
        }
        case "mapped": {
          const pcdPublic = field(0x83);
          if (last || !pcdPublic) return this.abort(0x6a80);
          const sk = st.mapped.randomPrivateKey(this.random);
          const piccPublic = st.mapped.publicKey(sk);
          if (constantTimeEqual(piccPublic, pcdPublic)) return this.abort(0x6a80);
          const k = st.mapped.sharedSecret(sk, pcdPublic);
          const session = sessionOf(c.cipher, k);
          k.fill(0);
          // CAM answers with the mapping secret: keep it beside the session (chip-side state only)
          this.state = { step: "agreed", session, pcdPublic, piccPublic, mapSecret: st.mapSecret, mapPublic: st.mapPublic };
          return { data: encodeTlv(0x7c, encodeTlv(0x84, piccPublic)), sw: 0x9000 };
        }
        case "agreed": {
          const tPcd = field(0x85);
          if (!last || !tPcd) return this.abort(0x6a80);
          const oid = paceOid(c);
          const expected = token(c.cipher, st.session.kMac, pkdo(oid, c.agreement, st.piccPublic));
          if (!constantTimeEqual(expected, tPcd)) {
            this.failedOnce = true;
            return this.abort(0x6300);
          }
          const parts = [encodeTlv(0x86, token(c.cipher, st.session.kMac, pkdo(oid, c.agreement, st.pcdPublic)))];
          if (c.mapping === "CAM" && this.caKey) {
            // CA_IC = SK_Map,IC · SK_IC^-1 mod n, so that CA_IC · PK_IC = PK_Map,IC (9303-11 §4.4.3.5)
            const n = g.order;
            const caIc = (st.mapSecret * modInverse(this.caKey.secret, n)) % n;
            const len = Math.ceil(n.toString(16).length / 2);
            const iv = aesEncryptBlock(st.session.kEnc, new Uint8Array(16).fill(0xff));
            parts.push(encodeTlv(0x8a, aesCbcEncrypt(st.session.kEnc, iv, pad(fromBig(caIc, len), 16))));
          }
          this.state = undefined;
          return { data: encodeTlv(0x7c, ...parts), sw: 0x9000, session: st.session };
        }
      }
    } catch {
      // an invalid public value from the terminal
      return this.abort(0x6a80);
    }
  }

  /** Whether a wrong token was seen (tests). */
  get sawWrongToken(): boolean {
    return this.failedOnce;
  }

  private abort(sw: number): Result {
    this.state = undefined;
    return { sw };
  }
}

/**
 * Chip Authentication v1 on the chip (9303-11 §6.2.4): the terminal's ephemeral public key,
 * K = the shared secret with the chip's static CA key, new session keys with SSC 0 after the
 * response (which still goes out under the old keys).
 */
export class ChipCa {
  private protocolSet: string | undefined;

  constructor(private readonly key: ChipCaKey) {}

  reset(): void {
    this.protocolSet = undefined;
  }

  /** MSE:Set KAT (41A6, 3DES): 91 ephemeral key [84 key id]; the new session starts after the response. */
  mseSetKat(data: Uint8Array): Result {
    let dos;
    try {
      dos = parseTlvList(data);
    } catch {
      return { sw: 0x6a80 };
    }
    const pk = dos.find((d) => d.tag === 0x91)?.value;
    if (!pk || this.key.cipher !== "3DES") return { sw: 0x6a80 };
    return this.agree(pk, { sw: 0x9000 });
  }

  /** MSE:Set AT (41A4, AES): 80 CA protocol OID [84 key id]. */
  mseSetAt(data: Uint8Array): Result {
    let dos;
    try {
      dos = parseTlvList(data);
    } catch {
      return { sw: 0x6a80 };
    }
    const oid = dos.find((d) => d.tag === 0x80)?.value;
    if (!oid || !constantTimeEqual(oid, encodeOid(caOid(this.key)))) return { sw: 0x6a80 };
    this.protocolSet = caOid(this.key);
    return { sw: 0x9000 };
  }

  /** GENERAL AUTHENTICATE (AES): 7C { 80 ephemeral key } → 7C 00. */
  generalAuthenticate(data: Uint8Array): Result {
    if (!this.protocolSet) return { sw: 0x6985 };
    this.protocolSet = undefined;
    let pk: Uint8Array | undefined;
    try {
      const t = parseTlv(data);
      if (t.tag !== 0x7c) return { sw: 0x6a80 };
      pk = parseTlvList(t.value).find((d) => d.tag === 0x80)?.value;
    } catch {
      return { sw: 0x6a80 };
    }
    if (!pk) return { sw: 0x6a80 };
    return this.agree(pk, { data: encodeTlv(0x7c), sw: 0x9000 });
  }

  private agree(pk: Uint8Array, ok: Result): Result {
    let k: Uint8Array;
    try {
      k = group(this.key.parameterId).sharedSecret(this.key.secret, pk);
    } catch {
      return { sw: 0x6a80 };
    }
    const session = sessionOf(this.key.cipher, k);
    k.fill(0);
    return { ...ok, session };
  }
}

