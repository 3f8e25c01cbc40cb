/**
 * Personal data leaving the agent, only ever sealed (envelope.ts): a remote read's MRZ, face
 * and DG11/DG12 sealed to the requester's key, and, opt-in (telemetry.include_personal_data),
 * a read event's MRZ and DG11/DG12 sealed to the fleet's key. Everything else the agent sends
 * (events, health, metrics, logs) carries sizes, timings, codes and verdicts only.
 */
import { ConfigError } from "../errors.ts";
import type { DocumentRead } from "../reading/read-document.ts";
import type { AgentConfig } from "./config.ts";
import { b64, type SealedEnvelope } from "./envelope.ts";

/** Seals an event's personal data to the fleet's key. */
export type EventSealer = (doc: DocumentRead, eventId: string) => SealedEnvelope;

/**
 * The event sealer of telemetry.include_personal_data, undefined when it is off. The key is
 * checked here: a low-order point fails at start, not at the first read.
 */
export async function loadEventSealer(c: AgentConfig): Promise<EventSealer | undefined> {
  if (!c.telemetry.includePersonalData || !c.telemetry.personalDataPublicKey) return undefined;
  const { eventInfo, sealForRecipient } = await import("./envelope.ts");
  const key = Uint8Array.from(Buffer.from(c.telemetry.personalDataPublicKey, "base64"));
  try {
    sealForRecipient(key, new Uint8Array(0), "key check");
  } catch {
    throw new ConfigError(`${c.file}: telemetry.personal_data_public_key: not a usable X25519 public key`, { file: c.file, key: "telemetry.personal_data_public_key" });
  }
  return (doc, eventId) => {
    const plain = new TextEncoder().encode(JSON.stringify(personalDataOf(doc, { face: false })));
    const sealed = sealForRecipient(key, plain, eventInfo(c.agent.id, eventId));
    plain.fill(0);
    return sealed;
  };
}

/** A remote read's personal data (face included) sealed to the requester's X25519 key. */
export async function sealReplyPersonalData(doc: DocumentRead, replyPublicKey: Uint8Array, agentId: string, commandId: string): Promise<SealedEnvelope> {
  const plain = new TextEncoder().encode(JSON.stringify(personalDataOf(doc)));
  // Loaded at first use: the X25519 code is only needed for replies with personal data.
  const { replyInfo, sealForRecipientInSlices } = await import("./envelope.ts");
  // In slices: a face image is milliseconds of cipher work the event loop should not wait out.
  const sealed = await sealForRecipientInSlices(replyPublicKey, plain, replyInfo(agentId, commandId));
  plain.fill(0);
  return sealed;
}

/** The personal data of a read, for sealing: MRZ fields, the face image (unless face: false), DG11/DG12. */
function personalDataOf(doc: DocumentRead, opts: { face: boolean } = { face: true }): Record<string, unknown> {
  const m = doc.mrz;
  const face = doc.dg2?.faces[0];
  return {
    mrz: m
      ? {
          format: m.format,
          documentCode: m.documentCode,
          issuingState: m.issuingState,
          documentNumber: m.documentNumber,
          primaryIdentifier: m.primaryIdentifier,
          secondaryIdentifier: m.secondaryIdentifier,
          nationality: m.nationality,
          dateOfBirth: m.dateOfBirth,
          sex: m.sex,
          dateOfExpiry: m.dateOfExpiry,
          optionalData1: m.optionalData1,
          ...(m.optionalData2 !== undefined ? { optionalData2: m.optionalData2 } : {}),
          checkDigitsValid: m.valid,
        }
      : undefined,
    face: face && opts.face ? { format: face.format, width: face.width, height: face.height, image: b64(face.imageBytes) } : undefined,
    dg11: doc.dg11,
    dg12: doc.dg12,
  };
}
