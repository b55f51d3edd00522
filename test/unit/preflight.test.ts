/**
 * `kok operator`'s engine checks (src/cli/preflight.ts) on real files: stand-in `pulumi` scripts on
 * a PATH of temporary directories, plugin directories as the CLI lays them out, real passphrase
 * files. The bad paths above all: each must be named, with what to do.
 */
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  checkBackend,
  checkEngine,
  checkPassphrase,
  checkPlugins,
  checkPulumiCli,
  fileBackendDir,
  findOnPath,
  formatProblems,
  parsePulumiVersion,
  requiredPlugins,
  TOOLCHAIN_HINT,
} from "../../src/cli/preflight";

const root = mkdtempSync(join(tmpdir(), "kok-preflight-"));
let dirs = 0;
const newDir = (name: string) => {
  const dir = join(root, `${dirs++}-${name}`);
  mkdirSync(dir, { recursive: true });
  return dir;
};
/** A directory with an executable `name` that runs this shell script. */
const binDir = (name: string, script: string) => {
  const dir = newDir("bin");
  writeFileSync(join(dir, name), `#!/bin/sh\n${script}\n`);
  chmodSync(join(dir, name), 0o755);
  return dir;
};
const PULUMI_OK = binDir("pulumi", 'echo "v3.274.1"');
const K8S = { name: "kubernetes", version: "4.25.0", sdk: "@pulumi/kubernetes" };
const TLS = { name: "tls", version: "5.3.0", sdk: "@pulumi/tls" };
/** A PULUMI_HOME with these plugin directories installed. */
const pulumiHome = (...installed: string[]) => {
  const home = newDir("pulumi-home");
  for (const plugin of installed) mkdirSync(join(home, "plugins", plugin), { recursive: true });
  return home;
};

describe("the Pulumi CLI", () => {
  it("is found on PATH and its version parsed", () => {
    expect(findOnPath("pulumi", `${newDir("empty")}:${PULUMI_OK}`)).toBe(join(PULUMI_OK, "pulumi"));
    expect(checkPulumiCli({ PATH: PULUMI_OK })).toEqual({ problems: [], version: "3.274.1" });
    expect(parsePulumiVersion("v3.274.1-dev.0\n")).toBe("3.274.1-dev.0");
  });

  it("missing from PATH is a problem that says to install it", () => {
    const { problems, version } = checkPulumiCli({ PATH: `${newDir("empty")}:${binDir("pulumi-not", "true")}` });
    expect(version).toBeUndefined();
    expect(problems).toEqual([expect.stringMatching(/the Pulumi CLI \(`pulumi`\) is not on PATH: install it/)]);
  });

  it("a file that is not executable does not count", () => {
    const dir = newDir("not-executable");
    writeFileSync(join(dir, "pulumi"), "#!/bin/sh\necho v3.0.0\n", { mode: 0o644 });
    expect(findOnPath("pulumi", dir)).toBeUndefined();
  });

  it("one whose version does not parse, or that fails, is a problem quoting what it said", () => {
    expect(checkPulumiCli({ PATH: binDir("pulumi", "echo 'not a version'") }).problems[0]).toMatch(/did not print a version \(exit 0: not a version\): reinstall/);
    expect(checkPulumiCli({ PATH: binDir("pulumi", "echo broken >&2; exit 3") }).problems[0]).toMatch(/did not print a version \(exit 3: broken\)/);
  });
});

