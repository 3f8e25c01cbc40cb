/**
 * Operator actions on the agent page: ping, diagnose and remote read, on one of the agent's
 * readers. The access key is typed here, checked by the agent's rules and sealed here to the
 * agent's public key (remote.ts); results are opened here with a key made for the command that
 * never leaves this page. Progress shows as it comes; the result (verdict, MRZ fields, face)
 * is shown here only: nothing of it goes back to the server.
 *
 * The agent's key comes from the server (the agent's retained birth). Its fingerprint is shown,
 * and the first key seen for an agent is remembered in this browser (localStorage holds only
 * public keys): a different one later stops the actions until the operator accepts it.
 */
import { api, HttpError, type AgentDetail, type CommandEvent } from "../api.ts";
import { h } from "../dom.ts";
import { keyFingerprint, prepareCommand, type PreparedCommand, type RemoteCommandRequest } from "../remote.ts";
import { ERROR_HELP } from "../error-help.ts";
import { rememberDiagnosis } from "../diagnose-memory.ts";

const PIN_PREFIX = "mrtd-agent-key:";

export interface ActionsPanel {
  el: HTMLElement;
  update(a: AgentDetail): void;
  dispose(): void;
}

export function actionsPanel(agentId: string): ActionsPanel {
  const keyLine = h("p", { "data-testid": "agent-key" });
  const readerSelect = h("select", { "data-testid": "reader-select", "aria-label": "Reader" });
  const count = h("input", { type: "number", min: "1", max: "1000", value: "10", "data-testid": "diagnose-count", "aria-label": "Exchanges" });
  const doc = h("input", { autocomplete: "off", spellcheck: "false", "data-testid": "read-doc", "aria-label": "Document number", placeholder: "document number" });
  const dob = h("input", { autocomplete: "off", "data-testid": "read-dob", "aria-label": "Date of birth", placeholder: "birth YYMMDD", maxlength: "6", size: "8" });
  const expiry = h("input", { autocomplete: "off", "data-testid": "read-expiry", "aria-label": "Date of expiry", placeholder: "expiry YYMMDD", maxlength: "6", size: "8" });
  const can = h("input", { autocomplete: "off", "data-testid": "read-can", "aria-label": "CAN", placeholder: "or CAN (6 digits)", maxlength: "6", size: "10" });
  const wait = h("input", { type: "number", min: "1", max: "600", value: "30", "data-testid": "read-wait", "aria-label": "Card wait (s)", size: "4" });
  const files = h("input", { "data-testid": "read-files", "aria-label": "Files", placeholder: "files (default: all), e.g. DG1,DG2", size: "24" });
  const personal = h("input", { type: "checkbox", "data-testid": "read-personal", "aria-label": "Include personal data" });
  personal.checked = true;
  const pingBtn = h("button", { "data-testid": "ping", type: "button" }, "Ping");
  const diagBtn = h("button", { "data-testid": "diagnose", type: "button" }, "Diagnose");
  const readBtn = h("button", { "data-testid": "read", type: "submit" }, "Remote read");
  const trustBtn = h("button", { "data-testid": "trust-key", type: "button", hidden: "" }, "Trust this new key");
  const status = h("p", { "data-testid": "command-status", class: "muted" });
  const progress = h("ol", { "data-testid": "command-progress", class: "progress" });
  const result = h("div", { "data-testid": "command-result" });
  const error = h("p", { "data-testid": "command-error", class: "error" });
  const readForm = h("form", { class: "read-form", "data-testid": "read-form" }, doc, " ", dob, " ", expiry, " ", can, " wait ", wait, " s ", files, " ", h("label", {}, personal, " MRZ and face"), " ", readBtn);
  const el = h("div", { class: "card", "data-testid": "actions" },
    h("h3", {}, "Operator actions"),
    keyLine, trustBtn,
    h("p", {}, "Reader ", readerSelect, " ", pingBtn, " ", h("span", { class: "sep" }, "·"), " ", count, " exchanges ", diagBtn),
    readForm,
    h("p", { class: "muted" }, "The access key is sealed in this browser to the agent's key; the result is sealed to a key this page makes for each command and opened here. The server and the broker relay sealed data only."),
    status, progress, error, result);

  /** The key shown: undefined until the first update, null when the agent published none. */
  let agentKey: string | null | undefined;
  let keyOk = false;
  let running: PreparedCommand | undefined;
  let readerNames: string[] = [];
  /** Aborted when the page leaves the agent: the stream stops (the command still ends at the agent, and in the audit log). */
  const aborted = new AbortController();

  function setEnabled(): void {
    const on = keyOk && running === undefined;
    for (const b of [pingBtn, diagBtn, readBtn]) b.disabled = !on;
  }

  function checkPin(key: string): void {
    let pinned: string | null = null;
    try {
      pinned = localStorage.getItem(PIN_PREFIX + agentId);
    } catch {
      // storage unavailable: no pinning
    }
    if (pinned === null || pinned === key) {
      try {
        localStorage.setItem(PIN_PREFIX + agentId, key);
      } catch {
        // storage unavailable
      }
      keyOk = true;
      trustBtn.hidden = true;
      return;
    }
    keyOk = false;
    trustBtn.hidden = false;
    error.textContent = `${agentId} now publishes another public key than the one this browser saw first: either its key was replaced, or someone else speaks for it. Nothing is sent until you trust the new key.`;
  }
  trustBtn.addEventListener("click", () => {
    if (!agentKey) return;
    try {
      localStorage.setItem(PIN_PREFIX + agentId, agentKey);
    } catch {
      // storage unavailable
    }
    error.textContent = "";
    checkPin(agentKey);
    setEnabled();
  });

  function update(a: AgentDetail): void {
    const names = a.readers.map((r) => r.reader);
    if (names.join("\n") !== readerNames.join("\n")) {
      readerNames = names;
      const chosen = readerSelect.value;
      readerSelect.replaceChildren(h("option", { value: "" }, "any reader"), ...names.map((n) => h("option", { value: n }, n)));
      if (names.includes(chosen)) readerSelect.value = chosen;
    }
    if (a.hpkePublicKey !== agentKey) {
      agentKey = a.hpkePublicKey;
      if (agentKey === null) {
        keyOk = false;
        keyLine.replaceChildren(h("span", { class: "bad" }, "This agent published no HPKE public key in its birth (an agent older than this dashboard, or a simulated one): commands from the page need it."));
      } else {
        let fp: string;
        try {
          fp = keyFingerprint(agentKey);
        } catch {
          keyOk = false;
          keyLine.replaceChildren(h("span", { class: "bad" }, "This agent's published key is not a usable X25519 public key: nothing can be sealed to it."));
          setEnabled();
          return;
        }
        keyLine.replaceChildren("Agent key ", h("code", { "data-testid": "agent-key-b64" }, agentKey), " · SHA-256 ", h("code", { "data-testid": "agent-key-fingerprint" }, fp));
        checkPin(agentKey);
      }
    }
    setEnabled();
  }

  function step(text: string): void {
    progress.append(h("li", {}, text));
  }

  async function run(req: RemoteCommandRequest): Promise<void> {
    if (!agentKey || !keyOk || running) return;
    progress.replaceChildren();
    result.replaceChildren();
    error.textContent = "";
    let cmd: PreparedCommand;
    try {
      cmd = prepareCommand(agentId, agentKey, req);
    } catch (e) {
      // The agent's own check of the key, here before anything is sent (the message names the field, never its value).
      const code = (e as { code?: unknown }).code;
      fail(typeof code === "string" ? code : "BAD_FIELD", `${(e as Error).message}; nothing was sent`);
      return;
    }
    running = cmd;
    setEnabled();
    if (req.name === "read") for (const i of [doc, dob, expiry, can]) i.value = "";
    status.textContent = req.name === "read" ? "Access key sealed in this browser; sending ..." : "Sending ...";
    const t0 = performance.now();
    let final: Record<string, unknown> | undefined;
    try {
      await api.command(agentId, cmd.body, aborted.signal, (e: CommandEvent) => {
        if (e.event === "sent") {
          status.textContent = `Sent ${req.name} ${cmd.id}; waiting for the agent (up to ${String(e.data.timeoutS)} s)`;
          step(`sent to ${agentId}`);
        } else if (e.event === "reply") {
          if (e.data.kind === "progress") step(progressText(e.data));
          else if (e.data.kind === "result") final = e.data;
        } else if (e.event === "end") {
          if (e.data.kind === "timeout") fail("NO_REPLY", `nothing from ${agentId} within ${String(e.data.timeoutS)} s`);
          else if (e.data.kind === "stopped") fail("STOPPED", "");
        }
      });
      const ms = Math.round(performance.now() - t0);
      if (final) showFinal(req, cmd, final, ms);
      else if (!error.textContent && !aborted.signal.aborted) fail("NO_REPLY", "the stream ended without a final reply");
    } catch (e) {
      if (aborted.signal.aborted) return;
      if (e instanceof HttpError) {
        const code = /^([A-Z_]+): /.exec(e.message)?.[1];
        fail(code ?? `HTTP ${e.status}`, e.message.replace(/^[A-Z_]+: /, ""));
      } else fail("NETWORK", (e as Error).message);
    } finally {
      cmd.forget();
      running = undefined;
      setEnabled();
    }
  }

  function fail(code: string, message: string): void {
    status.textContent = `Failed (${code})`;
    const help = Object.hasOwn(ERROR_HELP, code) ? ERROR_HELP[code] : undefined;
    error.replaceChildren(h("b", { "data-testid": "error-code" }, code), `: ${help ? `${help}. ` : ""}`, message);
  }

  function showFinal(req: RemoteCommandRequest, cmd: PreparedCommand, reply: Record<string, unknown>, ms: number): void {
    if (reply.ok !== true) {
      const err = (reply.error ?? {}) as { code?: string; message?: string };
      fail(String(err.code ?? "UNKNOWN"), `${agentId} answered: ${String(err.message ?? "")}`);
      return;
    }
    let r: Record<string, unknown>;
    try {
      r = (cmd.openResult(reply) ?? {}) as Record<string, unknown>;
    } catch (e) {
      fail("NOT_SEALED_BY_AGENT", (e as Error).message);
      return;
    }
    status.textContent = `Done in ${ms} ms; the result was sealed by ${agentId}'s key and opened in this browser`;
    if (req.name === "ping") result.replaceChildren(h("p", { "data-testid": "pong" }, `pong from ${String(r.agentId ?? agentId)} in ${ms} ms`));
    else if (req.name === "diagnose") {
      result.replaceChildren(diagnosisView(r));
      rememberDiagnosis(agentId, r); // shown next to the reader on the agent page (this page only)
    }
    else result.replaceChildren(readView(r));
  }

  pingBtn.addEventListener("click", () => void run({ name: "ping" }));
  diagBtn.addEventListener("click", () => void run({ name: "diagnose", count: Number(count.value), ...(readerSelect.value ? { reader: readerSelect.value } : {}) }));
  readForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const key: Record<string, string> = can.value.trim() !== "" ? { can: can.value.trim() } : { documentNumber: doc.value.trim().toUpperCase(), dateOfBirth: dob.value.trim(), dateOfExpiry: expiry.value.trim() };
    const list = files.value.split(",").map((f) => f.trim().toUpperCase()).filter(Boolean);
    void run({ name: "read", accessKey: key, timeoutS: Number(wait.value), includePersonalData: personal.checked, ...(list.length > 0 ? { files: list } : {}), ...(readerSelect.value ? { reader: readerSelect.value } : {}) });
  });
  setEnabled();

  return {
    el,
    update,
    dispose() {
      aborted.abort();
      running?.forget();
      result.replaceChildren();
    },
  };
}

