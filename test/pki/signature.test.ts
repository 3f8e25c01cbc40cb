/**
 * RSA (RFC 8017 §8.1, §8.2) and ECDSA (X9.62; NIST and RFC 5639 brainpool curves) verification,
 * against signatures made by WebCrypto (RSA, NIST curves) and noble (brainpool), and crafted bad ones.
 */
import { describe, expect, test } from "bun:test";
import { brainpoolP256r1 } from "@noble/curves/misc.js";
import { concat, fromHex, hex } from "../../agent/bytes.ts";
import { der, parseAsn1 } from "../../agent/pki/asn1.ts";
import { readAlgorithmIdentifier } from "../../agent/pki/cms.ts";
import { digest } from "../../agent/pki/digest.ts";
import { parseEcPublicKey } from "../../agent/pki/ecdsa.ts";
import { HASH_OID, type HashName, OID } from "../../agent/pki/oids.ts";
import { mgf1 } from "../../agent/pki/rsa.ts";
import { verifySignature } from "../../agent/pki/signature.ts";
import { readSpki } from "../../agent/pki/x509.ts";
import { type TestKey, bigToBytes, brainpoolKey, bytesToBig, nistKey, pkcs1Block, rsaKey } from "./pki-builder.ts";

const MESSAGE = new TextEncoder().encode("LDSSecurityObject stand-in: the bytes a document signer signs");

function verify(key: TestKey, data: Uint8Array, sig: Uint8Array, sigAlg: Uint8Array = key.sigAlg, digestHash?: HashName) {
  return verifySignature(readSpki(parseAsn1(key.spki)), readAlgorithmIdentifier(parseAsn1(sigAlg), "sigAlg"), data, sig, digestHash);
}

function flipped(b: Uint8Array, at = b.length >> 1): Uint8Array {
  const c = b.slice();
  c[at]! ^= 0x01;
  return c;
}

