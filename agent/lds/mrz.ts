/**
 * Machine Readable Zone, ICAO 9303-4 (TD3, 2x44), 9303-5 (TD1, 3x30), 9303-6 (TD2, 2x36);
 * check digits per 9303-3 §4.9; DG1 per 9303-10 §4.7.1 (61 { 5F1F MRZ }).
 * The MRZ is personal data and the BAC secret: errors say which line or field failed,
 * never its content; telemetry gets `redactedMrzSummary` only.
 */
import { ParseError } from "../errors.ts";
import { checkDigit } from "../icao/check-digit.ts";
import { children, outerTemplate } from "./data-object.ts";

export type MrzFormat = "TD1" | "TD2" | "TD3";

export interface MrzChecks {
  documentNumber: boolean;
  dateOfBirth: boolean;
  dateOfExpiry: boolean;
  /** TD3 only: the personal-number check digit (9303-4 §4.2.2, line 2 position 43). */
  optionalData?: boolean;
  composite: boolean;
}

export interface Mrz {
  format: MrzFormat;
  /** Document code without trailing fillers, e.g. "P", "I", "AC". */
  documentCode: string;
  /** Three-letter code without trailing fillers, e.g. "UTO", "D" (printed "D<<"). */
  issuingState: string;
  /** Full document number without fillers, including a TD1/TD2 long-number extension. */
  documentNumber: string;
  nationality: string;
  /** YYMMDD as printed (may hold '<' for unknown parts). */
  dateOfBirth: string;
  /** "M", "F" or "<" (unspecified), as printed. */
  sex: string;
  /** YYMMDD. */
  dateOfExpiry: string;
  /** Surname(s); '<' between name parts becomes ' '. */
  primaryIdentifier: string;
  /** Given names; '<' becomes ' '. */
  secondaryIdentifier: string;
  /** Optional data (TD3: personal number; TD1: upper line, after any long-number extension), trailing fillers removed. */
  optionalData1: string;
  /** TD1 only: optional data of the middle line, trailing fillers removed. */
  optionalData2?: string;
  checks: MrzChecks;
  /** All check digits correct. */
  valid: boolean;
  /** The lines as read (personal data: never log). */
  lines: string[];
}

/** What may leave the device in telemetry: no names, numbers or dates. */
export interface RedactedMrzSummary {
  format: MrzFormat;
  documentCode: string;
  issuingState: string;
  valid: boolean;
}

const LINE_SHAPES: Record<MrzFormat, { lines: number; length: number }> = {
  TD1: { lines: 3, length: 30 },
  TD2: { lines: 2, length: 36 },
  TD3: { lines: 2, length: 44 },
};

/**
 * Parses an MRZ given as lines (newline-separated) or as one string of 90, 72 or 88
 * characters (DG1 holds it without separators).
 */
export function parseMrz(text: string): Mrz {
  const lines = splitLines(text);
  const format = formatOf(lines);
  lines.forEach((line, i) => {
    const bad = line.search(/[^A-Z0-9<]/);
    if (bad >= 0) throw new ParseError(`MRZ line ${i + 1}: character at position ${bad + 1} is not A-Z, 0-9 or <`);
  });
  switch (format) {
    case "TD1":
      return parseTd1(lines);
    case "TD2":
      return parseTd2(lines);
    case "TD3":
      return parseTd3(lines);
  }
}

/** DG1 (61 { 5F1F MRZ }), 9303-10 §4.7.1. */
export function parseDg1(bytes: Uint8Array): Mrz {
  const outer = outerTemplate(bytes, 0x61, "DG1");
  const mrz = children(bytes, outer.value).find((t) => t.tag === 0x5f1f);
  if (!mrz) throw new ParseError("DG1: no MRZ data element (5F1F)", { offset: outer.headerLength, tag: 0x5f1f });
  const text = String.fromCharCode(...mrz.value);
  try {
    return parseMrz(text);
  } catch (e) {
    if (e instanceof ParseError) {
      throw new ParseError(`DG1: ${e.message}`, { offset: mrz.offset, tag: 0x5f1f, cause: e });
    }
    throw e;
  }
}

export function redactedMrzSummary(mrz: Mrz): RedactedMrzSummary {
  return { format: mrz.format, documentCode: mrz.documentCode, issuingState: mrz.issuingState, valid: mrz.valid };
}

function splitLines(text: string): string[] {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  if (lines.length === 1) {
    const one = lines[0]!;
    for (const shape of Object.values(LINE_SHAPES)) {
      if (one.length === shape.lines * shape.length) {
        return Array.from({ length: shape.lines }, (_, i) => one.slice(i * shape.length, (i + 1) * shape.length));
      }
    }
  }
  return lines;
}

function formatOf(lines: string[]): MrzFormat {
  for (const [format, shape] of Object.entries(LINE_SHAPES) as [MrzFormat, { lines: number; length: number }][]) {
    if (lines.length === shape.lines && lines.every((l) => l.length === shape.length)) return format;
  }
  throw new ParseError(
    `MRZ: expected 3 lines of 30 (TD1), 2 of 36 (TD2) or 2 of 44 (TD3) characters; got ${lines.length} line(s) of ${lines
      .map((l) => l.length)
      .join(", ")}`,
  );
}

/** A check digit character against its field (9303-3 §4.9); a non-digit check character fails. */
function verify(field: string, digit: string | undefined): boolean {
  if (digit === undefined || digit < "0" || digit > "9") return false;
  return checkDigit(field) === digit.charCodeAt(0) - 48;
}

function trimFillers(s: string): string {
  return s.replace(/<+$/, "");
}

