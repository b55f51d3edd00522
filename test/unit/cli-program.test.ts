/**
 * The `kok` command line (src/cli/program.ts): help and --version everywhere without running
 * anything, usage errors named with exit 2, and flags reaching the commands under the names the
 * commands read. Actions are replaced by recorders where running them would start something.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { stringify } from "yaml";
import { operatorSettings } from "../../src/cli/operator";
import { allCommands, buildProgram, commandPath, EXIT, runKok, runProgram, type Output } from "../../src/cli/program";
import { installManifests } from "../../src/operator/install-manifests";
import { operatorFlags } from "../support/specs";

const PACKAGE = JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8")) as { version: string };

function capture(): Output & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, writeOut: (t) => void out.push(t), writeErr: (t) => void err.push(t) };
}

/** The program with every action replaced by one that records its command and arguments. */
function recordingProgram() {
  const ran: { command: string; args: unknown[] }[] = [];
  const program = buildProgram();
  // Groups (kok, kok dev) have no action: one would change how they parse.
  for (const command of allCommands(program).filter((c) => c.commands.length === 0)) {
    command.action((...args: unknown[]) => void ran.push({ command: commandPath(command), args: args.slice(0, -1) }));
  }
  return { program, ran };
}

afterEach(() => vi.restoreAllMocks());

describe("kok", () => {
  const commands = allCommands(buildProgram()).map((c) => commandPath(c).split(" ").slice(1));

  it("has the commands of the docs, dev's subcommands included", () => {
    expect(commands.map((c) => c.join(" "))).toEqual(["", "demo", "validate", "mirror", "operator", "manifests", "images", "images build",
      "images bom", "etcd", "etcd backup", "etcd restore", "etcd member", "dev", "dev up", "dev down", "dev env", "dev status", "dev logs"]);
  });

  it.each(commands.map((c) => [c.join(" ") || "(root)", c]))("%s --help prints its usage, exits 0 and runs nothing", async (_name, path) => {
    const { program, ran } = recordingProgram();
    const io = capture();
    expect(await runProgram(program, [...path, "--help"], io, () => 0)).toBe(EXIT.ok);
    expect(ran).toEqual([]);
    expect(io.out.join("")).toMatch(new RegExp(`^Usage: ${["kok", ...path].join(" ")} `));
    expect(io.err).toEqual([]);
  });

  it("--version prints the package version", async () => {
    const io = capture();
    expect(await runKok(["--version"], io)).toBe(EXIT.ok);
    expect(io.out.join("")).toBe(`${PACKAGE.version}\n`);
  });

  it("the top help lists the exit codes and what the operator reconciles", async () => {
    const io = capture();
    expect(await runKok(["--help"], io)).toBe(EXIT.ok);
    const help = io.out.join("");
    expect(help).toMatch(/Exit codes:\n {2}0 {2}success\n {2}1 {2}failure[^]*\n {2}2 {2}usage error/);
    expect(help.replace(/\s+/g, " ")).toContain("reconcile Cluster, Machine and ClusterPackageVersion resources");
  });

  it.each([
    [["operator", "--bogus"], "error: unknown option '--bogus'", "kok operator --help"],
    [["manifests", "--help-me"], "error: unknown option '--help-me'", "kok manifests --help"],
    [["dev", "up", "--purge"], "error: unknown option '--purge'", "kok dev up --help"],
    [["dev", "logs"], "error: missing required argument 'pod'", "kok dev logs --help"],
    [["validate"], "error: missing required argument 'files'", "kok validate --help"],
    [["demo", "now"], "error: too many arguments for 'demo'", "kok demo --help"],
    [["operatr"], "error: unknown command 'operatr'", "kok --help"],
    [["operator", "--log-level", "loud"], "argument 'loud' is invalid. Allowed choices are debug, info, warn, error", "kok operator --help"],
  ])("kok %j is a usage error naming the problem and pointing at --help", async (argv, error, help) => {
    const { program, ran } = recordingProgram();
    const io = capture();
    expect(await runProgram(program, argv, io, () => 0)).toBe(EXIT.usage);
    expect(ran).toEqual([]);
    expect(io.err.join("")).toContain(error);
    expect(io.err.join("")).toContain(`(run \`${help}\` for usage)`);
  });

  it("without a command (or dev without a subcommand) prints the help as a usage error", async () => {
    for (const argv of [[], ["dev"]]) {
      const io = capture();
      expect(await runKok(argv, io)).toBe(EXIT.usage);
      expect(io.err.join("")).toMatch(/^Usage: kok /);
    }
  });
});

