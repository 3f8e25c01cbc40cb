/**
 * Retry delays for the two things the agent reconnects to: the MQTT broker (mqtt-link.ts) and
 * pcscd (reader-watcher.ts).
 */

/**
 * Delay before reconnect attempt `attempt` (1-based): exponential from minMs, capped at maxMs,
 * with "equal jitter" (half fixed, half random) so it never drops below half the step.
 */
export function backoffDelayMs(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const step = Math.min(maxMs, minMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  return Math.round(step / 2 + random() * (step / 2));
}