describe("RSASSA-PKCS1-v1_5 (RFC 8017 §8.2)", async () => {
  const keys = await Promise.all((["sha1", "sha224", "sha256", "sha384", "sha512"] as HashName[]).map((hash) => rsaKey({ hash })));
  for (const key of keys) {
    test(`${key.label}: good, tampered message, tampered signature`, async () => {
      const sig = await key.sign(MESSAGE);
      const r = verify(key, MESSAGE, sig);
      expect(r).toEqual({ status: "ok", algorithm: expect.stringContaining("RSA-2048 PKCS#1 v1.5") });
      expect(verify(key, flipped(MESSAGE), sig).status).toBe("bad");
      expect(verify(key, MESSAGE, flipped(sig)).status).toBe("bad");
    });
  }

  test("bare rsaEncryption takes the hash from the CMS digestAlgorithm", async () => {
    const key = keys[2]!;
    const sig = await key.sign(MESSAGE);
    const bare = der.seq(der.oid(OID.rsaEncryption), der.null());
    expect(verify(key, MESSAGE, sig, bare, "sha256").status).toBe("ok");
    expect(verify(key, MESSAGE, sig, bare, "sha384").status).toBe("bad");
    expect(verify(key, MESSAGE, sig, bare).status).toBe("unsupported");
  });

  test("signature claiming another hash is bad", async () => {
    const key = keys[2]!;
    expect(verify(key, MESSAGE, await key.sign(MESSAGE), der.seq(der.oid(OID.sha384WithRSA), der.null())).status).toBe("bad");
  });

  test("crafted encodings: NULL-less DigestInfo accepted; bad padding, block type, lengths rejected", () => {
    const key = keys[2]!;
    const k = 256;
    const h = digest("sha256", MESSAGE);
    const withNull = der.seq(der.seq(der.oid(HASH_OID.sha256), der.null()), der.octets(h));
    const noNull = der.seq(der.seq(der.oid(HASH_OID.sha256)), der.octets(h));
    expect(verify(key, MESSAGE, key.rawSign!(pkcs1Block(k, withNull))).status).toBe("ok");
    expect(verify(key, MESSAGE, key.rawSign!(pkcs1Block(k, noNull))).status).toBe("ok");
    const badPad = pkcs1Block(k, withNull);
    badPad[50] = 0xfe;
    expect(verify(key, MESSAGE, key.rawSign!(badPad)).status).toBe("bad");
    const type2 = pkcs1Block(k, withNull);
    type2[1] = 2;
    expect(verify(key, MESSAGE, key.rawSign!(type2)).status).toBe("bad");
    // DigestInfo not right-aligned (garbage after it, as in Bleichenbacher's 2006 forgery)
    const shifted = new Uint8Array(k);
    shifted.set(pkcs1Block(k - 4, withNull));
    expect(verify(key, MESSAGE, key.rawSign!(shifted)).status).toBe("bad");
    const sig = key.rawSign!(pkcs1Block(k, withNull));
    expect(verify(key, MESSAGE, sig.subarray(1)).status).toBe("bad");
    expect(verify(key, MESSAGE, concat(Uint8Array.of(0), sig)).status).toBe("bad");
    expect(verify(key, MESSAGE, new Uint8Array(k).fill(0xff)).status).toBe("bad"); // >= n
    expect(verify(key, MESSAGE, new Uint8Array(0)).status).toBe("bad");
  });

  test("RSA-4096 and a 3-byte exponent other than 65537 are fine; tiny moduli and even exponents are not", async () => {
    const big = await rsaKey({ bits: 4096, hash: "sha512" });
    expect(verify(big, MESSAGE, await big.sign(MESSAGE)).status).toBe("ok");
    const spkiOf = (n: bigint, e: bigint) =>
      der.seq(der.seq(der.oid(OID.rsaEncryption), der.null()), der.bits(der.seq(der.int(n), der.int(e))));
    const fake = (spki: Uint8Array): TestKey => ({ ...keys[2]!, spki });
    const n512 = (1n << 511n) + 12345n;
    expect(verify(fake(spkiOf(n512, 65537n)), MESSAGE, new Uint8Array(64)).status).toBe("bad");
    const n2048 = bytesToBig(parseAsn1(parseAsn1(keys[2]!.spki).children[1]!.value.subarray(1)).children[0]!.value);
    expect(verify(fake(spkiOf(n2048, 65536n)), MESSAGE, new Uint8Array(256)).status).toBe("bad");
    expect(verify(fake(spkiOf(n2048, 1n << 4000n)), MESSAGE, new Uint8Array(256)).status).toBe("bad");
  });
});

