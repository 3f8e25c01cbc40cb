/**
 * Reads one LDS file over secure messaging with the fewest APDUs the link allows
 * (ICAO 9303-10 §3, ISO 7816-4 §11.3.3). The first READ BINARY is by short EF identifier
 * at offset 0 with a full block: it selects the file, returns its header (hence its length)
 * and the first data, all in one APDU. The rest is read in full blocks, extended-length
 * when the reader and card carry it, with odd-INS B1 beyond offset 32,767.
 *
 * Only data whose response MAC verified is ever appended: after any loss the read resumes
 * at `offset`, which counts verified bytes only.
 */
import { concat } from "../bytes.ts";
import { CardStatusError, ParseError, SecureMessagingError, TransportError } from "../errors.ts";
import type { CommandApdu } from "../iso7816/apdu.ts";
import { isWrongLe } from "../iso7816/status-words.ts";
import { encodeTlv, parseTlv } from "../iso7816/tlv.ts";
import { fileLengthFromHeader } from "../lds/file-header.ts";
import type { LdsFileInfo } from "../lds/lds-files.ts";
import type { ReadTuning } from "./read-tuning.ts";

/** Offsets above this need odd-INS READ BINARY (9303-10: P1-P2 carries 15 bits). */
const MAX_EVEN_OFFSET = 0x7fff;

export interface SmResponse {
  data: Uint8Array;
  sw: number;
  protected: boolean;
}

/** What the file reader needs from the read session around it (read-session.ts). */
export interface SecureSession {
  send(cmd: CommandApdu): Promise<SmResponse>;
  /**
   * Bring the secure channel back after `cause` (reconnect if needed, select the
   * applet, authenticate again). Throws when the cause is not recoverable or the
   * retry budget is spent. `where` says what was being read.
   */
  recover(cause: unknown, where: { file: LdsFileInfo; offset: number }): Promise<void>;
}

export interface FileProgress {
  file: LdsFileInfo;
  offset: number;
  total: number | undefined;
}

/** Reasons the card gave that mean "this file is not there for you" (not a link fault). */
export function isFileAbsent(e: unknown): boolean {
  return e instanceof CardStatusError && (e.sw === 0x6a82 || e.sw === 0x6982 || e.sw === 0x6985);
}

export async function readFile(
  session: SecureSession,
  state: ReadTuning,
  file: LdsFileInfo,
  onProgress?: (p: FileProgress) => void,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  let total: number | undefined;
  /** Whether the file is the card's current EF (after SELECT or an SFI read). */
  let selected = false;
  /** Length errors met at the current offset, to stop a card that rejects every size. */
  let lengthRetries = 0;

  while (total === undefined || offset < total) {
    const remaining = total === undefined ? undefined : total - offset;

    if (!selected && !(state.sfi !== "no" && offset <= 0xff)) {
      const r = await sendOrRecover(session, selectEf(file), file, offset);
      if (r === "recovered") continue;
      if (r.sw !== 0x9000) throw new CardStatusError(r.sw, "SELECT");
      selected = true;
      continue;
    }

    const useExtended = remaining !== undefined && remaining > state.blockSize && state.extendedNow;
    const bySfi = !selected;
    const odd = !bySfi && offset > MAX_EVEN_OFFSET;
    const budget = useExtended ? state.extendedBlock : state.blockSize;
    // With B1 the response plaintext also carries DO'53''s tag and length.
    const want = Math.min(remaining ?? budget, odd ? budget - do53Overhead(budget) : budget);
    const cmd = readCommand(file, offset, want, { bySfi, odd, extended: useExtended });

    let r: SmResponse | "recovered";
    try {
      r = await sendOrRecover(session, cmd, file, offset);
    } catch (e) {
      // An extended-length probe that breaks the link: the reader cannot carry it.
      if (useExtended && state.extended === "unknown" && e instanceof TransportError) {
        state.extended = "no";
        await session.recover(e, { file, offset });
        selected = false;
        continue;
      }
      throw e;
    }
    if (r === "recovered") {
      if (useExtended && state.extended === "unknown") state.extended = "no";
      else state.noteLoss();
      selected = false;
      continue;
    }

    const { sw } = r;
    if (sw === 0x9000 || sw === 0x6282) {
      let data = r.data;
      if (odd) data = unwrapDo53(data, offset);
      if (data.length === 0) {
        if (total === undefined) throw new ParseError(`${file.name}: card reports end of file before the header`, { offset });
        throw new ParseError(`${file.name}: card reports end of file at ${offset} of ${total} bytes`, { offset });
      }
      if (data.length > want) throw new ParseError(`${file.name}: card returned ${data.length} bytes for Le ${want}`, { offset });
      if (bySfi) {
        selected = true;
        if (state.sfi === "unknown") state.sfi = "yes";
      }
      if (useExtended) state.extended = "yes";
      state.noteSuccess();
      chunks.push(data);
      offset += data.length;
      lengthRetries = 0;
      if (total === undefined) {
        const h = fileLengthFromHeader(concat(...chunks));
        // Throws on a header announcing more than MAX_LDS_FILE_LENGTH (hostile card).
        if ("totalLength" in h) {
          total = h.totalLength;
          if (offset > total) {
            // The card sent bytes past the TLV end (padding): keep only the file.
            const all = concat(...chunks).subarray(0, total);
            chunks.length = 0;
            chunks.push(all);
            offset = total;
          }
        } else if (sw === 0x6282) {
          throw new ParseError(`${file.name}: file ends inside its own header`, { offset });
        }
      }
      onProgress?.({ file, offset, total });
      continue;
    }

    if (isWrongLe(sw) || sw === 0x6700) {
      if (++lengthRetries > 12) throw new CardStatusError(sw, "READ BINARY", `${file.name}: card rejects every read length`);
      if (useExtended) {
        state.extended = "no";
      } else if (isWrongLe(sw) && (sw & 0xff) > 0) {
        // 6Cxx tells the exact length available.
        state.clampTo(sw & 0xff);
      } else if (!state.shrink()) {
        throw new CardStatusError(sw, "READ BINARY", `${file.name}: card rejects the smallest read length`);
      }
      continue;
    }
    if (sw === 0x6b00 && total !== undefined && offset >= total) break;
    if (bySfi && (sw === 0x6a86 || sw === 0x6a81 || sw === 0x6d00 || sw === 0x6981 || sw === 0x6b00)) {
      // Card without SFI support for READ BINARY: select by FID from now on.
      state.sfi = "no";
      continue;
    }
    throw new CardStatusError(sw, odd ? "READ BINARY (odd)" : bySfi ? "READ BINARY (SFI)" : "READ BINARY");
  }
  const out = concat(...chunks);
  return total !== undefined && out.length > total ? out.subarray(0, total) : out;
}

