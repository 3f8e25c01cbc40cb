/**
 * The card is ours during a read, through the real pcscd: a PC/SC transaction keeps another
 * client's APDUs out of the secure-messaging session (they wait until we let go, then find the
 * card reset), and the card is reset when we disconnect, so the next application, or our own
 * next read, finds a fresh chip instead of our session.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TransportError } from "../../agent/errors.ts";
import { openCard, type CardDisposition } from "../../agent/reading/card-source.ts";
import { readDocument, type DocumentRead } from "../../agent/reading/read-document.ts";
import { PcscClient } from "../../agent/transport/pcsc.ts";
import type { ApduEvent } from "../virtual-passport/index.ts";
import type { PcscdHandle } from "../support/pcscd.ts";
import { insertPassport, startPcscd, VIRTUAL_READER, type StartedPassport } from "../support/e2e.ts";

/** A plain SELECT of the eMRTD application, as another application (JMRTD, OpenSC) starts. */
const PLAIN_SELECT = Uint8Array.from([0x00, 0xa4, 0x04, 0x0c, 0x07, 0xa0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01]);

let pcscd: PcscdHandle;
let card: StartedPassport;
const log: ApduEvent[] = [];

beforeAll(async () => {
  pcscd = await startPcscd();
  card = await insertPassport({ profile: "td3", onApdu: (e) => log.push(e) });
});
afterAll(async () => {
  await card?.stop();
  await pcscd?.stop();
});

async function read(opts: { claim?: boolean; disconnect?: CardDisposition; onFirstDg2Block?: () => void } = {}): Promise<DocumentRead> {
  const opened = await openCard({ reader: VIRTUAL_READER, waitMs: 5000, ...(opts.claim !== undefined ? { claim: opts.claim } : {}), ...(opts.disconnect ? { disconnect: opts.disconnect } : {}) });
  let fired = false;
  try {
    return await readDocument(
      opened.connection,
      {
        accessKey: { ...card.mrzKey },
        onProgress: (p) => {
          if (!fired && p.kind === "file" && p.key === "DG2") {
            fired = true;
            opts.onFirstDg2Block?.();
          }
        },
      },
      opened.reconnect,
    );
  } finally {
    await opened.close();
  }
}

/** Where plain (CLA 00) commands fall between the first and the last secure-messaging command. */
function plainInsideSession(events: ApduEvent[]): number {
  const first = events.findIndex((e) => e.secure);
  const last = events.findLastIndex((e) => e.secure);
  return events.slice(first, last + 1).filter((e) => !e.secure).length;
}

describe("a second PC/SC client during a read", () => {
  test("is held off until the read is done and then finds the card reset: nothing of it enters the secure-messaging stream", async () => {
    const intruder = await PcscClient.open();
    try {
      const other = await intruder.connect(VIRTUAL_READER); // before our read: connecting is not blocked yet
      let sent: Promise<{ settledAt: number; outcome: string }> | undefined;
      log.length = 0;
      const doc = await read({
        onFirstDg2Block: () => {
          sent = other.transmit(PLAIN_SELECT).then(
            (r) => ({ settledAt: performance.now(), outcome: `answered ${r.length} bytes` }),
            (e: unknown) => ({ settledAt: performance.now(), outcome: e instanceof TransportError ? e.code : String(e) }),
          );
        },
      });
      const readEndedAt = performance.now();
      expect(sent).toBeDefined();
      const intrusion = await sent!;
      expect(intrusion.settledAt).toBeGreaterThanOrEqual(readEndedAt); // held off for the whole read
      // The read disconnected with a reset, so pcsc-lite tells the waiting client its card was reset.
      expect(intrusion.outcome).toBe("SCARD_W_RESET_CARD");
      expect(doc.summary.recoveries).toEqual([]);
      expect(plainInsideSession(log)).toBe(0);
      await other.disconnect("leave");
    } finally {
      await intruder.close();
    }
  }, 30_000);

  test("control, without the transaction: the same intruder lands inside the session and costs a recovery", async () => {
    const intruder = await PcscClient.open();
    try {
      const other = await intruder.connect(VIRTUAL_READER);
      let sent: Promise<unknown> | undefined;
      log.length = 0;
      const doc = await read({ claim: false, onFirstDg2Block: () => (sent = other.transmit(PLAIN_SELECT).catch(() => undefined)) });
      await sent;
      expect(plainInsideSession(log)).toBeGreaterThan(0);
      expect(doc.summary.recoveries.length).toBeGreaterThan(0);
      await other.disconnect("leave");
    } finally {
      await intruder.close();
    }
  }, 30_000);
});

describe("replacing our own connection", () => {
  test("a new connection of ours to a reader we hold takes the transaction over instead of waiting for itself", async () => {
    const client = await PcscClient.open();
    const other = await PcscClient.open();
    try {
      // The old connection keeps its transaction, as when the card went mute and the link is re-made.
      const old = await client.connect(VIRTUAL_READER, { transaction: true });
      const fresh = await Promise.race([client.connect(VIRTUAL_READER, { transaction: true }), Bun.sleep(5000).then(() => undefined)]);
      expect(fresh).toBeDefined();
      await old.disconnect("leave");
      const r = await fresh!.transmit(PLAIN_SELECT);
      expect(r.slice(-2)).toEqual(Uint8Array.of(0x90, 0x00));
      // ...and holds the card: pcscd keeps another client's SCardConnect waiting until it lets go.
      let connected = false;
      const waiting = other.connect(VIRTUAL_READER).then((c) => ((connected = true), c));
      await Bun.sleep(400);
      expect(connected).toBe(false);
      await fresh!.disconnect("leave");
      await (await waiting).disconnect("leave");
      expect(connected).toBe(true);
    } finally {
      await client.close();
      await other.close();
    }
  }, 30_000);
});

describe("how the card is left", () => {
  /** What another application's first command (a plain SELECT) gets from the chip after our read. */
  async function nextApplicationSelect(): Promise<number> {
    const client = await PcscClient.open();
    try {
      const c = await client.connect(VIRTUAL_READER);
      const r = await c.transmit(PLAIN_SELECT);
      await c.disconnect("leave");
      return (r[r.length - 2]! << 8) | r[r.length - 1]!;
    } finally {
      await client.close();
    }
  }

  test("reset by default: the next application's plain SELECT passes and two reads in a row take the same APDUs", async () => {
    await read(); // whatever the test before left on the card
    const first = await read(); // after our reset
    expect(await nextApplicationSelect()).toBe(0x9000);
    // That application left the eMRTD applet selected: the EF.CardAccess probe goes back to
    // the master file for it (two more APDUs), as for any chip another application used last.
    const second = await read();
    const third = await read();
    expect(second.summary.apdus).toBe(first.summary.apdus + 2);
    expect(third.summary.apdus).toBe(first.summary.apdus);
    expect(third.summary.recoveries).toEqual([]);
  }, 30_000);

  test('disconnect "leave": the chip stays in our session, so the next plain SELECT is refused (6982, 9303-11 §9.8)', async () => {
    await read();
    const fresh = await read(); // after our reset
    await read({ disconnect: "leave" });
    expect(await nextApplicationSelect()).toBe(0x6982); // which also ended the session
    await read({ disconnect: "leave" });
    const afterLeft = await read(); // pays for the chip still in our session, then resets the card
    expect(afterLeft.summary.apdus).toBeGreaterThan(fresh.summary.apdus);
    expect((await read()).summary.apdus).toBe(fresh.summary.apdus);
  }, 30_000);
});
