/**
 * Fills a TrustStore from files: CSCA certificates (PEM or DER: .pem .cer .crt .der), CSCA master
 * lists (CMS, ICAO 9303-12 §7.1.1.2: .ml .bin .p7b .p7c .cms, or any file given by name) and CRLs
 * (.crl, or PEM "X509 CRL" blocks). The one module of agent/pki that reads files. The kind of
 * each file is decided by its content, not its extension. Master-list anchors load first, then
 * certificates and master lists, then CRLs so that every CRL's signature can be checked.
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, ParseError } from "../errors.ts";
import { parseAsn1 } from "./asn1.ts";
import { MASTER_LIST_MAX_NODES } from "./master-list.ts";
import { TrustStore } from "./trust-store.ts";

const EXTENSIONS = new Set([".pem", ".cer", ".crt", ".der", ".crl", ".ml", ".bin", ".p7b", ".p7c", ".cms"]);
const MAX_FILES = 20_000;
const MAX_FILE_BYTES = 64 * 1024 * 1024;
const MAX_DIR_DEPTH = 4;

type Kind = "certificate" | "crl" | "master-list";

interface Blob {
  source: string;
  bytes: Uint8Array;
  kind: Kind | undefined;
}

export interface TrustSourceOptions {
  /**
   * CSCA certificates (files or directories) trusted to vouch for master lists: a master list is
   * accepted only when one of them issued its signer. Without any, master lists are taken on the
   * operator's word and verdicts say so.
   */
  masterListAnchors?: string[];
  /** When master list signers must be valid (default: now). */
  now?: Date;
}

/**
 * Loads each path (a directory, or a file of any name) into `store` (a new one by default).
 * Unreadable paths throw ConfigError; unparsable files are recorded in `store.log` and skipped.
 */
export function loadTrustSources(paths: string[], store = new TrustStore(), opts: TrustSourceOptions = {}): TrustStore {
  for (const b of readBlobs(opts.masterListAnchors ?? [], store)) {
    try {
      const kind = b.kind ?? sniff(b.bytes);
      const status = kind === "certificate" ? store.addMasterListAnchor(b.bytes, b.source) : "not a certificate";
      store.log.push({ source: b.source, kind: "master-list-anchor", status: status === "loaded" ? "loaded" : "rejected", detail: status === "loaded" ? store.masterListAnchors.at(-1)!.cert.subject.text : caText(status) });
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      store.log.push({ source: b.source, kind: "master-list-anchor", status: "rejected", detail: e.message });
    }
  }
  const blobs = readBlobs(paths, store);
  for (const b of blobs) b.kind ??= sniff(b.bytes);
  const order: (Kind | undefined)[] = ["certificate", "master-list", "crl", undefined];
  blobs.sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
  for (const b of blobs) addBlob(store, b, opts.now ?? new Date());
  return store;
}

function caText(problem: string): string {
  return problem === "NOT_CA" ? "not a CA certificate" : problem === "KEY_USAGE" ? "CA certificate without keyCertSign" : problem === "CRITICAL_EXTENSION" ? "unknown critical extension" : problem;
}

function readBlobs(paths: string[], store: TrustStore): Blob[] {
  const files: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new ConfigError(`trust source not found: ${p}`, { file: p });
    }
    if (st.isDirectory()) collect(p, files, 0);
    else files.push(p);
  }
  const blobs: Blob[] = [];
  for (const f of files) {
    let bytes: Uint8Array;
    try {
      if (statSync(f).size > MAX_FILE_BYTES) throw new Error("too large");
      bytes = new Uint8Array(readFileSync(f));
    } catch {
      store.log.push({ source: f, kind: "skipped", status: "rejected", detail: "unreadable or larger than 64 MiB" });
      continue;
    }
    blobs.push(...split(f, bytes));
  }
  return blobs;
}