describe("RSASSA-PSS (RFC 8017 §8.1, RFC 4055 parameters)", () => {
  for (const [hash, salt] of [
    ["sha256", 32],
    ["sha256", 0],
    ["sha384", 48],
    ["sha512", 64],
    ["sha1", 20],
  ] as [HashName, number][]) {
    test(`${hash}, salt ${salt}`, async () => {
      const key = await rsaKey({ hash, pss: { saltLength: salt } });
      const sig = await key.sign(MESSAGE);
      expect(verify(key, MESSAGE, sig).status).toBe("ok");
      expect(verify(key, flipped(MESSAGE), sig).status).toBe("bad");
      expect(verify(key, MESSAGE, flipped(sig)).status).toBe("bad");
      // the stated salt length is enforced
      const hashAlg = der.seq(der.oid(HASH_OID[hash]), der.null());
      const wrongSalt = der.seq(
        der.oid(OID.rsassaPss),
        der.seq(der.ctx(0, hashAlg), der.ctx(1, der.seq(der.oid(OID.mgf1), hashAlg)), der.ctx(2, der.int(salt + 1))),
      );
      expect(verify(key, MESSAGE, sig, wrongSalt).status).toBe("bad");
    });
  }

  test("absent parameters mean SHA-1, MGF1-SHA-1, salt 20 (RFC 4055 §3.1)", async () => {
    const key = await rsaKey({ hash: "sha1", pss: { saltLength: 20 } });
    const sig = await key.sign(MESSAGE);
    expect(verify(key, MESSAGE, sig, der.seq(der.oid(OID.rsassaPss), der.seq())).status).toBe("ok");
    expect(verify(key, MESSAGE, sig, der.seq(der.oid(OID.rsassaPss))).status).toBe("ok");
  });

  test("a PKCS#1 v1.5 signature does not pass as PSS, nor the reverse", async () => {
    const pss = await rsaKey({ pss: { saltLength: 32 } });
    const v15 = await rsaKey();
    expect(verify(pss, MESSAGE, await pss.sign(MESSAGE), v15.sigAlg).status).toBe("bad");
    expect(verify(v15, MESSAGE, await v15.sign(MESSAGE), pss.sigAlg).status).toBe("bad");
  });

  test("unknown mask generation and hash are unsupported", async () => {
    const key = await rsaKey({ pss: { saltLength: 32 } });
    const sig = await key.sign(MESSAGE);
    const odd = der.seq(der.oid(OID.rsassaPss), der.seq(der.ctx(1, der.seq(der.oid("1.2.3.4"), der.seq(der.oid(OID.sha256))))));
    expect(verify(key, MESSAGE, sig, odd).status).toBe("unsupported");
    const md5 = der.seq(der.oid(OID.rsassaPss), der.seq(der.ctx(0, der.seq(der.oid("1.2.840.113549.2.5")))));
    expect(verify(key, MESSAGE, sig, md5).status).toBe("unsupported");
  });

  test("MGF1 (RFC 8017 §B.2.1) spans several hash blocks", () => {
    const seed = fromHex("0102030405");
    const out = mgf1("sha1", seed, 45);
    expect(hex(out.subarray(0, 20))).toBe(hex(digest("sha1", concat(seed, Uint8Array.of(0, 0, 0, 0)))));
    expect(hex(out.subarray(40))).toBe(hex(digest("sha1", concat(seed, Uint8Array.of(0, 0, 0, 2))).subarray(0, 5)));
  });
});

