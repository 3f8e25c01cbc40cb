/**
 * `mrtd-agent run --check` and the start of `run` check every file and directory the
 * configuration names (agent/service/config-files.ts): each broken configuration below once
 * made the agent exit 1 with a stack trace, or was accepted silently. Now each is exit 2 with
 * "<file>: <key>: <problem>", from the real CLI process.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const CLI = resolve(import.meta.dir, "../../agent/cli.ts");
const root = mkdtempSync(join(tmpdir(), "mrtd-config-files-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const PEM = (label: string) => `-----BEGIN ${label}-----\nMAo=\n-----END ${label}-----\n`;
let n = 0;

/** A directory with a valid TLS configuration; `edit` changes files or the TOML before the run. */
function setup(edit: (d: { dir: string; lines: string[] }) => void = () => {}): string {
  const dir = join(root, `case-${++n}`);
  mkdirSync(dir);
  writeFileSync(join(dir, "ca.crt"), PEM("CERTIFICATE"));
  writeFileSync(join(dir, "agent.crt"), PEM("CERTIFICATE"));
  writeFileSync(join(dir, "agent.key"), PEM("PRIVATE KEY"), { mode: 0o600 });
  const lines = [
    "[agent]",
    'id = "cfg-agent"',
    `state_dir = "${dir}/state"`,
    "[mqtt]",
    'url = "mqtts://127.0.0.1:8883"',
    `ca = "${dir}/ca.crt"`,
    `client_cert = "${dir}/agent.crt"`,
    `client_key = "${dir}/agent.key"`,
  ];
  edit({ dir, lines });
  const file = join(dir, "config.toml");
  writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

function run(file: string, check = true): { code: number | null; stdout: string; stderr: string } {
  const r = Bun.spawnSync([process.execPath, CLI, "run", ...(check ? ["--check"] : []), "--config", file], { stdout: "pipe", stderr: "pipe", timeout: 20_000 });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** Exit 2, one line "mrtd-agent run: <file>: <key>: <problem>", no stack trace. */
function expectRefused(file: string, key: string, problem: RegExp, check = true): void {
  const r = run(file, check);
  expect(r.code).toBe(2);
  const line = r.stderr.trim();
  expect(line.split("\n")).toHaveLength(1);
  expect(line.startsWith(`mrtd-agent run: ${file}: ${key}: `)).toBe(true);
  expect(line).toMatch(problem);
  expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+/); // no stack
}

describe("run --check opens or checks every file and directory", () => {
  test("a good configuration passes, and --check creates nothing", () => {
    const file = setup();
    const r = run(file);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ agent: { id: "cfg-agent", strictKeyPermissions: true } });
    expect(existsSync(join(file, "../state"))).toBe(false);
  });

  test("--check prints the broker URLs, the protocol and the session expiry; url with urls is exit 2", () => {
    const file = setup(({ lines }) => lines.splice(lines.indexOf('url = "mqtts://127.0.0.1:8883"'), 1, 'urls = ["mqtts://127.0.0.1:8883", "mqtts://127.0.0.2:8883"]', 'protocol = "3.1.1"', "session_expiry_s = 600"));
    const r = run(file);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).mqtt).toMatchObject({ url: "mqtts://127.0.0.1:8883", urls: ["mqtts://127.0.0.1:8883", "mqtts://127.0.0.2:8883"], protocol: "3.1.1", sessionExpiryS: 600 });
    expectRefused(setup(({ lines }) => lines.push('urls = ["mqtts://127.0.0.2:8883"]')), "mqtt.urls", /not both/);
  });

  test("missing mqtt.ca", () => {
    expectRefused(setup(({ dir }) => rmSync(join(dir, "ca.crt"))), "mqtt.ca", /ca\.crt does not exist$/);
  });

  test("missing mqtt.ca, at the start of run too (not only with --check)", () => {
    expectRefused(setup(({ dir }) => rmSync(join(dir, "ca.crt"))), "mqtt.ca", /ca\.crt does not exist$/, false);
  });

  test("missing mqtt.client_key", () => {
    expectRefused(setup(({ dir }) => rmSync(join(dir, "agent.key"))), "mqtt.client_key", /agent\.key does not exist$/);
  });

  test("a directory as mqtt.client_key", () => {
    expectRefused(
      setup(({ dir, lines }) => {
        mkdirSync(join(dir, "keydir"));
        lines[lines.findIndex((l) => l.startsWith("client_key"))] = `client_key = "${dir}/keydir"`;
      }),
      "mqtt.client_key",
      /keydir is a directory, not a file$/,
    );
  });

  test("mqtt.client_cert that holds no PEM", () => {
    expectRefused(setup(({ dir }) => writeFileSync(join(dir, "agent.crt"), "not a certificate\n")), "mqtt.client_cert", /holds no PEM block/);
  });

  test("a private key readable by group or others is refused, like ssh", () => {
    expectRefused(setup(({ dir }) => chmodSync(join(dir, "agent.key"), 0o644)), "mqtt.client_key", /is accessible by group or others \(mode 0644\); chmod 600 it, or set agent\.strict_key_permissions = false$/);
  });

  test("... and accepted with agent.strict_key_permissions = false (the documented override)", () => {
    const file = setup(({ dir, lines }) => {
      chmodSync(join(dir, "agent.key"), 0o640);
      lines.splice(1, 0, "strict_key_permissions = false");
    });
    const r = run(file);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  test("a password file readable by others is refused", () => {
    expectRefused(
      setup(({ dir, lines }) => {
        writeFileSync(join(dir, "pw"), "hunter2\n", { mode: 0o604 });
        chmodSync(join(dir, "pw"), 0o604);
        lines.push('username = "u"', `password_file = "${dir}/pw"`);
      }),
      "mqtt.password_file",
      /pw is accessible by group or others \(mode 0604\)/,
    );
  });

  test("a test bench key file readable by group is refused", () => {
    expectRefused(
      setup(({ dir, lines }) => {
        writeFileSync(join(dir, "test-key.toml"), 'can = "123456"\n');
        chmodSync(join(dir, "test-key.toml"), 0o640);
        lines.push("[readers]", "read_on_insert = true", `test_key_file = "${dir}/test-key.toml"`);
      }),
      "readers.test_key_file",
      /test-key\.toml is accessible by group or others \(mode 0640\)/,
    );
  });

  test("an outbox path that is not a database", () => {
    expectRefused(
      setup(({ dir, lines }) => {
        writeFileSync(join(dir, "notes.txt"), "these are my notes, not an outbox\n");
        lines.push("[outbox]", `path = "${dir}/notes.txt"`);
      }),
      "outbox.path",
      /notes\.txt is not a SQLite database/,
    );
  });

  test("an outbox path that is not a database, at the start of run too", () => {
    expectRefused(
      setup(({ dir, lines }) => {
        writeFileSync(join(dir, "notes.txt"), "these are my notes, not an outbox\n");
        lines.push("[outbox]", `path = "${dir}/notes.txt"`);
      }),
      "outbox.path",
      /notes\.txt is not a SQLite database/,
      false,
    );
  });

  test("an outbox path that is a directory", () => {
    expectRefused(
      setup(({ dir, lines }) => {
        mkdirSync(join(dir, "ob"));
        lines.push("[outbox]", `path = "${dir}/ob"`);
      }),
      "outbox.path",
      /ob is a directory, not a database file$/,
    );
  });

  test("a state_dir under /proc", () => {
    expectRefused(
      setup(({ lines }) => {
        lines[lines.findIndex((l) => l.startsWith("state_dir"))] = 'state_dir = "/proc/self/mrtd-state"';
      }),
      "agent.state_dir",
      /\/proc\/self\/mrtd-state is on the kernel's proc filesystem, not storage$/,
    );
  });

  test("a state_dir that is a file", () => {
    expectRefused(
      setup(({ dir }) => writeFileSync(join(dir, "state"), "")),
      "agent.state_dir",
      /state is a file, not a directory$/,
    );
  });

  test("a state_dir below a file cannot be created", () => {
    expectRefused(
      setup(({ dir, lines }) => {
        writeFileSync(join(dir, "plain"), "");
        lines[lines.findIndex((l) => l.startsWith("state_dir"))] = `state_dir = "${dir}/plain/state"`;
      }),
      "agent.state_dir",
      /plain\/state has a path component that is not a directory$/,
    );
  });

  test("a trust source that does not exist", () => {
    expectRefused(setup(({ dir, lines }) => lines.push("[verification]", `trust = ["${dir}/no-such-csca"]`)), "verification.trust", /no-such-csca/);
  });

  test("a personal data key of small order", () => {
    const order8 = Buffer.from("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", "hex").toString("base64");
    expectRefused(setup(({ lines }) => lines.push("[telemetry]", "include_personal_data = true", `personal_data_public_key = "${order8}"`)), "telemetry.personal_data_public_key", /small order/);
  });
});

describe("own properties only: keys named like Object.prototype's are unknown", () => {
  for (const [title, section, line, key] of [
    ["a [constructor] section", "", "[constructor]\nx = 1", "constructor"],
    ["a [toString] section", "", "[toString]\nx = 1", "toString"],
    ["agent.constructor", "[agent]", "constructor = 1", "agent.constructor"],
    ["agent.toString", "[agent]", 'toString = "x"', "agent.toString"],
    ["mqtt.hasOwnProperty", "[mqtt]", "hasOwnProperty = true", "mqtt.hasOwnProperty"],
  ] as const) {
    test(title, () => {
      const file = setup(({ lines }) => {
        if (section === "") lines.push(line);
        else lines.splice(lines.indexOf(section) + 1, 0, line);
      });
      expectRefused(file, key, /unknown (key|section)/);
    });
  }

  test("a test key file with a key named constructor", () => {
    const file = setup(({ dir, lines }) => {
      writeFileSync(join(dir, "test-key.toml"), 'constructor = "x"\n', { mode: 0o600 });
      lines.push("[readers]", "read_on_insert = true", `test_key_file = "${dir}/test-key.toml"`);
    });
    const r = run(file);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/test-key\.toml: constructor: unknown key/);
  });
});
