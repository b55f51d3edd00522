import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { bashCommand } from "../../src/host/scripts/shell";
import { asRoot, needsSudo } from "../../src/host/scripts/sudo";

describe("asRoot", () => {
  it("leaves root's command as it is, so root machines see no diff", () => {
    const command = bashCommand("echo hi");
    expect(asRoot(undefined, command)).toBe(command);
    expect(asRoot("root", command)).toBe(command);
    expect(needsSudo(undefined)).toBe(false);
    expect(needsSudo("deploy")).toBe(true);
  });

  it("wraps another user's command in one /bin/sh word that ends in sudo -n", () => {
    const command = bashCommand(`printf '%s\\n' "it's $HOME"`);
    const wrapped = asRoot("deploy", command);
    expect(wrapped).toMatch(/^\/bin\/sh -c '.*'$/s);
    expect(wrapped).toContain("exec sudo -n -- /bin/bash -c ");
    expect(wrapped).toContain("NOPASSWD");
  });

  // Run here by /bin/sh (the tests run as root): the uid-0 shortcut executes the command itself,
  // so the quoting survives both layers and stdin reaches it.
  it("runs the wrapped command intact, stdin included, when already uid 0", () => {
    if (process.getuid?.() !== 0) throw new Error("this test runs the wrapper as uid 0; run it as root");
    const command = bashCommand(`read -r line; printf '%s|%s\\n' "it's" "$line"`);
    const out = execFileSync("/bin/sh", ["-c", asRoot("deploy", command)], { input: "from stdin\n", encoding: "utf8" });
    expect(out).toBe("it's|from stdin\n");
  });
});
