/**
 * HPKE (agent/crypto/hpke.ts) against RFC 9180 Appendix A.2 (DHKEM(X25519, HKDF-SHA256),
 * HKDF-SHA256, ChaCha20Poly1305): A.2.1 base mode and A.2.3 auth mode, every listed
 * encryption (sequence numbers 0, 1, 2, 4, 255, 256) and export, both directions.
 */
import { describe, expect, test } from "bun:test";
import { fromHex, hex } from "../../agent/bytes.ts";
import { checkPublicKey, deriveKeyPair, HpkeError, MODE_AUTH, MODE_BASE, setupRecipient, setupSender, staticDh } from "../../agent/crypto/hpke.ts";
import vectorsFile from "../fixtures/hpke/rfc9180-appendix-a2.json";

interface Vector {
  mode: number;
  kem_id: number;
  kdf_id: number;
  aead_id: number;
  info: string;
  ikmE: string;
  pkEm: string;
  skEm: string;
  ikmR: string;
  pkRm: string;
  skRm: string;
  ikmS?: string;
  pkSm?: string;
  skSm?: string;
  enc: string;
  encryptions: Array<{ sequence_number: number; pt: string; aad: string; nonce: string; ct: string }>;
  exports: Array<{ exporter_context: string; L: number; exported_value: string }>;
}

const vectors = (vectorsFile as { vectors: Vector[] }).vectors;
const h = (s: string) => fromHex(s);
const lower = (b: Uint8Array) => hex(b).toLowerCase();

test("the vectors file holds A.2's base and auth modes for this suite", () => {
  expect(vectors.map((v) => v.mode).sort()).toEqual([MODE_BASE, MODE_AUTH]);
  for (const v of vectors) expect([v.kem_id, v.kdf_id, v.aead_id]).toEqual([0x20, 1, 3]);
});

for (const v of vectors) {
  const name = v.mode === MODE_BASE ? "A.2.1 base" : "A.2.3 auth";
  describe(`RFC 9180 ${name}`, () => {
    test("DeriveKeyPair gives the vector's key pairs", () => {
      for (const [ikm, sk, pk] of [
        [v.ikmE, v.skEm, v.pkEm],
        [v.ikmR, v.skRm, v.pkRm],
        ...(v.ikmS ? [[v.ikmS, v.skSm!, v.pkSm!]] : []),
      ] as Array<[string, string, string]>) {
        const kp = deriveKeyPair(h(ikm));
        expect(lower(kp.privateKey)).toBe(sk);
        expect(lower(kp.publicKey)).toBe(pk);
      }
    });

    test("the sender's enc and ciphertexts match; the recipient opens them; exports match", () => {
      const eph = { privateKey: h(v.skEm), publicKey: h(v.pkEm) };
      const sender = setupSender({ pkR: h(v.pkRm), info: h(v.info), ephemeral: eph, ...(v.skSm ? { skS: h(v.skSm) } : {}) });
      expect(lower(sender.enc)).toBe(v.enc);
      const recipient = setupRecipient({ enc: h(v.enc), skR: h(v.skRm), info: h(v.info), ...(v.pkSm ? { pkS: h(v.pkSm) } : {}) });
      const bySeq = new Map(v.encryptions.map((e) => [e.sequence_number, e]));
      const last = Math.max(...bySeq.keys());
      for (let seq = 0; seq <= last; seq++) {
        const e = bySeq.get(seq);
        // Messages in between advance both contexts' sequence numbers.
        const aad = e ? h(e.aad) : new Uint8Array(0);
        const pt = e ? h(e.pt) : new Uint8Array(1);
        const ct = sender.seal(aad, pt);
        if (e) expect(lower(ct)).toBe(e.ct);
        expect(lower(recipient.open(aad, ct))).toBe(lower(pt));
      }
      for (const x of v.exports) {
        expect(lower(sender.export(h(x.exporter_context), x.L))).toBe(x.exported_value);
        expect(lower(recipient.export(h(x.exporter_context), x.L))).toBe(x.exported_value);
      }
    });
  });
}

