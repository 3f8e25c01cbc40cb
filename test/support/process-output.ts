/**
 * A child process's output as text, for the test harnesses that keep a broker's or the agent's
 * log: every decoded chunk goes to `add` until the stream ends (multi-byte characters split
 * across chunks decode whole).
 */
export async function pumpText(stream: ReadableStream<Uint8Array>, add: (text: string) => void): Promise<void> {
  const dec = new TextDecoder();
  for await (const chunk of stream) add(dec.decode(chunk, { stream: true }));
}