function progressText(p: Record<string, unknown>): string {
  const d = (p.detail ?? {}) as Record<string, unknown>;
  switch (p.step) {
    case "waiting-for-card":
      return `waiting up to ${String(d.timeoutS)} s for a card`;
    case "card-present":
      return `card in ${String(d.reader)}`;
    case "file-done":
      return `${String(d.file)}: ${String(d.bytes)} bytes, ${String(d.apdus)} APDUs, ${Number(d.ms).toFixed(0)} ms`;
    case "file-absent":
      return `${String(d.file)}: not present or not readable (${String(d.sw)})`;
    case "recovery":
      return `recovered from ${String(d.cause)}: ${String(d.action)}`;
    case "exchanges":
      return `stability loop ${String(d.done)}/${String(d.total)}`;
    case "diagnosing":
      return `diagnosing (${String(d.count)} exchanges)`;
    default:
      return String(p.step ?? "step");
  }
}

function diagnosisView(r: Record<string, unknown>): HTMLElement {
  const reader = (r.reader ?? {}) as Record<string, unknown>;
  const s = (r.stability ?? {}) as Record<string, unknown>;
  const l = s.latencyMs as Record<string, number> | undefined;
  const advice = Array.isArray(r.advice) ? (r.advice as unknown[]).map(String) : [];
  return h("div", { "data-testid": "diagnosis" },
    h("p", {}, h("b", {}, "Verdict "), h("span", { "data-testid": "diagnose-verdict" }, String(r.verdict ?? "?").toUpperCase()), ` · ${String(reader.name ?? "")}`),
    h("p", {}, `Stability ${String(s.ok)}/${String(s.exchanges)} exchanges ok, ${String(s.failed)} failed, ${String(s.presenceFlaps)} presence flap(s), ${String(s.relinks)} reconnect(s)`),
    l ? h("p", {}, `Latency min ${l.min} ms, p50 ${l.p50} ms, p95 ${l.p95} ms, p99 ${l.p99} ms, max ${l.max} ms`) : null,
    advice.length > 0 ? h("ul", {}, ...advice.map((a) => h("li", {}, a))) : null);
}

