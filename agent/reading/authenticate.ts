/**
 * The read's access-control step (ICAO 9303-11 §4.2): PACE when EF.CardAccess offers it (the
 * preferred protocol), BAC when it does not or when PACE fails in a way that permits falling
 * back (no supported parameters, MSE:Set AT refused); `auth` forces one. The MRZ key serves
 * both; a CAN serves PACE only. What was learnt about the card (EF.CardAccess, the MSE:Set AT
 * form it accepts) is kept in `memory` so a re-authentication after a link loss repeats none of it.
 */
import { wipe } from "../bytes.ts";
import { AccessDeniedError, CardStatusError, PaceError, UsageError } from "../errors.ts";
import { performBac } from "../icao/bac.ts";
import { readCardAccess } from "../icao/card-access.ts";
import { bacKeySeed, type BacAccessKey } from "../icao/mrz-key.ts";
import { performPace, type PaceParameters, type PacePassword, type PaceSession } from "../icao/pace.ts";
import { SecureChannel, smCipherFor, type SmCipher } from "../icao/secure-messaging.ts";
import type { CommandApdu } from "../iso7816/apdu.ts";
import { decodeResponse, encodeCommand } from "../iso7816/apdu.ts";
import { EMRTD_AID } from "../lds/lds-files.ts";
import { choosePace, domainName, paceDomain, parseCardAccess } from "../lds/security-infos.ts";
import type { CardTransport } from "../transport/transport.ts";
import type { AuthenticationSummary } from "./read-result.ts";

export type AuthMode = "auto" | "pace" | "bac";

export interface AccessKeys {
  mrz?: BacAccessKey;
  /** Card access number: 6 digits (PACE only). */
  can?: string;
}

/** What one read learnt about the card; kept across re-authentications. */
export interface AuthMemory {
  /** EF.CardAccess as read; null: the chip has none. */
  cardAccess?: Uint8Array | null;
  /** MSE:Set AT form the chip accepted (with tag 84 or without). */
  parameterIdForm?: boolean;
  /** PACE failed in a fallback-permitting way: later authentications go straight to BAC. */
  paceFallback?: string;
}

/** How the read authenticated, for the summary (no key material). */
export type AuthenticationFacts = AuthenticationSummary;

export interface Authenticated {
  channel: SecureChannel;
  cipher: SmCipher;
  facts: AuthenticationFacts;
  /** PACE-CAM data and the PACE group, to check against DG14 once the SOD vouches for it. */
  cam?: { session: NonNullable<PaceSession["cam"]>; parameters: PaceParameters };
}

const SELECT_APPLET: CommandApdu = { cla: 0x00, ins: 0xa4, p1: 0x04, p2: 0x0c, data: EMRTD_AID };

async function plainSelectApplet(t: CardTransport): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const r = decodeResponse(await t.transmit(encodeCommand(SELECT_APPLET)));
    if (r.sw === 0x9000) return;
    // 9303-11 §9.8: a plain command ends a live secure session; a chip still holding one may
    // answer this SELECT with 6982/6988 while dropping it: the repeated SELECT then goes through.
    if (attempt === 0 && (r.sw === 0x6982 || r.sw === 0x6988)) continue;
    throw new CardStatusError(r.sw, "SELECT eMRTD application", r.sw === 0x6a82 ? "the card has no eMRTD application (SELECT answered 6A82)" : undefined);
  }
}

/** Runs the access control; the caller owns (and closes) the returned channel. */
export async function authenticate(t: CardTransport, keys: AccessKeys, mode: AuthMode, memory: AuthMemory, random: (n: number) => Uint8Array): Promise<Authenticated> {
  if (!keys.mrz && !keys.can) throw new UsageError("no access key: give the MRZ key (document number, birth and expiry dates) or the CAN");
  if (mode === "bac" && !keys.mrz) throw new UsageError("BAC needs the MRZ key; a CAN works with PACE only", "can");
  let offered: string[] = [];
  let parameters: PaceParameters | undefined;
  if (mode !== "bac" && !memory.paceFallback) {
    if (memory.cardAccess === undefined) memory.cardAccess = (await readCardAccess(t)) ?? null;
    if (memory.cardAccess) {
      const infos = parseCardAccess(memory.cardAccess);
      ({ parameters, offered } = choosePace(infos));
      if (!parameters && offered.length > 0) {
        const what = infos.pace.map((p) => `${p.protocol.mapping} ${p.protocol.agreement} ${paceDomainLabel(infos, p)}`).join(", ");
        memory.paceFallback = `no PACE parameters this agent supports (${what})`;
      }
    }
  }
  if (parameters) {
    try {
      return await viaPace(t, keys, parameters, offered, memory, random);
    } catch (e) {
      // Fallback only where the chip said PACE cannot run this way, and BAC has a key to use
      if (!(e instanceof PaceError && e.reason === "unsupported") || mode === "pace" || !keys.mrz) throw e;
      memory.paceFallback = e.message;
    }
  } else if (mode === "pace") {
    throw new PaceError("unsupported", memory.paceFallback ?? "the document does not offer PACE (no EF.CardAccess with a PACEInfo)");
  }
  if (!keys.mrz) {
    throw new PaceError("unsupported", `a CAN needs PACE, and ${memory.paceFallback ?? "this document does not offer it"}: give the MRZ key for BAC`);
  }
  return viaBac(t, keys.mrz, offered, memory, random);
}

