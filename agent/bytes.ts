/** Small byte helpers shared by every layer. Uint8Array in and out; no Node or Bun API (the dashboard page bundles them). */

export function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s.toUpperCase();
}

export function fromHex(text: string): Uint8Array {
  const clean = text.replace(/[\s:]/g, "");
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) {
    throw new RangeError(`fromHex: not an even-length hex string (length ${clean.length})`);
  }
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Constant-time comparison for MACs and echoed challenges. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Overwrite key material once it is no longer needed. */
export function wipe(...arrays: Uint8Array[]): void {
  for (const a of arrays) a.fill(0);
}

/**
 * Calls `each(start, end)` for consecutive slices of `length` bytes, `sliceBytes` at a time,
 * with a macrotask between slices, so long byte work (hashing, encrypting a face image) lets
 * the event loop run. `sliceBytes` is checked by the caller (its unit differs: a hash block,
 * a cipher block).
 */
export async function forEachSlice(length: number, sliceBytes: number, each: (start: number, end: number) => void): Promise<void> {
  for (let start = 0; start < length; start += sliceBytes) {
    if (start > 0) await new Promise<void>((resolve) => nextMacrotask(resolve));
    each(start, Math.min(length, start + sliceBytes));
  }
}

/** setImmediate where the runtime has it (Bun), else a zero timeout (a browser). */
const nextMacrotask: (f: () => void) => void = (globalThis as { setImmediate?: (f: () => void) => void }).setImmediate ?? ((f) => setTimeout(f, 0));

/** The runtime's own base64 (Uint8Array.prototype.toBase64 / Uint8Array.fromBase64: Bun, current browsers), when it has it. */
const nativeToBase64 = (Uint8Array.prototype as { toBase64?: (this: Uint8Array) => string }).toBase64;
const nativeFromBase64 = (Uint8Array as { fromBase64?: (text: string) => Uint8Array }).fromBase64;

/**
 * Standard base64 with padding (RFC 4648 §4). The runtime's own encoder where it has one: the
 * agent encodes sealed replies of 40 KB and more, which the string fallback would build through
 * a 32 Ki-argument spread per chunk (heap and time in the interpreter).
 */
export function toBase64(bytes: Uint8Array): string {
  if (nativeToBase64) return nativeToBase64.call(bytes);
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** Decodes standard base64 (the caller checks the alphabet and padding first); throws RangeError on bad input. */
export function fromBase64(text: string): Uint8Array {
  if (nativeFromBase64) {
    try {
      return nativeFromBase64(text);
    } catch {
      throw new RangeError("fromBase64: not base64");
    }
  }
  let s: string;
  try {
    s = atob(text);
  } catch {
    throw new RangeError("fromBase64: not base64");
  }
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
