import { describe, expect, test } from "bun:test";
import {
  accessKeyFromFields,
  accessKeyFromMrz,
  AccessKeyProblem,
  bacKeySeed,
  mrzInformation,
  normalizeAccessKey,
  validateAccessKey,
  type BacAccessKey,
} from "../../agent/icao/mrz-key.ts";
import { sha1 } from "../../agent/crypto/hash.ts";
import { hex } from "../../agent/bytes.ts";
import { UsageError } from "../../agent/errors.ts";
import vectors from "../vectors/icao-9303-11-d2-bac-keys.json";
import paceGm from "../vectors/icao-9303-11-g1-pace-ecdh-gm.json";

describe("ICAO 9303-11 Appendix D.2: MRZ_information and Kseed", () => {
  test.each(vectors.examples.map((e) => [e.title, e] as const))("%s", (_t, e) => {
    const key: BacAccessKey = { documentNumber: e.documentNumber, dateOfBirth: e.dateOfBirth, dateOfExpiry: e.dateOfExpiry };
    expect(mrzInformation(key)).toBe(e.mrzInformation);
    expect(hex(bacKeySeed(key))).toBe(e.kSeed.toUpperCase());
    if ("sha1" in e && e.sha1) expect(hex(sha1(new TextEncoder().encode(e.mrzInformation)))).toBe(e.sha1);
  });

  test("Appendix G.1: the PACE password is SHA-1 of the same MRZ_information", () => {
    const password = paceGm.rows.find((r) => r.what.startsWith("Password"))!;
    const info = /"([0-9A-Z<]+)"/.exec(password.what)![1]!;
    expect(mrzInformation({ documentNumber: "T22000129", dateOfBirth: "640812", dateOfExpiry: "101031" })).toBe(info);
    expect(hex(sha1(new TextEncoder().encode(info)))).toBe(password.hex);
  });

  test("short document numbers are '<'-padded to 9 before the check digit (NFCPassportReader #73)", () => {
    // Same check digit either way ('<' counts 0), but the padded string, and so the key, differ.
    const info = mrzInformation({ documentNumber: "AB123456", dateOfBirth: "690806", dateOfExpiry: "940623" });
    expect(info.slice(0, 10)).toMatch(/^AB123456<[0-9]$/);
    expect(info.length).toBe(24);
  });

  test("normalizing: lower case, spaces and trailing fillers give the same key as the printed form", () => {
    const e = vectors.examples[0]!;
    const messy: BacAccessKey = { documentNumber: " l898 902c<< ", dateOfBirth: "69 08 06", dateOfExpiry: "940623\n" };
    expect(normalizeAccessKey(messy)).toEqual({ documentNumber: "L898902C", dateOfBirth: "690806", dateOfExpiry: "940623" });
    expect(hex(bacKeySeed(messy))).toBe(e.kSeed);
  });
});

