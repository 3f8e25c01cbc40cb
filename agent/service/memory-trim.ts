/**
 * Releases the resident pages of the agent's own executable that it no longer touches.
 *
 * A compiled Bun program maps its 100 MB executable; start-up (module loading, parsing, TLS
 * and SQLite initialisation, the first JIT compilations) touches some 20 MB of code and
 * constants there that a long-running, mostly idle agent never runs again, yet they stay in
 * its resident set (RssFile) until the kernel reclaims them under memory pressure. After
 * start-up and after each read the agent drops its page-table entries for those pages with
 * madvise(MADV_DONTNEED): what it runs again is faulted back from the page cache (a minor
 * fault, no disk read), so the resident set shows the working set rather than the start-up
 * peak.
 *
 * Only mappings of the executable file that are not writable and hold no private
 * (copy-on-write) pages are touched: for those, MADV_DONTNEED is content-preserving (the
 * next access sees the same bytes from the file). Writable mappings, anonymous memory (the
 * heap, JIT code, stacks) and shared libraries are never touched.
 */
import { readFileSync, readlinkSync } from "node:fs";
import { libc } from "./libc.ts";
import type { Logger } from "./logger.ts";

/** madvise(2) advice: drop the page-table entries; file pages refault from the page cache. */
const MADV_DONTNEED = 4;

export interface FileMapping {
  start: number;
  end: number;
  perms: string;
  path: string;
  /** Resident kB (smaps Rss). */
  rssKb: number;
  /** Private copy-on-write kB (smaps Anonymous): a mapping with any is never trimmed. */
  anonKb: number;
}

/** The mappings listed in a /proc/<pid>/smaps text. */
export function parseSmaps(text: string): FileMapping[] {
  const out: FileMapping[] = [];
  let cur: FileMapping | undefined;
  for (const line of text.split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      cur = { start: parseInt(head[1]!, 16), end: parseInt(head[2]!, 16), perms: head[3]!, path: head[4] ?? "", rssKb: 0, anonKb: 0 };
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    const field = /^(Rss|Anonymous):\s+(\d+) kB/.exec(line);
    if (field) cur[field[1] === "Rss" ? "rssKb" : "anonKb"] = Number(field[2]);
  }
  return out;
}

/** The mappings that may be trimmed: the executable's, read-only, no private pages, resident. */
export function trimmable(mappings: readonly FileMapping[], executable: string): FileMapping[] {
  return mappings.filter((m) => m.path === executable && m.perms[1] !== "w" && m.anonKb === 0 && m.rssKb > 0);
}

export interface TrimResult {
  /** Mappings advised. */
  mappings: number;
  /** Resident bytes of those mappings before the advice. */
  releasedBytes: number;
}

/**
 * Drops the executable's clean, read-only resident pages (see the module comment). Linux
 * only; elsewhere, or when /proc is not mounted, it does nothing and reports 0.
 */
export function trimExecutablePages(): TrimResult {
  if (process.platform !== "linux") return { mappings: 0, releasedBytes: 0 };
  let executable: string;
  let smaps: string;
  try {
    executable = readlinkSync("/proc/self/exe");
    smaps = readFileSync("/proc/self/smaps", "utf8");
  } catch {
    return { mappings: 0, releasedBytes: 0 };
  }
  const { madvise } = libc();
  let mappings = 0;
  let releasedBytes = 0;
  for (const m of trimmable(parseSmaps(smaps), executable)) {
    if (madvise(m.start, m.end - m.start, MADV_DONTNEED) === 0) {
      mappings++;
      releasedBytes += m.rssKb * 1024;
    }
  }
  return { mappings, releasedBytes };
}

export interface ResidentMemory {
  /** VmRSS: all resident pages. */
  residentBytes: number;
  /** RssAnon: heap, stacks, JIT code: the agent's own memory, which only exiting gives back. */
  anonBytes: number;
  /** RssFile: resident pages of the executable and libraries (shared, reclaimable). */
  fileBytes: number;
}

/** The resident set of this process (or of `pid`) from /proc/<pid>/status (Linux); undefined elsewhere. */
export function residentMemory(pid: number | "self" = "self"): ResidentMemory | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
  return { residentBytes: kb("VmRSS"), anonBytes: kb("RssAnon"), fileBytes: kb("RssFile") };
}

/**
 * When the service trims ([memory] trim_executable_pages): once start-up is over, and after
 * each read or diagnosis, once the reply is on its way. A card operation also leaves file
 * buffers and crypto temporaries behind, so a full GC runs first rather than let the heap
 * grow on a board with little memory (card operations are rare; a GC costs ms).
 */
export class MemoryTrimmer {
  readonly #enabled: boolean;
  readonly #log: Logger;
  #releasedBytes = 0;
  #stopped = false;

  constructor(opts: { enabled: boolean; log: Logger }) {
    this.#enabled = opts.enabled;
    this.#log = opts.log;
  }

  /** Bytes released since start (mrtd_memory_trimmed_bytes_total). */
  get releasedBytes(): number {
    return this.#releasedBytes;
  }

  /**
   * After a read or a diagnosis, once the reply is on its way: a card operation leaves file
   * buffers and crypto temporaries behind, so collect them now rather than let the heap grow on
   * a board with little memory, then release the code pages it touched. Each in its own
   * macrotask (a few ms each in the interpreter); `done` runs after both.
   */
  afterCardWork(done?: () => void): void {
    setTimeout(() => {
      Bun.gc(true);
      setTimeout(() => {
        this.trim();
        this.#log.debug("memory after card work", { residentBytes: residentMemory()?.residentBytes, trimmedBytesTotal: this.#releasedBytes });
        done?.();
      }, 0);
    }, 0);
  }

  /**
   * Once start-up is over: JavaScriptCore drops all compiled code (bytecode and JIT code, most of
   * it for functions that ran only to start: configuration, keys, module initialisation) and
   * compiles again only what runs later, collects the whole heap and returns free malloc memory
   * to the system (its shrinkFootprintWhenIdle, through Bun.shrink); then, half a second on,
   * the executable's pages are released. Measured with test/bench/agent.bench.ts: about 1.5 MB
   * less heap when idle and at the peak of a read.
   */
  afterStartUp(): void {
    if (this.#stopped) return;
    Bun.shrink();
    const t = setTimeout(() => this.trim(), 500);
    t.unref();
  }

  /** Releases the executable's pages the agent stopped touching, when enabled. */
  trim(): void {
    if (!this.#enabled || this.#stopped) return;
    try {
      this.#releasedBytes += trimExecutablePages().releasedBytes;
    } catch (e) {
      // Never worth stopping for: the pages stay resident, as without the setting.
      this.#log.debug("memory trim failed", { error: e instanceof Error ? e.message : "unknown" });
    }
  }

  /** No trims once the service is stopping. */
  stop(): void {
    this.#stopped = true;
  }
}
