/**
 * `mrtd-agent dashboard`: the fleet dashboard service (agent/dashboard/). Reads and validates
 * its TOML configuration, connects to the broker as an operator, serves the page, and stops
 * cleanly on SIGTERM/SIGINT. Logs are JSON lines on stdout.
 */
import { UsageError } from "../errors.ts";
import { stopSignal } from "./stop-signal.ts";
import { loadDashboardConfig } from "../dashboard/config.ts";
import { formatOptions, parseOptions, type OptionSpec } from "./args.ts";
import { EXIT } from "./exit-codes.ts";

export const DASHBOARD_OPTIONS: Record<string, OptionSpec> = {
  config: { type: "string", arg: "<file>", help: "configuration file (TOML)", default: "/etc/mrtd-agent/dashboard.toml" },
  check: { type: "boolean", help: "validate the configuration, print it (without password hashes), and exit" },
  help: { type: "boolean", help: "show this help" },
};

export const DASHBOARD_HELP = `Usage: mrtd-agent dashboard [--config <file>] [--check]

Runs the fleet dashboard: subscribes to every agent's status, reader health, metrics and
events as an operator, keeps fleet state and history (bun:sqlite, or PostgreSQL shared by
several instances), and serves the page, its live updates and Prometheus /metrics over HTTP.
The configuration reference is
deploy/dashboard.example.toml (and the README's Dashboard section).

Options:
${formatOptions(DASHBOARD_OPTIONS)}

Exit codes: 0 stopped by a signal (or --check passed), 2 configuration or usage error, 1 other.`;

export async function dashboardCommand(argv: string[]): Promise<number> {
  const { options: o, positionals } = parseOptions(argv, DASHBOARD_OPTIONS);
  if (o.help) {
    console.log(DASHBOARD_HELP);
    return EXIT.OK;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"; see mrtd-agent dashboard --help`);
  const config = loadDashboardConfig(String(o.config));
  if (o.check) {
    console.log(JSON.stringify({ ...config, users: config.users.map((u) => ({ name: u.name, role: u.role })) }, null, 2));
    return EXIT.OK;
  }
  const { startDashboard } = await import("../dashboard/dashboard.ts");
  const signal = stopSignal();
  try {
    const d = await startDashboard(config);
    await signal.stopped;
    await d.stop();
  } finally {
    signal.dispose();
  }
  return EXIT.OK;
}
