/**
 * Minimal, strict command-line parsing: known long options only, typed values, and
 * errors that name the option (never its value, which may be an access key).
 */
import { UsageError } from "../errors.ts";

export interface OptionSpec {
  type: "string" | "boolean" | "number";
  /** One-line description for --help. */
  help: string;
  /** Placeholder shown in --help, e.g. "<YYMMDD>". */
  arg?: string;
  default?: string | number | boolean;
}

export type ParsedOptions = Record<string, string | number | boolean | undefined>;

export function parseOptions(argv: string[], spec: Record<string, OptionSpec>): { options: ParsedOptions; positionals: string[] } {
  const options: ParsedOptions = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith("--")) {
      if (a.startsWith("-") && a !== "-" && a !== "-h") throw new UsageError(`unknown option ${a}: options are long (--name)`);
      if (a === "-h") {
        options.help = true;
        continue;
      }
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const name = a.slice(2, eq >= 0 ? eq : undefined);
    const s = spec[name];
    if (!s) {
      const near = Object.keys(spec).find((k) => k.startsWith(name.slice(0, 3)));
      throw new UsageError(`unknown option --${name}${near ? ` (did you mean --${near}?)` : ""}`, name);
    }
    if (s.type === "boolean") {
      if (eq >= 0) throw new UsageError(`option --${name} takes no value`, name);
      options[name] = true;
      continue;
    }
    let value: string | undefined;
    if (eq >= 0) value = a.slice(eq + 1);
    else {
      value = argv[i + 1];
      i++;
    }
    if (value === undefined || (eq < 0 && value.startsWith("--"))) throw new UsageError(`option --${name} needs a value ${s.arg ?? ""}`.trim(), name);
    if (s.type === "number") {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new UsageError(`option --${name} needs a number`, name);
      options[name] = n;
    } else options[name] = value;
  }
  for (const [k, s] of Object.entries(spec)) if (options[k] === undefined && s.default !== undefined) options[k] = s.default;
  return { options, positionals };
}

export function formatOptions(spec: Record<string, OptionSpec>): string {
  const rows = Object.entries(spec).map(([k, s]) => [`--${k}${s.arg ? ` ${s.arg}` : ""}`, s.help + (s.default !== undefined && s.default !== false ? ` (default: ${s.default})` : "")]);
  const w = Math.max(...rows.map((r) => r[0]!.length));
  return rows.map(([a, h]) => `  ${a!.padEnd(w)}  ${h}`).join("\n");
}
