/**
 * The MQTT protocol versions the agent, the operator CLI and the dashboard speak (config
 * `mqtt.protocol`): OASIS MQTT 5.0, or 3.1.1 for brokers that speak nothing newer. The wire
 * form of commands in each is in command-wire.ts.
 */
export const MQTT_PROTOCOLS = ["5", "3.1.1"] as const;
export type MqttProtocol = (typeof MQTT_PROTOCOLS)[number];

/** The protocol level mqtt.js takes for a protocol name (CONNECT's protocol level byte). */
export function protocolVersion(p: MqttProtocol): 4 | 5 {
  return p === "5" ? 5 : 4;
}
