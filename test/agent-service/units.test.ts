/**
 * Unit tests of the service's parts without broker or PC/SC: metrics (Prometheus histogram
 * semantics), reader health, structured logs, and sd_notify over a real unix datagram socket.
 */
import { describe, expect, test } from "bun:test";
import { dlopen, FFIType, ptr } from "bun:ffi";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolve } from "node:path";
import { ReaderHealthTracker, SUCCESS_WINDOW } from "../../agent/service/health.ts";
import { createLogger, errorFields } from "../../agent/service/logger.ts";
import { commandLabel, Histogram, MetricsRegistry, statusWordLabel, toPrometheusText } from "../../agent/service/metrics.ts";
import { notifyAddress, sdNotify, SystemdNotifier, watchdogIntervalMs } from "../../agent/service/systemd-notify.ts";
import { TransportError, AccessDeniedError } from "../../agent/errors.ts";
import { validate } from "../support/json-schema.ts";

const asyncapi = Bun.YAML.parse(await Bun.file(resolve(import.meta.dir, "../../deploy/asyncapi.yaml")).text()) as object;
const schemaErrors = (name: string, v: unknown) => validate({ $ref: `#/components/schemas/${name}` }, v, asyncapi);

describe("metrics", () => {
  test("histogram buckets are cumulative, +Inf equals the count, sum adds up", () => {
    const h = new Histogram("mrtd_apdu_duration_seconds", { command: "select" }, [0.01, 0.1, 1]);
    for (const v of [0.005, 0.01, 0.05, 0.5, 2, 3]) h.observe(v);
    h.observe(-1); // ignored
    h.observe(Number.NaN);
    const s = h.snapshot();
    expect(s.buckets).toEqual([
      { le: 0.01, count: 2 }, // le is inclusive
      { le: 0.1, count: 3 },
      { le: 1, count: 4 },
      { le: "+Inf", count: 6 },
    ]);
    expect(s.count).toBe(6);
    expect(s.sum).toBeCloseTo(5.565, 6);
  });

  test("the sw label is bounded: known status words, a few families, none, other", () => {
    expect([0x9000, 0x6a82, 0x6982, 0x6f01].map(statusWordLabel)).toEqual(["9000", "6A82", "6982", "6F01"]);
    expect([0x6110, 0x6c20, 0x63c2, 0x6f42, undefined].map(statusWordLabel)).toEqual(["61XX", "6CXX", "63CX", "6FXX", "none"]);
    // a hostile chip answering every status word makes a handful of series, not 65,536
    const labels = new Set<string>();
    for (let sw = 0; sw <= 0xffff; sw++) labels.add(statusWordLabel(sw));
    expect(labels.size).toBeLessThan(40);
    expect(labels.has("other")).toBe(true);
  });

  test("registry keys series by labels; snapshot matches the AsyncAPI Metrics schema; Prometheus text", () => {
    const m = new MetricsRegistry();
    m.histogram("mrtd_apdu_duration_seconds", { command: commandLabel("READ BINARY (odd)") }, [0.01]).observe(0.002);
    m.histogram("mrtd_apdu_duration_seconds", { command: "read_binary_odd" }, [0.01]).observe(0.02);
    m.inc("mrtd_apdu_status_total", { sw: "9000" });
    m.inc("mrtd_apdu_status_total", { sw: "9000" }, 2);
    m.inc("mrtd_read_failures_total", { class: "RF_TIMEOUT" });
    m.gauge("mrtd_outbox_pending", () => 7);
    expect(m.counter("mrtd_apdu_status_total", { sw: "9000" })).toBe(3);
    const snap = m.snapshot("agent-1", 60, new Date("2026-01-01T00:00:00Z"));
    expect(snap.histograms).toHaveLength(1);
    expect(snap.histograms[0]!.labels).toEqual({ command: "read_binary_odd" });
    expect(snap.histograms[0]!.count).toBe(2);
    expect(schemaErrors("Metrics", snap)).toEqual([]);
    const text = toPrometheusText(snap);
    expect(text).toContain('# TYPE mrtd_apdu_duration_seconds histogram');
    expect(text).toContain('mrtd_apdu_duration_seconds_bucket{command="read_binary_odd",le="0.01"} 1');
    expect(text).toContain('mrtd_apdu_duration_seconds_bucket{command="read_binary_odd",le="+Inf"} 2');
    expect(text).toContain('mrtd_apdu_status_total{sw="9000"} 3');
    expect(text).toContain("# TYPE mrtd_outbox_pending gauge");
    expect(() => new Histogram("bad-name", {}, [1])).toThrow(RangeError);
    expect(() => new Histogram("ok", {}, [1, 1])).toThrow(RangeError);
  });
});

