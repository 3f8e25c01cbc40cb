/** `mrtd-agent readers`: list PC/SC readers and the card state of each. */
import { UsageError } from "../errors.ts";
import { PcscClient, SCARD_STATE_EMPTY, SCARD_STATE_INUSE, SCARD_STATE_MUTE, SCARD_STATE_UNAWARE } from "../transport/pcsc.ts";
import { formatOptions, parseOptions, type OptionSpec } from "./args.ts";
import { EXIT } from "./exit-codes.ts";
import { asTyped } from "./invocation.ts";
import { spaced } from "./read-command.ts";

const OPTIONS: Record<string, OptionSpec> = {
  json: { type: "boolean", help: "print JSON" },
  help: { type: "boolean", help: "show this help" },
};

export async function readersCommand(argv: string[]): Promise<number> {
  const { options, positionals } = parseOptions(argv, OPTIONS);
  if (options.help) {
    console.log(asTyped(`Usage: mrtd-agent readers [--json]\n\nLists the PC/SC readers pcscd knows and whether each holds a card.\n\nOptions:\n${formatOptions(OPTIONS)}`));
    return EXIT.OK;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const client = await PcscClient.open();
  try {
    const names = await client.listReaders();
    const states = names.length ? await client.getStatusChange(names.map((name) => ({ name, currentState: SCARD_STATE_UNAWARE })), 0) : [];
    const rows = states.map((s) => ({
      reader: s.name,
      card: (s.eventState & SCARD_STATE_MUTE) !== 0 ? "mute" : s.present ? "present" : (s.eventState & SCARD_STATE_EMPTY) !== 0 ? "empty" : "unknown",
      inUse: (s.eventState & SCARD_STATE_INUSE) !== 0,
      atr: s.present ? spaced(s.atr) : undefined,
    }));
    if (options.json) console.log(JSON.stringify(rows, null, 2));
    else if (rows.length === 0) console.log("no readers (is the reader plugged in? pcsc_scan shows what pcscd sees)");
    else for (const r of rows) console.log(`${r.reader}: ${r.card}${r.inUse ? " (in use)" : ""}${r.atr ? `  ATR ${r.atr}` : ""}`);
    return EXIT.OK;
  } finally {
    await client.close();
  }
}
