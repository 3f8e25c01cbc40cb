/**
 * The few libc calls the service makes through bun:ffi (the one binding of libc.so.6):
 * socket(2), sendto(2) and close(2) for sd_notify (systemd-notify.ts; Bun's node:dgram has no
 * unix datagram sockets) and madvise(2) for the page trim (memory-trim.ts). Opened at first use.
 */
import { dlopen, FFIType } from "bun:ffi";

export interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  sendto(fd: number, buf: unknown, len: number, flags: number, addr: unknown, addrlen: number): number | bigint;
  close(fd: number): number;
  madvise(addr: number, length: number, advice: number): number;
}

let symbols: Libc | undefined;

export function libc(): Libc {
  symbols ??= dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    madvise: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
  }).symbols as unknown as Libc;
  return symbols;
}