/**
 * Sends through the secure session; on a lost secure channel or a retryable link failure it
 * asks the session to recover and returns "recovered" so the caller reselects and resumes.
 */
async function sendOrRecover(session: SecureSession, cmd: CommandApdu, file: LdsFileInfo, offset: number): Promise<SmResponse | "recovered"> {
  let r: SmResponse;
  try {
    r = await session.send(cmd);
  } catch (e) {
    if (e instanceof SecureMessagingError || (e instanceof TransportError && e.retryable)) {
      await session.recover(e, { file, offset });
      return "recovered";
    }
    throw e;
  }
  if (!r.protected) {
    // A plain status word inside secure messaging: the card has dropped the channel
    // (6987/6988) or answered outside it; its SSC may or may not have moved.
    await session.recover(new SecureMessagingError("unprotected-response", "card answered without secure messaging", r.sw), { file, offset });
    return "recovered";
  }
  return r;
}

export function selectEf(file: LdsFileInfo): CommandApdu {
  return { cla: 0x00, ins: 0xa4, p1: 0x02, p2: 0x0c, data: Uint8Array.of(file.fid >> 8, file.fid & 0xff) };
}

export function readCommand(
  file: LdsFileInfo,
  offset: number,
  want: number,
  how: { bySfi: boolean; odd: boolean; extended: boolean },
): CommandApdu {
  if (how.bySfi) return { cla: 0x00, ins: 0xb0, p1: 0x80 | file.sfi, p2: offset, ne: want, extended: how.extended };
  if (how.odd) {
    // ISO 7816-4 §11.3.3: offset in DO'54', data returned in DO'53' (tag + up to 3 length bytes).
    const off = offset > 0xffff ? Uint8Array.of(offset >> 16, (offset >> 8) & 0xff, offset & 0xff) : Uint8Array.of(offset >> 8, offset & 0xff);
    return { cla: 0x00, ins: 0xb1, p1: 0, p2: 0, data: encodeTlv(0x54, off), ne: want + do53Overhead(want), extended: how.extended };
  }
  return { cla: 0x00, ins: 0xb0, p1: offset >> 8, p2: offset & 0xff, ne: want, extended: how.extended };
}

/** Tag and length bytes of a DO'53' carrying `n` bytes. */
function do53Overhead(n: number): number {
  return n < 0x80 ? 2 : n < 0x100 ? 3 : n < 0x10000 ? 4 : 5;
}

function unwrapDo53(data: Uint8Array, offset: number): Uint8Array {
  if (data.length === 0) return data;
  const t = parseTlv(data, 0);
  if (t.tag !== 0x53) throw new ParseError(`odd-INS READ BINARY answered with tag ${t.tag.toString(16)} instead of 53`, { offset, tag: t.tag });
  return t.value;
}
