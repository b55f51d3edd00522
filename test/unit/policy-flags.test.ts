/** `--policy FILE` on `kok operator` and `kok validate`: a bad file stops them, naming every problem. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runKok, type Output } from "../../src/cli/program";

const dir = mkdtempSync(join(tmpdir(), "kok-policy-"));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const BAD = file("bad.yaml", "etcdVolumeTypes: [hostPath]\nsshTargets: { denied: [127.0.0.1/8] }\nextraArg: {}\n");
const MACHINE = file(
  "machine.yaml",
  [
    "apiVersion: kubeonkube.io/v1alpha1",
    "kind: Machine",
    "metadata: { name: w, namespace: fleet }",
    "spec:",
    "  clusterRef: { name: a }",
    "  ip: 127.0.0.5",
    "  hostname: w",
    "  ssh: { credentialsSecretRef: { name: s }, hostKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDSt0jgvOR/Hvnv9zOhT82FwZzggLoEuOBpX82NUVwYj }",
    "  packageVersionRef: { name: p }",
  ].join("\n"),
);

const captured = () => {
  const lines: string[] = [];
  vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => void lines.push(args.join(" ")));
  vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => void lines.push(args.join(" ")));
  return lines;
};
/** commander's own output (usage errors) into the same lines. */
const sink = (lines: string[]): Output => ({ writeOut: (t) => void lines.push(t), writeErr: (t) => void lines.push(t) });
afterEach(() => vi.restoreAllMocks());

describe("--policy", () => {
  it("kok operator does not start with a bad policy file, and names each problem", async () => {
    const lines = captured();
    expect(await runKok(["operator", "--policy", BAD, "--state-dir", join(dir, "state")], sink(lines))).toBe(2);
    const text = lines.join("\n");
    for (const path of ["policy.hostPathPrefixes", "policy.sshTargets.denied[0]", "policy.extraArg"]) expect(text).toContain(path);
  });

  it("kok validate applies the built-in policy, or the one given", async () => {
    let lines = captured();
    expect(await runKok(["validate", MACHINE], sink(lines))).toBe(1);
    expect(lines.join("\n")).toContain("(admin policy: sshTargets.denied)");
    vi.restoreAllMocks();
    lines = captured();
    expect(await runKok(["validate", "--policy", file("dev.yaml", "sshTargets: { allowed: [127.0.0.0/8], denied: [] }"), MACHINE], sink(lines))).toBe(0);
    expect(lines.join("\n")).toContain("ok");
    vi.restoreAllMocks();
    lines = captured();
    expect(await runKok(["validate", "--policy", BAD, MACHINE], sink(lines))).toBe(2);
    expect(lines.join("\n")).toContain("policy.sshTargets.denied[0]");
  });
});
