/**
 * How the user started this program, so usage lines show the command they typed: an npm
 * script (`npm run agent -- ...`, `bun run agent ...`), the compiled binary under its own
 * name (`mrtd-agent`, `mrtd-agent-linux-x64`), or the source file (`bun agent/cli.ts`).
 */
import { basename } from "node:path";

/** The command prefix for `script` (a package.json script name) whose source is `sourcePath`. */
export function invocation(script: string, sourcePath: string, env: Record<string, string | undefined> = process.env): string {
  // npm and bun both set these for `<tool> run <script>`; npm needs `--` before the script's options.
  if (env.npm_lifecycle_event === script) return (env.npm_config_user_agent ?? "").startsWith("bun/") ? `bun run ${script}` : `npm run ${script} --`;
  if (import.meta.url.includes("/$bunfs/")) return basename(process.execPath); // compiled: argv[0] is the binary
  return `bun ${sourcePath}`;
}

/** `text` with the `mrtd-agent ` of its usage lines and help hints as the user started the CLI. */
export function asTyped(text: string, env: Record<string, string | undefined> = process.env): string {
  const typed = invocation("agent", "agent/cli.ts", env);
  return text.replace(/(Usage: |Run "|see |a previous ")mrtd-agent /g, `$1${typed} `);
}
