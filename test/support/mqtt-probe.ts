/**
 * Whether an MQTT broker at `url` answers a CONNECT with a CONNACK now: one connection, no
 * reconnect, closed at once. The cluster harnesses poll it until a node is ready.
 */
import mqtt, { type IClientOptions } from "mqtt";

export function answersConnect(url: string, opts: IClientOptions): Promise<boolean> {
  return new Promise<boolean>((res) => {
    const c = mqtt.connect(url, { clean: true, connectTimeout: 3000, ...opts, reconnectPeriod: 0 });
    let settled = false;
    const done = (v: boolean) => {
      if (settled) return;
      settled = true;
      c.end(true);
      res(v);
    };
    c.once("connect", () => done(true));
    c.on("error", () => done(false)); // "on": a second error after the first would otherwise be unhandled
    c.once("close", () => done(false));
  });
}
