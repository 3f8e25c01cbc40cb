/**
 * Writes the parts of deploy/asyncapi.yaml that the code defines, so the document cannot drift
 * from it: failure classes (agent/reading/failure-classes.ts), status words
 * (agent/iso7816/status-words.ts), the agent id rule (agent/service/config.ts), command names
 * and error codes (agent/service/command-types.ts), the health windows (agent/service/health.ts) and
 * the metric series (agent/service/metrics.ts).
 *
 *   bun deploy/gen-asyncapi-enums.ts           rewrite the marked sections in place
 *   bun deploy/gen-asyncapi-enums.ts --check   exit 1 when the file differs from what it would write
 *
 * A section runs from a line `# BEGIN GENERATED <name> ...` to `# END GENERATED <name>`; its
 * lines are indented like the BEGIN line. test/service/asyncapi.test.ts fails when the file
 * differs from generateAsyncApi(file).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { KNOWN_STATUS_WORDS, STATUS_WORD_FAMILIES } from "../agent/iso7816/status-words.ts";
import { FAILURE_CLASSES } from "../agent/reading/failure-classes.ts";
import { COMMAND_ERROR_CODES, COMMAND_NAMES } from "../agent/service/command-types.ts";
import { AGENT_ID_PATTERN, AGENT_ID_RULE } from "../agent/service/config.ts";
import { LATENCY_WINDOW, SUCCESS_WINDOW } from "../agent/service/health.ts";
import { CHIP_REASONS, REASONS } from "../agent/verification/reasons.ts";
import { METRIC_CATALOG, STATUS_WORD_LABEL_EXTRAS, type LabelValues, type MetricSpec } from "../agent/service/metrics.ts";

export const ASYNCAPI_FILE = resolve(import.meta.dir, "asyncapi.yaml");

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const hex4 = (sw: number) => sw.toString(16).toUpperCase().padStart(4, "0");

/** The failure-class codes whose layer is the RF link: what reader health counts as RF drops. */
export function rfDropClasses(): string[] {
  return Object.values(FAILURE_CLASSES).filter((c) => c.layer === "rf-link").map((c) => c.code);
}

function labelSchema(v: LabelValues): unknown {
  if ("enum" in v) return { enum: [...v.enum] };
  if ("failureClass" in v) return ref("FailureClass");
  if ("statusWord" in v) return { anyOf: [ref("StatusWord"), { enum: [...STATUS_WORD_LABEL_EXTRAS] }] };
  return { type: "string", pattern: v.pattern };
}

function seriesSchema(name: string, spec: MetricSpec): unknown {
  const labelNames = Object.keys(spec.labels);
  const labels = {
    type: "object",
    additionalProperties: false,
    ...(labelNames.length > 0 ? { required: labelNames } : {}),
    properties: Object.fromEntries(Object.entries(spec.labels).map(([k, v]) => [k, labelSchema(v)])),
  };
  const common = { name: { const: name }, labels };
  if (spec.type === "histogram") {
    return {
      type: "object",
      description: spec.help,
      additionalProperties: false,
      required: ["name", "labels", "buckets", "sum", "count"],
      properties: { ...common, buckets: ref("HistogramBuckets"), sum: { type: "number", minimum: 0 }, count: { type: "integer", minimum: 0 } },
    };
  }
  return {
    type: "object",
    description: spec.help,
    additionalProperties: false,
    required: ["name", "labels", "value"],
    properties: { ...common, value: spec.type === "counter" ? { type: "integer", minimum: 0 } : { type: "number", minimum: 0 } },
  };
}

function series(type: MetricSpec["type"], description: string): unknown {
  const entries = Object.entries(METRIC_CATALOG).filter(([, s]) => s.type === type);
  return { description, oneOf: entries.map(([name, spec]) => seriesSchema(name, spec)) };
}

