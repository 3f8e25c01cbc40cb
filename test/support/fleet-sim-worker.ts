/**
 * One worker process of SimFleetPool (fleet-sim.ts): runs a SimFleet with the options the
 * parent sends over IPC and answers "stats", "set" (jitter, intervals), "quiesce" and "stop". It exits when its parent
 * goes (IPC closed) or its fleet's lifetime ends.
 */
import { SimFleet, type SimFleetOptions } from "./fleet-sim.ts";

let fleet: SimFleet | undefined;
type Msg =
  | { type: "start"; opts: SimFleetOptions & { firstUrlIndexBase: number }; seq: number }
  | { type: "set"; opts: Pick<SimFleetOptions, "jitter" | "eventIntervalS" | "healthIntervalS">; seq: number }
  | { type: "stats" | "quiesce" | "stop"; seq: number };

process.on("message", (raw) => {
  const m = raw as Msg;
  const reply = (r: Record<string, unknown>) => process.send?.({ ...r, seq: m.seq });
  void (async () => {
    try {
      if (m.type === "start") {
        const base = m.opts.firstUrlIndexBase;
        fleet = new SimFleet({ ...m.opts, firstUrl: (i) => base + i });
        reply({ type: "started" });
        await fleet.start();
      } else if (m.type === "stats") reply({ type: "stats", stats: fleet!.snapshot() });
      else if (m.type === "set") {
        if (fleet) Object.assign(fleet.opts, m.opts);
        reply({ type: "started" });
      } else if (m.type === "quiesce") {
        fleet?.quiesce();
        reply({ type: "started" });
      } else if (m.type === "stop") {
        await fleet?.stop();
        reply({ type: "stopped" });
        setTimeout(() => process.exit(0), 50);
      }
    } catch (e) {
      reply({ type: "error", message: (e as Error).message });
    }
  })();
});
process.on("disconnect", () => process.exit(0));
