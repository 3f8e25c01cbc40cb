/**
 * The main job for a newcomer: `bun run demo`. Uses a real reader when one holds a card
 * and an access key is given (--doc/--dob/--expiry); otherwise starts pcscd (if needed)
 * and the virtual passport, reads it through the real PC/SC stack exactly as a board
 * would, prints the result, and stops what it started.
 */
import { main as cli } from "../agent/cli.ts";
import { PcscClient, SCARD_STATE_UNAWARE } from "../agent/transport/pcsc.ts";
import { ensurePcscd } from "./support/pcscd.ts";
import { startVirtualPassport } from "./virtual-passport/index.ts";
import { describeProfiles } from "./virtual-passport/fixtures/index.ts";

const VIRTUAL_READER = "Virtual PCD 00 00";
const args = process.argv.slice(2);

if (args.includes("--help")) {
  console.log(`Usage: bun run demo [-- --profile NAME] [-- --doc N --dob YYMMDD --expiry YYMMDD]

Reads a passport end to end through pcscd. With an access key and a card in a real
reader, reads that card; otherwise reads the virtual passport (ICAO specimen data).
Other arguments are passed to "mrtd-agent read" (e.g. --json, --trace, --files DG1).

Profiles: ${describeProfiles()
    .map((p) => `\n  ${p.name.padEnd(9)} ${p.description}`)
    .join("")}`);
  process.exit(0);
}

function take(name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
}

const profile = take("--profile") ?? "td3";
const hasKey = args.includes("--doc");

const pcscd = await ensurePcscd();
if (pcscd.started) console.error("demo: started pcscd");
let code = 1;
let passport: Awaited<ReturnType<typeof startVirtualPassport>> | undefined;
try {
  const real = await realReaderWithCard();
  if (real && hasKey) {
    console.error(`demo: reading the card in ${real}`);
    code = await cli(["read", "--reader", real, ...args]);
  } else {
    if (real) console.error(`demo: a card is in ${real}, but no access key was given (--doc, --dob, --expiry): using the virtual passport`);
    passport = await startVirtualPassport({ profile, port: 35963 });
    console.error(`demo: virtual passport "${profile}" (ICAO specimen ERIKSSON ANNA MARIA) is in ${VIRTUAL_READER}`);
    const key = hasKey ? [] : ["--doc", "L898902C3", "--dob", "740812", "--expiry", "120415"];
    code = await cli(["read", "--reader", VIRTUAL_READER, ...key, ...args]);
  }
} finally {
  await passport?.stop();
  await pcscd.stop();
  if (pcscd.started) console.error("demo: stopped pcscd");
}
process.exit(code);

async function realReaderWithCard(): Promise<string | undefined> {
  const client = await PcscClient.open();
  try {
    const names = (await client.listReaders()).filter((n) => !n.startsWith("Virtual PCD"));
    if (names.length === 0) return undefined;
    const states = await client.getStatusChange(names.map((name) => ({ name, currentState: SCARD_STATE_UNAWARE })), 0);
    return states.find((s) => s.present)?.name;
  } finally {
    await client.close();
  }
}