describe("the provider plugins", () => {
  it("are the versions the installed SDKs ask for", () => {
    const { plugins, problems } = requiredPlugins(["@pulumi/kubernetes", "@pulumi/tls"]);
    expect(problems).toEqual([]);
    // The SDKs' package.json, read as the operator reads them: the pins of package.json.
    expect(plugins).toEqual([K8S, TLS]);
  });

  it("an SDK that is not installed, or names no plugin, is a problem", () => {
    const { plugins, problems } = requiredPlugins(["@pulumi/not-installed", "@pulumi/odd"], (sdk) => {
      if (sdk === "@pulumi/odd") return { version: "1.0.0", pulumi: { resource: true } };
      throw new Error(`Cannot find module '${sdk}/package.json'`);
    });
    expect(plugins).toEqual([]);
    expect(problems).toEqual([
      expect.stringMatching(/^the @pulumi\/not-installed SDK cannot be loaded \(Cannot find module .*\): run `npm ci`/),
      expect.stringMatching(/^@pulumi\/odd\/package.json names no provider plugin/),
    ]);
  });

  it("installed at the asked versions, under PULUMI_HOME or ~/.pulumi, pass", () => {
    expect(checkPlugins([K8S, TLS], { PULUMI_HOME: pulumiHome("resource-kubernetes-v4.25.0", "resource-tls-v5.3.0") })).toEqual({ problems: [], notes: [] });
    const home = newDir("home");
    mkdirSync(join(home, ".pulumi", "plugins", "resource-tls-v5.3.0"), { recursive: true });
    expect(checkPlugins([TLS], { HOME: home }).problems).toEqual([]);
  });

  it("another version, or a partial install, is a problem naming the version and the command that installs it", () => {
    const home = pulumiHome("resource-kubernetes-v4.24.0", "resource-tls-v5.3.0");
    writeFileSync(join(home, "plugins", "resource-tls-v5.3.0.partial"), "");
    const { problems } = checkPlugins([K8S, TLS], { PULUMI_HOME: home, PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true" });
    expect(problems).toEqual([
      `provider plugin kubernetes v4.25.0 (asked for by @pulumi/kubernetes) is not installed in ${join(home, "plugins")}: run \`pulumi plugin install resource kubernetes 4.25.0\` with the operator's PULUMI_HOME`,
      expect.stringMatching(/^provider plugin tls v5\.3\.0 .* \(a partial install is there\): run `pulumi plugin install resource tls 5\.3\.0`/),
    ]);
  });

  it("an ambient pulumi-resource-<name> on PATH (the image's way) passes with a note, unless ambient plugins are ignored", () => {
    const env = { PULUMI_HOME: pulumiHome(), PATH: binDir("pulumi-resource-tls", "true") };
    expect(checkPlugins([TLS], env)).toEqual({ problems: [], notes: [expect.stringContaining("using pulumi-resource-tls from PATH")] });
    expect(checkPlugins([TLS], { ...env, PULUMI_IGNORE_AMBIENT_PLUGINS: "true" }).problems).toHaveLength(1);
  });

  it("missing is only a note when the CLI may download plugins itself", () => {
    const { problems, notes } = checkPlugins([K8S], { PULUMI_HOME: pulumiHome(), PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "false" });
    expect(problems).toEqual([]);
    expect(notes).toEqual([expect.stringContaining("will download it at the first update")]);
  });
});

describe("the state backend", () => {
  it("a file:// directory is created and written", () => {
    expect(checkBackend(`file://${join(root, "state", "deep")}`)).toEqual({ problems: [], notes: [] });
    expect(fileBackendDir("file://~/state", "/home/op")).toBe("/home/op/state");
  });

  it("a file:// path that cannot be a directory is a problem naming it", () => {
    const file = join(newDir("backend"), "a-file");
    writeFileSync(file, "");
    expect(checkBackend(`file://${file}/state`).problems).toEqual([expect.stringMatching(new RegExp(`^the state backend directory ${file}/state cannot be created or written \\(ENOTDIR\\)`))]);
    expect(checkBackend("file://relative/state").problems).toEqual([expect.stringContaining("needs an absolute path")]);
    expect(checkBackend("/var/lib/state").problems).toEqual([expect.stringContaining("is not a URL")]);
  });

  it("other schemes are not reached at start: a note", () => {
    expect(checkBackend("s3://bucket/prefix")).toEqual({ problems: [], notes: [expect.stringMatching(/^state backend s3:\/\/ not checked at start/)] });
  });
});

describe("the state passphrase", () => {
  it("missing is a problem naming both variables and --secrets-provider", () => {
    expect(checkPassphrase({})).toEqual([expect.stringMatching(/^no state passphrase: set PULUMI_CONFIG_PASSPHRASE .* or PULUMI_CONFIG_PASSPHRASE_FILE, or pass --secrets-provider/)]);
    expect(checkPassphrase({ PULUMI_CONFIG_PASSPHRASE: "" })).toHaveLength(1);
  });

  it("a passphrase file that is missing or empty is a problem; a readable one passes", () => {
    const dir = newDir("passphrase");
    expect(checkPassphrase({ PULUMI_CONFIG_PASSPHRASE_FILE: join(dir, "none") })).toEqual([`PULUMI_CONFIG_PASSPHRASE_FILE ${join(dir, "none")} cannot be read (ENOENT)`]);
    writeFileSync(join(dir, "empty"), "\n");
    expect(checkPassphrase({ PULUMI_CONFIG_PASSPHRASE_FILE: join(dir, "empty") })).toEqual([expect.stringContaining("is empty")]);
    writeFileSync(join(dir, "set"), "a long random passphrase\n");
    expect(checkPassphrase({ PULUMI_CONFIG_PASSPHRASE_FILE: join(dir, "set") })).toEqual([]);
  });

  it("is not needed with a secrets provider", () => {
    expect(checkPassphrase({}, "awskms://alias/kok")).toEqual([]);
    expect(checkPassphrase({ PULUMI_CONFIG_PASSPHRASE: "x" })).toEqual([]);
  });
});

describe("checkEngine", () => {
  it("names every problem of a bare machine at once, with the toolchain hint", () => {
    const result = checkEngine({ env: { PATH: newDir("empty"), PULUMI_HOME: pulumiHome() }, backendUrl: `file://${join(root, "bare-state")}` });
    expect(result.problems.map((p) => p.split(":")[0])).toEqual([
      "the Pulumi CLI (`pulumi`) is not on PATH",
      expect.stringMatching(/^provider plugin kubernetes v4\.25\.0/),
      expect.stringMatching(/^provider plugin tls v5\.3\.0/),
      "no state passphrase",
    ]);
    expect(result.hints).toEqual([TOOLCHAIN_HINT]);
    const message = formatProblems("kok operator", result.problems, result.hints);
    expect(message.split("\n")[0]).toBe("kok operator: cannot start:");
    expect(message).toContain('run `npm run toolchain`, then `eval "$(bash tools/toolchain-env.sh)"`');
  });

  it("passes on a ready engine, without the hint", () => {
    const result = checkEngine({
      env: { PATH: PULUMI_OK, PULUMI_HOME: pulumiHome("resource-kubernetes-v4.25.0", "resource-tls-v5.3.0"), PULUMI_CONFIG_PASSPHRASE: "a long random passphrase" },
      backendUrl: `file://${join(root, "ready-state")}`,
    });
    expect(result).toEqual({ problems: [], notes: [], hints: [], pulumiVersion: "3.274.1" });
  });
});