function paceDomainLabel(infos: ReturnType<typeof parseCardAccess>, p: ReturnType<typeof parseCardAccess>["pace"][number]): string {
  const d = paceDomain(infos, p);
  return d ? domainName(d) : `parameter id ${p.parameterId ?? "?"}`;
}

async function viaPace(t: CardTransport, keys: AccessKeys, parameters: PaceParameters, offered: string[], memory: AuthMemory, random: (n: number) => Uint8Array): Promise<Authenticated> {
  const password: PacePassword = keys.can ? { kind: "can", can: keys.can } : { kind: "mrz", key: keys.mrz! };
  const forms = memory.parameterIdForm !== undefined ? [memory.parameterIdForm, !memory.parameterIdForm] : undefined;
  let session: PaceSession;
  try {
    session = await performPace(t, { password, parameters, random, ...(forms ? { parameterIdForms: forms } : {}) });
  } catch (e) {
    // A plain MSE:Set AT to a chip still in a secure session ends it with 6982/6988: once more
    if (e instanceof PaceError && e.reason === "unsupported" && (e.sw === 0x6982 || e.sw === 0x6988)) {
      session = await performPace(t, { password, parameters, random, ...(forms ? { parameterIdForms: forms } : {}) });
    } else throw e;
  }
  memory.parameterIdForm = session.withParameterId;
  const cipher = smCipherFor(session.cipher, session.ksEnc, session.ksMac);
  wipe(session.ksEnc, session.ksMac);
  const channel = new SecureChannel(t, cipher, session.ssc);
  // 9303-11 §4.2: after PACE the eMRTD application is selected inside secure messaging
  const r = await channel.send(SELECT_APPLET);
  if (r.sw !== 0x9000) {
    channel.close();
    throw new CardStatusError(r.sw, "SELECT eMRTD application");
  }
  const facts: AuthenticationFacts = {
    protocol: "PACE",
    password: password.kind === "can" ? "CAN" : "MRZ",
    mapping: parameters.mapping,
    group: parameters.group.name,
    cipher: session.cipher,
    paceOffered: offered,
    parameterIdSent: session.withParameterId,
  };
  return { channel, cipher, facts, ...(session.cam ? { cam: { session: session.cam, parameters } } : {}) };
}

async function viaBac(t: CardTransport, mrz: BacAccessKey, offered: string[], memory: AuthMemory, random: (n: number) => Uint8Array): Promise<Authenticated> {
  await plainSelectApplet(t);
  const seed = bacKeySeed(mrz);
  try {
    const session = await performBac(t, seed, random);
    const cipher = smCipherFor("3DES", session.ksEnc, session.ksMac);
    wipe(session.ksEnc, session.ksMac);
    const facts: AuthenticationFacts = { protocol: "BAC", password: "MRZ", cipher: "3DES", paceOffered: offered };
    if (memory.paceFallback) facts.fallbackReason = memory.paceFallback;
    return { channel: new SecureChannel(t, cipher, session.ssc), cipher, facts };
  } catch (e) {
    // A PACE-only chip refuses BAC with 6A88 (no BAC keys): say so when the chip offered PACE
    if (e instanceof CardStatusError && e.sw === 0x6a88 && offered.length > 0) {
      throw new AccessDeniedError(`the document refuses BAC (6A88) and PACE could not run: ${memory.paceFallback ?? "see above"}`, e.sw, "PACE");
    }
    throw e;
  } finally {
    wipe(seed);
  }
}
