import { describe, expect, test } from "bun:test";
import { agentTopics, isPublishableTopic, MAX_TOPIC_BYTES, MAX_TOPIC_LEVELS, readerSlug, topicBoundsProblem } from "../../agent/service/topics.ts";
import { topicPrefixProblem } from "../../agent/service/config.ts";

describe("topics", () => {
  const t = agentTopics("mrtd/v1", "board-7");
  test("layout under <prefix>/<agent>", () => {
    expect(t.status).toBe("mrtd/v1/board-7/status");
    expect(t.metrics).toBe("mrtd/v1/board-7/metrics");
    expect(t.events).toBe("mrtd/v1/board-7/events");
    expect(t.health("Virtual PCD 00 00")).toBe("mrtd/v1/board-7/readers/virtual-pcd-00-00-33bda14c/health");
    expect(t.cmd("read")).toBe("mrtd/v1/board-7/cmd/read");
    expect(t.cmdFilter).toBe("mrtd/v1/board-7/cmd/+");
    expect(t.healthFilter).toBe("mrtd/v1/board-7/readers/+/health");
    expect(t.reply("operator-test")).toBe("mrtd/v1/board-7/reply/operator-test");
  });
  test("commandOf recognises only this agent's single-level cmd topics", () => {
    expect(t.commandOf("mrtd/v1/board-7/cmd/read")).toBe("read");
    expect(t.commandOf("mrtd/v1/board-7/cmd/read/x")).toBeUndefined();
    expect(t.commandOf("mrtd/v1/board-8/cmd/read")).toBeUndefined();
    expect(t.commandOf("mrtd/v1/board-7/cmd/")).toBeUndefined();
  });
  test("reader slugs never hold topic specials", () => {
    for (const name of ["ACS ACR122U PICC Interface 00 00", "a/b+c#d", "Reader #1 / slot +2", "  ", "###", "Ünïcödé Leser 01", "x".repeat(200)]) {
      const s = readerSlug(name);
      expect(s).toMatch(/^[a-z0-9._-]{1,64}$/);
      expect(isPublishableTopic(t.health(name))).toBe(true);
    }
    // readable part, then the first 8 hex digits of SHA-256(UTF-8 name) (sha256sum of the name)
    expect(readerSlug("a/b+c#d")).toBe("a-b-c-d-39a20183");
    expect(readerSlug("Ünïcödé Leser 01")).toBe("unicode-leser-01-ebd4ded6");
    expect(readerSlug("###")).toBe("reader-56dc6d47");
    expect(readerSlug("###")).not.toBe(readerSlug("+++"));
    expect(readerSlug("x".repeat(200))).toHaveLength(64);
  });
  test("names that slug alike still get different topics", () => {
    const alike = [
      ["ACS ACR122U 00 00", "ACS-ACR122U 00 00"],
      ["Reader 00 00", "reader 00 00"],
      ["Lecteur Ü 00 00", "Lecteur U 00 00"],
      [`${"Long reader name ".repeat(4)}A`, `${"Long reader name ".repeat(4)}B`], // differ past the readable part
      ["###", "+++"],
    ];
    for (const [a, b] of alike) {
      expect(readerSlug(a!).slice(0, -9)).toBe(readerSlug(b!).slice(0, -9));
      expect(t.health(a!)).not.toBe(t.health(b!));
    }
  });
  test("bad prefix, agent id or command level are refused", () => {
    expect(() => agentTopics("mrtd/#", "a")).toThrow(RangeError);
    expect(() => agentTopics("$SYS/x", "a")).toThrow(RangeError);
    expect(() => agentTopics("mrtd/v1", "a/b")).toThrow(RangeError);
    // the same rule as agent.id in the configuration
    expect(() => agentTopics("mrtd/v1", "-board")).toThrow(RangeError);
    expect(() => agentTopics("mrtd/v1", "operator-x")).toThrow(RangeError);
    expect(() => agentTopics("mrtd/v1", "a".repeat(65))).toThrow(RangeError);
    expect(() => t.cmd("read/+")).toThrow(RangeError);
  });
  test("requesterOf accepts only <base>/reply/<one level of the requester charset>", () => {
    expect(t.requesterOf("mrtd/v1/board-7/reply/operator-test")).toBe("operator-test");
    for (const bad of [
      "mrtd/v1/board-7/status",
      "mrtd/v1/board-7/events",
      "mrtd/v1/board-7/readers/x/health",
      "mrtd/v1/board-7/reply/",
      "mrtd/v1/board-7/reply/a/b",
      "mrtd/v1/board-7/reply/op test",
      "mrtd/v1/board-7/reply/op+",
      `mrtd/v1/board-7/reply/${"x".repeat(65)}`,
      "mrtd/v1/board-8/reply/operator-test",
      "mrtd/v1/board-7/reply" + "/l".repeat(996),
    ]) expect({ bad: bad.slice(0, 60), r: t.requesterOf(bad) }).toEqual({ bad: bad.slice(0, 60), r: undefined });
  });
  test("topic length and level bounds: built topics fit, longer ones are refused or ignored", () => {
    expect(topicBoundsProblem(t.health("x".repeat(200)))).toBeUndefined();
    expect(topicBoundsProblem("a/".repeat(MAX_TOPIC_LEVELS))).toContain("levels");
    expect(topicBoundsProblem("a".repeat(MAX_TOPIC_BYTES + 1))).toContain("bytes");
    expect(isPublishableTopic("mrtd/v1/board-7/reply" + "/l".repeat(996))).toBe(false);
    expect(t.commandOf("mrtd/v1/board-7/cmd/" + "r".repeat(600))).toBeUndefined();
    // the longest prefix the config accepts still leaves room for the agent's own topics
    const longest = Array.from({ length: 8 }, () => "p".repeat(31)).join("/");
    expect(topicPrefixProblem(longest)).toBeUndefined();
    expect(() => agentTopics(longest, "a".repeat(64)).health("r".repeat(64))).not.toThrow();
    expect(topicPrefixProblem("a/b/c/d/e/f/g/h/i")).toContain("8 levels");
    expect(topicPrefixProblem("p".repeat(257))).toContain("256 bytes");
  });
  test("publishable topic names", () => {
    expect(isPublishableTopic("a/b")).toBe(true);
    expect(isPublishableTopic("a/+")).toBe(false);
    expect(isPublishableTopic("a/#")).toBe(false);
    expect(isPublishableTopic("$SYS/x")).toBe(false);
    expect(isPublishableTopic("")).toBe(false);
    // bounded: a 1,000-level response topic once got the agent disconnected by Mosquitto
    expect(isPublishableTopic("mrtd/v1/a/reply" + "/l".repeat(996))).toBe(false);
    expect(isPublishableTopic("a/".repeat(MAX_TOPIC_LEVELS - 1) + "a")).toBe(true);
    expect(isPublishableTopic("a/".repeat(MAX_TOPIC_LEVELS) + "a")).toBe(false);
    expect(isPublishableTopic("x".repeat(MAX_TOPIC_BYTES))).toBe(true);
    expect(isPublishableTopic("x".repeat(MAX_TOPIC_BYTES + 1))).toBe(false);
  });
});
