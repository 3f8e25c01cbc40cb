/**
 * A small JSON Schema (draft 2020-12 / draft-07 subset) validator, for the contract tests and
 * for the dashboard, which checks every payload it receives against deploy/asyncapi.yaml: type, enum,
 * const, properties, required, additionalProperties, items, min/max(Length|Items|imum),
 * pattern, oneOf, anyOf, not, if/then/else, propertyNames, $ref (local "#/..."), format and
 * annotations (ignored). Any other keyword throws, so a schema is never silently half-checked.
 */
export const SCHEMA_KEYWORDS: ReadonlySet<string> = new Set([
  "type", "enum", "const", "properties", "required", "additionalProperties", "items", "minLength", "maxLength",
  "minimum", "maximum", "minItems", "maxItems", "pattern", "oneOf", "anyOf", "$ref", "format", "description", "title", "examples", "propertyNames",
  "not", "if", "then", "else",
]);

export function validate(schema: unknown, value: unknown, root: unknown = schema, path = "$"): string[] {
  if (schema === true) return [];
  if (schema === false) return [`${path}: no value allowed`];
  const s = schema as Record<string, unknown>;
  for (const k of Object.keys(s)) if (!SCHEMA_KEYWORDS.has(k)) throw new Error(`json-schema: unsupported keyword ${k} at ${path}`);
  if (typeof s.$ref === "string") {
    if (!s.$ref.startsWith("#/")) throw new Error(`json-schema: only local $ref supported (${s.$ref})`);
    let target: unknown = root;
    for (const part of s.$ref.slice(2).split("/")) target = (target as Record<string, unknown>)?.[part.replace(/~1/g, "/").replace(/~0/g, "~")];
    if (target === undefined) throw new Error(`json-schema: unresolved $ref ${s.$ref}`);
    return validate(target, value, root, path);
  }
  const errors: string[] = [];
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    if (!types.some((t) => typeOk(t, value))) return [`${path}: expected ${types.join("|")}, got ${JSON.stringify(value)?.slice(0, 40)}`];
  }
  if (s.enum !== undefined && !(s.enum as unknown[]).some((e) => JSON.stringify(e) === JSON.stringify(value))) errors.push(`${path}: not one of ${JSON.stringify(s.enum)}`);
  if (s.const !== undefined && JSON.stringify(s.const) !== JSON.stringify(value)) errors.push(`${path}: must be ${JSON.stringify(s.const)}`);
  if (typeof value === "string") {
    if (typeof s.minLength === "number" && value.length < s.minLength) errors.push(`${path}: shorter than ${s.minLength}`);
    if (typeof s.maxLength === "number" && value.length > s.maxLength) errors.push(`${path}: longer than ${s.maxLength}`);
    if (typeof s.pattern === "string" && !patternOf(s.pattern).test(value)) errors.push(`${path}: does not match ${s.pattern}`);
  }
  if (typeof value === "number") {
    if (typeof s.minimum === "number" && value < s.minimum) errors.push(`${path}: below ${s.minimum}`);
    if (typeof s.maximum === "number" && value > s.maximum) errors.push(`${path}: above ${s.maximum}`);
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === "number" && value.length < s.minItems) errors.push(`${path}: fewer than ${s.minItems} items`);
    if (typeof s.maxItems === "number" && value.length > s.maxItems) errors.push(`${path}: more than ${s.maxItems} items`);
    if (s.items !== undefined) value.forEach((v, i) => errors.push(...validate(s.items, v, root, `${path}[${i}]`)));
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, unknown>;
    for (const r of (s.required ?? []) as string[]) if (!(r in obj)) errors.push(`${path}: missing ${r}`);
    for (const [k, v] of Object.entries(obj)) {
      if (s.propertyNames !== undefined) errors.push(...validate(s.propertyNames, k, root, `${path}.${k}(name)`));
      if (k in props) errors.push(...validate(props[k], v, root, `${path}.${k}`));
      else if (s.additionalProperties === false) errors.push(`${path}: unexpected property ${k}`);
      else if (typeof s.additionalProperties === "object") errors.push(...validate(s.additionalProperties, v, root, `${path}.${k}`));
    }
  }
  if (Array.isArray(s.oneOf)) {
    const ok = (s.oneOf as unknown[]).filter((sub) => validate(sub, value, root, path).length === 0).length;
    if (ok !== 1) errors.push(`${path}: matches ${ok} of oneOf (need exactly 1)`);
  }
  if (Array.isArray(s.anyOf) && !(s.anyOf as unknown[]).some((sub) => validate(sub, value, root, path).length === 0)) errors.push(`${path}: matches none of anyOf`);
  if (s.not !== undefined && validate(s.not, value, root, path).length === 0) errors.push(`${path}: matches a schema it must not (not: ${JSON.stringify(s.not)})`);
  if (s.if !== undefined) {
    const branch = validate(s.if, value, root, path).length === 0 ? s.then : s.else;
    if (branch !== undefined) errors.push(...validate(branch, value, root, path));
  }
  return errors;
}

const patterns = new Map<string, RegExp>();
/** Schemas hold a few dozen patterns; each is compiled once. */
function patternOf(source: string): RegExp {
  let re = patterns.get(source);
  if (!re) patterns.set(source, (re = new RegExp(source, "u")));
  return re;
}

function typeOk(t: string, v: unknown): boolean {
  switch (t) {
    case "object": return typeof v === "object" && v !== null && !Array.isArray(v);
    case "array": return Array.isArray(v);
    case "string": return typeof v === "string";
    case "integer": return typeof v === "number" && Number.isInteger(v);
    case "number": return typeof v === "number" && Number.isFinite(v);
    case "boolean": return typeof v === "boolean";
    case "null": return v === null;
    default: throw new Error(`json-schema: unknown type ${t}`);
  }
}

/** Keywords of `schema` and every schema inside it that this validator does not know ("$.a.b: key"). */
export function unknownKeywords(schema: unknown, path = "$"): string[] {
  if (typeof schema !== "object" || schema === null) return [];
  const s = schema as Record<string, unknown>;
  const out = Object.keys(s).filter((k) => !SCHEMA_KEYWORDS.has(k)).map((k) => `${path}: ${k}`);
  for (const k of ["items", "additionalProperties", "propertyNames", "not", "if", "then", "else"]) out.push(...unknownKeywords(s[k], `${path}.${k}`));
  for (const k of ["oneOf", "anyOf"]) if (Array.isArray(s[k])) (s[k] as unknown[]).forEach((sub, i) => out.push(...unknownKeywords(sub, `${path}.${k}[${i}]`)));
  for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, unknown>)) out.push(...unknownKeywords(v, `${path}.properties.${k}`));
  return out;
}
