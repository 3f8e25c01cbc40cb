/**
 * The verdict of a read: the files as read and what the chip did (files it refused, Chip or
 * Active Authentication, the caller's file list) handed to the verification policy.
 */
import type { TrustStore } from "../pki/trust-store.ts";
import type { DocumentRead } from "./read-document.ts";
import { type DocumentVerdict, verifyDocument } from "../verification/verdict.ts";

export function verifyRead(doc: DocumentRead, opts: { trust: TrustStore | undefined; trustSources?: string[]; now?: Date }): DocumentVerdict {
  return verifyDocument({
    files: doc.files,
    sha256: doc.sha256,
    comDataGroups: doc.com?.dataGroups,
    trust: opts.trust,
    trustSources: opts.trustSources,
    issuingState: doc.mrz?.issuingState,
    chip: {
      activeAuthentication: doc.plan.activeAuthentication,
      absent: doc.absent,
      ...(doc.aa ? { aa: doc.aa } : {}),
      ...(doc.chipAuth ? { chipAuth: doc.chipAuth } : {}),
      ...(doc.plan.requested ? { requested: doc.plan.requested } : {}),
    },
    ...(opts.now ? { now: opts.now } : {}),
  });
}
