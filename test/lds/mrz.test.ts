import { describe, expect, test } from "bun:test";
import { ParseError } from "../../agent/errors.ts";
import { encodeTlv } from "../../agent/iso7816/tlv.ts";
import { parseDg1, parseMrz, redactedMrzSummary, type Mrz, type MrzChecks } from "../../agent/lds/mrz.ts";

interface VectorCase {
  name: string;
  lines: string[];
  expectedChecks: MrzChecks;
  expectedValid: boolean;
  expected?: Partial<Mrz>;
}
interface VectorFile {
  source: string;
  cases: VectorCase[];
}

const load = async (name: string): Promise<VectorFile> => Bun.file(`${import.meta.dir}/../vectors/${name}`).json();
const files: [string, VectorFile][] = [
  ["9303-4 TD3", await load("icao-9303-4-td3-specimen.json")],
  ["9303-5 TD1", await load("icao-9303-5-td1-specimen.json")],
  ["9303-6 TD2", await load("icao-9303-6-td2-specimen.json")],
];

for (const [label, file] of files) {
  describe(`${label} (${file.source.split(";")[0]})`, () => {
    for (const c of file.cases) {
      test(c.name, () => {
        const m = parseMrz(c.lines.join("\n"));
        expect(m.checks).toEqual(c.expectedChecks);
        expect(m.valid).toBe(c.expectedValid);
        if (c.expected) for (const [k, v] of Object.entries(c.expected)) expect({ [k]: m[k as keyof Mrz] }).toEqual({ [k]: v });
        // DG1 carries the same MRZ without separators
        const joined = parseMrz(c.lines.join(""));
        expect(joined.checks).toEqual(c.expectedChecks);
        expect(joined.lines).toEqual(c.lines);
      });
    }
    test("each failing case changes the verdict of at least one check", () => {
      for (const c of file.cases) if (!c.expectedValid) expect(Object.values(c.expectedChecks)).toContain(false);
    });
  });
}

const TD3 = ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"];

describe("9303-4 TD3 details", () => {
  test("empty personal number: check digit '<' or 0 accepted, other digits rejected", () => {
    // composite digits (8, 9) computed with an independent 9303-3 §4.9 implementation
    const filler = (check: string, composite: string) => `L898902C36UTO7408122F1204159${"<".repeat(14)}${check}${composite}`;
    expect(parseMrz(`${TD3[0]}\n${filler("<", "8")}`).checks).toEqual({
      documentNumber: true,
      dateOfBirth: true,
      dateOfExpiry: true,
      optionalData: true,
      composite: true,
    });
    expect(parseMrz(`${TD3[0]}\n${filler("0", "8")}`).checks.optionalData).toBe(true);
    expect(parseMrz(`${TD3[0]}\n${filler("1", "9")}`).checks.optionalData).toBe(false);
  });

  test("a letter in a check-digit position fails that check", () => {
    const m = parseMrz(`${TD3[0]}\n${TD3[1]!.slice(0, 19)}A${TD3[1]!.slice(20)}`);
    expect(m.checks.dateOfBirth).toBe(false);
    expect(m.valid).toBe(false);
  });

  test("multi-part names and fillers in codes", () => {
    const l1 = "P<D<<VAN<DER<BERG<<JAN<PIETER<<<<<<<<<<<<<<<";
    const m = parseMrz(`${l1}\n${TD3[1]}`);
    expect(m.issuingState).toBe("D");
    expect(m.primaryIdentifier).toBe("VAN DER BERG");
    expect(m.secondaryIdentifier).toBe("JAN PIETER");
  });

  test("CRLF line ends and surrounding blanks are accepted", () => {
    expect(parseMrz(`  ${TD3[0]}\r\n${TD3[1]}\r\n`).valid).toBe(true);
  });
});

describe("malformed MRZ text", () => {
  const cases: [string, string][] = [
    ["empty", ""],
    ["one line", TD3[0]!],
    ["wrong line length", `${TD3[0]}\n${TD3[1]!.slice(0, 43)}`],
    ["mixed line lengths", `${TD3[0]!.slice(0, 36)}\n${TD3[1]}`],
    ["lower case", `${TD3[0]!.toLowerCase()}\n${TD3[1]}`],
    ["non-ASCII", `${TD3[0]!.slice(0, 43)}Ä\n${TD3[1]}`],
  ];
  for (const [name, text] of cases) {
    test(name, () => expect(() => parseMrz(text)).toThrow(ParseError));
  }

  test("errors name the line and position, never the content", () => {
    const bad = `${TD3[0]}\nL898902C36UTO7408122F1204159ZE184226b<<<<<10`;
    try {
      parseMrz(bad);
      throw new Error("no error");
    } catch (e) {
      expect(e).toBeInstanceOf(ParseError);
      const msg = (e as Error).message;
      expect(msg).toContain("line 2");
      expect(msg).toContain("position 37");
      for (const secret of ["L898902C3", "740812", "ERIKSSON", "ZE184226"]) expect(msg).not.toContain(secret);
    }
  });
});

describe("DG1 (9303-10 §4.7.1)", () => {
  const mrzBytes = new TextEncoder().encode(TD3.join(""));

  test("61 { 5F1F MRZ } parses to the same MRZ as the text", () => {
    const m = parseDg1(encodeTlv(0x61, encodeTlv(0x5f1f, mrzBytes)));
    expect(m).toEqual(parseMrz(TD3.join("\n")));
    expect(m.documentNumber).toBe("L898902C3");
  });

  test("wrong outer tag, missing 5F1F, truncated value", () => {
    expect(() => parseDg1(encodeTlv(0x75, encodeTlv(0x5f1f, mrzBytes)))).toThrow(ParseError);
    expect(() => parseDg1(encodeTlv(0x61, encodeTlv(0x5f20, mrzBytes)))).toThrow(ParseError);
    const full = encodeTlv(0x61, encodeTlv(0x5f1f, mrzBytes));
    expect(() => parseDg1(full.subarray(0, full.length - 1))).toThrow(ParseError);
    expect(() => parseDg1(new Uint8Array(0))).toThrow(ParseError);
  });

  test("an MRZ of the wrong size in DG1 is a ParseError with the element's offset and tag", () => {
    const dg1 = encodeTlv(0x61, encodeTlv(0x5f1f, mrzBytes.subarray(0, 87)));
    try {
      parseDg1(dg1);
      throw new Error("no error");
    } catch (e) {
      expect(e).toBeInstanceOf(ParseError);
      expect((e as ParseError).tag).toBe(0x5f1f);
      expect((e as ParseError).offset).toBe(2); // the file is 61 5A 5F1F 57 ...: 5F1F starts at byte 2
    }
  });
});

describe("redactedMrzSummary", () => {
  test("keeps format, code, state and verdict only", () => {
    const m = parseMrz(TD3.join("\n"));
    const s = redactedMrzSummary(m);
    expect(s).toEqual({ format: "TD3", documentCode: "P", issuingState: "UTO", valid: true });
    const json = JSON.stringify(s);
    for (const secret of ["L898902C3", "740812", "120415", "ERIKSSON", "ANNA", "ZE184226B"]) expect(json).not.toContain(secret);
  });
});
