/**
 * `mrtd-agent remote`: the operator's side of the command channel.
 *
 *   remote read|diagnose|ping --agent <id>   send a command over MQTT (5, or 3.1.1 with
 *                                            --mqtt-protocol) and print the answer
 *   remote open <file>                       open the sealed parts of a saved reply or event
 *   remote keygen <file>                     make an operator HPKE key pair
 *
 * A read's access key is sealed to the agent's long-term public key (taken from its retained
 * `status` birth and pinned on first use, known-agents.ts) from the operator's HPKE key, bound
 * to the agent id, the command id and an expiry (agent/service/sealed-access-key.ts). The
 * reply's result comes back sealed to the operator's key from the agent's key; it is opened
 * only with the pinned agent key, so a reply forged by anyone else is refused. Progress goes to
 * stderr; the report on stdout is the one a local `mrtd-agent read` prints, with its exit codes.
 * Commands are built and replies matched by the agent's own wire module (command-wire.ts).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { UsageError } from "../errors.ts";
import { parseCertificate } from "../pki/x509.ts";
import { accessKeyFrom as mrzKeyFrom, canFrom } from "./access-key-options.ts";
import { b64, EnvelopeError, looksSealed, open, parsePublicKey, type SealContext } from "../service/envelope.ts";
import { createPrivateKeyFile, KeyFileError, loadOrCreatePrivateKeyFile, readPrivateKeyFile, type KeyFilePair } from "../service/key-file.ts";
import { sealAccessKey } from "../service/sealed-access-key.ts";
import { MAX_TOPIC_BYTES } from "../service/topics.ts";
import { topicPrefixProblem } from "../service/config.ts";
import { buildCommandPublish, MQTT_PROTOCOLS, protocolVersion, replyCorrelation, type MqttProtocol, type WirePublish } from "../service/command-wire.ts";
import { formatOptions, parseOptions, type OptionSpec, type ParsedOptions } from "./args.ts";
import { EXIT } from "./exit-codes.ts";
import { defaultKnownAgentsFile, defaultOperatorKeyFile, KnownAgents } from "./known-agents.ts";

const DEFAULT_PREFIX = "mrtd/v1";
const LEVEL = /^[A-Za-z0-9._-]{1,64}$/;

const CONNECTION_OPTIONS: Record<string, OptionSpec> = {
  agent: { type: "string", arg: "<id>", help: "the agent to command (its agent.id)" },
  broker: { type: "string", arg: "<url>", help: "broker URL, mqtts://host:8883 (or [mqtt] url in --config)" },
  "mqtt-protocol": { type: "string", arg: "<5|3.1.1>", help: "MQTT protocol, as the agents' mqtt.protocol (default 5; with 3.1.1 the reply topic, correlation and expiry travel in the command's payload)" },
  ca: { type: "string", arg: "<file>", help: "CA bundle (PEM) of the broker's certificate" },
  cert: { type: "string", arg: "<file>", help: "the operator's client certificate (PEM); its CN is the MQTT client id and requester id" },
  key: { type: "string", arg: "<file>", help: "the private key (PEM) of --cert" },
  "operator-key": { type: "string", arg: "<file>", help: "the operator's HPKE private key (mrtd-agent remote keygen); default ~/.config/mrtd-agent/operator.key, made on first use" },
  config: { type: "string", arg: "<file>", help: "operator config (TOML: [mqtt] url, protocol, prefix, ca, client_cert, client_key, client_id; [operator] key_file, known_agents, requester); flags win" },
  prefix: { type: "string", arg: "<topic prefix>", help: `topic prefix (default ${DEFAULT_PREFIX})` },
  "client-id": { type: "string", arg: "<id>", help: "MQTT client id (default: the CN of --cert)" },
  requester: { type: "string", arg: "<id>", help: "requester id: replies go to <prefix>/<agent>/reply/<requester> (default: the client id; 1-64 of A-Z a-z 0-9 . _ -)" },
  "known-agents": { type: "string", arg: "<file>", help: "pinned agent keys (default ~/.config/mrtd-agent/known-agents)" },
  "agent-key": { type: "string", arg: "<base64>", help: "expect this agent public key instead of the pinned one (the birth must carry the same)" },
  timeout: { type: "number", arg: "<seconds>", help: "give up waiting for the final reply after this long (default: per command)" },
  json: { type: "boolean", help: "print one JSON object instead of the human report (no progress)" },
  help: { type: "boolean", help: "show this help" },
};

const READ_OPTIONS: Record<string, OptionSpec> = {
  doc: { type: "string", arg: "<number>", help: "document number as printed in the MRZ" },
  dob: { type: "string", arg: "<YYMMDD>", help: "date of birth" },
  expiry: { type: "string", arg: "<YYMMDD>", help: "date of expiry" },
  "key-file": { type: "string", arg: "<file>", help: "the access key from a file (one line: NUMBER YYMMDD YYMMDD), kept out of the process list" },
  can: { type: "string", arg: "<6 digits>", help: "card access number (PACE), instead of --doc/--dob/--expiry; sealed to the agent like any access key" },
  reader: { type: "string", arg: "<name part>", help: "use the agent's first reader whose name contains this text" },
  files: { type: "string", arg: "<list>", help: "files to read, e.g. COM,SOD,DG1,DG2 (default: the agent's, COM,SOD,DG1,DG2)" },
  wait: { type: "number", arg: "<seconds>", help: "how long the agent waits for a card", default: 15 },
  "no-personal-data": { type: "boolean", help: "ask only for the verdict and sizes: no MRZ, DG11/DG12 or face in the reply" },
  save: { type: "string", arg: "<file>", help: "also write the final reply as received (sealed) to this file, for remote open" },
  "face-out": { type: "string", arg: "<file>", help: "write the face image to this file" },
  ...CONNECTION_OPTIONS,
};

const DIAGNOSE_OPTIONS: Record<string, OptionSpec> = {
  reader: { type: "string", arg: "<name part>", help: "use the agent's first reader whose name contains this text" },
  count: { type: "number", arg: "<N>", help: "exchanges in the stability loop", default: 10 },
  ...CONNECTION_OPTIONS,
};

const OPEN_OPTIONS: Record<string, OptionSpec> = {
  "operator-key": CONNECTION_OPTIONS["operator-key"]!,
  "known-agents": CONNECTION_OPTIONS["known-agents"]!,
  "agent-key": { type: "string", arg: "<base64>", help: "the agent's public key (default: the one pinned for the envelope's agent)" },
  agent: { type: "string", arg: "<id>", help: "refuse envelopes sealed by any other agent" },
  config: CONNECTION_OPTIONS.config!,
  help: CONNECTION_OPTIONS.help!,
};

const EXIT_TEXT = `Exit codes (as mrtd-agent read): 0 done (read: verdict verified or unverifiable), 2 usage or a
command the agent refused as malformed, 3 no reader or no card at the agent, 4 access denied
(wrong access key), 5 transport failure (card lost, reader error; diagnose: unreliable), 6 card
or data error, 7 read complete but the verdict is failed, 1 anything else (broker unreachable,
agent offline or unknown, no reply in time, BUSY, EXPIRED, a reply not sealed by the agent).`;

export const REMOTE_HELP = `Usage: mrtd-agent remote <read|diagnose|ping|open|keygen> [options]

Commands an agent over MQTT 5, as an operator:
  read      read the document on one of the agent's readers; the access key is sealed to
            the agent (HPKE), the reply sealed to you and checked to come from the agent
  diagnose  the reader diagnostics of mrtd-agent diagnose, at the agent
  ping      is the agent there, and does its key answer
  open      open the sealed parts of a saved reply or read event (remote open <file>)
  keygen    make an operator HPKE key pair (remote keygen <file>): prints the public key

The agent's public key comes from its retained status birth and is pinned on first use in
~/.config/mrtd-agent/known-agents; a later birth with another key is refused.

Connection options (read, diagnose, ping):
${formatOptions(CONNECTION_OPTIONS)}

Run "mrtd-agent remote <command> --help" for a command's options.

${EXIT_TEXT}`;

const HELPS: Record<string, string> = {
  read: `Usage: mrtd-agent remote read --agent <id> --doc <number> --dob <YYMMDD> --expiry <YYMMDD> [options]

Reads the document on the agent's reader: prints the report mrtd-agent read prints (document,
holder, face, SOD, verdict), or its JSON with --json.

Options:
${formatOptions(READ_OPTIONS)}

${EXIT_TEXT}`,
  diagnose: `Usage: mrtd-agent remote diagnose --agent <id> [--reader <name part>] [--count N] [options]

Options:
${formatOptions(DIAGNOSE_OPTIONS)}

${EXIT_TEXT}`,
  ping: `Usage: mrtd-agent remote ping --agent <id> [options]

Options:
${formatOptions(CONNECTION_OPTIONS)}

${EXIT_TEXT}`,
  open: `Usage: mrtd-agent remote open <file | -> [options]

Opens every sealed part of a saved command reply (its "sealed" result) or read event (its
"personalData") with the operator key, checking that it was sealed by the agent's key (pinned,
or --agent-key) for that agent, that reply or event id, and that kind. Prints the JSON with
the sealed parts replaced by their contents. Exit 1 if any does not open.

Options:
${formatOptions(OPEN_OPTIONS)}`,
  keygen: `Usage: mrtd-agent remote keygen <file>

Makes an X25519 key pair for HPKE: writes the private key (base64, mode 0600; refuses to
overwrite) and prints the public key, for telemetry.personal_data_public_key or to check.`,
};

export async function remoteCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    console.log(REMOTE_HELP);
    return sub === undefined ? EXIT.USAGE : EXIT.OK;
  }
  switch (sub) {
    case "read":
    case "diagnose":
    case "ping":
      try {
        return await commandRun(sub, rest);
      } catch (e) {
        if (!(e instanceof BrokerError)) throw e;
        const json = rest.includes("--json");
        return fail(json, "BROKER", e.message);
      }
    case "open":
      return openCommand(rest);
    case "keygen":
      return keygenCommand(rest);
    default:
      throw new UsageError(`unknown remote command "${sub.slice(0, 32)}": read, diagnose, ping, open or keygen`);
  }
}

// ---------------------------------------------------------------------------------------------
// keygen, open

function keygenCommand(argv: string[]): number {
  const { options: o, positionals } = parseOptions(argv, { help: CONNECTION_OPTIONS.help! });
  if (o.help) {
    console.log(HELPS.keygen);
    return EXIT.OK;
  }
  if (positionals.length !== 1) throw new UsageError("remote keygen needs one file name; see mrtd-agent remote keygen --help");
  const kp = keyFile(() => createPrivateKeyFile(positionals[0]!), "keygen");
  kp.privateKey.fill(0);
  console.log(b64(kp.publicKey));
  return EXIT.OK;
}

function openCommand(argv: string[]): number {
  const { options: o0, positionals } = parseOptions(argv, OPEN_OPTIONS);
  if (o0.help) {
    console.log(HELPS.open);
    return EXIT.OK;
  }
  if (positionals.length !== 1) throw new UsageError("remote open needs one file (or - for stdin); see mrtd-agent remote open --help");
  const o = withConfig(o0);
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(positionals[0] === "-" ? 0 : positionals[0]!, "utf8"));
  } catch (e) {
    throw new UsageError(`${positionals[0]}: ${(e as NodeJS.ErrnoException).code ? `cannot read (${(e as NodeJS.ErrnoException).code})` : "not JSON"}`);
  }
  const opKey = keyFile(() => readPrivateKeyFile(str(o, "operator-key") ?? defaultOperatorKeyFile()), "operator-key");
  const known = new KnownAgents(str(o, "known-agents") ?? defaultKnownAgentsFile());
  const top = (typeof doc === "object" && doc !== null ? doc : {}) as Record<string, unknown>;
  const places: Array<{ key: "sealed" | "personalData"; kind: "reply" | "event"; id: unknown }> = [
    { key: "sealed", kind: "reply", id: top.id },
    { key: "personalData", kind: "event", id: top.eventId },
  ];
  let opened = 0;
  const out: Record<string, unknown> = { ...top };
  for (const p of places) {
    const env = top[p.key];
    if (env === undefined) continue;
    if (!looksSealed(env)) throw new UsageError(`${p.key} is not a sealed envelope of this version`);
    if (typeof p.id !== "string") throw new UsageError(`the ${p.kind} has no ${p.kind === "reply" ? "id" : "eventId"} to check the envelope against`);
    const agentId = env.agent;
    if (p.kind === "event" && top.agentId !== agentId) return refuse(`the event's agentId and its envelope's agent differ`);
    const wanted = str(o, "agent");
    if (wanted !== undefined && agentId !== wanted) return refuse(`sealed by agent ${agentId.slice(0, 64)}, not ${wanted}`);
    const from = senderKey(o, known, agentId);
    const ctx: SealContext = { kind: p.kind, agentId, id: p.id };
    try {
      const plain = open({ key: opKey.privateKey, from, envelope: env, expect: ctx });
      out[p.key] = JSON.parse(new TextDecoder().decode(plain));
      opened++;
    } catch (e) {
      if (e instanceof EnvelopeError) return refuse(`${p.key}: ${e.message}`);
      throw e;
    }
  }
  opKey.privateKey.fill(0);
  if (opened === 0) return refuse("nothing sealed in this file (no sealed result, no personalData)");
  console.log(JSON.stringify(out, null, 2));
  return EXIT.OK;
}

function refuse(message: string): number {
  console.error(`mrtd-agent remote: ${message}`);
  return EXIT.OTHER;
}

/** The agent's public key an opener checks against: --agent-key, else the pinned one. */
function senderKey(o: ParsedOptions, known: KnownAgents, agentId: string): Uint8Array {
  const given = str(o, "agent-key");
  if (given !== undefined) return publicKeyArg(given, "--agent-key");
  const pinned = known.get(agentId);
  if (!pinned) throw new UsageError(`no key pinned for agent ${agentId.slice(0, 64)} in ${known.file}: talk to it once with remote ping, or give --agent-key`);
  return publicKeyArg(pinned.key, `${known.file} line ${pinned.line}`);
}