/** Each generated section: its name and the schemas (or parameters) it holds, in order. */
export function generatedSections(): Record<string, Record<string, unknown>> {
  const classes = Object.values(FAILURE_CLASSES);
  const rf = rfDropClasses();
  return {
    AgentIdParameter: {
      agentId: { description: `Agent id (agent.id): ${AGENT_ID_RULE}. The schema AgentId holds the pattern.` },
    },
    AgentId: {
      AgentId: { type: "string", pattern: AGENT_ID_PATTERN.source, description: `The agent's id (agent.id, the MQTT client id and certificate CN): ${AGENT_ID_RULE}. The configuration refuses any other.` },
    },
    FailureClass: {
      FailureClass: {
        type: "string",
        description: [
          "A failure class code of the agent's failure taxonomy (agent/reading/failure-classes.ts), with its layer and meaning:",
          ...classes.map((c) => `- ${c.code} (${c.layer}): ${c.explanation}`),
        ].join("\n"),
        enum: classes.map((c) => c.code),
      },
      RfDropClass: {
        type: "string",
        description: "The failure classes of the rf-link layer: a recovery from one of these counts as an RF drop in reader health (the reader stack reported that the RF exchange with the card failed).",
        enum: rf,
      },
    },
    StatusWord: {
      StatusWord: {
        type: "string",
        pattern: "^[0-9A-F]{4}$",
        description: [
          "An ISO/IEC 7816-4 status word (SW1 SW2) as 4 upper-case hex digits (agent/iso7816/status-words.ts). Reader stacks put pseudo status words (6F00, 6F01, 6600) where the card did not answer. Fixed meanings:",
          ...Object.entries(KNOWN_STATUS_WORDS).map(([sw, [category, meaning]]) => `- ${hex4(Number(sw))} (${category}): ${meaning}`),
          "Families:",
          ...STATUS_WORD_FAMILIES.map((f) => `- ${f.pattern} (${f.category}): ${f.summary}`),
          "Any other value is a card-specific status (category other).",
        ].join("\n"),
        examples: ["9000", "6982", "6F01"],
      },
    },
    VerificationReason: {
      VerificationReason: {
        type: "string",
        description: [
          "A reason code of the verdict (agent/verification/reasons.ts); never personal data. Failing codes make the verdict failed, the others unverifiable:",
          ...Object.entries({ ...REASONS, ...CHIP_REASONS }).map(([code, r]) => `- ${code} (${r.fails ? "fails" : "unverifiable"}): ${r.text}`),
        ].join("\n"),
        enum: [...Object.keys(REASONS), ...Object.keys(CHIP_REASONS)],
      },
    },
    Commands: {
      CommandName: { description: "The remote commands (agent/service/command-types.ts); the last level of a cmd topic.", enum: [...COMMAND_NAMES] },
      CommandErrorCode: { description: "Codes of error replies (agent/service/command-types.ts).", enum: [...COMMAND_ERROR_CODES] },
    },
    HealthWindows: {
      SuccessRate: {
        type: "object",
        description: `Outcomes of the last ${SUCCESS_WINDOW} reads in this reader (a sliding window of reads, not of time; reads that never reached a card are not in it).`,
        additionalProperties: false,
        required: ["windowReads", "succeeded", "rate"],
        properties: {
          windowReads: { type: "integer", minimum: 0, maximum: SUCCESS_WINDOW, description: `Reads in the window: ${SUCCESS_WINDOW} once that many were made.` },
          succeeded: { type: "integer", minimum: 0, maximum: SUCCESS_WINDOW },
          rate: { type: ["number", "null"], minimum: 0, maximum: 1, description: "succeeded / windowReads, 3 decimals; null before the first read." },
        },
      },
      ApduLatency: {
        type: "object",
        description: `APDU round-trip times over the last ${LATENCY_WINDOW} APDUs of reads in this reader, in ms (3 decimals); null before the first APDU.`,
        additionalProperties: false,
        required: ["mean", "p95"],
        properties: {
          mean: { type: ["number", "null"], minimum: 0 },
          p95: { type: ["number", "null"], minimum: 0, description: "Nearest-rank 95th percentile." },
        },
      },
    },
    MetricSeries: {
      HistogramSeries: series("histogram", "One histogram series; every histogram the agent publishes is one of these (agent/service/metrics.ts METRIC_CATALOG)."),
      CounterSeries: series("counter", "One counter series: cumulative since startedAt (never per interval), except where its description says otherwise."),
      GaugeSeries: series("gauge", "One gauge: the value as it stands at `at`; it may go down."),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// A small YAML writer: block mappings, flow sequences of scalars, literal blocks for text.

const PLAIN = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const RESERVED = /^(true|false|null|yes|no|on|off|y|n)$/i;

function scalar(v: unknown): string {
  if (typeof v === "number" || typeof v === "boolean" || v === null) return String(v);
  const s = String(v);
  if (PLAIN.test(s) && !RESERVED.test(s)) return s;
  return `'${s.replace(/'/g, "''")}'`;
}

function isScalar(v: unknown): boolean {
  return v === null || typeof v !== "object";
}

/** A mapping of scalars (or scalar lists) short enough for one line, in flow style; else undefined. */
function flow(value: unknown, room: number): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    if (isScalar(v) && !(typeof v === "string" && v.includes("\n"))) parts.push(`${scalar(k)}: ${scalar(v)}`);
    else if (Array.isArray(v) && v.every(isScalar)) parts.push(`${scalar(k)}: [${v.map(scalar).join(", ")}]`);
    else return undefined;
  }
  const line = parts.length === 0 ? "{}" : `{ ${parts.join(", ")} }`;
  return line.length <= room ? line : undefined;
}

function emit(value: unknown, indent: string): string[] {
  const out: string[] = [];
  if (Array.isArray(value)) {
    for (const item of value) {
      if (isScalar(item)) out.push(`${indent}- ${scalar(item)}`);
      else {
        const lines = emit(item, indent + "  ");
        out.push(`${indent}- ${lines[0]!.trimStart()}`, ...lines.slice(1));
      }
    }
    return out;
  }
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const key = scalar(k);
    if (typeof v === "string" && v.includes("\n")) {
      out.push(`${indent}${key}: |-`, ...v.split("\n").map((l) => `${indent}  ${l}`));
    } else if (isScalar(v)) out.push(`${indent}${key}: ${scalar(v)}`);
    else if (Array.isArray(v) && v.every(isScalar)) out.push(`${indent}${key}: [${v.map(scalar).join(", ")}]`);
    else {
      const oneLine = flow(v, 110 - indent.length - key.length - 2);
      if (oneLine !== undefined) out.push(`${indent}${key}: ${oneLine}`);
      else out.push(`${indent}${key}:`, ...emit(v, indent + "  "));
    }
  }
  return out;
}

