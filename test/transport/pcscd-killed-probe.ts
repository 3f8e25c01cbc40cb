/**
 * Subprocess for pcsc.test.ts, run inside private mount + network namespaces (`unshare -mn` with a tmpfs
 * on /run/pcscd), so it owns a private pcscd and vpcd and can kill them without touching the shared daemon.
 * Kills pcscd while an SCardTransmit (card stalling) and an SCardGetStatusChange are blocked, then restarts
 * it; prints the outcome as JSON.
 */
import { TransportError } from "../../agent/errors.ts";
import { PcscClient } from "../../agent/transport/pcsc.ts";
import { ensurePcscd } from "../support/pcscd.ts";
import { connectVpcd } from "../support/vpcd-card.ts";

const READER = "Virtual PCD 00 01";
const ATR = Uint8Array.of(0x3b, 0x80, 0x80, 0x01, 0x01);
const codeOf = async (p: Promise<unknown>) => {
  try {
    await p;
    return "success";
  } catch (err) {
    return err instanceof TransportError ? err.code : `non-transport: ${String(err)}`;
  }
};

const pcscd = await ensurePcscd();
// The card answers 9000, except INS FF, which it never answers (a stalled card).
const handler = (apdu: Uint8Array) => (apdu[1] === 0xff ? new Promise<Uint8Array>(() => {}) : Uint8Array.of(0x90, 0x00));
let link = await connectVpcd({ port: 35964, atr: ATR, handler });
let client = await PcscClient.open();

async function waitPresent(): Promise<void> {
  let state = 0;
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const [s] = await client.getStatusChange([{ name: READER, currentState: state }], deadline - Date.now());
    if (s!.present) return;
    state = s!.eventState;
  }
  throw new Error("card not present");
}

await waitPresent();
const card = await client.connect(READER);
const before = await codeOf(card.transmit(Uint8Array.of(0x00, 0x01, 0x00, 0x00)));
const [now] = await client.getStatusChange([{ name: READER, currentState: 0 }], 0);
const stalledTransmit = codeOf(card.transmit(Uint8Array.of(0x00, 0xff, 0x00, 0x00)));
const blockedWait = codeOf(client.getStatusChange([{ name: READER, currentState: now!.eventState }], 0xffffffff));
await Bun.sleep(200);
const t0 = performance.now();
await pcscd.stop();
const [transmitCode, waitCode] = await Promise.all([stalledTransmit, blockedWait]);
const failMs = performance.now() - t0;
const afterKill = await codeOf(card.transmit(Uint8Array.of(0x00, 0x01, 0x00, 0x00)));
await client.close();
const openWithoutDaemon = await codeOf(PcscClient.open());

await link.close();
await pcscd.restart();
link = await connectVpcd({ port: 35964, atr: ATR, handler });
client = await PcscClient.open();
await waitPresent();
const card2 = await client.connect(READER);
const afterRestart = await codeOf(card2.transmit(Uint8Array.of(0x00, 0x01, 0x00, 0x00)));
await client.close();
await link.close();
await pcscd.stop();

console.log(JSON.stringify({ started: pcscd.started, before, transmitCode, waitCode, failMs, afterKill, openWithoutDaemon, afterRestart }));