function publicKeyArg(text: string, where: string): Uint8Array {
  try {
    return parsePublicKey(text, where);
  } catch (e) {
    if (e instanceof EnvelopeError) throw new UsageError(e.message);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// read, diagnose, ping

type CommandName = "read" | "diagnose" | "ping";

interface ReplyMessage {
  topic: string;
  json: Record<string, unknown>;
  text: string;
}

async function commandRun(name: CommandName, argv: string[]): Promise<number> {
  const spec = name === "read" ? READ_OPTIONS : name === "diagnose" ? DIAGNOSE_OPTIONS : CONNECTION_OPTIONS;
  const { options: o0, positionals } = parseOptions(argv, spec);
  if (o0.help) {
    console.log(HELPS[name]);
    return EXIT.OK;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]!.slice(0, 32)}"; see mrtd-agent remote ${name} --help`);
  const o = withConfig(o0);
  const json = o.json === true;
  const agentId = str(o, "agent");
  if (agentId === undefined) throw new UsageError("missing --agent <id>: the agent to command", "agent");
  if (!LEVEL.test(agentId)) throw new UsageError("--agent must be 1-64 of A-Z a-z 0-9 . _ -", "agent");
  const prefix = str(o, "prefix") ?? DEFAULT_PREFIX;
  const prefixProblem = topicPrefixProblem(prefix);
  if (prefixProblem) throw new UsageError(`--prefix ${prefixProblem}`, "prefix");
  protocolOf(o); // checked before the network
  // Everything about the request is checked before the network: a bad access key is exit 2.
  const accessKey = name === "read" ? accessKeyFrom(o) : undefined;
  const files = name === "read" ? filesFrom(o) : undefined;
  const wait = name === "read" ? Number(o.wait) : 0;
  if (name === "read" && (!Number.isInteger(wait) || wait < 1 || wait > 600)) throw new UsageError("--wait must be 1..600 seconds", "wait");
  const count = name === "diagnose" ? Number(o.count) : 0;
  if (name === "diagnose" && (!Number.isInteger(count) || count < 1 || count > 1000)) throw new UsageError("--count must be 1..1000", "count");
  const timeoutS = o.timeout !== undefined ? Number(o.timeout) : name === "read" ? wait + 90 : name === "diagnose" ? 180 : 15;
  if (!(timeoutS > 0)) throw new UsageError("--timeout must be a positive number of seconds", "timeout");

  const opKeyFile = str(o, "operator-key");
  const opKey = keyFile(() => (opKeyFile !== undefined ? readPrivateKeyFile(opKeyFile) : loadOrCreatePrivateKeyFile(defaultOperatorKeyFile())), "operator-key");
  if (opKey.created && !json) note(`made an operator key in ${defaultOperatorKeyFile()} (public key ${b64(opKey.publicKey)})`);
  const known = new KnownAgents(str(o, "known-agents") ?? defaultKnownAgentsFile());
  const givenAgentKey = str(o, "agent-key");
  if (givenAgentKey !== undefined) publicKeyArg(givenAgentKey, "--agent-key");

  const conn = await connect(o, json);
  const requester = str(o, "requester") ?? conn.clientId;
  if (!LEVEL.test(requester)) throw new UsageError(`the requester id must be 1-64 of A-Z a-z 0-9 . _ - (set --requester; the client id ${conn.clientId.slice(0, 64)} is not one)`, "requester");
  const base = `${prefix}/${agentId}`;
  const replyTopic = `${base}/reply/${requester}`;
  if (Buffer.byteLength(replyTopic) > MAX_TOPIC_BYTES) throw new UsageError("--prefix is too long");
  const progress = (text: string) => {
    if (!json) note(text);
  };
  try {
    // The agent's key: from its retained birth, checked against the pin.
    const birth = await conn.retained(`${base}/status`, 10_000);
    if (!birth) return fail(json, "NO_AGENT", `agent ${agentId} has no status on the broker (unknown agent id, or never connected)`);
    if (birth.state !== "online") return fail(json, "AGENT_OFFLINE", `agent ${agentId} is offline (${String(birth.reason ?? "unknown reason")}${typeof birth.at === "string" ? ` since ${birth.at}` : ""})`);
    const agentKey = checkAgentKey(birth, agentId, known, givenAgentKey, progress);
    if (typeof agentKey === "string") return fail(json, "AGENT_KEY", agentKey);

    await conn.subscribe(replyTopic);
    const id = `${name}-${crypto.randomUUID()}`;
    const body: Record<string, unknown> = { id, command: name, replyPublicKey: b64(opKey.publicKey) };
    if (name === "read") {
      body.sealedAccessKey = sealAccessKey({
        agentId,
        commandId: id,
        agentPublicKey: agentKey,
        operatorPrivateKey: opKey.privateKey,
        accessKey: accessKey!,
        expiresAt: Math.floor(Date.now() / 1000) + Math.ceil(timeoutS),
      });
      body.timeoutS = wait;
      body.includePersonalData = o["no-personal-data"] !== true;
      if (files) body.files = files;
    }
    if (name === "diagnose") body.count = count;
    if ((name === "read" || name === "diagnose") && str(o, "reader") !== undefined) body.reader = str(o, "reader");
    for (const k of Object.keys(accessKey ?? {})) (accessKey as Record<string, string>)[k] = "";

    const corr = crypto.getRandomValues(new Uint8Array(16));
    const t0 = performance.now();
    const final = conn.awaitFinal(replyTopic, corr, id, timeoutS * 1000, (m) => onProgress(m, progress), (m) => {
      // An ok result must open with the agent's key; anything else claiming success is ignored.
      if (m.json.ok !== true) return true;
      if (!looksSealed(m.json.sealed)) {
        note(`ignored an unsealed result on ${replyTopic}: it does not prove it came from ${agentId}`);
        return false;
      }
      try {
        m.json.result = JSON.parse(new TextDecoder().decode(open({ key: opKey.privateKey, from: agentKey, envelope: m.json.sealed, expect: { kind: "reply", agentId, id } })));
        return true;
      } catch (e) {
        note(`ignored a result that does not open with ${agentId}'s key: ${e instanceof Error ? e.message : "error"}`);
        return false;
      }
    });
    await conn.publish(buildCommandPublish(conn.protocol, { prefix, agentId, command: name, requester, body, correlation: corr, expirySeconds: timeoutS }));
    progress(name === "read" ? `sent read ${id} to ${agentId}; the agent waits up to ${wait} s for a card` : `sent ${name} ${id} to ${agentId}`);
    const reply = await final;
    if (!reply) return fail(json, "NO_REPLY", `no final reply from ${agentId} within ${timeoutS} s`);
    const str2 = str(o, "save");
    if (str2 !== undefined) {
      const saved = { ...reply.json };
      delete saved.result;
      delete saved.correlation; // 3.1.1: the payload's routing, not part of the reply
      writeFileSync(str2, JSON.stringify(saved, null, 2) + "\n", { mode: 0o600 });
    }
    const ms = Math.round(performance.now() - t0);
    if (reply.json.ok !== true) {
      const err = (reply.json.error ?? {}) as { code?: string; message?: string };
      return fail(json, String(err.code ?? "UNKNOWN"), `${agentId} answered ${err.code ?? "an error"}: ${err.message ?? ""}`, exitForCode(String(err.code)));
    }
    return printResult(name, reply.json.result, { json, agentId, id, ms, faceOut: str(o, "face-out") });
  } finally {
    opKey.privateKey.fill(0);
    await conn.end();
  }
}

/** The agent's public key from its birth, checked against --agent-key or the pin (pinned on first use). A string is the refusal. */
function checkAgentKey(birth: Record<string, unknown>, agentId: string, known: KnownAgents, given: string | undefined, progress: (t: string) => void): Uint8Array | string {
  const hpke = birth.hpke as { publicKey?: unknown } | undefined;
  const inBirth = typeof hpke?.publicKey === "string" ? hpke.publicKey : undefined;
  if (inBirth === undefined) return `agent ${agentId}'s birth carries no HPKE public key (an agent older than this CLI?)`;
  let key: Uint8Array;
  try {
    key = parsePublicKey(inBirth, `${agentId}'s birth hpke.publicKey`);
  } catch (e) {
    return e instanceof Error ? e.message : "unusable key in the birth";
  }
  if (given !== undefined) {
    if (given !== inBirth) return `agent ${agentId}'s birth carries another public key than --agent-key`;
    return key;
  }
  const pinned = known.get(agentId);
  if (pinned === undefined) {
    known.pin(agentId, inBirth);
    progress(`pinned ${agentId}'s public key ${inBirth} in ${known.file} (first use)`);
  } else if (pinned.key !== inBirth) {
    return `agent ${agentId}'s birth carries another public key than the one pinned in ${known.file} (line ${pinned.line}): either the agent's key was replaced (then delete that line) or someone else publishes its status; nothing was sent`;
  }
  return key;
}

function onProgress(m: ReplyMessage, progress: (t: string) => void): void {
  const step = String(m.json.step ?? "");
  const d = (m.json.detail ?? {}) as Record<string, unknown>;
  switch (step) {
    case "waiting-for-card":
      return progress(`waiting up to ${d.timeoutS} s for a card at the agent ...`);
    case "card-present":
      return progress(`card in ${String(d.reader)}`);
    case "file-done":
      return progress(`  ${String(d.file).padEnd(5)} ${String(d.bytes).padStart(7)} bytes  ${String(d.apdus).padStart(3)} APDUs  ${Number(d.ms).toFixed(0).padStart(5)} ms`);
    case "file-absent":
      return progress(`  ${String(d.file).padEnd(5)} not present or not readable (${String(d.sw)})`);
    case "recovery":
      return progress(`  recovered from ${String(d.cause)}: ${String(d.action)}`);
    case "exchanges":
      return progress(`  stability loop ${String(d.done)}/${String(d.total)}`);
    default:
      return progress(`  ${step}`);
  }
}

async function printResult(name: CommandName, result: unknown, c: { json: boolean; agentId: string; id: string; ms: number; faceOut?: string | undefined }): Promise<number> {
  const r = (result ?? {}) as Record<string, unknown>;
  if (name === "ping") {
    if (c.json) console.log(JSON.stringify({ ...r, ms: c.ms }, null, 2));
    else console.log(`pong from ${c.agentId} in ${c.ms} ms (sealed by its key)`);
    return EXIT.OK;
  }
  if (name === "diagnose") {
    const { printDiagnosis } = await import("./diagnose-command.ts");
    if (c.json) console.log(JSON.stringify(r, null, 2));
    else printDiagnosis(r as never);
    return r.verdict === "good" || r.verdict === "marginal" ? EXIT.OK : EXIT.TRANSPORT;
  }
  const report = r.report as import("../reading/read-report.ts").ReadReport | undefined;
  if (!report) return fail(c.json, "NO_REPORT", `${c.agentId}'s reply holds no report`);
  const face = r.faceImage as { format?: string; image?: string } | undefined;
  if (c.faceOut !== undefined && face?.image) writeFileSync(c.faceOut, Buffer.from(face.image, "base64"), { mode: 0o600 });
  if (c.json) console.log(JSON.stringify({ ...report, remote: { agent: c.agentId, commandId: c.id, eventId: r.eventId } }, null, 2));
  else {
    const { reportLines } = await import("../reading/read-report.ts");
    const { verdictLines } = await import("../verification/report.ts");
    console.log(`Reader    ${report.reader}`);
    console.log(`ATR       ${report.atr.replace(/(..)(?=.)/g, "$1 ").toUpperCase()}`);
    for (const line of reportLines(report)) console.log(line);
    if (report.verification) for (const line of verdictLines(report.verification)) console.log(line);
  }
  return report.verification?.overall === "failed" ? EXIT.VERIFICATION_FAILED : EXIT.OK;
}

/** An error as the local commands give it: one line on stderr (or the JSON), a documented exit code. */
function fail(json: boolean, code: string, message: string, exit: number = EXIT.OTHER): number {
  if (json) console.log(JSON.stringify({ ok: false, error: { code, message } }, null, 2));
  console.error(`mrtd-agent remote: ${message}`);
  return exit;
}

/** The agent's reply codes as the local CLI's exit codes. */
export function exitForCode(code: string): number {
  switch (code) {
    case "NO_READER":
    case "TIMEOUT":
      return EXIT.NO_READER_OR_CARD;
    case "ACCESS_DENIED":
      return EXIT.ACCESS_DENIED;
    case "TRANSPORT":
      return EXIT.TRANSPORT;
    case "CARD_ERROR":
      return EXIT.CARD_OR_DATA;
    case "BAD_JSON":
    case "TOO_LARGE":
    case "UNKNOWN_COMMAND":
    case "MISSING_FIELD":
    case "BAD_FIELD":
    case "BAD_CHECK_DIGIT":
    case "NOT_SUPPORTED":
    case "PLAINTEXT_ACCESS_KEY":
      return EXIT.USAGE;
    default:
      return EXIT.OTHER;
  }
}

/** The access key to seal: the CAN or the MRZ key, validated here first (exit 2, as for a local read). */
function accessKeyFrom(o: ParsedOptions): Record<string, string> {
  if (o.can !== undefined) {
    if (o.doc !== undefined || o.dob !== undefined || o.expiry !== undefined || o["key-file"] !== undefined) throw new UsageError("use either --can or the MRZ key (--doc/--dob/--expiry or --key-file)", "can");
    return { can: canFrom(o)! };
  }
  const k = mrzKeyFrom(o);
  return { documentNumber: k.documentNumber, dateOfBirth: k.dateOfBirth, dateOfExpiry: k.dateOfExpiry };
}

function filesFrom(o: ParsedOptions): string[] | undefined {
  if (typeof o.files !== "string") return undefined;
  const files = o.files.split(",").map((f) => f.trim().toUpperCase()).filter(Boolean);
  for (const f of files) if (!/^(COM|SOD|DG([1-9]|1[0-6]))$/.test(f)) throw new UsageError(`--files: ${f.slice(0, 8)} is not a file name (COM, SOD, DG1..DG16)`, "files");
  if (files.length === 0) throw new UsageError("--files is empty", "files");
  return files;
}

function str(o: ParsedOptions, k: string): string | undefined {
  const v = o[k];
  return typeof v === "string" ? v : undefined;
}

function keyFile(load: () => KeyFilePair, flag: string): KeyFilePair {
  try {
    return load();
  } catch (e) {
    if (e instanceof KeyFileError) throw new UsageError(`--${flag}: ${e.message}`, flag);
    throw e;
  }
}

function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

// ---------------------------------------------------------------------------------------------
// operator config file

const CONFIG_KEYS: Record<string, Record<string, string>> = {
  mqtt: { url: "broker", protocol: "mqtt-protocol", prefix: "prefix", ca: "ca", client_cert: "cert", client_key: "key", client_id: "client-id" },
  operator: { key_file: "operator-key", known_agents: "known-agents", requester: "requester" },
};

/** Fills options not given as flags from the --config TOML. */
function withConfig(o: ParsedOptions): ParsedOptions {
  const file = str(o, "config");
  if (file === undefined) return o;
  let doc: Record<string, unknown>;
  try {
    doc = Bun.TOML.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`${file}: ${code ? `cannot read (${code})` : "not valid TOML"}`, "config");
  }
  const out: ParsedOptions = { ...o };
  for (const [section, value] of Object.entries(doc)) {
    const keys = Object.hasOwn(CONFIG_KEYS, section) ? CONFIG_KEYS[section]! : undefined;
    if (!keys || typeof value !== "object" || value === null) throw new UsageError(`${file}: ${section.slice(0, 32)}: unknown section (expected [mqtt] or [operator])`, "config");
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const flag = Object.hasOwn(keys, k) ? keys[k]! : undefined;
      if (flag === undefined) throw new UsageError(`${file}: ${section}.${k.slice(0, 32)}: unknown key (known: ${Object.keys(keys).join(", ")})`, "config");
      if (typeof v !== "string") throw new UsageError(`${file}: ${section}.${k}: must be a string`, "config");
      if (out[flag] === undefined) out[flag] = v;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// MQTT

interface Connection {
  clientId: string;
  protocol: MqttProtocol;
  retained(topic: string, ms: number): Promise<Record<string, unknown> | undefined>;
  subscribe(topic: string): Promise<void>;
  /** Publishes a command built by command-wire.ts; resolves on PUBACK. */
  publish(wire: WirePublish): Promise<void>;
  /** Resolves with the final reply (kind result) for `id` on `topic` with `corr`, or undefined after `ms`. `accept` may refuse one (a forgery) and keep waiting. */
  awaitFinal(topic: string, corr: Uint8Array, id: string, ms: number, onProgress: (m: ReplyMessage) => void, accept: (m: ReplyMessage) => boolean): Promise<ReplyMessage | undefined>;
  end(): Promise<void>;
}

async function connect(o: ParsedOptions, quiet: boolean): Promise<Connection> {
  const url = str(o, "broker");
  if (url === undefined) throw new UsageError("missing --broker <url> (or [mqtt] url in --config)", "broker");
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError("--broker is not a URL (mqtts://host:8883)", "broker");
  }
  if (u.protocol !== "mqtts:" && u.protocol !== "mqtt:") throw new UsageError("--broker must be mqtts:// (or mqtt:// to a test broker)", "broker");
  const read = (flag: string) => {
    const path = str(o, flag);
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, "utf8");
    } catch (e) {
      throw new UsageError(`--${flag}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? "error"})`, flag);
    }
  };
  const ca = read("ca");
  const cert = read("cert");
  const key = read("key");
  if ((cert === undefined) !== (key === undefined)) throw new UsageError("--cert and --key go together", cert === undefined ? "cert" : "key");
  const clientId = str(o, "client-id") ?? (cert !== undefined ? certificateCn(cert) : undefined) ?? `operator-${crypto.randomUUID().slice(0, 8)}`;
  const protocol = protocolOf(o);
  const { default: mqtt } = await import("mqtt");
  if (!quiet) note(`connecting to ${u.host} as ${clientId} ...`);
  const client = mqtt.connect({
    host: u.hostname.replace(/^\[|\]$/g, ""),
    port: u.port ? Number(u.port) : u.protocol === "mqtts:" ? 8883 : 1883,
    protocol: u.protocol === "mqtts:" ? "mqtts" : "mqtt",
    protocolVersion: protocolVersion(protocol),
    clientId,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert, key } : {}),
    rejectUnauthorized: true,
  });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", (e) => reject(new BrokerError(`cannot connect to ${u.host}: ${e.message.slice(0, 200)}`)));
    client.once("close", () => reject(new BrokerError(`cannot connect to ${u.host}: the connection closed`)));
  }).catch((e) => {
    client.end(true);
    throw e;
  });
  const messages: Array<{ topic: string; payload: Buffer; props: Record<string, unknown>; retain: boolean }> = [];
  const listeners = new Set<() => void>();
  client.on("message", (topic, payload, packet) => {
    messages.push({ topic, payload, props: (packet.properties ?? {}) as Record<string, unknown>, retain: packet.retain });
    for (const l of listeners) l();
  });
  let closed = false;
  client.on("close", () => {
    closed = true;
    for (const l of listeners) l();
  });
  const waitFor = <T>(find: () => T | undefined, ms: number): Promise<T | undefined> =>
    new Promise((resolve) => {
      const check = () => {
        const v = find();
        if (v !== undefined || closed) {
          clearTimeout(t);
          listeners.delete(check);
          resolve(v);
        }
      };
      const t = setTimeout(() => {
        listeners.delete(check);
        resolve(undefined);
      }, ms);
      listeners.add(check);
      check();
    });
  const parse = (b: Buffer): Record<string, unknown> | undefined => {
    try {
      const v = JSON.parse(b.toString("utf8")) as unknown;
      return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  };
  const subscribe = async (topic: string): Promise<void> => {
    const granted = await client.subscribeAsync(topic, { qos: 1 });
    if (granted.some((g) => g.qos > 2)) throw new BrokerError(`the broker refused the subscription to ${topic} (reason 0x${granted[0]!.qos.toString(16)}): is this certificate an operator's?`);
  };
  return {
    clientId,
    protocol,
    subscribe,
    async retained(topic, ms) {
      await subscribe(topic);
      const m = await waitFor(() => messages.find((x) => x.topic === topic), ms);
      return m ? parse(m.payload) : undefined;
    },
    async publish(wire) {
      try {
        await client.publishAsync(wire.topic, wire.payload, { qos: wire.qos, ...(wire.properties ? { properties: wire.properties } : {}) });
      } catch (e) {
        throw new BrokerError(`the broker refused the command (${e instanceof Error ? e.message.slice(0, 120) : "error"}): may this certificate send commands?`);
      }
    },
    async awaitFinal(topic, corr, id, ms, onProg, accept) {
      let seen = 0;
      const corrB = Buffer.from(corr);
      return waitFor(() => {
        for (; seen < messages.length; seen++) {
          const m = messages[seen]!;
          if (m.topic !== topic || m.retain) continue;
          const j = parse(m.payload);
          const cd = m.props.correlationData;
          const c = replyCorrelation(protocol, { json: j, correlationData: cd instanceof Uint8Array ? cd : undefined });
          if (c === undefined || !corrB.equals(Buffer.from(c))) continue;
          if (!j || (j.id !== undefined && j.id !== id)) continue;
          const msg = { topic: m.topic, json: j, text: m.payload.toString("utf8") };
          if (j.kind === "progress") onProg(msg);
          else if (j.kind === "result" && accept(msg)) {
            seen++;
            return msg;
          }
        }
        return undefined;
      }, ms);
    },
    async end() {
      await Promise.race([client.endAsync(false).catch(() => undefined), Bun.sleep(2000)]);
    },
  };
}

/** --mqtt-protocol (or [mqtt] protocol): "5" (default) or "3.1.1". */
function protocolOf(o: ParsedOptions): MqttProtocol {
  const p = str(o, "mqtt-protocol") ?? "5";
  if (!(MQTT_PROTOCOLS as readonly string[]).includes(p)) throw new UsageError(`--mqtt-protocol must be ${MQTT_PROTOCOLS.join(" or ")}`, "mqtt-protocol");
  return p as MqttProtocol;
}

/** A broker-side failure: exit 1 with the message. */
class BrokerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BrokerError";
  }
}

/** The CN of a PEM certificate (the MQTT client id the broker expects for it). */
function certificateCn(pem: string): string | undefined {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem);
  if (!m) return undefined;
  try {
    const cert = parseCertificate(new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ""), "base64")));
    const cn = /(?:^|, )CN=([^,]+)/.exec(cert.subject.text);
    return cn?.[1];
  } catch {
    return undefined;
  }
}