const MRZ_FIELDS: Array<[string, string]> = [
  ["documentCode", "Document code"],
  ["issuingState", "Issuing state"],
  ["documentNumber", "Document number"],
  ["primaryIdentifier", "Surname"],
  ["secondaryIdentifier", "Given names"],
  ["nationality", "Nationality"],
  ["dateOfBirth", "Date of birth"],
  ["sex", "Sex"],
  ["dateOfExpiry", "Date of expiry"],
];

function readView(r: Record<string, unknown>): HTMLElement {
  const report = (r.report ?? {}) as Record<string, unknown>;
  const verdict = ((report.verification ?? r.verification) as { overall?: string } | undefined)?.overall ?? "not verified";
  const mrz = report.mrz as Record<string, unknown> | undefined;
  const face = r.faceImage as { format?: string; image?: string } | undefined;
  let faceEl: Node;
  if (!face?.image) faceEl = h("p", { class: "muted", "data-testid": "face-none" }, "no face image in the reply (personal data not asked for, or DG2 not read)");
  else if (face.format === "jpeg") faceEl = h("img", { "data-testid": "face", alt: "face image (DG2)", src: `data:image/jpeg;base64,${face.image}` });
  else faceEl = h("p", { "data-testid": "face-unsupported" }, `The face image is ${face.format === "jpeg2000" ? "JPEG 2000" : `in an unknown format (${String(face.format)})`}, which browsers cannot display (${Math.floor((face.image.length * 3) / 4)} bytes).`);
  return h("div", { "data-testid": "read-result", class: "read-result" },
    h("p", {}, h("b", {}, "Verdict "), h("span", { "data-testid": "read-verdict" }, verdict), ` · ${String(r.documentType ?? "")} ${String(r.issuingState ?? "")} · ${String(r.outcome ?? "")}`),
    h("div", { class: "doc" },
      faceEl,
      mrz
        ? h("table", { "data-testid": "mrz" }, h("tbody", {}, ...MRZ_FIELDS.map(([k, label]) => h("tr", {}, h("th", {}, label), h("td", { "data-field": k }, String(mrz[k] ?? "")))), h("tr", {}, h("th", {}, "MRZ check digits"), h("td", {}, mrz.valid === true ? "valid" : "INVALID"))))
        : h("p", { class: "muted" }, "no MRZ fields in the reply (personal data not asked for)")));
}
