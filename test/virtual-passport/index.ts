/**
 * Programmatic entry of the virtual passport for end-to-end tests, the demo and the benchmark:
 * builds the chip (from a fixtures profile or given files) and inserts it into vsmartcard's
 * vpcd reader, through which the real pcscd sees it ("Virtual PCD 00 00" on port 35963).
 */
import { connectVpcd, type VpcdLink } from "../support/vpcd-card.ts";
import { VirtualPassport } from "./card.ts";
import type { MrzKey } from "./card-sm.ts";
import type { PassportFiles } from "./file-system.ts";
import { resolveCardOptions, type CardOptions } from "./options.ts";

export { VirtualPassport } from "./card.ts";
export type { MrzKey } from "./card-sm.ts";
export type { PassportFiles } from "./file-system.ts";
export { contactlessAtr, REALISTIC_LATENCY, type CardOptions, type Latency } from "./options.ts";

export const DEFAULT_PROFILE = "td3";
export const DEFAULT_VPCD_PORT = 35963;

/** One exchange, for logs and metrics: sizes and status only, never data. */
export interface ApduEvent {
  cla: number;
  ins: number;
  /** CLA 0C: the command came through secure messaging. */
  secure: boolean;
  commandLength: number;
  responseLength: number;
  /** Outer status word of the response. */
  sw: number;
  /** Time the chip logic took (not the simulated RF latency). */
  ms: number;
}

export interface StartOptions extends Partial<Omit<CardOptions, "mrzKey">> {
  /** A fixtures profile name (default "td3"); ignored when `files` is given. */
  profile?: string;
  /** Files to serve instead of a profile; needs `mrzKey`. */
  files?: PassportFiles;
  /** BAC key of the chip; defaults to the profile's. */
  mrzKey?: MrzKey;
  host?: string;
  /** vpcd port: 35963 = "Virtual PCD 00 00", 35964 = "Virtual PCD 00 01". */
  port?: number;
  /** Re-arm TCP_QUICKACK on the vpcd socket (default true; without it each APDU costs ~48 ms). */
  quickAck?: boolean;
  onApdu?: (event: ApduEvent) => void;
  /**
   * Fault injection for tests: return a response to send instead of the chip's (the chip
   * does not see the command), or undefined to let the chip answer.
   */
  intercept?: (apdu: Uint8Array) => Uint8Array | undefined | Promise<Uint8Array | undefined>;
}

export interface StartedVirtualPassport {
  card: VirtualPassport;
  /** The profile served, when started from one. */
  profile: string | undefined;
  mrzKey: MrzKey;
  options: CardOptions;
  /** Whether the card is in the reader (connected to vpcd). */
  readonly inserted: boolean;
  /** Command APDUs answered since the last insertion. */
  readonly apduCount: number;
  /** The card leaves the reader (its volatile state is lost). */
  stop(): Promise<void>;
  /**
   * Take the card out (if in), keep it out `absentMs` (default 600: pcscd polls vpcd for
   * presence every 400 ms, so it sees the removal), and put it back: a fresh, unauthenticated chip.
   */
  reinsert(opts?: { absentMs?: number }): Promise<void>;
}

export async function startVirtualPassport(opts: StartOptions = {}): Promise<StartedVirtualPassport> {
  let files = opts.files;
  let mrzKey = opts.mrzKey;
  let profile: string | undefined;
  if (!files) {
    profile = opts.profile ?? DEFAULT_PROFILE;
    const { loadProfile } = await import("./fixtures/index.ts");
    const p = await loadProfile(profile);
    files = p.files;
    mrzKey ??= p.mrzKey;
  }
  if (!mrzKey) throw new RangeError("startVirtualPassport: `files` needs an `mrzKey`");
  const options = resolveCardOptions({ ...withoutUndefined(opts), mrzKey });
  const card = new VirtualPassport(files, options);

  const handler = async (apdu: Uint8Array): Promise<Uint8Array> => {
    const injected = opts.intercept ? await opts.intercept(apdu) : undefined;
    const t0 = performance.now();
    const response = injected ?? card.handle(apdu);
    const ms = performance.now() - t0;
    if (opts.onApdu && apdu.length >= 2 && response.length >= 2) {
      opts.onApdu({
        cla: apdu[0]!,
        ins: apdu[1]!,
        secure: apdu[0] === 0x0c,
        commandLength: apdu.length,
        responseLength: response.length,
        sw: (response[response.length - 2]! << 8) | response[response.length - 1]!,
        ms,
      });
    }
    return response;
  };

  const link: VpcdLink = await connectVpcd({
    host: opts.host,
    port: opts.port ?? DEFAULT_VPCD_PORT,
    atr: options.atr,
    handler,
    // Field off, reset and power on all leave a contactless chip without volatile state.
    onPower: () => card.reset(),
    latency: options.latency,
    quickAck: opts.quickAck,
  });

  return {
    card,
    profile,
    mrzKey,
    options,
    get inserted() {
      return link.connected;
    },
    get apduCount() {
      return link.apduCount;
    },
    async stop() {
      await link.close();
      card.powerOff();
    },
    async reinsert({ absentMs = 600 } = {}) {
      await link.close();
      card.powerOff();
      if (absentMs > 0) await Bun.sleep(absentMs);
      await link.reconnect();
    },
  };
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
