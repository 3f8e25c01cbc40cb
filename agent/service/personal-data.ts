/**
 * Personal data leaving the agent, only ever sealed (envelope.ts, by the agent's own key,
 * agent-key.ts): a remote read's result (report with the MRZ, DG11/DG12, the face image) is
 * sealed whole to the requester's key by the dispatcher; opt-in (telemetry.include_personal_data),
 * a read event's MRZ and DG11/DG12 are sealed to the fleet's key. Everything else the agent
 * sends (events, health, metrics, logs) carries sizes, timings, codes and verdicts only.
 */
import { ConfigError } from "../errors.ts";
import type { DocumentRead } from "../reading/read-document.ts";
import type { AgentKey } from "./agent-key.ts";
import type { AgentConfig } from "./config.ts";
import { EnvelopeError, parsePublicKey, type SealedEnvelope } from "./envelope.ts";

/** Seals an event's personal data to the fleet's key. */
export type EventSealer = (doc: DocumentRead, eventId: string) => SealedEnvelope;

/**
 * The event sealer of telemetry.include_personal_data, undefined when it is off. The key is
 * checked here: a low-order point fails at start, not at the first read.
 */
export function loadEventSealer(c: AgentConfig, agentKey: AgentKey): EventSealer | undefined {
  if (!c.telemetry.includePersonalData || !c.telemetry.personalDataPublicKey) return undefined;
  let key: Uint8Array;
  try {
    key = parsePublicKey(c.telemetry.personalDataPublicKey, "key");
  } catch (e) {
    if (!(e instanceof EnvelopeError)) throw e;
    throw new ConfigError(`${c.file}: telemetry.personal_data_public_key: not a usable X25519 public key`, { file: c.file, key: "telemetry.personal_data_public_key" });
  }
  return (doc, eventId) => {
    const plain = new TextEncoder().encode(JSON.stringify(personalDataOf(doc)));
    const sealed = agentKey.sealEvent(eventId, key, plain);
    plain.fill(0);
    return sealed;
  };
}

/** The personal data of a read event, for sealing: MRZ fields and DG11/DG12 (never the face image). */
function personalDataOf(doc: DocumentRead): Record<string, unknown> {
  const m = doc.mrz;
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
    dg11: doc.dg11,
    dg12: doc.dg12,
  };
}
