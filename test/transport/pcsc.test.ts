/**
 * PC/SC transport end to end: real pcscd + vsmartcard vpcd ("Virtual PCD 00 01", TCP 35964) with a small
 * virtual card defined here, over test/support/vpcd-card.ts. (Port 35963 is left to the virtual passport tests.)
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TransportError } from "../../agent/errors.ts";
import {
  PcscClient,
  PNP_NOTIFICATION,
  SCARD_ATTR_VENDOR_NAME,
  SCARD_STATE_EMPTY,
  SCARD_STATE_PRESENT,
  TAG_IFD_ATR,
  type PcscCard,
} from "../../agent/transport/pcsc.ts";
import { ensurePcscd, pcscdAvailable, type PcscdHandle } from "../support/pcscd.ts";
import { connectVpcd, type VpcdCardOptions, type VpcdLink } from "../support/vpcd-card.ts";

const READER = "Virtual PCD 00 01";
const PORT = 35964;
const ATR = Uint8Array.of(0x3b, 0x8a, 0x80, 0x01, 0x80, 0x31, 0x80, 0x73, 0x07, 0x01, 0x00, 0x00, 0x00, 0x00, 0x4d);
const INFINITE = 0xffffffff;

/** Test card: INS 0x01 echoes the command data with 9000, anything else answers 6D00. */
function echoCard(): VpcdCardOptions["handler"] {
  return (apdu) => {
    if (apdu[1] !== 0x01) return Uint8Array.of(0x6d, 0x00);
    const lc = apdu.length > 5 ? apdu[4]! : 0;
    const out = new Uint8Array(lc + 2);
    out.set(apdu.subarray(5, 5 + lc));
    out.set([0x90, 0x00], lc);
    return out;
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function caught(p: Promise<unknown>): Promise<TransportError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TransportError) return err;
    throw err;
  }
  throw new Error("expected a TransportError, got success");
}