function names(field: string): { primaryIdentifier: string; secondaryIdentifier: string } {
  const trimmed = trimFillers(field);
  const sep = trimmed.indexOf("<<");
  const primary = sep < 0 ? trimmed : trimmed.slice(0, sep);
  const secondary = sep < 0 ? "" : trimmed.slice(sep + 2);
  const spaced = (s: string) => s.replace(/<+/g, " ").trim();
  return { primaryIdentifier: spaced(primary), secondaryIdentifier: spaced(secondary) };
}

/**
 * Document number, with the long-number rule of 9303-5 §4.2.2 note j and 9303-6 §4.2.2:
 * a filler in the check-digit position means the number continues at the start of the
 * optional data, followed by the check digit over the whole number and a filler.
 */
function documentNumber(
  principal: string,
  checkChar: string,
  optional: string,
): { documentNumber: string; check: boolean; optionalRest: string } {
  if (checkChar === "<" && !principal.endsWith("<")) {
    const end = optional.indexOf("<");
    if (end < 1) return { documentNumber: principal, check: false, optionalRest: optional };
    const full = principal + optional.slice(0, end - 1);
    return { documentNumber: full, check: verify(full, optional[end - 1]), optionalRest: optional.slice(end + 1) };
  }
  return { documentNumber: trimFillers(principal), check: verify(principal, checkChar), optionalRest: optional };
}

function finish(m: Omit<Mrz, "valid">): Mrz {
  const c = m.checks;
  const valid = c.documentNumber && c.dateOfBirth && c.dateOfExpiry && c.composite && c.optionalData !== false;
  return { ...m, valid };
}

/** TD1, 9303-5 §4.2.2: upper line code, state, number, optional data; middle line dates, sex, nationality; lower line name. */
function parseTd1(lines: string[]): Mrz {
  const [l1, l2, l3] = lines as [string, string, string];
  const doc = documentNumber(l1.slice(5, 14), l1[14]!, l1.slice(15, 30));
  // Composite: upper line 6-30, middle line 1-7, 9-15, 19-29 (9303-5 §4.2.2).
  const composite = l1.slice(5, 30) + l2.slice(0, 7) + l2.slice(8, 15) + l2.slice(18, 29);
  return finish({
    format: "TD1",
    documentCode: trimFillers(l1.slice(0, 2)),
    issuingState: trimFillers(l1.slice(2, 5)),
    documentNumber: doc.documentNumber,
    nationality: trimFillers(l2.slice(15, 18)),
    dateOfBirth: l2.slice(0, 6),
    sex: l2[7]!,
    dateOfExpiry: l2.slice(8, 14),
    ...names(l3),
    optionalData1: trimFillers(doc.optionalRest),
    optionalData2: trimFillers(l2.slice(18, 29)),
    checks: {
      documentNumber: doc.check,
      dateOfBirth: verify(l2.slice(0, 6), l2[6]),
      dateOfExpiry: verify(l2.slice(8, 14), l2[14]),
      composite: verify(composite, l2[29]),
    },
    lines,
  });
}

/** TD2, 9303-6 §4.2.2: upper line code, state, name; lower line like TD3 with 7 optional characters. */
function parseTd2(lines: string[]): Mrz {
  const [l1, l2] = lines as [string, string];
  const doc = documentNumber(l2.slice(0, 9), l2[9]!, l2.slice(28, 35));
  // Composite: lower line 1-10, 14-20, 22-35.
  const composite = l2.slice(0, 10) + l2.slice(13, 20) + l2.slice(21, 35);
  return finish({
    format: "TD2",
    documentCode: trimFillers(l1.slice(0, 2)),
    issuingState: trimFillers(l1.slice(2, 5)),
    documentNumber: doc.documentNumber,
    nationality: trimFillers(l2.slice(10, 13)),
    dateOfBirth: l2.slice(13, 19),
    sex: l2[20]!,
    dateOfExpiry: l2.slice(21, 27),
    ...names(l1.slice(5, 36)),
    optionalData1: trimFillers(doc.optionalRest),
    checks: {
      documentNumber: doc.check,
      dateOfBirth: verify(l2.slice(13, 19), l2[19]),
      dateOfExpiry: verify(l2.slice(21, 27), l2[27]),
      composite: verify(composite, l2[35]),
    },
    lines,
  });
}

/** TD3, 9303-4 §4.2.2: lower line number, nationality, dates, sex, personal number with its own check digit. */
function parseTd3(lines: string[]): Mrz {
  const [l1, l2] = lines as [string, string];
  const personal = l2.slice(28, 42);
  const personalCheck = l2[42]!;
  // Composite: lower line 1-10, 14-20, 22-43.
  const composite = l2.slice(0, 10) + l2.slice(13, 20) + l2.slice(21, 43);
  return finish({
    format: "TD3",
    documentCode: trimFillers(l1.slice(0, 2)),
    issuingState: trimFillers(l1.slice(2, 5)),
    documentNumber: trimFillers(l2.slice(0, 9)),
    nationality: trimFillers(l2.slice(10, 13)),
    dateOfBirth: l2.slice(13, 19),
    sex: l2[20]!,
    dateOfExpiry: l2.slice(21, 27),
    ...names(l1.slice(5, 44)),
    optionalData1: trimFillers(personal),
    checks: {
      documentNumber: verify(l2.slice(0, 9), l2[9]),
      dateOfBirth: verify(l2.slice(13, 19), l2[19]),
      dateOfExpiry: verify(l2.slice(21, 27), l2[27]),
      // 9303-4: with an empty personal number the check digit may be '<' (or 0).
      optionalData: personalCheck === "<" ? /^<*$/.test(personal) : verify(personal, personalCheck),
      composite: verify(composite, l2[43]),
    },
    lines,
  });
}
