/**
 * `mrtd-agent run`: the long-running edge service (agent/service/service.ts). Reads and
 * validates the TOML configuration, starts the service, and on SIGTERM/SIGINT stops it
 * cleanly (the read in progress finishes or is aborted at a deadline, `offline` is
 * published, the outbox is closed) and exits 0. Logs are JSON lines on stdout.
 */
// The version from package.json (agent/cli.ts repeats it; importing cli.ts here would be a cycle
// with its top-level await).
import pkg from "../../package.json" with { type: "json" };
import { stopSignal } from "./stop-signal.ts";
import { UsageError } from "../errors.ts";
import { DEFAULT_CONFIG_FILE, loadConfig, redactedConfig } from "../service/config.ts";
import { checkConfigFiles } from "../service/config-files.ts";
import { createLogger } from "../service/logger.ts";
import { AgentService } from "../service/service.ts";
import { formatOptions, parseOptions, type OptionSpec } from "./args.ts";
import { EXIT } from "./exit-codes.ts";
import { loadTestAccessKey } from "../service/test-access-key.ts";
import { asTyped } from "./invocation.ts";

export const RUN_OPTIONS: Record<string, OptionSpec> = {
  config: { type: "string", arg: "<file>", help: `configuration file (TOML)`, default: DEFAULT_CONFIG_FILE },
  check: { type: "boolean", help: "validate the configuration and every file and directory it names, print it with secrets redacted, and exit" },
  help: { type: "boolean", help: "show this help" },
};

export const RUN_HELP = `Usage: mrtd-agent run [--config <file>] [--check]

Runs the edge agent: watches the PC/SC readers and cards, publishes status, reader health,
metrics and events to the MQTT 5 broker, and answers remote read/diagnose/ping commands.
The configuration reference is deploy/config.example.toml (and the README).
Stops cleanly on SIGTERM or SIGINT. With NOTIFY_SOCKET set (systemd Type=notify) it
reports READY=1, WATCHDOG=1 and STOPPING=1.

Options:
${formatOptions(RUN_OPTIONS)}

Exit codes: 0 stopped by a signal (or --check passed), 2 configuration or usage error, 1 other.`;

export async function runCommand(argv: string[]): Promise<number> {
  const { options: o, positionals } = parseOptions(argv, RUN_OPTIONS);
  if (o.help) {
    console.log(asTyped(RUN_HELP));
    return EXIT.OK;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"; see mrtd-agent run --help`);
  const config = loadConfig(String(o.config));
  // Every file and directory the run will open, checked now: a problem is exit 2 with
  // "<file>: <key>: <problem>", never a stack trace at the first use.
  checkConfigFiles(config);
  if (o.check) {
    // The test bench key by the same MRZ rules the agent applies at start (never printed).
    if (config.readers.testKeyFile !== undefined) loadTestAccessKey(config.readers.testKeyFile);
    console.log(JSON.stringify(redactedConfig(config), null, 2));
    return EXIT.OK;
  }
  const log = createLogger({ level: config.agent.logLevel, base: { agentId: config.agent.id } });
  const service = new AgentService({ config, version: pkg.version, log });
  const signal = stopSignal();
  try {
    await service.start();
    await service.stop(await signal.stopped);
  } catch (e) {
    await service.stop("error").catch(() => undefined);
    throw e;
  } finally {
    signal.dispose();
  }
  return EXIT.OK;
}
