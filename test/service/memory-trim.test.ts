import { describe, expect, test } from "bun:test";
import { readFileSync, readlinkSync } from "node:fs";
import { parseSmaps, residentMemory, trimExecutablePages, trimmable } from "../../agent/service/memory-trim.ts";

const EXE = "/usr/bin/mrtd-agent";
// Shaped like /proc/<pid>/smaps (fields trimmed): text, constants, a frozen config page that
// was written before mprotect (private copy-on-write pages), writable data, the heap.
const SMAPS = `00200000-01a39000 r--p 00000000 fd:01 1234                               ${EXE}
Size:              25060 kB
Rss:                6656 kB
Anonymous:             0 kB
01a40000-0684a000 r-xp 01838000 fd:01 1234                               ${EXE}
Size:              79912 kB
Rss:               35940 kB
Anonymous:             0 kB
0684a000-0685f000 r--p 06641000 fd:01 1234                               ${EXE}
Rss:                  84 kB
Anonymous:            84 kB
06867000-06abc000 rw-p 0665e000 fd:01 1234                               ${EXE}
Rss:                1432 kB
Anonymous:           120 kB
06abc000-06abd000 r--p 00000000 fd:01 1234                               ${EXE}
Rss:                   0 kB
Anonymous:             0 kB
4db97200000-4dbd7200000 rw-p 00000000 00:00 0 
Rss:               20636 kB
Anonymous:         20636 kB
7f2b18bd3000-7f2b18bd4000 r-xp 00000000 fd:01 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1400 kB
Anonymous:             0 kB
`;

describe("memory trim: which mappings", () => {
  test("parses /proc smaps entries: range, permissions, path, Rss and Anonymous", () => {
    const m = parseSmaps(SMAPS);
    expect(m).toHaveLength(7);
    expect(m[1]).toEqual({ start: 0x1a40000, end: 0x684a000, perms: "r-xp", path: EXE, rssKb: 35940, anonKb: 0 });
    expect(m[5]).toMatchObject({ path: "", perms: "rw-p", anonKb: 20636 });
  });

  test("only the executable's read-only mappings without private pages that hold resident pages", () => {
    const t = trimmable(parseSmaps(SMAPS), EXE);
    expect(t.map((m) => m.perms + " " + m.start.toString(16))).toEqual(["r--p 200000", "r-xp 1a40000"]);
    // never: the frozen page with copy-on-write contents, writable data, anonymous memory,
    // libraries (above); nothing at all when the executable is not in the list
    expect(trimmable(parseSmaps(SMAPS), "/usr/bin/other")).toEqual([]);
  });
});

describe("memory trim on this process", () => {
  test("releases this process's executable pages; the process runs on unharmed", () => {
    const exe = readlinkSync("/proc/self/exe");
    const before = trimmable(parseSmaps(readFileSync("/proc/self/smaps", "utf8")), exe);
    const residentBefore = before.reduce((a, m) => a + m.rssKb, 0);
    expect(residentBefore).toBeGreaterThan(1024); // a Bun process has megabytes of its executable resident
    const r = trimExecutablePages();
    expect(r.mappings).toBe(before.length);
    expect(r.releasedBytes).toBeGreaterThan(0);
    const after = trimmable(parseSmaps(readFileSync("/proc/self/smaps", "utf8")), exe).reduce((a, m) => a + m.rssKb, 0);
    // What this code path touches again comes back, but far less than was there.
    expect(after).toBeLessThan(residentBefore / 2);
    // The code still runs (the pages fault back in from the page cache).
    expect(JSON.parse(JSON.stringify({ a: [1, 2, 3] }))).toEqual({ a: [1, 2, 3] });
    expect(new TextDecoder().decode(new TextEncoder().encode("ICAO 9303"))).toBe("ICAO 9303");
  });

  test("residentMemory reads VmRSS, RssAnon and RssFile", () => {
    const m = residentMemory()!;
    expect(m.residentBytes).toBeGreaterThan(0);
    expect(m.anonBytes).toBeGreaterThan(0);
    expect(m.fileBytes).toBeGreaterThan(0);
    expect(Math.abs(m.residentBytes - (m.anonBytes + m.fileBytes))).toBeLessThanOrEqual(m.residentBytes * 0.05);
  });
});
