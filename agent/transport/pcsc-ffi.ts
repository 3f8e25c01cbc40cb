/**
 * Raw bindings to pcsc-lite's WinSCard API (libpcsclite.so.1, PC/SC Workgroup spec part 5) via bun:ffi.
 *
 * Layout is 64-bit Linux pcsc-lite: DWORD, LONG, SCARDCONTEXT and SCARDHANDLE are 8 bytes;
 * SCARD_IO_REQUEST is 16 bytes; SCARD_READERSTATE is 80 bytes (see platform-facts.md).
 * Several calls here block the calling thread: only pcsc-worker.ts calls those; the main thread
 * uses this module for SCardCancel alone.
 */

import { dlopen, ptr, type Pointer } from "bun:ffi";

// pcsc-lite constants (pcsclite.h, reader.h).
export const SCARD_S_SUCCESS = 0;
export const SCARD_SCOPE_SYSTEM = 2;
export const SCARD_SHARE_EXCLUSIVE = 1;
export const SCARD_SHARE_SHARED = 2;
export const SCARD_SHARE_DIRECT = 3;
export const SCARD_PROTOCOL_UNDEFINED = 0;
export const SCARD_PROTOCOL_T0 = 1;
export const SCARD_PROTOCOL_T1 = 2;
export const SCARD_PROTOCOL_RAW = 4;
export const SCARD_PROTOCOL_ANY = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1;
export const SCARD_LEAVE_CARD = 0;
export const SCARD_RESET_CARD = 1;
export const SCARD_UNPOWER_CARD = 2;
export const SCARD_EJECT_CARD = 3;

// dwCurrentState / dwEventState bits of SCARD_READERSTATE.
export const SCARD_STATE_UNAWARE = 0x0000;
export const SCARD_STATE_IGNORE = 0x0001;
export const SCARD_STATE_CHANGED = 0x0002;
export const SCARD_STATE_UNKNOWN = 0x0004;
export const SCARD_STATE_UNAVAILABLE = 0x0008;
export const SCARD_STATE_EMPTY = 0x0010;
export const SCARD_STATE_PRESENT = 0x0020;
export const SCARD_STATE_ATRMATCH = 0x0040;
export const SCARD_STATE_EXCLUSIVE = 0x0080;
export const SCARD_STATE_INUSE = 0x0100;
export const SCARD_STATE_MUTE = 0x0200;
export const SCARD_STATE_UNPOWERED = 0x0400;

// Card states returned by SCardStatus (pdwState).
export const SCARD_UNKNOWN = 0x0001;
export const SCARD_ABSENT = 0x0002;
export const SCARD_PRESENT = 0x0004;
export const SCARD_SWALLOWED = 0x0008;
export const SCARD_POWERED = 0x0010;
export const SCARD_NEGOTIABLE = 0x0020;
export const SCARD_SPECIFIC = 0x0040;

export const INFINITE = 0xffffffff;
export const MAX_ATR_SIZE = 33;
/** Short APDU buffer; also the largest attribute pcsc-lite returns. */
export const MAX_BUFFER_SIZE = 264;
/** Enough for an extended-length response: 64 KiB data + header + Lc + Le + SW (pcsclite.h MAX_BUFFER_SIZE_EXTENDED). */
export const MAX_BUFFER_SIZE_EXTENDED = 4 + 3 + (1 << 16) + 3 + 2;
/** The pseudo reader whose state changes when a reader is added or removed (pcsc-lite hot-plug). */
export const PNP_NOTIFICATION = "\\\\?PnP?\\Notification";

/** SCARD_READERSTATE on 64-bit Linux. */
export const READERSTATE_SIZE = 80;
export const RS_READER = 0;
export const RS_CURRENT_STATE = 16;
export const RS_EVENT_STATE = 24;
export const RS_CB_ATR = 32;
export const RS_ATR = 40;