describe("refusals", () => {
  const auth = vectors.find((v) => v.mode === MODE_AUTH)!;
  const first = auth.encryptions[0]!;

  test("auth mode: a ciphertext does not open under another sender key", () => {
    const other = deriveKeyPair(new Uint8Array(32).fill(7));
    const r = setupRecipient({ enc: h(auth.enc), skR: h(auth.skRm), info: h(auth.info), pkS: other.publicKey });
    expect(() => r.open(h(first.aad), h(first.ct))).toThrow(HpkeError);
  });

  test("another info, AAD or a flipped bit does not open; a failed open does not advance the sequence", () => {
    const setup = (info = auth.info) => setupRecipient({ enc: h(auth.enc), skR: h(auth.skRm), info: h(info), pkS: h(auth.pkSm!) });
    expect(() => setup("00").open(h(first.aad), h(first.ct))).toThrow(HpkeError);
    const r = setup();
    expect(() => r.open(h("00"), h(first.ct))).toThrow(HpkeError);
    const bad = h(first.ct);
    bad[3]! ^= 1;
    expect(() => r.open(h(first.aad), bad)).toThrow(HpkeError);
    expect(lower(r.open(h(first.aad), h(first.ct)))).toBe(first.pt);
  });

  test("caller-held own public keys and static DH (the agent's shortcuts) give the RFC's ciphertext", () => {
    const eph = { privateKey: h(auth.skEm), publicKey: h(auth.pkEm) };
    const dhS = staticDh(h(auth.skSm!), h(auth.pkRm));
    expect(lower(staticDh(h(auth.skRm), h(auth.pkSm!)))).toBe(lower(dhS));
    const sender = setupSender({ pkR: h(auth.pkRm), info: h(auth.info), ephemeral: eph, skS: h(auth.skSm!), pkSOwn: h(auth.pkSm!), staticDh: dhS });
    expect(lower(sender.seal(h(first.aad), h(first.pt)))).toBe(first.ct);
    const r = setupRecipient({ enc: h(auth.enc), skR: h(auth.skRm), info: h(auth.info), pkS: h(auth.pkSm!), pkROwn: h(auth.pkRm), staticDh: dhS });
    expect(lower(r.open(h(first.aad), h(first.ct)))).toBe(first.pt);
  });

  test("low-order and wrong-length public keys are refused", () => {
    expect(() => checkPublicKey(new Uint8Array(32))).toThrow(HpkeError);
    expect(() => checkPublicKey(Uint8Array.of(1, ...new Uint8Array(31)))).toThrow(HpkeError);
    // an order-8 point (RFC 7748 / libsodium blocklist)
    expect(() => checkPublicKey(h("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"))).toThrow(HpkeError);
    expect(() => checkPublicKey(new Uint8Array(31))).toThrow(HpkeError);
    expect(() => setupSender({ pkR: new Uint8Array(32), info: new Uint8Array(0) })).toThrow(HpkeError);
    checkPublicKey(h(auth.pkRm));
  });

  test("round trip with fresh keys, base and auth", () => {
    const r = deriveKeyPair(crypto.getRandomValues(new Uint8Array(32)));
    const s = deriveKeyPair(crypto.getRandomValues(new Uint8Array(32)));
    const info = new TextEncoder().encode("ctx");
    for (const skS of [undefined, s.privateKey]) {
      const snd = setupSender({ pkR: r.publicKey, info, ...(skS ? { skS } : {}) });
      const cts = [snd.seal(new Uint8Array(0), Uint8Array.of(1, 2, 3)), snd.seal(Uint8Array.of(9), new Uint8Array(5000))];
      const rcv = setupRecipient({ enc: snd.enc, skR: r.privateKey, info, ...(skS ? { pkS: s.publicKey } : {}) });
      expect([...rcv.open(new Uint8Array(0), cts[0]!)]).toEqual([1, 2, 3]);
      expect(rcv.open(Uint8Array.of(9), cts[1]!).length).toBe(5000);
    }
  });
});