describe("reader health", () => {
  test("success rate over a window, rf drops, latency mean and p95, change detection", () => {
    const h = new ReaderHealthTracker("ACS ACR122U PICC Interface 00 00");
    h.connected = true;
    expect(h.changedSincePublished("a")).toBe(true);
    h.markPublished("a");
    expect(h.changedSincePublished("a")).toBe(false);
    h.cardPresent = true;
    expect(h.changedSincePublished("a")).toBe(true);
    const lat = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100 ms
    h.recordRead(true, { apduMs: lat });
    h.recordRead(false, {
      failureClass: "RF_TIMEOUT",
      recoveries: [
        { step: "read DG2", cause: "RF_TIMEOUT", layer: "rf-link", action: "x", apdus: 1, ms: 1 },
        { step: "read DG2", cause: "SM_OUT_OF_STEP", layer: "secure-messaging", action: "x", apdus: 1, ms: 1 },
      ],
    });
    const s = h.snapshot("a");
    expect(s.successRate).toEqual({ windowReads: 2, succeeded: 1, rate: 0.5 });
    expect(s.lastFailureClass).toBe("RF_TIMEOUT");
    expect(s.recoveries).toBe(2);
    expect(s.rfDrops).toBe(1);
    expect(s.apduLatencyMs).toEqual({ mean: 50.5, p95: 95 });
    expect(schemaErrors("ReaderHealth", s)).toEqual([]);
    for (let i = 0; i < SUCCESS_WINDOW + 5; i++) h.recordRead(true);
    expect(h.snapshot("a").successRate).toEqual({ windowReads: SUCCESS_WINDOW, succeeded: SUCCESS_WINDOW, rate: 1 });
  });
});

describe("structured logs", () => {
  test("one JSON object per line, level filter, errors reduced to name and code", () => {
    const lines: string[] = [];
    const log = createLogger({ level: "info", write: (l) => lines.push(l), base: { agentId: "a1" } });
    log.debug("hidden");
    log.info("card inserted", { reader: "R", count: 3, nested: { secret: "L898902C3" } as never });
    log.warn("failed", { err: new Error("message quoting L898902C3") });
    log.error("typed", errorFields(new TransportError("NO_CARD", "no card in R", { retryable: true })));
    log.child({ reader: "R2" }).info("child");
    expect(lines).toHaveLength(4);
    const parsed = lines.map((l) => {
      expect(l.endsWith("\n")).toBe(true);
      return JSON.parse(l) as Record<string, unknown>;
    });
    expect(parsed[0]).toMatchObject({ level: "info", msg: "card inserted", agentId: "a1", reader: "R", count: 3 });
    expect(parsed[0]!.nested).toBeUndefined(); // objects are never dumped
    expect(parsed[1]!.err).toBe("Error");
    expect(parsed[2]).toMatchObject({ error: "TransportError", code: "NO_CARD", message: "no card in R" });
    expect(parsed[3]).toMatchObject({ reader: "R2", agentId: "a1" });
    expect(lines.join("")).not.toContain("L898902C3");
    // an access-denied error keeps its (secret-free) message
    expect(errorFields(new AccessDeniedError())).toMatchObject({ error: "AccessDeniedError" });
    expect(errorFields(new Error("foreign L898902C3")).message).toBeUndefined();
  });
});

// A receiving unix datagram socket, through libc as the notifier itself does (node has none).
const libc = dlopen("libc.so.6", {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
});
const MSG_DONTWAIT = 0x40;
function listen(name: string): { fd: number; receive(): string | undefined; close(): void } {
  const fd = libc.symbols.socket(1, 2, 0);
  expect(fd).toBeGreaterThanOrEqual(0);
  const { addr, length } = notifyAddress(name);
  expect(libc.symbols.bind(fd, ptr(addr), length)).toBe(0);
  return {
    fd,
    receive() {
      const buf = new Uint8Array(4096);
      const n = Number(libc.symbols.recv(fd, ptr(buf), buf.length, MSG_DONTWAIT));
      return n < 0 ? undefined : new TextDecoder().decode(buf.subarray(0, n));
    },
    close: () => void libc.symbols.close(fd),
  };
}