describe("ECDSA", () => {
  const cases: [string, () => Promise<TestKey> | TestKey][] = [
    ["P-256 SHA-256", () => nistKey("P-256", "sha256")],
    ["P-256 SHA-512 (hash longer than the order)", () => nistKey("P-256", "sha512")],
    ["P-384 SHA-384", () => nistKey("P-384", "sha384")],
    ["P-521 SHA-512", () => nistKey("P-521", "sha512")],
    ["P-384 SHA-1", () => nistKey("P-384", "sha1")],
    ["brainpoolP256r1 SHA-256", () => brainpoolKey("brainpoolP256r1", "sha256")],
    ["brainpoolP384r1 SHA-384", () => brainpoolKey("brainpoolP384r1", "sha384")],
    ["brainpoolP512r1 SHA-512", () => brainpoolKey("brainpoolP512r1", "sha512")],
    ["brainpoolP256r1 SHA-224", () => brainpoolKey("brainpoolP256r1", "sha224")],
    ["brainpoolP256r1 explicit parameters", () => brainpoolKey("brainpoolP256r1", "sha256", { explicit: true })],
    ["brainpoolP512r1 explicit parameters", () => brainpoolKey("brainpoolP512r1", "sha512", { explicit: true })],
    ["brainpoolP256r1 plain r||s (TR-03111)", () => brainpoolKey("brainpoolP256r1", "sha256", { plain: true })],
  ];
  for (const [label, make] of cases) {
    test(label, async () => {
      const key = await make();
      const sig = await key.sign(MESSAGE);
      const r = verify(key, MESSAGE, sig);
      expect(r.status).toBe("ok");
      expect(r.algorithm).toStartWith("ECDSA ");
      expect(verify(key, flipped(MESSAGE), sig).status).toBe("bad");
      expect(verify(key, MESSAGE, flipped(sig, sig.length - 3)).status).toBe("bad");
    });
  }

  test("a signature checked with another curve's key is bad; an RSA key with ECDSA is bad", async () => {
    const bp = brainpoolKey();
    const p = await nistKey();
    expect(verify(p, MESSAGE, await bp.sign(MESSAGE)).status).toBe("bad");
    const rsa = await rsaKey();
    expect(verify({ ...bp, spki: rsa.spki }, MESSAGE, await bp.sign(MESSAGE)).status).toBe("bad");
  });

  test("out-of-range r and s, malformed DER are bad", async () => {
    const key = brainpoolKey();
    const n = brainpoolP256r1.Point.CURVE().n;
    const sigs = [
      der.seq(der.int(0), der.int(1)),
      der.seq(der.int(1), der.int(n)),
      der.seq(der.int(-5), der.int(1)),
      der.seq(der.int(1n << 300n), der.int(1)),
      der.seq(der.int(1)),
      Uint8Array.of(0x30, 0x84, 0xff, 0xff, 0xff, 0xff),
      new Uint8Array(0),
    ];
    for (const s of sigs) expect(verify(key, MESSAGE, s).status).toBe("bad");
  });

  test("unknown named curve and unmatched explicit parameters are unsupported; an off-curve point is bad", async () => {
    const key = brainpoolKey();
    const sig = await key.sign(MESSAGE);
    const spki = parseAsn1(key.spki);
    const point = spki.children[1]!.value.subarray(1);
    const withParams = (params: Uint8Array, pt = point) => ({ ...key, spki: der.seq(der.seq(der.oid(OID.ecPublicKey), params), der.bits(pt)) });
    expect(verify(withParams(der.oid("1.3.132.0.10")), MESSAGE, sig).status).toBe("unsupported"); // secp256k1
    const explicit = parseAsn1(brainpoolKey("brainpoolP256r1", "sha256", { explicit: true }).spki).children[0]!.children[1]!.raw.slice();
    explicit[20]! ^= 0x04; // inside the prime
    expect(verify(withParams(explicit), MESSAGE, sig).status).toBe("unsupported");
    const offCurve = point.slice();
    offCurve[64]! ^= 1;
    expect(verify(withParams(der.oid(OID.brainpoolP256r1), offCurve), MESSAGE, sig).status).toBe("bad");
    expect(verify(withParams(der.null()), MESSAGE, sig).status).toBe("unsupported");
  });

  test("RFC 7027 §A.1 brainpoolP256r1 key pair: the curve module accepts the public key, by OID and explicitly", () => {
    const dA = fromHex("81DB1EE100150FF2EA338D708271BE38300CB54241D79950F77B063039804F1D");
    const qA = fromHex(
      "04" +
        "44106E913F92BC02A1705D9953A8414DB95E1AAA49E81D9E85F929A8E3100BE5" +
        "8AB4846F11CACCB73CE49CBDD120F5A900A69FD32C272223F789EF10EB089BDC",
    );
    expect(hex(brainpoolP256r1.getPublicKey(dA, false))).toBe(hex(qA));
    expect(parseEcPublicKey(parseAsn1(der.oid(OID.brainpoolP256r1)), qA).curveName).toBe("brainpoolP256r1");
    const explicit = parseAsn1(brainpoolKey("brainpoolP256r1", "sha256", { explicit: true }).spki).children[0]!.children[1]!;
    expect(parseEcPublicKey(explicit, qA).curveName).toBe("brainpoolP256r1");
    // compressed form of the same point
    const compressed = concat(Uint8Array.of(2 + Number(bytesToBig(qA.subarray(33)) & 1n)), qA.subarray(1, 33));
    expect(parseEcPublicKey(explicit, compressed).curveName).toBe("brainpoolP256r1");
    expect(bigToBytes(1n, 1)).toEqual(Uint8Array.of(1));
  });
});
