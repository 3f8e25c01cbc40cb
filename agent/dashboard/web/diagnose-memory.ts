/**
 * The last diagnose result per reader that an operator ran from this page. Agents send a
 * diagnose result only to whoever asked (sealed to that command's reply key), never on their
 * events or health topics, so the dashboard server never has one: the page keeps what it opened,
 * in memory only (never stored, never sent), until the page is reloaded or closed. No DOM here
 * (unit-tested under Bun).
 */

export interface DiagnoseNote {
  /** When the result was opened (ms). */
  at: number;
  /** The reader the agent diagnosed (its PC/SC name, as the result names it). */
  reader: string;
  verdict: string;
  /** Stability and latency in one line. */
  summary: string;
  advice: string[];
}

const notes = new Map<string, DiagnoseNote>();
const listeners = new Set<(agentId: string) => void>();

const key = (agentId: string, reader: string) => `${agentId}\u0000${reader}`;

/** Shapes an opened diagnose result (agent/diagnostics/reader-diagnostics.ts ReaderDiagnosis) into a note; undefined without a reader name. */
export function diagnoseNote(r: Record<string, unknown>, at: number): DiagnoseNote | undefined {
  const reader = (r.reader ?? {}) as Record<string, unknown>;
  if (typeof reader.name !== "string" || reader.name === "") return undefined;
  const s = (r.stability ?? {}) as Record<string, unknown>;
  const l = (s.latencyMs ?? undefined) as Record<string, unknown> | undefined;
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? String(v) : "?");
  const parts = [`${num(s.ok)}/${num(s.exchanges)} exchanges ok`];
  if (typeof s.presenceFlaps === "number" && s.presenceFlaps > 0) parts.push(`${s.presenceFlaps} presence flap(s)`);
  if (l && typeof l.p95 === "number") parts.push(`p95 ${l.p95} ms`);
  return {
    at,
    reader: reader.name,
    verdict: typeof r.verdict === "string" ? r.verdict : "?",
    summary: parts.join(", "),
    advice: Array.isArray(r.advice) ? (r.advice as unknown[]).map(String).slice(0, 20) : [],
  };
}

/** Keeps an opened diagnose result of `agentId` (the newest per reader) and tells the views. */
export function rememberDiagnosis(agentId: string, r: Record<string, unknown>, at = Date.now()): DiagnoseNote | undefined {
  const n = diagnoseNote(r, at);
  if (!n) return undefined;
  notes.set(key(agentId, n.reader), n);
  for (const f of listeners) f(agentId);
  return n;
}

export function lastDiagnosis(agentId: string, reader: string): DiagnoseNote | undefined {
  return notes.get(key(agentId, reader));
}

/** Calls `f` with the agent's id whenever a diagnose result is remembered; returns the unsubscribe. */
export function onDiagnosis(f: (agentId: string) => void): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}