function addBlob(store: TrustStore, b: Blob, now: Date): void {
  try {
    switch (b.kind) {
      case "certificate": {
        const status = store.addCertificate(b.bytes, b.source);
        store.log.push({
          source: b.source,
          kind: "csca",
          status: status === "loaded" ? "loaded" : status === "duplicate" ? "duplicate" : "rejected",
          detail: status === "loaded" ? store.anchors.at(-1)!.cert.subject.text : status === "duplicate" ? "" : caText(status),
        });
        return;
      }
      case "master-list":
        store.addMasterList(b.bytes, b.source, now);
        return;
      case "crl":
        store.addCrl(b.bytes, b.source);
        return;
      default:
        store.log.push({ source: b.source, kind: "skipped", status: "rejected", detail: "not a certificate, master list or CRL" });
    }
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
    store.log.push({ source: b.source, kind: b.kind === "master-list" ? "master-list" : b.kind === "crl" ? "crl" : "csca", status: "rejected", detail: e.message });
  }
}

function collect(dir: string, out: string[], depth: number): void {
  if (depth > MAX_DIR_DEPTH) return;
  for (const name of readdirSync(dir).sort()) {
    if (out.length >= MAX_FILES) return;
    const full = join(dir, name);
    let st;
    try {
      st = statSync(full);
    } catch {
      continue;
    }
    if (st.isDirectory()) collect(full, out, depth + 1);
    else if (EXTENSIONS.has(name.slice(name.lastIndexOf(".")).toLowerCase())) out.push(full);
  }
}

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** PEM files may hold several blocks; anything else is one DER blob. */
function split(source: string, bytes: Uint8Array): Blob[] {
  const text = new TextDecoder("latin1").decode(bytes.subarray(0, Math.min(bytes.length, 64)));
  if (!text.includes("-----BEGIN")) return [{ source, bytes, kind: undefined }];
  const out: Blob[] = [];
  const all = new TextDecoder("latin1").decode(bytes);
  let i = 0;
  for (const m of all.matchAll(PEM_RE)) {
    const label = m[1]!;
    const kind: Kind | undefined =
      label === "CERTIFICATE" || label === "X509 CERTIFICATE" ? "certificate" : label === "X509 CRL" ? "crl" : label === "CMS" || label === "PKCS7" ? "master-list" : undefined;
    try {
      const der = Uint8Array.from(atob(m[2]!.replace(/\s+/g, "")), (c) => c.charCodeAt(0));
      out.push({ source: `${source}#${++i}`, bytes: der, kind });
    } catch {
      out.push({ source: `${source}#${++i}`, bytes: new Uint8Array(0), kind: undefined });
    }
  }
  // a file with one block is named by the file alone
  if (out.length === 1) out[0]!.source = source;
  return out;
}

/** What a DER blob holds, by shape: ContentInfo (master list) starts with an OID; TBSCertList and TBSCertificate by their field order. */
function sniff(bytes: Uint8Array): Kind | undefined {
  let root;
  try {
    root = parseAsn1(bytes, { maxNodes: MASTER_LIST_MAX_NODES });
  } catch {
    return undefined;
  }
  const first = root.children[0];
  if (root.tag !== 0x30 || !first) return undefined;
  if (first.tag === 0x06) return "master-list";
  if (first.tag !== 0x30) return undefined;
  // TBSCertList: version? AlgorithmIdentifier Name Time ...; TBSCertificate: [0]? serial AlgorithmIdentifier Name Validity ...
  const c = first.children;
  const isTime = (t: number | undefined) => t === 0x17 || t === 0x18;
  const crlOff = c[0]?.tag === 0x02 ? 1 : 0;
  if (c[crlOff]?.tag === 0x30 && c[crlOff + 1]?.tag === 0x30 && isTime(c[crlOff + 2]?.tag)) return "crl";
  const off = c[0]?.tag === 0xa0 ? 1 : 0;
  if (c[off]?.tag === 0x02 && c[off + 3]?.tag === 0x30 && isTime(c[off + 3]?.children[0]?.tag)) return "certificate";
  return undefined;
}
