/**
 * Structured logs of the service: one JSON object per line on stdout (journald and container
 * log collectors take stdout), with a level, a message and flat fields.
 *
 * No personal data by construction: callers pass identifiers, counts, codes and timings only
 * (never an access key, MRZ field, name or file content), and field values are limited to
 * primitives and short arrays of them, so a whole object (a read result, an error with
 * attached data) cannot be dumped by accident. An Error passed as a field logs its name and
 * code, not its message or stack: messages of foreign errors may quote their input.
 */
import { MrtdError } from "../errors.ts";
import { CommandError } from "./command-types.ts";
import type { LogLevel } from "./config.ts";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogValue = string | number | boolean | null | undefined;
export type LogFields = Record<string, LogValue | LogValue[] | Error>;

export interface Logger {
  readonly level: LogLevel;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  log(level: LogLevel, msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  level: LogLevel;
  /** Where lines go (default: stdout). */
  write?: (line: string) => void;
  now?: () => Date;
  base?: LogFields;
}

const MAX_STRING = 300;
const MAX_ARRAY = 32;

export function createLogger(opts: LoggerOptions): Logger {
  const write = opts.write ?? ((line: string) => void process.stdout.write(line));
  const now = opts.now ?? (() => new Date());
  const min = RANK[opts.level];
  const make = (base: LogFields): Logger => {
    const log = (level: LogLevel, msg: string, fields?: LogFields) => {
      if (RANK[level] < min) return;
      const line: Record<string, unknown> = { ts: now().toISOString(), level, msg };
      for (const src of [base, fields]) {
        if (!src) continue;
        for (const [k, v] of Object.entries(src)) {
          if (k === "ts" || k === "level" || k === "msg") continue;
          const clean = cleanValue(v);
          if (clean !== undefined) line[k] = clean;
        }
      }
      write(JSON.stringify(line) + "\n");
    };
    return {
      level: opts.level,
      log,
      debug: (m, f) => log("debug", m, f),
      info: (m, f) => log("info", m, f),
      warn: (m, f) => log("warn", m, f),
      error: (m, f) => log("error", m, f),
      child: (fields) => make({ ...base, ...fields }),
    };
  };
  return make(opts.base ?? {});
}

function cleanValue(v: LogFields[string]): unknown {
  if (v instanceof Error) {
    const code = (v as { code?: unknown }).code;
    return typeof code === "string" || typeof code === "number" ? `${v.name} ${code}` : v.name;
  }
  if (Array.isArray(v)) return v.slice(0, MAX_ARRAY).map((x) => cleanValue(x) ?? null);
  if (typeof v === "string") return v.length > MAX_STRING ? v.slice(0, MAX_STRING) + "…" : v;
  if (typeof v === "number") return Number.isFinite(v) ? v : String(v);
  if (typeof v === "boolean" || v === null) return v;
  return undefined;
}

/** A logger that drops everything (tests of parts that log). */
export const silentLogger: Logger = createLogger({ level: "error", write: () => {} });

/**
 * Log fields for an error: its name and code; the message only for the agent's typed errors,
 * whose messages carry no secrets by contract (agent/errors.ts). Foreign errors may quote input.
 */
export function errorFields(e: unknown): LogFields {
  const out: LogFields = { error: e instanceof Error ? e.name : typeof e };
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === "string" || typeof code === "number") out.code = code;
  const sw = (e as { sw?: unknown } | null)?.sw;
  if (typeof sw === "number") out.sw = sw.toString(16).toUpperCase().padStart(4, "0");
  if (e instanceof MrtdError || e instanceof CommandError) out.message = e.message;
  return out;
}