const attr = (cls: number, tag: number) => ((cls << 16) | tag) >>> 0;
// Attribute ids for SCardGetAttrib (reader.h SCARD_ATTR_VALUE(class, tag)).
export const SCARD_ATTR_VENDOR_NAME = attr(1, 0x0100);
export const SCARD_ATTR_VENDOR_IFD_TYPE = attr(1, 0x0101);
export const SCARD_ATTR_VENDOR_IFD_VERSION = attr(1, 0x0102);
export const SCARD_ATTR_VENDOR_IFD_SERIAL_NO = attr(1, 0x0103);
export const SCARD_ATTR_CHANNEL_ID = attr(2, 0x0110);
export const SCARD_ATTR_CURRENT_PROTOCOL_TYPE = attr(8, 0x0201);
export const SCARD_ATTR_ICC_PRESENCE = attr(9, 0x0300);
export const SCARD_ATTR_ICC_INTERFACE_STATUS = attr(9, 0x0301);
export const SCARD_ATTR_ATR_STRING = attr(9, 0x0303);
export const SCARD_ATTR_ICC_TYPE_PER_ATR = attr(9, 0x0304);
export const SCARD_ATTR_MAXINPUT = attr(7, 0xa007);
export const SCARD_ATTR_DEVICE_FRIENDLY_NAME = attr(0x7fff, 0x0003);
export const SCARD_ATTR_DEVICE_SYSTEM_NAME = attr(0x7fff, 0x0004);
/**
 * IFD handler tag for the ATR (ifdhandler.h). pcscd passes attribute ids to the driver unchanged, and
 * minimal drivers such as vsmartcard vpcd answer only this tag, not SCARD_ATTR_ATR_STRING.
 */
export const TAG_IFD_ATR = 0x0303;

/*
 * Return type: LONG is 8 bytes, but every PC/SC code fits in 32 unsigned bits and sits in the low half
 * of the return register (x86-64 rax, arm64 x0), so "u32" reads it exactly, as a number, without BigInt.
 * DWORD/SCARDCONTEXT/SCARDHANDLE arguments are "u64".
 */
const symbols = {
  SCardEstablishContext: { args: ["u64", "ptr", "ptr", "ptr"], returns: "u32" },
  SCardReleaseContext: { args: ["u64"], returns: "u32" },
  SCardIsValidContext: { args: ["u64"], returns: "u32" },
  SCardListReaders: { args: ["u64", "ptr", "ptr", "ptr"], returns: "u32" },
  SCardGetStatusChange: { args: ["u64", "u64", "ptr", "u64"], returns: "u32" },
  SCardCancel: { args: ["u64"], returns: "u32" },
  SCardConnect: { args: ["u64", "ptr", "u64", "u64", "ptr", "ptr"], returns: "u32" },
  SCardReconnect: { args: ["u64", "u64", "u64", "u64", "ptr"], returns: "u32" },
  SCardDisconnect: { args: ["u64", "u64"], returns: "u32" },
  SCardBeginTransaction: { args: ["u64"], returns: "u32" },
  SCardEndTransaction: { args: ["u64", "u64"], returns: "u32" },
  SCardTransmit: { args: ["u64", "ptr", "ptr", "u64", "ptr", "ptr", "ptr"], returns: "u32" },
  SCardStatus: { args: ["u64", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr"], returns: "u32" },
  SCardGetAttrib: { args: ["u64", "u64", "ptr", "ptr"], returns: "u32" },
} as const;

type Lib = ReturnType<typeof dlopen<typeof symbols>>["symbols"];
let lib: Lib | undefined;

/** The loaded library (loaded on first use). Throws if libpcsclite.so.1 is missing. */
export function pcscLib(): Lib {
  if (!lib) lib = dlopen("libpcsclite.so.1", symbols).symbols;
  return lib;
}

export function ptrOf(buf: Uint8Array | BigUint64Array): Pointer {
  return ptr(buf);
}

/** NUL-terminated UTF-8, as pcsc-lite's char* arguments expect. */
export function cString(text: string): Uint8Array {
  return new TextEncoder().encode(text + "\0");
}

/** Splits a multi-string (names separated by NUL, ended by an empty name). */
export function splitMultiString(buf: Uint8Array, length: number): string[] {
  const names: string[] = [];
  const dec = new TextDecoder();
  let start = 0;
  for (let i = 0; i < length; i++) {
    if (buf[i] === 0) {
      if (i === start) break;
      names.push(dec.decode(buf.subarray(start, i)));
      start = i + 1;
    }
  }
  return names;
}
