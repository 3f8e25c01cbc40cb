/**
 * The agent's long-term HPKE identity: its X25519 key pair from `agent.key_file`
 * (created on first start), what it publishes in its birth, and the sealing it does with it:
 * command results sealed to the requester's replyPublicKey, read events' personal data sealed
 * to the fleet key, sealed access keys opened. All in auth mode (envelope.ts), so what the
 * agent seals proves it came from this key.
 */
import { ConfigError } from "../errors.ts";
import type { AccessKey } from "./access-key.ts";
import { staticDh } from "../crypto/hpke.ts";
import { wipe } from "../bytes.ts";
import { b64, EnvelopeError, seal, SEALED_ALG, sealInSlices, type SealedEnvelope } from "./envelope.ts";
import { KeyFileError, loadOrCreatePrivateKeyFile } from "./key-file.ts";
import { openAccessKey } from "./sealed-access-key.ts";

export class AgentKey {
  readonly agentId: string;
  readonly publicKey: Uint8Array;
  readonly #privateKey: Uint8Array;
  /** True when this start created the key file. */
  readonly created: boolean;
  /** Told how long each HPKE operation took (the service's mrtd_hpke_duration_seconds). */
  onTiming: ((kind: "reply" | "event" | "access-key", ms: number) => void) | undefined;
  /**
   * X25519(agent key, peer key) of the last few peers: auth mode needs it to open an operator's
   * sealed access key and again to seal the result back to the same key, and an operator sends
   * many commands. A secret like the agent key itself, kept only in this process; at most 8.
   */
  readonly #staticDh = new Map<string, Uint8Array>();

  constructor(agentId: string, privateKey: Uint8Array, publicKey: Uint8Array, created = false) {
    this.agentId = agentId;
    this.#privateKey = privateKey;
    this.publicKey = publicKey;
    this.created = created;
  }

  /** Loads `agent.key_file`, creating it when absent; problems are ConfigErrors naming the file and key. */
  static load(agentId: string, file: string, configFile: string, opts: { strict?: boolean } = {}): AgentKey {
    try {
      const kp = loadOrCreatePrivateKeyFile(file, opts);
      return new AgentKey(agentId, kp.privateKey, kp.publicKey, kp.created);
    } catch (e) {
      if (e instanceof KeyFileError) throw new ConfigError(`${configFile}: agent.key_file: ${e.message}`, { file: configFile, key: "agent.key_file" });
      throw e;
    }
  }

  /** What the birth message carries. */
  get birth(): { alg: string; publicKey: string } {
    return { alg: SEALED_ALG, publicKey: b64(this.publicKey) };
  }

  /** A command's result, sealed to `to` (the command's replyPublicKey), in 4 KiB messages with the event loop running between them. */
  async sealReply(commandId: string, to: Uint8Array, result: unknown): Promise<SealedEnvelope> {
    const t0 = performance.now();
    const plaintext = new TextEncoder().encode(JSON.stringify(result ?? null));
    try {
      return await sealInSlices({ to, from: this.#privateKey, fromPublic: this.publicKey, staticDh: this.#dhWith(to), ctx: { kind: "reply", agentId: this.agentId, id: commandId }, plaintext });
    } finally {
      plaintext.fill(0);
      this.onTiming?.("reply", performance.now() - t0);
    }
  }

  /** A read event's personal data, sealed to the fleet key. */
  sealEvent(eventId: string, to: Uint8Array, plaintext: Uint8Array): SealedEnvelope {
    const t0 = performance.now();
    try {
      return seal({ to, from: this.#privateKey, fromPublic: this.publicKey, staticDh: this.#dhWith(to), ctx: { kind: "event", agentId: this.agentId, id: eventId }, plaintext });
    } finally {
      this.onTiming?.("event", performance.now() - t0);
    }
  }

  /** Opens a command's sealedAccessKey (SealedKeyProblem / AccessKeyProblem when refused). */
  openAccessKey(commandId: string, operatorPublicKey: Uint8Array, envelope: unknown): AccessKey {
    const t0 = performance.now();
    try {
      let dhWith: Uint8Array | undefined;
      try {
        dhWith = this.#dhWith(operatorPublicKey);
      } catch (e) {
        if (!(e instanceof EnvelopeError)) throw e; // a low-order key: openAccessKey refuses it with its own message
      }
      return openAccessKey({ agentId: this.agentId, commandId, agentPrivateKey: this.#privateKey, agentPublicKey: this.publicKey, operatorPublicKey, envelope, ...(dhWith ? { staticDh: dhWith } : {}) });
    } finally {
      this.onTiming?.("access-key", performance.now() - t0);
    }
  }

  #dhWith(peer: Uint8Array): Uint8Array {
    const id = b64(peer);
    let v = this.#staticDh.get(id);
    if (v === undefined) {
      try {
        v = staticDh(this.#privateKey, peer);
      } catch {
        throw new EnvelopeError("not a usable X25519 public key (low-order point)");
      }
      this.#staticDh.set(id, v);
      if (this.#staticDh.size > 8) {
        const oldest = this.#staticDh.keys().next().value as string;
        wipe(this.#staticDh.get(oldest)!);
        this.#staticDh.delete(oldest);
      }
    }
    return v;
  }
}
