/** Usage lines show the command the user typed: npm run, bun run, or the source file (the compiled binary: test/build). */
import { describe, expect, test } from "bun:test";
import { asTyped, invocation } from "../../agent/cli/invocation.ts";
import { READ_HELP } from "../../agent/cli/read-command.ts";

const npm = { npm_lifecycle_event: "agent", npm_config_user_agent: "npm/10.9.2 node/v22.12.0 linux x64 workspaces/false" };
const bun = { npm_lifecycle_event: "agent", npm_config_user_agent: "bun/1.4.5 npm/? node/v24.3.0 linux x64" };

describe("invocation", () => {
  test("npm run needs -- before the script's options; bun run does not", () => {
    expect(invocation("agent", "agent/cli.ts", npm)).toBe("npm run agent --");
    expect(invocation("agent", "agent/cli.ts", bun)).toBe("bun run agent");
    expect(invocation("demo", "test/demo.ts", { ...npm, npm_lifecycle_event: "demo" })).toBe("npm run demo --");
  });
  test("another script's environment (the demo runs the CLI in its process) or none: the source file", () => {
    expect(invocation("agent", "agent/cli.ts", { ...npm, npm_lifecycle_event: "demo" })).toBe("bun agent/cli.ts");
    expect(invocation("agent", "agent/cli.ts", {})).toBe("bun agent/cli.ts");
  });
  test("asTyped rewrites usage lines and help hints, not other mentions", () => {
    expect(asTyped(READ_HELP, npm).split("\n")[0]).toBe("Usage: npm run agent -- read --doc <number> --dob <YYMMDD> --expiry <YYMMDD> [options]");
    expect(asTyped('see mrtd-agent verify --help; Run "mrtd-agent <command> --help"', bun)).toBe('see bun run agent verify --help; Run "bun run agent <command> --help"');
    expect(asTyped("mrtd-agent 0.1.0: reads", npm)).toBe("mrtd-agent 0.1.0: reads");
  });
});
