/**
 * The result of one document read: what `read --json` prints and what the service
 * publishes (after redaction). Raw file bytes and parsed personal data are kept
 * apart from the redactable summary so telemetry never carries them by accident.
 */

import type { FileKey } from "../lds/lds-files.ts";

export type { FileKey } from "../lds/lds-files.ts";

export interface FileSummary {
  bytes: number;
  sha256: string;
  /** APDUs spent on this file (SELECT + READ BINARY, including fallbacks). */
  apdus: number;
  ms: number;
}

export interface StepTiming {
  name: string;
  ms: number;
  apdus: number;
}

export interface Recovery {
  /** Where it happened: step name and file offset. */
  step: string;
  file?: FileKey;
  offset?: number;
  /** Failure class code (see reading/failure-classes.ts), e.g. "RF_TIMEOUT". */
  cause: string;
  /** Layer of the failure class (service, reader, rf-link, secure-messaging, ...). */
  layer?: string;
  /** What was seen: PC/SC code name, status word or SM reason. */
  observed?: string;
  /** How long the failed exchange took before it failed (link losses). */
  failedAfterMs?: number;
  action: string;
  /** Backoff slept before this attempt. */
  backoffMs?: number;
  /** Cost of the recovery: APDUs and wall time (backoff, reconnect, wait, SELECT + BAC). */
  apdus: number;
  ms: number;
  /** READ BINARY block size after the recovery (the link adapts it). */
  blockSize?: number;
  /** false when this attempt failed in turn (the next entry handles that failure). */
  ok?: boolean;
}

export interface FaceSummary {
  format: "jpeg" | "jpeg2000" | "unknown";
  bytes: number;
  width: number;
  height: number;
}

export interface LinkFacts {
  /** Largest plaintext bytes per READ BINARY that the link carried. */
  blockSize: number;
  extendedLength: boolean;
  readBySfi: boolean;
}

/** How the read authenticated (no key material): see reading/authenticate.ts. */
export interface AuthenticationSummary {
  protocol: "PACE" | "BAC";
  password?: "MRZ" | "CAN";
  mapping?: "GM" | "IM" | "CAM";
  group?: string;
  cipher: "3DES" | "AES-128" | "AES-192" | "AES-256";
  paceOffered: string[];
  fallbackReason?: string;
  parameterIdSent?: boolean;
}

export interface ReadSummary {
  reader: string;
  atr: string;
  documentType?: string;
  issuingState?: string;
  files: Partial<Record<FileKey, FileSummary>>;
  face?: FaceSummary;
  hashesMatchSod?: boolean;
  apdus: number;
  durationMs: number;
  steps: StepTiming[];
  recoveries: Recovery[];
  /** The access control used (PACE or BAC). */
  authentication?: AuthenticationSummary;
  link: LinkFacts;
  /** Block-size changes the RF adaptation made (shrunk after losses, grown back after successes). */
  blockChanges?: { from: number | "extended"; to: number | "extended"; why: "losses" | "successes" }[];
}
