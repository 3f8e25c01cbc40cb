/**
 * DG12 (additional document details), ICAO 9303-10 §4.7.12: 6C { 5C tag list, optional
 * data elements, A0 { 02 count, 5F1A name of other person ... } }.
 */
import { assign, walkTemplate, type ElementKind } from "./personal-details.ts";

export interface Dg12 {
  tagList: number[];
  /** 5F19 */
  issuingAuthority?: string;
  /** 5F26, YYYYMMDD (ASCII or, on some documents, BCD) */
  dateOfIssue?: string;
  /** 5F1A entries of A0: names of other persons. */
  otherPersons: string[];
  /** 5F1B */
  endorsements?: string;
  /** 5F1C */
  taxOrExitRequirements?: string;
  /** 5F1D: image of the front of the document (ISO/IEC 10918). */
  imageOfFront?: Uint8Array;
  /** 5F1E: image of the rear of the document. */
  imageOfRear?: Uint8Array;
  /** 5F55, YYYYMMDDhhmmss */
  personalizationDateTime?: string;
  /** 5F56 */
  personalizationSystemSerialNumber?: string;
  other: Record<string, Uint8Array>;
}

const text: ElementKind = { kind: "text" };
const bytes: ElementKind = { kind: "bytes" };

const ELEMENTS = new Map<number, ElementKind>([
  [0x5f19, text],
  [0x5f26, { kind: "digits", length: 8 }],
  [0x5f1b, text],
  [0x5f1c, text],
  [0x5f1d, bytes],
  [0x5f1e, bytes],
  [0x5f55, { kind: "digits", length: 14 }],
  [0x5f56, text],
]);

export function parseDg12(file: Uint8Array): Dg12 {
  const r = walkTemplate(file, { file: "DG12", tag: 0x6c, elements: ELEMENTS, repeatedTag: 0x5f1a });
  const s = (tag: number) => r.values.get(tag) as string | undefined;
  const b = (tag: number) => r.values.get(tag) as Uint8Array | undefined;
  const out: Dg12 = { tagList: r.tagList, otherPersons: r.repeated, other: r.other };
  assign(out, "issuingAuthority", s(0x5f19));
  assign(out, "dateOfIssue", s(0x5f26));
  assign(out, "endorsements", s(0x5f1b));
  assign(out, "taxOrExitRequirements", s(0x5f1c));
  assign(out, "imageOfFront", b(0x5f1d));
  assign(out, "imageOfRear", b(0x5f1e));
  assign(out, "personalizationDateTime", s(0x5f55));
  assign(out, "personalizationSystemSerialNumber", s(0x5f56));
  return out;
}
