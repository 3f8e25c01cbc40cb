/**
 * Loading the trust sources for verification (CSCA certificates, master lists, CRLs, master-list
 * anchors) from the operator's files; the only file I/O of agent/verification.
 */
import { loadTrustSources } from "../pki/trust-files.ts";
import type { TrustStore } from "../pki/trust-store.ts";

/** Loads the trust sources (ConfigError, exit 2, for a path that does not exist). */
export function loadTrust(paths: string[], masterListAnchors: string[] = []): TrustStore | undefined {
  return paths.length ? loadTrustSources(paths, undefined, { masterListAnchors }) : undefined;
}
