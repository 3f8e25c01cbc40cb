/**
 * Shared walk for DG11 and DG12 (ICAO 9303-10 §4.7.11, §4.7.12): a template of optional
 * data elements listed in DO'5C', plus an A0 template { 02 count, repeated element }.
 * Unknown tags are kept, keyed by hex tag, so nothing the chip holds is silently dropped.
 */
import { ParseError } from "../errors.ts";
import type { Tlv } from "../iso7816/tlv.ts";
import { children, decodeCount, decodeDigits, decodeText, outerTemplate, parseTagList, tagHex } from "./data-object.ts";

export type ElementKind = { kind: "text" } | { kind: "digits"; length: number } | { kind: "bytes" };

export interface TemplateSpec {
  file: string;
  tag: number;
  /** Known single data elements by tag. */
  elements: ReadonlyMap<number, ElementKind>;
  /** The element repeated inside A0 (5F0F other names in DG11, 5F1A other persons in DG12). */
  repeatedTag: number;
}

export interface TemplateResult {
  tagList: number[];
  values: Map<number, string | Uint8Array>;
  repeated: string[];
  other: Record<string, Uint8Array>;
}

export function walkTemplate(bytes: Uint8Array, spec: TemplateSpec): TemplateResult {
  const outer = outerTemplate(bytes, spec.tag, spec.file);
  const values = new Map<number, string | Uint8Array>();
  const repeated: string[] = [];
  const other: Record<string, Uint8Array> = {};
  let tagList: number[] | undefined;
  let sawA0 = false;
  for (const t of children(bytes, outer.value)) {
    if (t.tag === 0x5c) {
      tagList = parseTagList(t.value, t.offset + t.headerLength);
    } else if (t.tag === 0xa0) {
      if (sawA0) throw new ParseError(`${spec.file}: second A0 template`, { offset: t.offset, tag: t.tag });
      sawA0 = true;
      repeated.push(...repeatedElements(bytes, t, spec));
    } else if (t.tag === spec.repeatedTag) {
      // Before LDS 1.7 the repeated element could stand directly in the template, without A0.
      repeated.push(decodeText(t.value));
    } else {
      const kind = spec.elements.get(t.tag);
      if (kind === undefined) {
        other[tagHex(t.tag)] = t.value;
        continue;
      }
      if (values.has(t.tag)) throw new ParseError(`${spec.file}: data element ${tagHex(t.tag)} repeated`, { offset: t.offset, tag: t.tag });
      values.set(t.tag, decodeElement(t, kind));
    }
  }
  if (tagList === undefined) throw new ParseError(`${spec.file}: no tag list (5C)`, { offset: outer.headerLength, tag: 0x5c });
  return { tagList, values, repeated, other };
}

function repeatedElements(file: Uint8Array, a0: Tlv, spec: TemplateSpec): string[] {
  const items = children(file, a0.value);
  const countTlv = items.find((t) => t.tag === 0x02);
  if (!countTlv) throw new ParseError(`${spec.file}: A0 template without count (02)`, { offset: a0.offset, tag: 0xa0 });
  const count = decodeCount(countTlv);
  const entries = items.filter((t) => t.tag === spec.repeatedTag);
  if (count !== entries.length) {
    throw new ParseError(`${spec.file}: A0 count ${count} but ${entries.length} entries (${tagHex(spec.repeatedTag)})`, {
      offset: countTlv.offset,
      tag: 0x02,
    });
  }
  return entries.map((t) => decodeText(t.value));
}

function decodeElement(t: Tlv, kind: ElementKind): string | Uint8Array {
  switch (kind.kind) {
    case "text":
      return decodeText(t.value);
    case "digits":
      return decodeDigits(t.value, kind.length);
    case "bytes":
      return t.value;
  }
}

/** Sets only present fields, so absent ones are absent keys rather than `undefined`. */
export function assign<T, K extends keyof T>(obj: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) obj[key] = value;
}
