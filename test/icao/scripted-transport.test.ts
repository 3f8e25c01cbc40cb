import { describe, expect, test } from "bun:test";
import { ScriptError, ScriptedTransport } from "../../agent/transport/scripted-transport.ts";
import { fromHex, hex } from "../../agent/bytes.ts";
import { TransportError } from "../../agent/errors.ts";

describe("ScriptedTransport (strict replay for protocol tests)", () => {
  test("answers scripted commands in order and is done after the last", async () => {
    const t = new ScriptedTransport([
      { command: "0084000008", response: "01020304050607089000" },
      { command: fromHex("00B0000004"), response: fromHex("60145F019000") },
    ]);
    expect(hex(await t.transmit(fromHex("0084000008")))).toBe("01020304050607089000");
    expect(() => t.assertDone()).toThrow(ScriptError);
    expect(hex(await t.transmit(fromHex("00B0000004")))).toBe("60145F019000");
    t.assertDone();
    expect(t.sent.length).toBe(2);
  });
  test("a different command throws and poisons assertDone even if the error was swallowed", async () => {
    const t = new ScriptedTransport([{ command: "0084000008", response: "9000" }]);
    await t.transmit(fromHex("0084000010")).catch(() => undefined);
    expect(() => t.assertDone()).toThrow(/differs from the script/);
  });
  test("a command after the end throws", async () => {
    const t = new ScriptedTransport([]);
    await expect(t.transmit(fromHex("00A4000C"))).rejects.toThrow(/after the end of the script/);
  });
  test("an Error response is thrown, simulating a lost card", async () => {
    const lost = new TransportError("SCARD_W_REMOVED_CARD", "card removed", { retryable: true });
    const t = new ScriptedTransport([{ command: "0084000008", response: lost }]);
    await expect(t.transmit(fromHex("0084000008"))).rejects.toBe(lost);
  });
});
