/**
 * `bun run virtual-passport`: puts a virtual ICAO 9303 passport into vsmartcard's vpcd reader
 * and answers APDUs until SIGINT/SIGTERM. Logs sizes and status words only, never data.
 */
import { hex4 } from "../../agent/errors.ts";
import { commandName } from "../../agent/iso7816/apdu.ts";
import { invocation } from "../../agent/cli/invocation.ts";
import { PROFILE_NAMES, profileList } from "./fixtures/index.ts";
import { DEFAULT_PROFILE, DEFAULT_VPCD_PORT, startVirtualPassport, type ApduEvent, type StartOptions } from "./index.ts";
import { REALISTIC_LATENCY } from "./options.ts";

const HELP = `Usage: ${invocation("virtual-passport", "test/virtual-passport/main.ts")} [options]

Inserts a virtual ICAO 9303 eMRTD (BAC and/or PACE, 3DES or AES secure messaging, Active
or Chip Authentication, as the profile says) into the vpcd reader
("Virtual PCD 00 00" on port ${DEFAULT_VPCD_PORT}) and serves it until Ctrl-C.

Options:
  --profile NAME        passport to serve (default ${DEFAULT_PROFILE})
  --host H              vpcd host (default 127.0.0.1)
  --port N              vpcd port (default ${DEFAULT_VPCD_PORT}; 35964 = "Virtual PCD 00 01")
  --max-le N            largest Ne served per READ BINARY (default 65536, or 256 with --no-extended)
  --no-extended         no extended-length APDUs (they get 6700; the ATR does not announce them)
  --le-too-large SW     answer to a too-large Le: 6700 (default) or 6Cxx
  --latency KIND        fast (default) or realistic (ISO 14443 air time + chip turnaround)
  --bit-rate N          realistic latency bit rate (default ${bitRateOf(REALISTIC_LATENCY)})
  --turnaround-ms N     realistic latency chip turnaround per APDU (default ${turnaroundOf(REALISTIC_LATENCY)})
  --verbose             one line per APDU: INS, lengths, status word, time
  --help                this text

Profiles:
`;

function bitRateOf(l: typeof REALISTIC_LATENCY): number {
  return l.kind === "realistic" ? l.bitRate : 0;
}
function turnaroundOf(l: typeof REALISTIC_LATENCY): number {
  return l.kind === "realistic" ? l.turnaroundMs : 0;
}

interface Cli {
  start: StartOptions;
  verbose: boolean;
  help: boolean;
}

function parseArgs(argv: string[]): Cli {
  const start: StartOptions = {};
  let verbose = false;
  let help = false;
  let latency: string | undefined;
  let bitRate: number | undefined;
  let turnaroundMs: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    const int = (min: number, max: number): number => {
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${arg} must be an integer ${min}..${max}, got "${v}"`);
      return n;
    };
    switch (arg) {
      case "--profile": {
        const p = value();
        if (!PROFILE_NAMES.includes(p)) throw new Error(`unknown profile "${p}"; valid: ${PROFILE_NAMES.join(", ")}`);
        start.profile = p;
        break;
      }
      case "--host":
        start.host = value();
        break;
      case "--port":
        start.port = int(1, 65535);
        break;
      case "--max-le":
        start.maxLe = int(1, 65536);
        break;
      case "--no-extended":
        start.extendedLength = false;
        break;
      case "--le-too-large": {
        const v = value();
        if (v !== "6700" && v !== "6Cxx") throw new Error(`--le-too-large must be 6700 or 6Cxx, got "${v}"`);
        start.leTooLargeSw = v;
        break;
      }
      case "--latency":
        latency = value();
        if (latency !== "fast" && latency !== "realistic") throw new Error(`--latency must be fast or realistic, got "${latency}"`);
        break;
      case "--bit-rate":
        bitRate = int(1, 100_000_000);
        break;
      case "--turnaround-ms":
        turnaroundMs = int(0, 60_000);
        break;
      case "--verbose":
      case "-v":
        verbose = true;
        break;
      case "--help":
      case "-h":
        help = true;
        break;
      default:
        throw new Error(`unknown option ${arg} (see --help)`);
    }
  }
  if (latency === "realistic" || bitRate !== undefined || turnaroundMs !== undefined) {
    if (latency === "fast") throw new Error("--bit-rate/--turnaround-ms need --latency realistic");
    start.latency = {
      kind: "realistic",
      bitRate: bitRate ?? bitRateOf(REALISTIC_LATENCY),
      turnaroundMs: turnaroundMs ?? turnaroundOf(REALISTIC_LATENCY),
    };
  }
  if (start.extendedLength === false && start.maxLe !== undefined && start.maxLe > 256) {
    throw new Error("--max-le above 256 needs extended length (drop --no-extended)");
  }
  return { start, verbose, help };
}

function apduLine(e: ApduEvent): string {
  const name = commandName(e.ins).padEnd(21);
  return `${e.secure ? "SM " : "   "}${name} cmd ${String(e.commandLength).padStart(5)} B  resp ${String(e.responseLength).padStart(5)} B  SW ${hex4(e.sw)}  ${e.ms.toFixed(2)} ms`;
}

async function main(): Promise<number> {
  let cli: Cli;
  try {
    cli = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`virtual-passport: ${(err as Error).message}`);
    return 2;
  }
  if (cli.help) {
    console.log(HELP + profileList());
    return 0;
  }
  const started = await startVirtualPassport({ ...cli.start, onApdu: cli.verbose ? (e) => console.log(apduLine(e)) : undefined }).catch((err: unknown) => {
    console.error(`virtual-passport: could not insert the card: ${(err as Error).message} (is pcscd with vsmartcard-vpcd running?)`);
    return undefined;
  });
  if (!started) return 1;
  const o = started.options;
  const latency = o.latency.kind === "fast" ? "fast" : `realistic (${o.latency.bitRate} bit/s, ${o.latency.turnaroundMs} ms turnaround)`;
  console.log(
    `virtual-passport: profile ${started.profile ?? "custom"} in vpcd ${cli.start.host ?? "127.0.0.1"}:${cli.start.port ?? DEFAULT_VPCD_PORT}; ` +
      `extended length ${o.extendedLength ? "on" : "off"}, max Le ${o.maxLe}, too-large Le -> ${o.leTooLargeSw}, latency ${latency}. Ctrl-C to remove.`,
  );

  let stopping = false;
  let reinserting = false;
  // vpcd drops the card when pcscd restarts: put it back once the reader listens again.
  const watchdog = setInterval(() => {
    if (stopping || reinserting || started.inserted) return;
    reinserting = true;
    started
      .reinsert()
      .then(
        () => console.log("virtual-passport: reinserted after the reader went away"),
        () => undefined,
      )
      .finally(() => (reinserting = false));
  }, 1000);

  await new Promise<void>((resolve) => {
    const onSignal = () => {
      stopping = true;
      resolve();
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  });
  clearInterval(watchdog);
  await started.stop();
  console.log("virtual-passport: card removed");
  return 0;
}

process.exit(await main());
