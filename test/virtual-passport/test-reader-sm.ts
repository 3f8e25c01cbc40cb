/**
 * A minimal reader-side 3DES secure-messaging wrapper (ICAO 9303-11 §9.8) used only by the
 * virtual passport's unit tests to talk to the chip after BAC. Checked against the
 * Appendix D.4 vectors in card.test.ts before anything else relies on it.
 */
import { concat, constantTimeEqual } from "../../agent/bytes.ts";
import { tdesCbcDecrypt, tdesCbcEncrypt } from "../../agent/crypto/des.ts";
import { pad, retailMac, unpad } from "../../agent/crypto/iso9797.ts";
import { decodeResponse, encodeCommand } from "../../agent/iso7816/apdu.ts";
import { encodeTlv, parseTlv } from "../../agent/iso7816/tlv.ts";
import { incrementSsc } from "./card-sm.ts";

const IV = new Uint8Array(8);

export interface PlainCommand {
  ins: number;
  p1: number;
  p2: number;
  data?: Uint8Array;
  ne?: number;
}

export class TestReaderSm {
  constructor(
    readonly ksEnc: Uint8Array,
    readonly ksMac: Uint8Array,
    public ssc: Uint8Array,
  ) {}

  protect(cmd: PlainCommand, opts: { extended?: boolean } = {}): Uint8Array {
    this.ssc = incrementSsc(this.ssc);
    const header = Uint8Array.of(0x0c, cmd.ins, cmd.p1, cmd.p2);
    let doData: Uint8Array = new Uint8Array(0);
    if (cmd.data && cmd.data.length > 0) {
      const ct = tdesCbcEncrypt(this.ksEnc, pad(cmd.data), IV);
      doData = (cmd.ins & 1) === 1 ? encodeTlv(0x85, ct) : encodeTlv(0x87, Uint8Array.of(1), ct);
    }
    let doLe: Uint8Array = new Uint8Array(0);
    if (cmd.ne !== undefined) {
      const ne = cmd.ne;
      doLe = opts.extended ? encodeTlv(0x97, Uint8Array.of((ne >> 8) & 0xff, ne & 0xff)) : encodeTlv(0x97, Uint8Array.of(ne & 0xff));
    }
    const mac = retailMac(this.ksMac, pad(concat(this.ssc, pad(header), doData, doLe)));
    const body = concat(doData, doLe, encodeTlv(0x8e, mac));
    return encodeCommand({ cla: 0x0c, ins: cmd.ins, p1: cmd.p1, p2: cmd.p2, data: body, ne: opts.extended ? 65536 : 256, extended: opts.extended === true });
  }

  /** Verifies and decrypts a protected response; throws if it is not one or the MAC is wrong. */
  unprotect(response: Uint8Array): { data: Uint8Array; sw: number; outerSw: number } {
    const r = decodeResponse(response);
    this.ssc = incrementSsc(this.ssc);
    let p = 0;
    let do87: Uint8Array = new Uint8Array(0);
    let do99: Uint8Array | undefined;
    let mac: Uint8Array | undefined;
    let plain: Uint8Array = new Uint8Array(0);
    while (p < r.data.length) {
      const t = parseTlv(r.data, p);
      const raw = r.data.subarray(p, t.end);
      p = t.end;
      if (t.tag === 0x87) {
        do87 = raw;
        if (t.value[0] !== 1) throw new Error("padding-content indicator");
        plain = unpad(tdesCbcDecrypt(this.ksEnc, t.value.subarray(1), IV));
      } else if (t.tag === 0x99) do99 = raw;
      else if (t.tag === 0x8e) mac = t.value;
      else throw new Error(`unexpected tag ${t.tag.toString(16)}`);
    }
    if (!do99 || !mac) throw new Error(`not a protected response (sw ${r.sw.toString(16)})`);
    const expected = retailMac(this.ksMac, pad(concat(this.ssc, do87, do99)));
    if (!constantTimeEqual(expected, mac)) throw new Error("response MAC mismatch");
    return { data: plain, sw: (do99[2]! << 8) | do99[3]!, outerSw: r.sw };
  }
}
