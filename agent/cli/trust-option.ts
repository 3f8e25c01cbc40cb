/**
 * The trust options shared by `read` and `verify`, repeatable and comma-separated: `--trust`
 * (CSCA certificates, master lists, CRLs) and `--master-list-anchor` (CSCAs trusted to vouch for
 * master lists).
 */
import { UsageError } from "../errors.ts";

/**
 * Takes every --trust and --master-list-anchor value out of argv: the generic option parser keeps
 * one value per option.
 */
export function takeTrustOption(argv: string[]): { argv: string[]; trust: string[]; masterListAnchors: string[] } {
  const rest: string[] = [];
  const found: Record<"trust" | "master-list-anchor", string[]> = { trust: [], "master-list-anchor": [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    const name = (["trust", "master-list-anchor"] as const).find((n) => a === `--${n}` || a.startsWith(`--${n}=`));
    if (!name) {
      rest.push(a);
      continue;
    }
    let value: string | undefined;
    if (a === `--${name}`) {
      value = argv[++i];
      if (value === undefined || value.startsWith("--")) throw new UsageError(`option --${name} needs a value <dir or file>`, name);
    } else value = a.slice(`--${name}=`.length);
    for (const part of value.split(",")) if (part.trim()) found[name].push(part.trim());
  }
  if (found["master-list-anchor"].length && !found.trust.length) throw new UsageError("--master-list-anchor needs --trust with the master lists it vouches for", "master-list-anchor");
  return { argv: rest, trust: found.trust, masterListAnchors: found["master-list-anchor"] };
}

export const TRUST_OPTION_HELP =
  "trust sources: CSCA certificates (PEM/DER), CSCA master lists, CRLs; a directory or a file; repeatable or comma-separated (default: none, so the verdict is at best unverifiable)";

export const MASTER_LIST_ANCHOR_HELP =
  "CSCA certificates trusted to vouch for master lists: a master list in --trust is accepted only when one of them issued its signer (default: none, so master lists are taken on the operator's word and the verdict says so); repeatable or comma-separated";