/** The document with every marked section rewritten. Throws on a missing or unknown section. */
export function generateAsyncApi(text: string): string {
  const sections = generatedSections();
  const seen = new Set<string>();
  const lines = text.split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const begin = /^(\s*)# BEGIN GENERATED (\w+)/.exec(line);
    if (!begin) {
      out.push(line);
      continue;
    }
    const [, indent, name] = begin;
    const body = sections[name!];
    if (!body) throw new Error(`gen-asyncapi-enums: unknown section ${name}`);
    const end = lines.findIndex((l, j) => j > i && l.trim() === `# END GENERATED ${name}`);
    if (end < 0) throw new Error(`gen-asyncapi-enums: section ${name} has no END line`);
    out.push(line, ...emit(body, indent!), lines[end]!);
    seen.add(name!);
    i = end;
  }
  const missing = Object.keys(sections).filter((n) => !seen.has(n));
  if (missing.length > 0) throw new Error(`gen-asyncapi-enums: no marked section for ${missing.join(", ")}`);
  return out.join("\n");
}

if (import.meta.main) {
  const text = readFileSync(ASYNCAPI_FILE, "utf8");
  const next = generateAsyncApi(text);
  if (process.argv.includes("--check")) {
    if (next !== text) {
      console.error("deploy/asyncapi.yaml differs from the code's tables: run bun deploy/gen-asyncapi-enums.ts");
      process.exit(1);
    }
    console.log("deploy/asyncapi.yaml: generated sections up to date");
  } else if (next !== text) {
    writeFileSync(ASYNCAPI_FILE, next);
    console.log("deploy/asyncapi.yaml: generated sections rewritten");
  } else console.log("deploy/asyncapi.yaml: generated sections up to date");
}