describe.skipIf(!pcscdAvailable())("PcscClient through pcscd + vpcd", () => {
  let pcscd: PcscdHandle;
  let client: PcscClient;
  let link: VpcdLink | undefined;

  /** Waits until the reader's presence equals `present`, tracking state across changes. */
  async function waitPresence(present: boolean, timeoutMs = 5000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let state = 0;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`reader did not become ${present ? "present" : "empty"} within ${timeoutMs} ms`);
      const [s] = await client.getStatusChange([{ name: READER, currentState: state }], left);
      if (s!.present === present && (s!.eventState & (present ? SCARD_STATE_PRESENT : SCARD_STATE_EMPTY)) !== 0) return s!.eventState;
      state = s!.eventState;
    }
  }

  async function insert(opts: Partial<VpcdCardOptions> = {}): Promise<VpcdLink> {
    link = await connectVpcd({ port: PORT, atr: ATR, handler: echoCard(), ...opts });
    await waitPresence(true);
    return link;
  }

  async function remove(): Promise<void> {
    await link?.close();
    link = undefined;
    await waitPresence(false);
  }

  beforeAll(async () => {
    pcscd = await ensurePcscd();
    client = await PcscClient.open();
    // A card left over from an aborted run would make the "no card" cases meaningless.
    const [s] = await client.getStatusChange([{ name: READER, currentState: 0 }], 0);
    if (s!.present) throw new Error(`${READER} already has a card: another process holds vpcd port ${PORT}`);
  });

  afterAll(async () => {
    await link?.close();
    await client?.close();
    await pcscd?.stop();
  });

  test("lists both vpcd readers", async () => {
    const readers = await client.listReaders();
    expect(readers).toContain("Virtual PCD 00 00");
    expect(readers).toContain(READER);
  });

  test("connect with no card: SCARD_E_NO_SMARTCARD", async () => {
    const err = await caught(client.connect(READER));
    expect(err.code).toBe("SCARD_E_NO_SMARTCARD");
    expect(err.retryable).toBe(true);
    expect(err.message).toContain("place the document on the reader");
  });

  test("connect to an unknown reader: SCARD_E_UNKNOWN_READER", async () => {
    const err = await caught(client.connect("No Such Reader 00 00"));
    expect(err.code).toBe("SCARD_E_UNKNOWN_READER");
  });

  test("getStatusChange sees the card arrive and leave, with its ATR", async () => {
    const [empty] = await client.getStatusChange([{ name: READER, currentState: 0 }], 0);
    expect(empty!.present).toBe(false);
    const waiting = client.getStatusChange([{ name: READER, currentState: empty!.eventState }], 5000);
    link = await connectVpcd({ port: PORT, atr: ATR, handler: echoCard() });
    const [arrived] = await waiting;
    expect(arrived!.changed).toBe(true);
    expect(arrived!.present).toBe(true);
    expect(arrived!.atr).toEqual(ATR);

    const leaving = client.getStatusChange([{ name: READER, currentState: arrived!.eventState }], 5000);
    await link.close();
    link = undefined;
    const [left] = await leaving;
    expect(left!.changed).toBe(true);
    expect(left!.present).toBe(false);
    expect(left!.eventState & SCARD_STATE_EMPTY).toBe(SCARD_STATE_EMPTY);
  });

  test("getStatusChange timeout returns the states unchanged", async () => {
    const [now] = await client.getStatusChange([{ name: READER, currentState: 0 }], 0);
    const t0 = performance.now();
    const [same] = await client.getStatusChange([{ name: READER, currentState: now!.eventState }], 150);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(100);
    expect(same!.changed).toBe(false);
    expect(same!.eventState).toBe(now!.eventState);
  });

  test("cancel() wakes a getStatusChange blocked without timeout", async () => {
    const [now] = await client.getStatusChange([{ name: READER, currentState: 0 }], 0);
    const blocked = client.getStatusChange([{ name: READER, currentState: now!.eventState }], INFINITE);
    await Bun.sleep(100);
    const t0 = performance.now();
    client.cancel();
    const err = await caught(blocked);
    expect(err.code).toBe("SCARD_E_CANCELLED");
    expect(performance.now() - t0).toBeLessThan(1000);
    // The client stays usable after a cancel.
    const [again] = await client.getStatusChange([{ name: READER, currentState: 0 }], 0);
    expect(again!.present).toBe(false);
  });

  test("cancel() issued right as a wait starts still wakes it", async () => {
    const [pnp, reader] = await client.getStatusChange([{ name: PNP_NOTIFICATION, currentState: 0 }, { name: READER, currentState: 0 }], 0);
    const waiting = client.getStatusChange(
      [
        { name: PNP_NOTIFICATION, currentState: pnp!.eventState },
        { name: READER, currentState: reader!.eventState },
      ],
      INFINITE,
    );
    client.cancel(); // same tick: the worker may not be inside SCardGetStatusChange yet
    expect((await caught(waiting)).code).toBe("SCARD_E_CANCELLED");
  });

  test("hot-plug pseudo reader is accepted and reports no change when readers stay put", async () => {
    const [first] = await client.getStatusChange([{ name: PNP_NOTIFICATION, currentState: 0 }], 0);
    const [second] = await client.getStatusChange([{ name: PNP_NOTIFICATION, currentState: first!.eventState }], 100);
    expect(second!.changed).toBe(false);
    expect(second!.present).toBe(false);
  });

  describe("with a card", () => {
    let card: PcscCard;

    beforeAll(async () => {
      await insert();
      card = await client.connect(READER);
    });

    afterAll(async () => {
      await card?.disconnect().catch(() => undefined);
      await remove();
    });

    test("connect reports reader, ATR and protocol", async () => {
      expect(card.reader).toBe(READER);
      expect(card.atr).toEqual(ATR);
      expect([1, 2]).toContain(card.protocol);
      const status = await card.status();
      expect(status.reader).toBe(READER);
      expect(status.atr).toEqual(ATR);
      expect(status.protocol).toBe(card.protocol);
    });

    test("transmit round trip: echo data, status word, unknown INS", async () => {
      const data = Uint8Array.from({ length: 200 }, (_, i) => (i * 7) & 0xff);
      const cmd = Uint8Array.of(0x00, 0x01, 0x00, 0x00, data.length, ...data);
      const resp = await card.transmit(cmd);
      expect(resp.subarray(0, data.length)).toEqual(data);
      expect(resp.subarray(data.length)).toEqual(Uint8Array.of(0x90, 0x00));
      expect(await card.transmit(Uint8Array.of(0x00, 0xee, 0x00, 0x00))).toEqual(Uint8Array.of(0x6d, 0x00));
      expect(card.lastTransmitMicros).toBeGreaterThan(0);
    });

    test("per-APDU round trip with TCP_QUICKACK is well under the ~48 ms Nagle/delayed-ACK trap", async () => {
      const cmd = Uint8Array.of(0x00, 0x01, 0x00, 0x00, 0x04, 1, 2, 3, 4);
      for (let i = 0; i < 20; i++) await card.transmit(cmd);
      const wall: number[] = [];
      const overhead: number[] = [];
      for (let i = 0; i < 300; i++) {
        const t0 = performance.now();
        await card.transmit(cmd);
        const us = (performance.now() - t0) * 1000;
        wall.push(us);
        overhead.push(us - card.lastTransmitMicros);
      }
      const ms = median(wall) / 1000;
      console.log(`[pcsc] APDU round trip median ${ms.toFixed(3)} ms; host overhead outside SCardTransmit median ${median(overhead).toFixed(1)} µs`);
      expect(ms).toBeLessThan(5);
      expect(median(overhead)).toBeLessThan(500);
    });

    test("attributes: vendor name unsupported by vpcd (undefined); TAG_IFD_ATR gives the ATR", async () => {
      // vpcd's IFDHGetCapabilities answers TAG_IFD_ATR and TAG_IFD_SLOTS_NUMBER only.
      expect(await card.getAttribute(SCARD_ATTR_VENDOR_NAME)).toBeUndefined();
      expect(await card.getAttribute(TAG_IFD_ATR)).toEqual(ATR);
    });

    test("reconnect with reset powers the card again and keeps it usable", async () => {
      const atr = await card.reconnect("reset");
      expect(atr).toEqual(ATR);
      expect(await card.transmit(Uint8Array.of(0x00, 0x01, 0x00, 0x00, 0x01, 0x42))).toEqual(Uint8Array.of(0x42, 0x90, 0x00));
    });

    test("transactions begin and end", async () => {
      await card.beginTransaction();
      expect(await card.transmit(Uint8Array.of(0x00, 0xee, 0x00, 0x00))).toEqual(Uint8Array.of(0x6d, 0x00));
      await card.endTransaction();
    });
  });

  test("card removed mid-session: transmit fails with a TransportError, never hangs; reconnect after re-insert works", async () => {
    await insert();
    const card = await client.connect(READER);
    expect(await card.transmit(Uint8Array.of(0x00, 0xee, 0x00, 0x00))).toEqual(Uint8Array.of(0x6d, 0x00));
    await link!.close();
    link = undefined;

    // Right after the socket closes, before pcscd's presence poll notices.
    const t0 = performance.now();
    const immediate = await caught(card.transmit(Uint8Array.of(0x00, 0xee, 0x00, 0x00)));
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(["SCARD_E_NOT_TRANSACTED", "SCARD_W_REMOVED_CARD", "SCARD_E_COMM_DATA_LOST", "SCARD_W_RESET_CARD"]).toContain(immediate.code);
    expect(immediate.retryable).toBe(true);

    // Once pcscd has seen the removal.
    await waitPresence(false);
    const later = await caught(card.transmit(Uint8Array.of(0x00, 0xee, 0x00, 0x00)));
    expect(later.code).toBe("SCARD_W_REMOVED_CARD");
    expect((await caught(card.reconnect("leave"))).code).toBe("SCARD_E_NO_SMARTCARD");
    console.log(`[pcsc] removed card: immediate ${immediate.code}, after removal seen ${later.code}`);

    // Card back: the old handle stays invalid until reconnect.
    await insert();
    expect((await caught(card.transmit(Uint8Array.of(0x00, 0xee, 0x00, 0x00)))).code).toBe("SCARD_W_REMOVED_CARD");
    expect(await card.reconnect("leave")).toEqual(ATR);
    expect(await card.transmit(Uint8Array.of(0x00, 0x01, 0x00, 0x00, 0x01, 0x07))).toEqual(Uint8Array.of(0x07, 0x90, 0x00));
    await card.disconnect();
    expect((await caught(card.transmit(Uint8Array.of(0x00, 0xee, 0x00, 0x00)))).code).toBe("DISCONNECTED");
    await remove();
  });

  test("without TCP_QUICKACK each APDU pays the delayed-ACK penalty (shows the link option matters)", async () => {
    await insert({ quickAck: false });
    const card = await client.connect(READER);
    const wall: number[] = [];
    for (let i = 0; i < 8; i++) {
      const t0 = performance.now();
      await card.transmit(Uint8Array.of(0x00, 0xee, 0x00, 0x00));
      wall.push(performance.now() - t0);
    }
    console.log(`[pcsc] without quickAck: median ${median(wall).toFixed(1)} ms per APDU`);
    expect(median(wall)).toBeGreaterThan(10);
    await card.disconnect();
    await remove();
  });

  test("realistic latency: each APDU takes at least turnaround + bytes on air", async () => {
    const latency = { kind: "realistic" as const, bitRate: 106_000, turnaroundMs: 5 };
    await insert({ latency });
    const card = await client.connect(READER);
    const data = new Uint8Array(200);
    const cmd = Uint8Array.of(0x00, 0x01, 0x00, 0x00, data.length, ...data);
    const expectedMs = latency.turnaroundMs + ((cmd.length + 3 + data.length + 2 + 3) * 8 * 1000) / latency.bitRate;
    const t0 = performance.now();
    await card.transmit(cmd);
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(expectedMs - 1);
    expect(ms).toBeLessThan(expectedMs + 40);
    await card.disconnect();
    await remove();
  });

  test("pcscd not running: SCARD_E_NO_SERVICE with a hint to start it (subprocess with a missing socket)", async () => {
    const proc = Bun.spawn([process.execPath, new URL("./no-service-probe.ts", import.meta.url).pathname], {
      env: { ...process.env, PCSCLITE_CSOCK_NAME: `/tmp/no-pcscd-${process.pid}.comm` },
      stdout: "pipe",
      stderr: "inherit",
    });
    const out = await new Response(proc.stdout).text();
    expect(await proc.exited).toBe(0);
    const result = JSON.parse(out) as { ok: boolean; code: string; retryable: boolean; message: string };
    expect(result.ok).toBe(false);
    expect(result.code).toBe("SCARD_E_NO_SERVICE");
    expect(result.retryable).toBe(true);
    expect(result.message).toContain("pcscd is not running (SCARD_E_NO_SERVICE): start it with `pcscd`");
  });

  // A private pcscd in its own mount + network namespaces, so killing it leaves the shared daemon alone.
  const canUnshare = Bun.spawnSync(["unshare", "-mn", "true"], { stderr: "ignore" }).exitCode === 0;
  test.skipIf(!canUnshare)("pcscd killed mid-call: blocked transmit and wait fail fast with TransportError; works after restart", async () => {
    const probe = new URL("./pcscd-killed-probe.ts", import.meta.url).pathname;
    const proc = Bun.spawn(
      ["unshare", "-mn", "sh", "-c", 'mkdir -p /run/pcscd && mount -t tmpfs none /run/pcscd && ip link set lo up && exec "$0" "$1"', process.execPath, probe],
      { stdout: "pipe", stderr: "inherit" },
    );
    const out = await new Response(proc.stdout).text();
    expect(await proc.exited).toBe(0);
    const r = JSON.parse(out) as Record<string, string | number | boolean>;
    console.log(`[pcsc] pcscd killed: transmit ${r.transmitCode}, wait ${r.waitCode} after ${Number(r.failMs).toFixed(1)} ms`);
    expect(r.started).toBe(true);
    expect(r.before).toBe("success");
    const lost = ["SCARD_F_COMM_ERROR", "SCARD_E_NO_SERVICE", "SCARD_E_SERVICE_STOPPED"];
    expect(lost).toContain(r.transmitCode as string);
    expect(lost).toContain(r.waitCode as string);
    expect(r.failMs as number).toBeLessThan(3000);
    expect(lost).toContain(r.afterKill as string);
    expect(r.openWithoutDaemon).toBe("SCARD_E_NO_SERVICE");
    expect(r.afterRestart).toBe("success");
  });

  test("a closed client refuses calls and a second close is harmless", async () => {
    const other = await PcscClient.open();
    expect((await other.listReaders()).length).toBeGreaterThanOrEqual(2);
    await other.close();
    await other.close();
    expect((await caught(other.listReaders())).code).toBe("CLOSED");
  });
});
