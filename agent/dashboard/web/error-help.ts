/**
 * What each code a command can end with means for the operator, and what to do: the agent's
 * reply codes (agent/service/command-types.ts COMMAND_ERROR_CODES, all of them) and the
 * dashboard's own (the agent is offline, the broker refused, no final reply in time, ...).
 */
export const ERROR_HELP: Record<string, string> = {
  BUSY: "the agent is busy with another card command (or too many commands run here); try again when it ends",
  NO_READER: "no connected reader at the agent matches the chosen reader",
  TIMEOUT: "no card was presented on the reader within the wait",
  ACCESS_DENIED: "the card refused the access key: check the document number, the dates of birth and expiry (or the CAN)",
  EXPIRED: "the sealed access key expired before the agent opened it (this browser's clock and the agent's differ, or the command waited too long): send it again",
  BAD_FIELD: "the agent refused a field of the command",
  MISSING_FIELD: "the agent found a field missing",
  BAD_CHECK_DIGIT: "a check digit of the MRZ key is wrong",
  PLAINTEXT_ACCESS_KEY: "an access key in clear is refused; the page seals it",
  NOT_SUPPORTED: "this agent does not support that command",
  DUPLICATE: "the agent already answered this command id and no longer holds the reply",
  CARD_ERROR: "the card answered with an error or data that does not parse",
  TRANSPORT: "the card or reader link failed (card moved away, reader error)",
  TOO_LARGE: "the command was too large for the agent",
  UNKNOWN_COMMAND: "the agent does not know this command",
  BAD_JSON: "the agent could not parse the command",
  INTERNAL: "the agent failed unexpectedly; see its log",
  AGENT_OFFLINE: "the agent is offline",
  NO_REPLY: "no final reply from the agent in time (it is busy, lost its connection, or does not answer this command)",
  STOPPED: "the dashboard stopped before the agent answered",
  NOT_SEALED_BY_AGENT: "the result was not sealed by the agent's key for this command, so it is not shown",
  NETWORK: "the connection to the dashboard failed",
  BROKER: "the dashboard could not publish the command to the broker",
};
