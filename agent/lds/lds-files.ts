/**
 * The eMRTD file table, ICAO 9303-10 §3.11 (application and file identifiers) and
 * §4.6/§4.7 (tags of EF.COM, EF.SOD and the data groups).
 */
import { UsageError } from "../errors.ts";

/** A file of the LDS by name: "COM", "SOD", "DG1" ... "DG16". */
export type FileKey = "COM" | "SOD" | `DG${number}`;

export interface LdsFileInfo {
  key: FileKey;
  /** File identifier for SELECT by FID. */
  fid: number;
  /** Short file identifier for READ BINARY with SFI. */
  sfi: number;
  /** Tag of the file's outer TLV. */
  tag: number;
  name: string;
}

/** Application identifier of the LDS1 eMRTD application, 9303-10 §3.11.2. */
export const EMRTD_AID: Uint8Array = Uint8Array.of(0xa0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01);

/** Outer tags of DG1..DG16, 9303-10 §4.6.1 table 34. */
const DG_TAGS = [0x61, 0x75, 0x63, 0x76, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70] as const;

const DG_NAMES = [
  "Details recorded in MRZ",
  "Encoded face",
  "Encoded fingers",
  "Encoded irises",
  "Displayed portrait",
  "Reserved for future use",
  "Displayed signature or usual mark",
  "Data features",
  "Structure features",
  "Substance features",
  "Additional personal details",
  "Additional document details",
  "Optional details",
  "Security options",
  "Active Authentication public key info",
  "Persons to notify",
] as const;

export const LDS_FILES: readonly LdsFileInfo[] = Object.freeze([
  { key: "COM", fid: 0x011e, sfi: 0x1e, tag: 0x60, name: "EF.COM" },
  { key: "SOD", fid: 0x011d, sfi: 0x1d, tag: 0x77, name: "EF.SOD" },
  ...DG_TAGS.map(
    (tag, i): LdsFileInfo => ({ key: `DG${i + 1}`, fid: 0x0101 + i, sfi: i + 1, tag, name: `EF.DG${i + 1} (${DG_NAMES[i]})` }),
  ),
]);

export function byKey(key: string): LdsFileInfo | undefined {
  return LDS_FILES.find((f) => f.key === key);
}

export function byTag(tag: number): LdsFileInfo | undefined {
  return LDS_FILES.find((f) => f.tag === tag);
}

export function byDgNumber(n: number): LdsFileInfo | undefined {
  if (!Number.isInteger(n) || n < 1 || n > 16) return undefined;
  return byKey(`DG${n}`);
}

/** The data-group entries of a map keyed by file key ("DG1", "SOD", ...), keyed by DG number. */
export function byDataGroupNumber<T>(byFileKey: Iterable<readonly [string, T]>): Map<number, T> {
  const out = new Map<number, T>();
  for (const [key, value] of byFileKey) if (key.startsWith("DG")) out.set(Number(key.slice(2)), value);
  return out;
}

/**
 * Parses a user's file list such as "DG1,DG2,COM,SOD" (case-insensitive; an "EF." prefix
 * and spaces are allowed). Keeps the given order; rejects unknown names, empty entries and repeats.
 */
export function parseFileList(text: string): LdsFileInfo[] {
  const entries = text.split(",").map((s) => s.trim());
  if (entries.length === 1 && entries[0] === "") throw new UsageError("file list is empty: expected e.g. DG1,DG2,COM,SOD", "files");
  const out: LdsFileInfo[] = [];
  entries.forEach((entry, i) => {
    if (entry === "") throw new UsageError(`file list entry ${i + 1} is empty: expected e.g. DG1,DG2,COM,SOD`, "files");
    const norm = entry.toUpperCase().replace(/^EF\./, "");
    const m = /^DG0*(\d{1,2})$/.exec(norm);
    const info = m ? byDgNumber(Number(m[1])) : byKey(norm);
    if (!info) {
      throw new UsageError(`unknown file "${entry}" in file list: use COM, SOD or DG1..DG16`, "files");
    }
    if (out.includes(info)) throw new UsageError(`file ${info.key} is listed twice`, "files");
    out.push(info);
  });
  return out;
}
