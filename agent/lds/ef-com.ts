/**
 * EF.COM, ICAO 9303-10 §4.6.1: LDS version (DO'5F01', "aabb"), Unicode version
 * (DO'5F36', "aabbcc") and the tag list of the data groups present (DO'5C').
 */
import { ParseError } from "../errors.ts";
import { children, outerTemplate, parseTagList, tagHex } from "./data-object.ts";
import { byTag } from "./lds-files.ts";

export interface EfCom {
  /** e.g. "1.7" from "0107". */
  ldsVersion: string;
  /** e.g. "4.0.0" from "040000". */
  unicodeVersion: string;
  /** Data-group numbers from the tag list, in the order listed. */
  dataGroups: number[];
  /** Tags in the list that name no data group (kept rather than dropped). */
  unknownTags: number[];
}

export function parseEfCom(bytes: Uint8Array): EfCom {
  const outer = outerTemplate(bytes, 0x60, "EF.COM");
  let ldsVersion: string | undefined;
  let unicodeVersion: string | undefined;
  let tagList: number[] | undefined;
  for (const t of children(bytes, outer.value)) {
    if (t.tag === 0x5f01) ldsVersion = dottedVersion(t.value, 2, t.tag, t.offset);
    else if (t.tag === 0x5f36) unicodeVersion = dottedVersion(t.value, 3, t.tag, t.offset);
    else if (t.tag === 0x5c) tagList = parseTagList(t.value, t.offset + t.headerLength);
  }
  if (ldsVersion === undefined) throw new ParseError("EF.COM: no LDS version (5F01)", { offset: 0, tag: 0x5f01 });
  if (unicodeVersion === undefined) throw new ParseError("EF.COM: no Unicode version (5F36)", { offset: 0, tag: 0x5f36 });
  if (tagList === undefined) throw new ParseError("EF.COM: no tag list (5C)", { offset: 0, tag: 0x5c });
  const dataGroups: number[] = [];
  const unknownTags: number[] = [];
  for (const tag of tagList) {
    const info = byTag(tag);
    if (info && info.key.startsWith("DG")) dataGroups.push(info.sfi);
    else unknownTags.push(tag);
  }
  return { ldsVersion, unicodeVersion, dataGroups, unknownTags };
}

/** "0107" -> "1.7", "040000" -> "4.0.0": pairs of ASCII digits. */
function dottedVersion(value: Uint8Array, parts: number, tag: number, offset: number): string {
  const text = String.fromCharCode(...value);
  if (!new RegExp(`^(\\d\\d){${parts}}$`).test(text)) {
    throw new ParseError(`EF.COM: ${tagHex(tag)} is not ${parts * 2} ASCII digits`, { offset, tag });
  }
  const out: number[] = [];
  for (let i = 0; i < parts; i++) out.push(Number(text.slice(i * 2, i * 2 + 2)));
  return out.join(".");
}