describe("sd_notify", () => {
  test("READY, STATUS and STOPPING reach a socket named by a path", () => {
    const path = join(mkdtempSync(join(tmpdir(), "mrtd-notify-")), "notify.sock");
    const s = listen(path);
    try {
      const n = new SystemdNotifier({ NOTIFY_SOCKET: path });
      expect(n.ready("watching 1 reader(s)")).toBe(true);
      expect(s.receive()).toBe("READY=1\nSTATUS=watching 1 reader(s)");
      expect(n.stopping()).toBe(true);
      expect(s.receive()).toBe("STOPPING=1");
      expect(s.receive()).toBeUndefined();
    } finally {
      s.close();
    }
  });

  test("abstract socket names (@...) and the watchdog at half of WATCHDOG_USEC", async () => {
    const name = `@mrtd-agent-test-${process.pid}-${Date.now()}`;
    const s = listen(name);
    try {
      const env = { NOTIFY_SOCKET: name, WATCHDOG_USEC: "200000", WATCHDOG_PID: String(process.pid) };
      expect(watchdogIntervalMs(env)).toBe(200);
      expect(watchdogIntervalMs({ ...env, WATCHDOG_PID: "1" })).toBeUndefined();
      const n = new SystemdNotifier(env);
      expect(n.ready()).toBe(true);
      expect(s.receive()).toBe("READY=1");
      await Bun.sleep(350);
      const got: string[] = [];
      for (let m = s.receive(); m !== undefined; m = s.receive()) got.push(m);
      n.stopping();
      expect(got.length).toBeGreaterThanOrEqual(2); // every 100 ms
      expect(new Set(got)).toEqual(new Set(["WATCHDOG=1"]));
    } finally {
      s.close();
    }
  });

  test("without NOTIFY_SOCKET nothing is sent; bad names are refused", () => {
    expect(sdNotify("READY=1", {})).toBe(false);
    expect(new SystemdNotifier({}).ready()).toBe(false);
    expect(sdNotify("READY=1", { NOTIFY_SOCKET: "relative/path" })).toBe(false);
    expect(() => notifyAddress("/" + "x".repeat(200))).toThrow(RangeError);
    const abs = notifyAddress("@abc");
    expect(abs.length).toBe(2 + 4);
    expect(abs.addr[2]).toBe(0);
    expect(notifyAddress("/run/x").length).toBe(2 + 6 + 1);
  });
});

describe("deploy files and docs", () => {
  const root = resolve(import.meta.dir, "../..");
  test("the README's config table names every key of deploy/config.example.toml", () => {
    const example = Bun.file(join(root, "deploy/config.example.toml"));
    return example.text().then(async (text) => {
      const readme = await Bun.file(join(root, "README.md")).text();
      let section = "";
      const keys: string[] = [];
      for (const line of text.split("\n")) {
        const s = /^\[(\w+)\]/.exec(line);
        if (s) section = s[1]!;
        const k = /^# (\w+) = /.exec(line);
        if (k) keys.push(`${section}.${k[1]}`);
      }
      expect(keys.length).toBeGreaterThan(15);
      for (const k of keys) expect({ k, documented: readme.includes("`" + k + "`") }).toEqual({ k, documented: true });
    });
  });

  test("the systemd unit is Type=notify with a watchdog, restarts on failure and keeps pcscd and the state dir reachable", async () => {
    const unit = await Bun.file(join(root, "deploy/mrtd-agent.service")).text();
    for (const line of ["Type=notify", "WatchdogSec=30s", "Restart=on-failure", "ReadWritePaths=/run/pcscd", "StateDirectory=mrtd-agent", "ProtectSystem=strict", "NoNewPrivileges=yes"]) {
      expect(unit.split("\n")).toContain(line);
    }
    expect(unit).toMatch(/^ExecStart=\S+ run --config \/etc\/mrtd-agent\/config\.toml$/m);
    if (Bun.which("systemd-analyze")) {
      // verify with ExecStart pointing at an existing binary (the real one is installed later)
      const dir = mkdtempSync(join(tmpdir(), "mrtd-unit-"));
      const path = join(dir, "mrtd-agent.service");
      await Bun.write(path, unit.replace(/^ExecStart=\S+/m, "ExecStart=/bin/true"));
      const r = Bun.spawnSync(["systemd-analyze", "verify", path], { stdout: "pipe", stderr: "pipe" });
      const problems = r.stderr.toString().split("\n").filter((l) => l.includes("mrtd-agent.service") && !/Documentation|not executable/.test(l));
      expect(problems).toEqual([]);
    }
  });
});

describe("run: [verification] trust", () => {
  test("a trust source that does not exist stops the agent at start: exit 2 naming file and key", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mrtd-trust-"));
    const file = join(dir, "c.toml");
    writeFileSync(file, `[agent]\nid = "trust-check"\nstate_dir = "${dir}/state"\n[mqtt]\nurl = "mqtt://127.0.0.1:1"\n[verification]\ntrust = ["${dir}/no-such-csca"]\n`);
    const p = Bun.spawn([process.execPath, join(import.meta.dir, "../../agent/cli.ts"), "run", "--config", file], { stdout: "pipe", stderr: "pipe" });
    const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    expect(code).toBe(2);
    expect(err).toContain(`${file}: verification.trust:`);
    expect(err).toContain("no-such-csca");
    rmSync(dir, { recursive: true, force: true });
  });
});
