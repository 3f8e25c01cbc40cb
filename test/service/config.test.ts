import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ConfigError } from "../../agent/errors.ts";
import { DEFAULTS, Secret, loadConfig, parseConfig, readerSelected, redactedConfig } from "../../agent/service/config.ts";
import { loadTestAccessKey } from "../../agent/service/test-access-key.ts";
import { makeTempDir, removeTempDirs } from "../support/temp-dir.ts";

afterAll(removeTempDirs);

const FILE = "/etc/mrtd-agent/test.toml";

function errorOf(text: string, env: Record<string, string> = {}): ConfigError {
  try {
    parseConfig(text, FILE, env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("config: errors name file, key and problem", () => {
  const cases: Array<[string, string, string, RegExp]> = [
    ["unknown key with did-you-mean", "[mqtt]\nurll = \"mqtts://h:8883\"", "mqtt.urll", /unknown key \(did you mean mqtt\.url\?\)/],
    ["unknown section", "[telemetri]\nhealth_interval_s = 5", "telemetri", /unknown section \(did you mean telemetry\?\)/],
    ["wrong type", "[mqtt]\nkeepalive_s = \"30\"", "mqtt.keepalive_s", /must be an integer, not a string/],
    ["float for integer", "[telemetry]\nhealth_interval_s = 1.5", "telemetry.health_interval_s", /must be an integer, not a float/],
    ["below range", "[telemetry]\nmetrics_interval_s = 0", "telemetry.metrics_interval_s", /at least 1/],
    ["above range", "[mqtt]\nkeepalive_s = 70000", "mqtt.keepalive_s", /at most 65535/],
    ["enum", "[agent]\nlog_level = \"verbose\"", "agent.log_level", /one of debug, info, warn, error/],
    ["bool", "[readers]\nread_on_insert = \"yes\"", "readers.read_on_insert", /true or false/],
    ["string array", "[readers]\ninclude = [\"ACS*\", 3]", "readers.include", /array of non-empty strings/],
    ["bad scheme", "[mqtt]\nurl = \"http://h:80\"", "mqtt.url", /scheme must be mqtts or mqtt/],
    ["credentials in url", "[mqtt]\nurl = \"mqtts://u:p@h:8883\"", "mqtt.url", /must not carry credentials/],
    ["inline password", "[mqtt]\npassword = \"hunter2\"", "mqtt.password", /secrets are not accepted inline/],
    ["cert without key", "[mqtt]\nclient_cert = \"/c.pem\"", "mqtt.client_key", /together/],
    ["tls files with mqtt://", "[mqtt]\nurl = \"mqtt://h:1883\"\nca = \"/ca.pem\"", "mqtt.url", /must use mqtts/],
    ["wildcard prefix", "[mqtt]\nprefix = \"mrtd/+\"", "mqtt.prefix", /wildcards/],
    ["empty level prefix", "[mqtt]\nprefix = \"mrtd//v1\"", "mqtt.prefix", /empty level/],
    ["backoff order", "[mqtt]\nreconnect_min_ms = 5000\nreconnect_max_ms = 1000", "mqtt.reconnect_max_ms", /at least reconnect_min_ms/],
    ["agent id chars", "[agent]\nid = \"a b\"", "agent.id", /must be 1-64/],
    ["operator agent id", "[agent]\nid = \"operator-x\"", "agent.id", /reserved/],
    ["read_on_insert without key", "[readers]\nread_on_insert = true", "readers.test_key_file", /required/],
    ["password env unset", "[mqtt]\nusername = \"u\"\npassword_env = \"MRTD_PW\"", "mqtt.password_env", /MRTD_PW is not set/],
    ["password without username", "[mqtt]\npassword_env = \"MRTD_PW\"", "mqtt.username", /required/],
    ["both password sources", "[mqtt]\nusername = \"u\"\npassword_env = \"A\"\npassword_file = \"/x\"", "mqtt.password_env", /not both/],
    ["section not a table", "agent = 3", "agent", /must be a table/],
    ["jit scale below 1", "[memory]\njit_threshold_scale = 0", "memory.jit_threshold_scale", /at least 1/],
    ["personal data without a key", "[telemetry]\ninclude_personal_data = true", "telemetry.personal_data_public_key", /required when include_personal_data = true/],
    ["personal data key not base64 of 32 bytes", "[telemetry]\npersonal_data_public_key = \"c2hvcnQ=\"", "telemetry.personal_data_public_key", /must be an X25519 public key: 32 bytes in base64/],
    ["url and urls both", "[mqtt]\nurl = \"mqtts://a:8883\"\nurls = [\"mqtts://b:8883\"]", "mqtt.urls", /give mqtt\.url \(one broker\) or mqtt\.urls \(several\), not both/],
    ["urls empty", "[mqtt]\nurls = []", "mqtt.urls", /must list 1-16 broker URLs/],
    ["urls: a bad one named by index", "[mqtt]\nurls = [\"mqtts://a:8883\", \"http://b\"]", "mqtt.urls[1]", /scheme must be mqtts or mqtt/],
    ["urls repeated", "[mqtt]\nurls = [\"mqtts://a:8883\", \"mqtts://a:8883\"]", "mqtt.urls[1]", /repeats an earlier URL/],
    ["urls: tls files with mqtt://", "[mqtt]\nurls = [\"mqtts://a:8883\", \"mqtt://b:1883\"]\nca = \"/ca.pem\"", "mqtt.urls[1]", /must use mqtts/],
    ["protocol", "[mqtt]\nprotocol = \"3.1\"", "mqtt.protocol", /must be one of 5, 3\.1\.1/],
    ["protocol as a number", "[mqtt]\nprotocol = 5", "mqtt.protocol", /must be a string, not an integer/],
    ["session expiry negative", "[mqtt]\nsession_expiry_s = -1", "mqtt.session_expiry_s", /at least 0/],
    ["trim not a bool", "[memory]\ntrim_executable_pages = 1", "memory.trim_executable_pages", /true or false/],
  ];
  for (const [title, text, key, problem] of cases) {
    test(title, () => {
      const e = errorOf(text, {});
      expect(e.file).toBe(FILE);
      expect(e.key).toBe(key);
      expect(e.message.startsWith(`${FILE}: ${key}: `)).toBe(true);
      expect(e.message).toMatch(problem);
    });
  }

  test("TOML syntax error names the file and position, not the text", () => {
    const e = errorOf('[mqtt]\nurl = = "secret-ish"');
    expect(e.message).toMatch(/^\/etc\/mrtd-agent\/test\.toml: not valid TOML at line 2/);
    expect(e.message).not.toContain("secret-ish");
  });

  test("a missing file is a ConfigError naming it", () => {
    expect(() => loadConfig("/nonexistent/mrtd.toml")).toThrow(/\/nonexistent\/mrtd\.toml: cannot read the configuration file \(ENOENT\)/);
  });
});

describe("config: values and defaults", () => {
  test("empty file gives the documented defaults", () => {
    const c = parseConfig("", FILE, {});
    expect(c.mqtt.prefix).toBe("mrtd/v1");
    expect(c.agent.stateDir).toBe("/var/lib/mrtd-agent");
    expect(c.outbox.path).toBe("/var/lib/mrtd-agent/outbox.sqlite");
    expect(c.telemetry.includePersonalData).toBe(false);
    expect(c.agent.id.length).toBeGreaterThan(0);
    expect(c.mqtt.reconnectMinMs).toBe(DEFAULTS.mqtt.reconnectMinMs);
  });

  test("deploy/config.example.toml parses and states the same defaults", () => {
    const path = resolve(import.meta.dir, "../../deploy/config.example.toml");
    const text = readFileSync(path, "utf8");
    // Uncomment the "# key = value" default lines and parse: every documented default must match DEFAULTS.
    const uncommented = text.replace(/^# ?([a-z_]+ = .*)$/gm, "$1").replace(/^# ?(\[[a-z]+\])$/gm, "$1");
    const dir = makeTempDir("cfg");
    const f = join(dir, "c.toml");
    writeFileSync(f, uncommented.replace(/^(password_env|test_key_file|client_cert|client_key|ca|username|password_file|path|id|personal_data_public_key|urls) = .*$/gm, ""));
    const c = loadConfig(f, {});
    expect(c.mqtt.keepaliveS).toBe(DEFAULTS.mqtt.keepaliveS);
    expect(c.mqtt.reconnectMaxMs).toBe(DEFAULTS.mqtt.reconnectMaxMs);
    expect(c.mqtt.connectTimeoutMs).toBe(DEFAULTS.mqtt.connectTimeoutMs);
    expect(c.telemetry.healthIntervalS).toBe(DEFAULTS.telemetry.healthIntervalS);
    expect(c.telemetry.metricsIntervalS).toBe(DEFAULTS.telemetry.metricsIntervalS);
    expect(c.outbox.maxEvents).toBe(DEFAULTS.outbox.maxEvents);
    expect(c.agent.logLevel).toBe(DEFAULTS.agent.logLevel);
    expect(c.mqtt.url).toBe(DEFAULTS.mqtt.url);
    expect(c.mqtt.urls).toEqual([DEFAULTS.mqtt.url]);
    expect(c.mqtt.protocol).toBe(DEFAULTS.mqtt.protocol);
    expect(c.mqtt.sessionExpiryS).toBe(DEFAULTS.mqtt.sessionExpiryS);
    expect(c.verification).toEqual({ trust: [], masterListAnchors: [], activeAuthentication: true });
    expect(c.memory).toEqual(DEFAULTS.memory);
    expect(c.commands).toEqual(DEFAULTS.commands);
    expect(c.agent.keyFile).toBe("/var/lib/mrtd-agent/agent-hpke.key");
    // and the example as shipped (all commented) parses too
    expect(() => parseConfig(text, path, {})).not.toThrow();
  });

  test("several broker URLs, the protocol and the session expiry", () => {
    const c = parseConfig(`[mqtt]\nurls = ["mqtts://n1:8883", "mqtts://n2:8883"]\nprotocol = "3.1.1"\nsession_expiry_s = 0`, FILE, {});
    expect(c.mqtt).toMatchObject({ url: "mqtts://n1:8883", urls: ["mqtts://n1:8883", "mqtts://n2:8883"], protocol: "3.1.1", sessionExpiryS: 0 });
    expect(parseConfig(`[mqtt]\nurl = "mqtts://one:8883"`, FILE, {}).mqtt).toMatchObject({ url: "mqtts://one:8883", urls: ["mqtts://one:8883"], protocol: "5", sessionExpiryS: 3600 });
  });

  test("personal data in events: on with a key, off by default", () => {
    const key = Buffer.alloc(32, 9).toString("base64");
    const c = parseConfig(`[telemetry]\ninclude_personal_data = true\npersonal_data_public_key = "${key}"`, FILE, {});
    expect(c.telemetry).toMatchObject({ includePersonalData: true, personalDataPublicKey: key });
    expect(parseConfig("", FILE, {}).telemetry.includePersonalData).toBe(false);
  });

  test("password from a file or the environment is a Secret that never prints", () => {
    const dir = makeTempDir("cfg");
    const pw = join(dir, "pw");
    writeFileSync(pw, "s3cret-from-file\n");
    const c = parseConfig(`[mqtt]\nurl = "mqtts://broker:8883"\nusername = "agent"\npassword_file = "${pw}"`, FILE, {});
    expect(c.mqtt.password).toBeInstanceOf(Secret);
    expect(c.mqtt.password!.reveal()).toBe("s3cret-from-file");
    const c2 = parseConfig(`[mqtt]\nurl = "mqtts://broker:8883"\nusername = "agent"\npassword_env = "PW"`, FILE, { PW: "s3cret-from-env" });
    expect(c2.mqtt.password!.reveal()).toBe("s3cret-from-env");
    for (const cfg of [c, c2]) {
      const shown = [JSON.stringify(redactedConfig(cfg)), JSON.stringify(cfg), String(cfg.mqtt.password), Bun.inspect(cfg)].join("\n");
      expect(shown).not.toContain("s3cret");
      expect(shown).toContain("[redacted]");
    }
  });

  test("a password over plain mqtt:// is only allowed to loopback", () => {
    expect(errorOf(`[mqtt]\nurl = "mqtt://broker:1883"\nusername = "u"\npassword_env = "P"`, { P: "x" }).key).toBe("mqtt.url");
    expect(parseConfig(`[mqtt]\nurl = "mqtt://127.0.0.1:1883"\nusername = "u"\npassword_env = "P"`, FILE, { P: "x" }).mqtt.username).toBe("u");
  });

  test("reader include/exclude globs", () => {
    const r = { include: ["ACS*", "*PICC*"], exclude: ["*SAM*"] };
    expect(readerSelected(r, "ACS ACR122U PICC Interface 00 00")).toBe(true);
    expect(readerSelected(r, "ACS ACR1281 SAM 00 01")).toBe(false);
    expect(readerSelected(r, "Virtual PCD 00 00")).toBe(false);
    expect(readerSelected({ include: [], exclude: [] }, "Virtual PCD 00 00")).toBe(true);
    expect(readerSelected({ include: ["virtual pcd 00 0?"], exclude: [] }, "Virtual PCD 00 01")).toBe(true);
  });
});

describe("test bench access key file", () => {
  const dir = makeTempDir("key");
  test("MRZ triple (ICAO specimen)", () => {
    const f = join(dir, "k1.toml");
    writeFileSync(f, 'document_number = "L898902C3"\ndate_of_birth = "740812"\ndate_of_expiry = "120415"\n');
    expect(loadTestAccessKey(f)).toEqual({ kind: "mrz", documentNumber: "L898902C3", dateOfBirth: "740812", dateOfExpiry: "120415" });
  });
  test("the MRZ rules of the CLI and remote commands: a document number of fillers is refused at start", () => {
    const f = join(dir, "k3.toml");
    writeFileSync(f, 'document_number = "<<<<<<<<<"\ndate_of_birth = "740812"\ndate_of_expiry = "120415"\n');
    expect(() => loadTestAccessKey(f)).toThrow(ConfigError);
    try {
      loadTestAccessKey(f);
    } catch (e) {
      expect((e as ConfigError).key).toBe("document_number");
      expect((e as ConfigError).message).toContain("document_number must be 1 to 22 characters");
    }
  });
  test("errors name file and key, never the value", () => {
    const f = join(dir, "k2.toml");
    writeFileSync(f, 'document_number = "L898902C3"\ndate_of_birth = "741332"\ndate_of_expiry = "120415"\n');
    try {
      loadTestAccessKey(f);
      throw new Error("expected failure");
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).key).toBe("date_of_birth");
      expect((e as ConfigError).message).toContain(f);
      expect((e as ConfigError).message).not.toContain("741332");
      expect((e as ConfigError).message).not.toContain("L898902C3");
    }
  });
});