describe("validateAccessKey", () => {
  const good: BacAccessKey = { documentNumber: "L898902C", dateOfBirth: "690806", dateOfExpiry: "940623" };
  const bad: Array<[string, Partial<BacAccessKey>, string]> = [
    ["empty document number", { documentNumber: "" }, "documentNumber"],
    ["23-character document number", { documentNumber: "A".repeat(23) }, "documentNumber"],
    ["punctuation in document number", { documentNumber: "L8989-02C" }, "documentNumber"],
    ["lower case (not normalized)", { documentNumber: "l898902c" }, "documentNumber"],
    ["document number of fillers only", { documentNumber: "<<<" }, "documentNumber"],
    ["5-digit date of birth", { dateOfBirth: "69080" }, "dateOfBirth"],
    ["letters in date of birth", { dateOfBirth: "69O806" }, "dateOfBirth"],
    ["month 13", { dateOfBirth: "691306" }, "dateOfBirth"],
    ["month 00", { dateOfExpiry: "940023" }, "dateOfExpiry"],
    ["day 00", { dateOfExpiry: "940600" }, "dateOfExpiry"],
    ["31 April", { dateOfExpiry: "940431" }, "dateOfExpiry"],
    ["30 February", { dateOfBirth: "690230" }, "dateOfBirth"],
  ];
  test.each(bad)("rejects %s, naming the field but not the value", (_what, change, field) => {
    const k = { ...good, ...change };
    let err: unknown;
    try {
      validateAccessKey(k);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    const u = err as UsageError;
    expect(u.field).toBe(field);
    expect(u.message).toContain(field);
    const value = k[field as keyof BacAccessKey];
    if (value.length > 0) expect(u.message).not.toContain(value);
    expect(JSON.stringify({ ...u })).not.toContain(value || "\u0000");
  });
  test("accepts the specimen key, 29 February and a 22-character number", () => {
    expect(() => validateAccessKey(good)).not.toThrow();
    expect(() => validateAccessKey({ ...good, dateOfBirth: "000229" })).not.toThrow();
    expect(() => validateAccessKey({ ...good, documentNumber: "A".repeat(22) })).not.toThrow();
  });
  test("mrzInformation and bacKeySeed validate too", () => {
    expect(() => bacKeySeed({ ...good, dateOfExpiry: "941323" })).toThrow(UsageError);
  });
});

describe("one access-key validator (CLI, test bench key, remote commands)", () => {
  const OPTIONS = { documentNumber: "--doc", dateOfBirth: "--dob", dateOfExpiry: "--expiry" };
  const problem = (fn: () => unknown): AccessKeyProblem => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(AccessKeyProblem);
      expect(e).toBeInstanceOf(UsageError); // exit 2 on the command line
      return e as AccessKeyProblem;
    }
    throw new Error("expected an AccessKeyProblem");
  };

  test("normalizes what a person types and returns the key to use", () => {
    expect(accessKeyFromFields({ documentNumber: " l898902c3< ", dateOfBirth: "740812", dateOfExpiry: "120415" })).toEqual({
      documentNumber: "L898902C3",
      dateOfBirth: "740812",
      dateOfExpiry: "120415",
    });
  });

  test.each([
    ["a leading filler", "<L898902C"],
    ["fillers only", "<<<<<<<<<"],
    ["punctuation", "L8989.02C"],
  ])("rejects a document number with %s: BAD_FIELD naming the option, not the value", (_what, doc) => {
    const p = problem(() => accessKeyFromFields({ documentNumber: doc, dateOfBirth: "740812", dateOfExpiry: "120415" }, OPTIONS));
    expect(p.code).toBe("BAD_FIELD");
    expect(p.field).toBe("--doc");
    expect(p.message).toContain("--doc");
    expect(p.message).not.toContain(doc.replace(/<+$/, "") || "\u0000");
  });

  test("a missing field is MISSING_FIELD, a non-string BAD_FIELD", () => {
    expect(problem(() => accessKeyFromFields({ documentNumber: "L898902C3", dateOfBirth: "740812" })).code).toBe("MISSING_FIELD");
    const p = problem(() => accessKeyFromFields({ documentNumber: "L898902C3", dateOfBirth: 740812, dateOfExpiry: "120415" }));
    expect([p.code, p.field]).toEqual(["BAD_FIELD", "dateOfBirth"]);
  });

  test("MRZ text: TD3 line 2 and the 24-character MRZ information give the same key; check digits are verified", () => {
    const key = { documentNumber: "L898902C3", dateOfBirth: "740812", dateOfExpiry: "120415" };
    expect(accessKeyFromMrz("L898902C36UTO7408122F1204159ZE184226B<<<<<10", "mrz")).toEqual(key);
    expect(accessKeyFromMrz("L898902C3674081221204159", "mrz")).toEqual(key);
    expect(problem(() => accessKeyFromMrz("L898902C3674081231204159", "mrz")).code).toBe("BAD_CHECK_DIGIT");
    // '<' counts 0, so nine fillers carry a valid check digit: the field rule still refuses them.
    expect(problem(() => accessKeyFromMrz("<<<<<<<<<074081221204159", "mrz")).code).toBe("BAD_FIELD");
  });
});
