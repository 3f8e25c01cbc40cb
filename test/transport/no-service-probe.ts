/**
 * Subprocess for pcsc.test.ts: opens a PcscClient and prints the outcome as JSON. Run with
 * PCSCLITE_CSOCK_NAME pointing at a socket that does not exist, the client library sees "no pcscd"
 * without disturbing the shared daemon.
 */
import { TransportError } from "../../agent/errors.ts";
import { PcscClient } from "../../agent/transport/pcsc.ts";

try {
  const client = await PcscClient.open();
  await client.close();
  console.log(JSON.stringify({ ok: true }));
} catch (err) {
  if (!(err instanceof TransportError)) throw err;
  console.log(JSON.stringify({ ok: false, code: err.code, retryable: err.retryable, message: err.message }));
}
