/**
 * The virtual passport through the real stack: opensc-tool → libpcsclite → pcscd → vpcd →
 * TCP → startVirtualPassport. Replays ICAO 9303-11 Appendix D (BAC, then the D.4 secure
 * messaging exchanges) with the chip's randomness pinned, so every response is known.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { fromHex, hex } from "../../agent/bytes.ts";
import { ensurePcscd, pcscdAvailable, type PcscdHandle } from "../support/pcscd.ts";
import { startVirtualPassport, type StartedVirtualPassport } from "./index.ts";

const READER = "Virtual PCD 00 00";
const PORT = 35963;
const haveTools = pcscdAvailable() && Bun.which("opensc-tool") !== null;

const RND_IC = "4608F91988702212";
const K_IC = "0B4F80323EB3191CB04970CB4052790B";
const EF_COM = "60145F0104303130365F36063034303030305C026175";

/**
 * Runs opensc-tool with one connection for all APDUs; returns "data‖SW" in hex per APDU.
 * opensc-tool prints 16 bytes per line as "XX " then ASCII; in a multi-line dump the last
 * line's hex part is padded to 48 characters, a single-line dump is not padded.
 */
async function openscTool(apdus: string[]): Promise<string[]> {
  const proc = Bun.spawn(["opensc-tool", "-r", READER, ...apdus.flatMap((a) => ["-s", a])], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`opensc-tool exited ${code}: ${err}`);
  const responses: { sw: string; lines: string[] }[] = [];
  let current: { sw: string; lines: string[] } | undefined;
  for (const line of out.split("\n")) {
    const m = /^Received \(SW1=0x([0-9a-f]{2}), SW2=0x([0-9a-f]{2})\)/i.exec(line);
    if (m) responses.push((current = { sw: (m[1]! + m[2]!).toUpperCase(), lines: [] }));
    else if (line.startsWith("Sending:")) current = undefined;
    else if (current && line.length > 0) current.lines.push(line);
  }
  return responses.map(({ sw, lines }) => {
    const hexPart = (l: string) => (lines.length === 1 ? l.slice(0, (l.length / 4) * 3) : l.slice(0, 48));
    return lines.map(hexPart).join("").replace(/ /g, "").toUpperCase() + sw;
  });
}

/** pcscd polls vpcd for presence: wait until it reports the card, returning the ATR it saw. */
async function waitForCard(timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const proc = Bun.spawn(["opensc-tool", "-r", READER, "-a"], { stdout: "pipe", stderr: "pipe" });
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    if (code === 0) return out.trim().replace(/[^0-9A-Fa-f]/g, "").toUpperCase();
    if (Date.now() > deadline) throw new Error(`pcscd did not report a card in "${READER}" within ${timeoutMs} ms`);
    await Bun.sleep(100);
  }
}

describe.skipIf(!haveTools)("virtual passport through pcscd + vpcd", () => {
  let pcscd: PcscdHandle;
  let passport: StartedVirtualPassport;

  beforeAll(async () => {
    pcscd = await ensurePcscd();
    // Appendix D randomness: RND.IC for every GET CHALLENGE, K.IC for every EXTERNAL AUTHENTICATE
    const random = (n: number) => fromHex(n === 8 ? RND_IC : K_IC);
    passport = await startVirtualPassport({
      files: { com: fromHex(EF_COM), sod: new Uint8Array(300), dgs: new Map([[1, new Uint8Array(93)]]) },
      mrzKey: { documentNumber: "L898902C", dateOfBirth: "690806", dateOfExpiry: "940623" },
      port: PORT,
      random,
    });
    expect(await waitForCard()).toBe(hex(passport.options.atr));
  });

  afterAll(async () => {
    await passport?.stop();
    await pcscd?.stop();
  });

  test("SELECT of the eMRTD application answers 9000; EF.COM before BAC 6982", async () => {
    const r = await openscTool(["00A4040C07A0000002471001", "00A4020C02011E"]);
    expect(r).toEqual(["9000", "6982"]);
  });

  test("ICAO 9303-11 Appendix D through pcscd: BAC and the three D.4 protected exchanges", async () => {
    const r = await openscTool([
      "00A4040C07A0000002471001",
      "0084000008",
      "008200002872C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F25F1448EEA8AD90A728",
      "0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800",
      "0CB000000D9701048E08ED6705417E96BA5500",
      "0CB000040D9701128E082EA28A70F3C7B53500",
    ]);
    expect(r).toEqual([
      "9000",
      RND_IC + "9000",
      "46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F2F2D235D074D74499000",
      "990290008E08FA855A5D4C50A8ED9000",
      "8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000",
      "871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A990290008E08C8B2787EAEA07D749000",
    ]);
    expect(hex(passport.card.ssc!)).toBe("887022120C06C22C");
  });

  test("the card leaves the reader and comes back unauthenticated", async () => {
    await passport.reinsert();
    expect(passport.card.authenticated).toBe(false);
    expect(passport.inserted).toBe(true);
    await waitForCard();
    const r = await openscTool(["00A4040C07A0000002471001", "0CB000000D9701048E08ED6705417E96BA5500"]);
    expect(r).toEqual(["9000", "6982"]);
  });
});
