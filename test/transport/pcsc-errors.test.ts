/** PC/SC return codes (pcsc-lite pcsclite.h) -> TransportError mapping. */

import { describe, expect, test } from "bun:test";
import { readFileSync, existsSync } from "node:fs";
import { TransportError } from "../../agent/errors.ts";
import { PCSC_CODES, pcscCodeInfo, pcscError } from "../../agent/transport/pcsc-errors.ts";

describe("pcsc-errors", () => {
  test("SCARD_E_NO_SERVICE says pcscd is not running and how to start it", () => {
    const err = pcscError(0x8010001d, "SCardEstablishContext");
    expect(err).toBeInstanceOf(TransportError);
    expect(err.code).toBe("SCARD_E_NO_SERVICE");
    expect(err.pcscCode).toBe(0x8010001d);
    expect(err.retryable).toBe(true);
    expect(err.message).toContain("pcscd is not running (SCARD_E_NO_SERVICE)");
    expect(err.message).toContain("`pcscd`");
    expect(err.message).toContain("SCardEstablishContext");
  });

  test.each([
    [0x8010000c, "SCARD_E_NO_SMARTCARD", true],
    [0x80100069, "SCARD_W_REMOVED_CARD", true],
    [0x80100068, "SCARD_W_RESET_CARD", true],
    [0x8010000a, "SCARD_E_TIMEOUT", true],
    [0x8010002f, "SCARD_E_COMM_DATA_LOST", true],
    [0x80100013, "SCARD_F_COMM_ERROR", true],
    [0x80100016, "SCARD_E_NOT_TRANSACTED", true],
    [0x80100009, "SCARD_E_UNKNOWN_READER", false],
    [0x80100017, "SCARD_E_READER_UNAVAILABLE", true],
    [0x80100002, "SCARD_E_CANCELLED", false],
    [0x8010002e, "SCARD_E_NO_READERS_AVAILABLE", true],
    [0x80100004, "SCARD_E_INVALID_PARAMETER", false],
    [0x8010001f, "SCARD_E_UNSUPPORTED_FEATURE", false],
  ])("code %d is %s", (code, name, retryable) => {
    const err = pcscError(code, "SCardTransmit");
    expect(err.code).toBe(name);
    expect(err.retryable).toBe(retryable);
    expect(err.pcscCode).toBe(code);
    expect(err.message.startsWith(`SCardTransmit: `)).toBe(true);
    expect(err.message).toContain(`(${name})`);
  });

  test("unknown codes get a stable hex name and are not retryable", () => {
    const err = pcscError(0x80100099, "SCardConnect");
    expect(err.code).toBe("SCARD_0x80100099");
    expect(err.retryable).toBe(false);
    expect(pcscCodeInfo(0x12345678).name).toBe("SCARD_0x12345678");
  });

  test("a sign-extended code (LONG read as negative int32) maps like the unsigned one", () => {
    expect(pcscError(0x80100069 | 0, "SCardTransmit").code).toBe("SCARD_W_REMOVED_CARD");
  });

  test("names are unique and every message is non-empty", () => {
    const names = [...PCSC_CODES.values()].map((i) => i.name);
    expect(new Set(names).size).toBe(names.length);
    for (const info of PCSC_CODES.values()) expect(info.meaning.length).toBeGreaterThan(3);
  });

  // Cross-check the table against the installed pcsc-lite header (libpcsclite-dev, which deploy/dev-setup.sh installs).
  test("every SCARD_[EWF]_ code in pcsclite.h is in the table with its value", () => {
    if (!existsSync("/usr/include/PCSC/pcsclite.h")) throw new Error("/usr/include/PCSC/pcsclite.h is missing: run `bash deploy/dev-setup.sh` (it installs libpcsclite-dev)");
    const header = readFileSync("/usr/include/PCSC/pcsclite.h", "utf8");
    const defs = [...header.matchAll(/^#define\s+(SCARD_[EWF]_\w+)\s+\(\(LONG\)0x([0-9A-Fa-f]+)\)/gm)];
    expect(defs.length).toBeGreaterThan(50);
    for (const [, name, value] of defs) {
      const info = pcscCodeInfo(parseInt(value!, 16));
      // 0x8010001F is defined twice (E_UNEXPECTED, E_UNSUPPORTED_FEATURE): one name covers both.
      if (name === "SCARD_E_UNEXPECTED") expect(info.name).toBe("SCARD_E_UNSUPPORTED_FEATURE");
      else expect(info.name).toBe(name!);
    }
  });
});
