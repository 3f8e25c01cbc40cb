/**
 * Before authentication: EF.CardAccess (ICAO 9303-11 §9.2.11: file 011C, short EF identifier 1C,
 * in the master file, readable without secure messaging). A chip without the file (SELECT 6A82,
 * or READ BINARY 6982/6A82) offers BAC only: one APDU on a freshly reset chip. When the eMRTD
 * application is still selected (a previous read or a diagnosis on this connection) the chip
 * refuses the file from there (6982): the master file is selected (SELECT 3F00) and the file
 * tried once more. A chip that answers 6A82 from inside the application is taken as BAC-only,
 * so that BAC documents pay one APDU for the probe, not two. Parsing and the choice of PACE parameters:
 * lds/security-infos.ts.
 */
import { CardStatusError, ParseError } from "../errors.ts";
import { decodeResponse, encodeCommand } from "../iso7816/apdu.ts";
import { SW } from "../iso7816/status-words.ts";
import { readTlvHeader } from "../iso7816/tlv.ts";
import type { CardTransport } from "../transport/transport.ts";

const FID_CARD_ACCESS = Uint8Array.of(0x01, 0x1c);
/** Statuses meaning "no EF.CardAccess here" (ISO 7816-4): not found, or not readable plain. */
const ABSENT = new Set([0x6a82, 0x6a86, 0x6982, 0x6985, 0x6d00, 0x6a88]);
const MAX_CARD_ACCESS = 4096;

/** EF.CardAccess bytes, or undefined when the chip has none. Plain SELECT by FID, then READ BINARY. */
export async function readCardAccess(transport: CardTransport): Promise<Uint8Array | undefined> {
  const send = async (cmd: Parameters<typeof encodeCommand>[0]) => decodeResponse(await transport.transmit(encodeCommand(cmd)));
  const select = { cla: 0x00, ins: 0xa4, p1: 0x02, p2: 0x0c, data: FID_CARD_ACCESS };
  let sel = await send(select);
  // a chip still in a secure session answers the first plain command 6982/6988 and drops it
  if (sel.sw === 0x6982 || sel.sw === 0x6988) sel = await send(select);
  if (sel.sw === 0x6982) {
    // not readable from the current DF, the eMRTD application: from the master file, if the chip lets us select it
    const mf = await send({ cla: 0x00, ins: 0xa4, p1: 0x00, p2: 0x0c, data: Uint8Array.of(0x3f, 0x00) });
    if (mf.sw !== SW.OK) return undefined;
    sel = await send(select);
  }
  if (ABSENT.has(sel.sw)) return undefined;
  if (sel.sw !== SW.OK) throw new CardStatusError(sel.sw, "SELECT EF.CardAccess");
  const first = await send({ cla: 0x00, ins: 0xb0, p1: 0, p2: 0, ne: 8 });
  if (ABSENT.has(first.sw)) return undefined;
  if (first.sw !== SW.OK && first.sw !== 0x6282) throw new CardStatusError(first.sw, "READ BINARY EF.CardAccess");
  let total: number;
  try {
    const h = readTlvHeader(first.data, 0);
    total = h.headerLength + h.length;
  } catch (e) {
    throw new ParseError(`EF.CardAccess: ${(e as Error).message}`);
  }
  if (total > MAX_CARD_ACCESS) throw new ParseError(`EF.CardAccess of ${total} bytes`);
  const out = new Uint8Array(total);
  out.set(first.data.subarray(0, total), 0);
  let offset = Math.min(first.data.length, total);
  while (offset < total) {
    const r = await send({ cla: 0x00, ins: 0xb0, p1: offset >> 8, p2: offset & 0xff, ne: Math.min(223, total - offset) });
    if (r.sw !== SW.OK && r.sw !== 0x6282) throw new CardStatusError(r.sw, "READ BINARY EF.CardAccess");
    if (r.data.length === 0) throw new ParseError("EF.CardAccess shorter than its length field");
    out.set(r.data.subarray(0, total - offset), offset);
    offset += r.data.length;
  }
  return out;
}
