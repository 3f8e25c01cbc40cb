/**
 * DG11 (additional personal details), ICAO 9303-10 §4.7.11: 6B { 5C tag list, optional
 * data elements, A0 { 02 count, 5F0F other name ... } }. Personal data: never log.
 */
import { assign, walkTemplate, type ElementKind } from "./personal-details.ts";

export interface Dg11 {
  tagList: number[];
  /** 5F0E, primary and secondary identifiers separated by "<<" as on the chip. */
  fullName?: string;
  /** 5F0F entries (from A0, or directly in the template on pre-1.7 documents). */
  otherNames: string[];
  /** 5F10 */
  personalNumber?: string;
  /** 5F2B, YYYYMMDD */
  fullDateOfBirth?: string;
  /** 5F11 */
  placeOfBirth?: string;
  /** 5F42 */
  address?: string;
  /** 5F12 */
  telephone?: string;
  /** 5F13 */
  profession?: string;
  /** 5F14 */
  title?: string;
  /** 5F15 */
  personalSummary?: string;
  /** 5F16: an image (ISO/IEC 10918), so bytes. */
  proofOfCitizenship?: Uint8Array;
  /** 5F17 */
  otherTravelDocumentNumbers?: string;
  /** 5F18 */
  custodyInformation?: string;
  /** Data elements with other tags, keyed by hex tag (e.g. "5F7A"). */
  other: Record<string, Uint8Array>;
}

const text: ElementKind = { kind: "text" };

const ELEMENTS = new Map<number, ElementKind>([
  [0x5f0e, text],
  [0x5f10, text],
  [0x5f2b, { kind: "digits", length: 8 }],
  [0x5f11, text],
  [0x5f42, text],
  [0x5f12, text],
  [0x5f13, text],
  [0x5f14, text],
  [0x5f15, text],
  [0x5f16, { kind: "bytes" }],
  [0x5f17, text],
  [0x5f18, text],
]);

export function parseDg11(bytes: Uint8Array): Dg11 {
  const r = walkTemplate(bytes, { file: "DG11", tag: 0x6b, elements: ELEMENTS, repeatedTag: 0x5f0f });
  const s = (tag: number) => r.values.get(tag) as string | undefined;
  const out: Dg11 = { tagList: r.tagList, otherNames: r.repeated, other: r.other };
  assign(out, "fullName", s(0x5f0e));
  assign(out, "personalNumber", s(0x5f10));
  assign(out, "fullDateOfBirth", s(0x5f2b));
  assign(out, "placeOfBirth", s(0x5f11));
  assign(out, "address", s(0x5f42));
  assign(out, "telephone", s(0x5f12));
  assign(out, "profession", s(0x5f13));
  assign(out, "title", s(0x5f14));
  assign(out, "personalSummary", s(0x5f15));
  assign(out, "proofOfCitizenship", r.values.get(0x5f16) as Uint8Array | undefined);
  assign(out, "otherTravelDocumentNumbers", s(0x5f17));
  assign(out, "custodyInformation", s(0x5f18));
  return out;
}

