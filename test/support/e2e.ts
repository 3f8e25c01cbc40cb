/**
 * End-to-end fixture: a real pcscd (started if none runs) and the virtual passport
 * on vpcd slot 0 ("Virtual PCD 00 00"). Every test file that uses it stops what it started.
 */
import { ensurePcscd, type PcscdHandle } from "./pcscd.ts";
import { startVirtualPassport } from "../virtual-passport/index.ts";
import { SHORT_BLOCK_LADDER } from "../../agent/reading/read-tuning.ts";
import { PcscClient, SCARD_STATE_UNAWARE } from "../../agent/transport/pcsc.ts";

export const VIRTUAL_READER = "Virtual PCD 00 00";
export const VPCD_PORT = 35963;

/** ICAO 9303 specimen access key of the default profiles (ERIKSSON ANNA MARIA). */
export const SPECIMEN_KEY = { documentNumber: "L898902C3", dateOfBirth: "740812", dateOfExpiry: "120415" } as const;

export type StartedPassport = Awaited<ReturnType<typeof startVirtualPassport>>;
export type PassportOptions = Parameters<typeof startVirtualPassport>[0];

export async function startPcscd(): Promise<PcscdHandle> {
  return ensurePcscd();
}

/**
 * Puts the virtual passport in the reader and resolves once pcscd reports it present;
 * its stop() resolves once pcscd reports the reader empty. pcscd polls vpcd (~400 ms),
 * so without these waits a test could talk to the previous test's card state.
 */
export async function insertPassport(opts: PassportOptions): Promise<StartedPassport> {
  const card = await startVirtualPassport({ port: VPCD_PORT, ...opts });
  await waitForReader(true);
  const stop = card.stop.bind(card);
  card.stop = async () => {
    const wasIn = card.inserted;
    await stop();
    if (wasIn) await waitForReader(false);
  };
  return card;
}

/** Waits (at most 10 s) until pcscd sees a card in the virtual reader, or sees none. */
export async function waitForReader(present: boolean, reader = VIRTUAL_READER): Promise<void> {
  const client = await PcscClient.open();
  try {
    const deadline = performance.now() + 10_000;
    let [s] = await client.getStatusChange([{ name: reader, currentState: SCARD_STATE_UNAWARE }], 0);
    while (s!.present !== present) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`pcscd did not see the card ${present ? "arrive in" : "leave"} ${reader} within 10 s`);
      [s] = await client.getStatusChange([{ name: reader, currentState: s!.eventState }], Math.ceil(left));
    }
  } finally {
    await client.close();
  }
}

/**
 * The fewest APDUs a BAC read of these file sizes can take with short Le and `block` bytes
 * per READ BINARY, reading by SFI: SELECT EF.CardAccess (absent: the chip offers no PACE) +
 * SELECT applet + GET CHALLENGE + EXTERNAL AUTHENTICATE,
 * then per file enough reads to cover it, where reads past offset 32,767 use B1 and carry
 * 3 bytes less (DO'53' header).
 */
export function minimumApdus(fileSizes: number[], block = SHORT_BLOCK_LADDER[0]): number {
  let n = 4;
  for (const size of fileSizes) {
    let offset = 0;
    while (offset < size) {
      offset += offset > 0x7fff ? block - 3 : block;
      n++;
    }
  }
  return n;
}