describe("flags reach the commands", () => {
  it("kok operator: defaults, --log-level, and every flag under the name runOperator reads", async () => {
    const { program, ran } = recordingProgram();
    expect(await runProgram(program, ["operator"], capture(), () => 0)).toBe(0);
    expect(ran[0].args[0]).toMatchObject({ logLevel: "info", resyncInterval: "5m", concurrency: "4", metricsAddr: ":8080", maxUnhealthy: "40%" });
    await runProgram(program, ["operator", "--log-level", "debug", "--full-drift-check-interval", "1h", "--machine-workers", "8"], capture(), () => 0);
    expect(ran[1].args[0]).toMatchObject({ logLevel: "debug", fullDriftCheckInterval: "1h", machineWorkers: "8" });
  });

  it("kok operator: each bad flag value is named, all in one message, exit 2", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => void lines.push(args.join(" ")));
    const argv = ["operator", "--state-dir", join(__dirname, "no-such-dir-is-written"), "--backend-url", "s3://bucket/kok"];
    const bad = { "--concurrency": "0", "--machine-workers": "x", "--cluster-workers": "0", "--resync-interval": "soon", "--full-drift-check-interval": "1d" };
    const worse = { "--probe-interval": "10", "--repair-after": "5 m", "--max-repairs": "-1", "--max-unhealthy": "140%", "--worker-defaults": "/no/such/file", "--kubeconfig": "/no/such/kubeconfig" };
    const flags = Object.entries({ ...bad, ...worse });
    expect(await runKok([...argv, ...flags.flat()], capture())).toBe(EXIT.usage);
    const message = lines.join("\n");
    expect(message.split("\n")[0]).toBe("kok operator: cannot start:");
    for (const [flag] of flags) expect(message).toContain(flag);
  });

  it("the args of the operator Deployment that kok manifests renders parse as kok operator flags", async () => {
    const deployment = installManifests({ policyText: "{}" }).find((o) => o.kind === "Deployment") as { spec: { template: { spec: { containers: { args: string[] }[] } } } };
    const args = deployment.spec.template.spec.containers[0].args;
    const { program, ran } = recordingProgram();
    const io = capture();
    expect(await runProgram(program, args, io, () => 0)).toBe(EXIT.ok);
    expect(io.err).toEqual([]);
    expect(ran[0]).toMatchObject({ command: "kok operator", args: [{ stateDir: "/var/lib/kube-on-kube", policy: expect.stringMatching(/policy\.yaml$/) }] });
  });

  it("operatorSettings: durations, shares and the default backend", () => {
    const flags = operatorFlags();
    const { settings, problems } = operatorSettings(flags);
    expect(problems).toEqual([]);
    expect(settings).toMatchObject({
      backendUrl: "file:///var/lib/kok/state",
      workRoot: "/var/lib/kok/work",
      resyncMs: 90_000,
      fullDriftCheckMs: 86_400_000,
      probeIntervalMs: 600_000,
      repairAfterMs: 300_000,
      maxRepairs: 3,
      maxUnhealthyShare: 0.4,
    });
    expect(operatorSettings({ ...flags, backendUrl: "s3://b/p" }).settings.backendUrl).toBe("s3://b/p");
  });

  it("operatorSettings: --backup-image defaults to this release's operator image and must be an image reference", () => {
    const flags = operatorFlags();
    const version = (JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8")) as { version: string }).version;
    expect(operatorSettings(flags).settings.backupImage).toBe(`docker.io/kube-on-kube/operator:${version}`);
    expect(operatorSettings({ ...flags, backupImage: "registry.example.com/kok/operator:1.2.3" }).settings.backupImage).toBe("registry.example.com/kok/operator:1.2.3");
    expect(operatorSettings({ ...flags, backupImage: "not an image; rm -rf /" }).problems).toEqual(['--backup-image "not an image; rm -rf /" is not an image reference like docker.io/kube-on-kube/operator:0.1.0']);
  });

  it("kok operator --backup-image reaches the flags", async () => {
    const { program, ran } = recordingProgram();
    await runProgram(program, ["operator", "--backup-image", "registry.example.com/kok/operator:1.2.3"], capture(), () => 0);
    expect(ran[0]).toMatchObject({ command: "kok operator", args: [{ backupImage: "registry.example.com/kok/operator:1.2.3" }] });
  });

  it("kok manifests with no flags prints what installManifests() gives with its own defaults", async () => {
    const written: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => (written.push(String(chunk)), true));
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    expect(await runKok(["manifests"], capture())).toBe(EXIT.ok);
    const expected = installManifests().map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join("---\n");
    expect(written.join("")).toBe(expected);
  });

  it("kok manifests: a bad --operator-heap-mb is a usage error", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => void lines.push(args.join(" ")));
    expect(await runKok(["manifests", "--operator-heap-mb", "10"], capture())).toBe(EXIT.usage);
    expect(lines.join("\n")).toContain('--operator-heap-mb "10" must be an integer of at least 64');
  });

  it("kok dev: --state-dir on every subcommand, -n/-c and --no-node", async () => {
    const { program, ran } = recordingProgram();
    const io = capture();
    await runProgram(program, ["dev", "up", "--state-dir", "/s", "--no-node", "--port-base", "20000"], io, () => 0);
    await runProgram(program, ["dev", "logs", "etcd-0", "-n", "kube-system", "-c", "etcd"], io, () => 0);
    await runProgram(program, ["dev", "down", "--purge"], io, () => 0);
    expect(ran.map((r) => [r.command, ...r.args])).toEqual([
      ["kok dev up", { stateDir: "/s", node: false, portBase: "20000" }],
      ["kok dev logs", "etcd-0", { stateDir: expect.stringMatching(/\.kube-on-kube\/dev$/), namespace: "kube-system", container: "etcd" }],
      ["kok dev down", { stateDir: expect.stringMatching(/\.kube-on-kube\/dev$/), purge: true }],
    ]);
  });
});
