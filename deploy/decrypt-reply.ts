/**
 * Operator tool for sealed command replies (agent/service/envelope.ts: X25519 + HKDF-SHA256 +
 * ChaCha20-Poly1305). Makes the operator's key pair, and opens replies (and read events, with
 * telemetry.include_personal_data) whose personal data the agent sealed to that public key.
 *
 *   bun deploy/decrypt-reply.ts --gen-key <file>                 write a private key, print the public key
 *   bun deploy/decrypt-reply.ts --key <file> [reply.json | -]    print the reply with envelopes opened
 */
import { readFileSync, writeFileSync } from "node:fs";
import { ENVELOPE_ALG, EnvelopeError, b64, generateKeyPair, openSealed, publicKeyOf, unb64 } from "../agent/service/envelope.ts";

const USAGE = `usage:
  bun deploy/decrypt-reply.ts --gen-key <file>
      Makes an X25519 key pair: writes the private key (base64, mode 0600) to <file> and
      prints the public key (base64) to put in a read command's replyPublicKey.
  bun deploy/decrypt-reply.ts --key <private key file> [reply.json | -]
      Reads a command reply or a read event (JSON; stdin when the file is - or absent), opens every sealed
      envelope in it with the private key and prints the reply with the envelopes replaced by
      their contents (JSON when the plaintext is JSON). Exit 1 if an envelope does not open.
  bun deploy/decrypt-reply.ts --public-key <private key file>
      Prints the public key of an existing private key file.`;

export function main(argv: string[]): number {
  const args = [...argv];
  if (args.length === 0 || args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return args.length === 0 ? 2 : 0;
  }
  const take = (flag: string): string | undefined => {
    const i = args.indexOf(flag);
    if (i < 0) return undefined;
    const v = args[i + 1];
    if (v === undefined) throw new UsageProblem(`${flag} needs a file name`);
    args.splice(i, 2);
    return v;
  };
  try {
    const gen = take("--gen-key");
    if (gen !== undefined) {
      const { privateKey, publicKey } = generateKeyPair();
      writeFileSync(gen, b64(privateKey) + "\n", { mode: 0o600, flag: "wx" });
      console.log(b64(publicKey));
      return 0;
    }
    const pubOf = take("--public-key");
    if (pubOf !== undefined) {
      console.log(b64(publicKeyOf(readKey(pubOf))));
      return 0;
    }
    const keyFile = take("--key");
    if (keyFile === undefined) throw new UsageProblem("give --key <private key file> or --gen-key <file>");
    if (args.length > 1) throw new UsageProblem(`unexpected arguments: ${args.slice(1).join(" ")}`);
    const input = args[0] === undefined || args[0] === "-" ? readFileSync(0, "utf8") : readFileSync(args[0], "utf8");
    let reply: unknown;
    try {
      reply = JSON.parse(input);
    } catch {
      throw new UsageProblem("the reply is not JSON");
    }
    const key = readKey(keyFile);
    // An envelope names the command (reply) or event it was sealed for: one moved elsewhere is refused.
    const top = typeof reply === "object" && reply !== null ? (reply as { id?: unknown; eventId?: unknown }) : {};
    const boundTo = typeof top.id === "string" ? top.id : typeof top.eventId === "string" ? top.eventId : undefined;
    let opened = 0;
    const out = walk(reply, (env) => {
      if (boundTo !== undefined && typeof env.info === "string" && !env.info.endsWith(` ${boundTo}`)) {
        throw new EnvelopeError(`envelope: sealed for another ${typeof top.id === "string" ? "command id" : "event"}`);
      }
      const plain = new TextDecoder().decode(openSealed(key, env));
      opened++;
      try {
        return JSON.parse(plain) as unknown;
      } catch {
        return plain;
      }
    });
    key.fill(0);
    console.log(JSON.stringify(out, null, 2));
    if (opened === 0) console.error("decrypt-reply: no sealed envelope in this reply");
    return 0;
  } catch (e) {
    if (e instanceof UsageProblem) {
      console.error(`decrypt-reply: ${e.message}\n${USAGE}`);
      return 2;
    }
    console.error(`decrypt-reply: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

class UsageProblem extends Error {}

function readKey(file: string): Uint8Array {
  const text = readFileSync(file, "utf8").trim();
  try {
    return unb64("private key", text, 32);
  } catch {
    throw new UsageProblem(`${file} does not hold a base64 X25519 private key (32 bytes)`);
  }
}

function walk(value: unknown, open: (env: Record<string, unknown>) => unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => walk(v, open));
  if (typeof value !== "object" || value === null) return value;
  const obj = value as Record<string, unknown>;
  if (obj.alg === ENVELOPE_ALG) return open(obj);
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, walk(v, open)]));
}

if (import.meta.main) process.exit(main(process.argv.slice(2)));
