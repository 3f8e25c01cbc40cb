/** Failure taxonomy (issue 4 item 1): every failure gets a code, a layer, an explanation, causes and an action. */
import { describe, expect, test } from "bun:test";
import { AccessDeniedError, CardStatusError, ParseError, SecureMessagingError, TransportError } from "../../agent/errors.ts";
import { pcscError } from "../../agent/transport/pcsc-errors.ts";
import { ApduMeter } from "../../agent/reading/apdu-meter.ts";
import { classifyFailure, FAILURE_CLASSES, formatFailure, statusWordClass } from "../../agent/reading/failure-classes.ts";
import { ScriptedTransport } from "../../agent/transport/scripted-transport.ts";

describe("failure classes", () => {
  test("every class has a layer, an explanation, causes and an action", () => {
    for (const c of Object.values(FAILURE_CLASSES)) {
      expect(c.explanation.length).toBeGreaterThan(10);
      expect(c.likelyCauses.length).toBeGreaterThan(0);
      expect(c.action.length).toBeGreaterThan(3);
      expect(["service", "reader", "rf-link", "card", "secure-messaging", "access", "data", "local"]).toContain(c.layer);
    }
  });

  test("PC/SC errors by name", () => {
    const cases: [number, string, string][] = [
      [0x8010001d, "PCSC_NO_SERVICE", "service"],
      [0x8010000a, "PCSC_TIMEOUT", "reader"],
      [0x80100069, "CARD_REMOVED", "reader"],
      [0x80100068, "CARD_RESET", "reader"],
      [0x80100016, "NOT_TRANSACTED", "reader"],
      [0x8010002f, "COMM_DATA_LOST", "reader"],
      [0x8010000c, "NO_CARD", "reader"],
    ];
    for (const [rv, code, layer] of cases) {
      const f = classifyFailure(pcscError(rv, "SCardTransmit"));
      expect([f.code, f.layer]).toEqual([code, layer]);
      expect(f.retryable).toBe(true);
    }
  });

  test("reader-stack pseudo status words are RF-link losses: retryable, session dead, elapsed vs timeout", () => {
    for (const [sw, code] of [[0x6f00, "RF_NO_ANSWER"], [0x6f01, "RF_TIMEOUT"], [0x6600, "RF_TRANSMISSION_ERROR"], [0x6f42, "RF_OTHER"]] as const) {
      const f = classifyFailure(new TransportError(`RF_${sw.toString(16).toUpperCase()}`, "x", { retryable: true }), { elapsedMs: 2712, readerTimeoutMs: 3000 });
      expect(f.code).toBe(code);
      expect(f.layer).toBe("rf-link");
      expect(f.retryable).toBe(true);
      expect(f.sessionDead).toBe(true);
      expect(f.timing).toContain("90% of the reader's 3000 ms timeout");
    }
    expect(classifyFailure(0x6f00, { elapsedMs: 5 }).timing).toContain("immediately");
  });

  test("the APDU meter turns a pseudo status word and an empty answer into link losses, with the elapsed time", async () => {
    const t = new ScriptedTransport([
      { command: "00A4040C07A0000002471001", response: "6F01" },
      { command: "0084000008", response: "" },
      { command: "0084000008", response: "6A82" },
    ]);
    const meter = new ApduMeter(t, { trace: true });
    const e1 = await meter.transmit(Uint8Array.from([0, 0xa4, 4, 0x0c, 7, 0xa0, 0, 0, 2, 0x47, 0x10, 1])).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(TransportError);
    expect((e1 as TransportError).code).toBe("RF_6F01");
    expect((e1 as TransportError).retryable).toBe(true);
    expect(classifyFailure(e1).elapsedMs).toBeGreaterThanOrEqual(0);
    const e2 = await meter.transmit(Uint8Array.from([0, 0x84, 0, 0, 8])).catch((e: unknown) => e);
    expect((e2 as TransportError).code).toBe("NO_RESPONSE");
    // A real card status word passes through untouched.
    expect(await meter.transmit(Uint8Array.from([0, 0x84, 0, 0, 8]))).toEqual(Uint8Array.of(0x6a, 0x82));
    expect(meter.trace!.map((x) => x.error)).toEqual(["RF_6F01", "NO_RESPONSE", undefined]);
    t.assertDone();
  });

  test("card status words", () => {
    expect(statusWordClass(0x6982)).toBe("SECURITY_STATUS_NOT_SATISFIED");
    expect(statusWordClass(0x6988)).toBe("SM_OUT_OF_STEP");
    for (const sw of [0x6700, 0x6c80, 0x6282, 0x6b00]) expect(statusWordClass(sw)).toBe("WRONG_LENGTH");
    expect(statusWordClass(0x6a82)).toBe("FILE_NOT_FOUND");
    expect(statusWordClass(0x6300, "EXTERNAL AUTHENTICATE")).toBe("ACCESS_DENIED");
    expect(statusWordClass(0x6985, "EXTERNAL AUTHENTICATE")).toBe("ACCESS_DENIED");
    expect(statusWordClass(0x6a88)).toBe("PACE_REQUIRED");
    expect(classifyFailure(new CardStatusError(0x6a82, "SELECT")).layer).toBe("card");
    expect(classifyFailure(new AccessDeniedError(undefined, 0x6300)).code).toBe("ACCESS_DENIED");
    expect(classifyFailure(new AccessDeniedError(undefined, 0x6a88)).code).toBe("PACE_REQUIRED");
  });

  test("secure messaging: bad MAC and out-of-step are recoverable, the session dead", () => {
    const mac = classifyFailure(new SecureMessagingError("bad-mac", "response MAC does not verify"));
    expect([mac.code, mac.retryable, mac.sessionDead]).toEqual(["SM_BAD_MAC", true, true]);
    expect(classifyFailure(new SecureMessagingError("unprotected-response", "x", 0x6988)).code).toBe("SM_OUT_OF_STEP");
    expect(classifyFailure(new ParseError("bad")).code).toBe("PARSE_ERROR");
    expect(formatFailure(classifyFailure(0x6f01, { elapsedMs: 2700 }))).toMatch(/^RF_TIMEOUT \(rf-link: 6F01 after 2700 ms: 90% .*Action: /);
  });
});
