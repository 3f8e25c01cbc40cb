/** The JSON Schema validator the dashboard checks payloads with, for the contract tests. */
export { SCHEMA_KEYWORDS, unknownKeywords, validate } from "../../agent/service/json-schema.ts";
