/**
 * mrtd-agent command line. Every failure ends as one clear line on stderr and a
 * documented exit code; no access key or personal data is ever part of an error.
 */
import { exitCodeFor, EXIT } from "./cli/exit-codes.ts";
import { asTyped } from "./cli/invocation.ts";
import { MrtdError } from "./errors.ts";

export const VERSION = "0.1.0";

// Each command's modules load only when it runs: `run` on a board must not carry what only
// `read`/`verify` use, and `--help` starts faster.
const COMMANDS: Record<string, { help: string; run: (argv: string[]) => Promise<number> }> = {
  read: {
    help: "read a passport or ID card in a reader (BAC, secure messaging, EF.SOD hash check)",
    run: async (argv) => (await import("./cli/read-command.ts")).readCommand(argv),
  },
  readers: {
    help: "list PC/SC readers and whether a card is present",
    run: async (argv) => (await import("./cli/readers-command.ts")).readersCommand(argv),
  },
  diagnose: {
    help: "test the reader and the link to the document: attributes, ATR/ATS, extended APDUs, stability, advice",
    run: async (argv) => (await import("./cli/diagnose-command.ts")).diagnoseCommand(argv),
  },
  verify: {
    help: "verify files saved by read --out, offline (Passive Authentication against --trust)",
    run: async (argv) => (await import("./cli/verify-command.ts")).verifyCommand(argv),
  },
  remote: {
    help: "command an agent over MQTT as an operator: remote read|diagnose|ping --agent <id>, remote open, remote keygen",
    run: async (argv) => (await import("./cli/remote-command.ts")).remoteCommand(argv),
  },
  run: {
    help: "run the edge agent service: watch readers, speak MQTT 5, answer remote commands (--config <file>)",
    run: async (argv) => (await import("./cli/run-command.ts")).runCommand(argv),
  },
  dashboard: {
    help: "run the fleet dashboard: fleet state and history, the web page, Prometheus /metrics (--config <file>)",
    run: async (argv) => (await import("./cli/dashboard-command.ts")).dashboardCommand(argv),
  },
};

export const MAIN_HELP = `mrtd-agent ${VERSION}: reads ICAO 9303 eMRTDs through pcsc-lite

Usage: mrtd-agent <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([k, c]) => `  ${k.padEnd(9)} ${c.help}`)
  .join("\n")}

Run "mrtd-agent <command> --help" for the options of a command.`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === "help" || cmd === "--help" || cmd === "-h") {
    console.log(asTyped(MAIN_HELP));
    return cmd === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (cmd === "--version") {
    console.log(VERSION);
    return EXIT.OK;
  }
  const c = COMMANDS[cmd];
  if (!c) {
    console.error(`mrtd-agent: unknown command "${cmd}"\n\n${asTyped(MAIN_HELP)}`);
    return EXIT.USAGE;
  }
  try {
    return await c.run(rest);
  } catch (e) {
    const code = exitCodeFor(e);
    if (e instanceof MrtdError) {
      const tag = "code" in e && typeof e.code === "string" ? ` [${e.code}]` : "sw" in e && typeof e.sw === "number" ? ` [SW ${e.sw.toString(16).toUpperCase()}]` : "";
      console.error(`mrtd-agent ${cmd}: ${asTyped(e.message)}${tag}`);
    } else {
      console.error(`mrtd-agent ${cmd}: unexpected error: ${(e as Error)?.stack ?? String(e)}`);
    }
    return code;
  }
}

// No top-level await: `bun build --compile --bytecode` (deploy/build-binary.sh) refuses it.
if (import.meta.main) {
  void main(process.argv.slice(2)).then((code) => process.exit(code));
}
