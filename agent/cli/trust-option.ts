/** The `--trust` option shared by `read` and `verify`: repeatable and comma-separated. */
import { UsageError } from "../errors.ts";

/**
 * Takes every --trust value out of argv (repeatable, comma-separated): the generic option parser
 * keeps one value per option.
 */
export function takeTrustOption(argv: string[]): { argv: string[]; trust: string[] } {
  const rest: string[] = [];
  const trust: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    let value: string | undefined;
    if (a === "--trust") {
      value = argv[++i];
      if (value === undefined || value.startsWith("--")) throw new UsageError("option --trust needs a value <dir or file>", "trust");
    } else if (a.startsWith("--trust=")) value = a.slice("--trust=".length);
    else {
      rest.push(a);
      continue;
    }
    for (const part of value.split(",")) if (part.trim()) trust.push(part.trim());
  }
  return { argv: rest, trust };
}

export const TRUST_OPTION_HELP =
  "trust sources: CSCA certificates (PEM/DER), CSCA master lists, CRLs; a directory or a file; repeatable or comma-separated (default: none, so the verdict is at best unverifiable)";
