/**
 * SIGTERM or SIGINT for the long-running commands (`run`, `dashboard`): `stopped` settles with
 * the signal; `dispose` removes the handlers again.
 */
export function stopSignal(): { stopped: Promise<NodeJS.Signals>; dispose(): void } {
  let resolveStop!: (signal: NodeJS.Signals) => void;
  const stopped = new Promise<NodeJS.Signals>((r) => (resolveStop = r));
  const onSignal = (signal: NodeJS.Signals) => resolveStop(signal);
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return {
    stopped,
    dispose() {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
    },
  };
}
