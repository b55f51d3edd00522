/**
 * What `kok operator` checks before it starts (and before it may become leader): that the engine
 * it drives is there. Without these checks a missing Pulumi CLI or provider plugin shows up only at
 * the first Cluster's update, as that Cluster's failure, long after the start looked fine.
 *
 * Each check returns the problems it found, each saying what to install or set; `checkEngine` runs
 * them all so one start names every problem at once. They read the environment and the file system
 * they are given and run nothing but `pulumi version`.
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import * as path from "node:path";

type Env = Readonly<Record<string, string | undefined>>;

/** Said once after the problems the project's own toolchain fixes (the CLI, the plugins). */
export const TOOLCHAIN_HINT =
  'The Pulumi CLI and the provider plugins come with the project\'s toolchain: in a kube-on-kube checkout run `npm run toolchain`, then `eval "$(bash tools/toolchain-env.sh)"` in the shell that starts the operator.';

/** The provider SDKs whose plugins the operator's programs load. */
export const PROVIDER_SDKS = ["@pulumi/kubernetes", "@pulumi/tls"] as const;

export interface EngineCheck {
  /** What stops the start, each with what to do about it. */
  readonly problems: string[];
  /** What was not checked, and why. */
  readonly notes: string[];
  /** Said once after the problems (TOOLCHAIN_HINT when the toolchain would fix one). */
  readonly hints: string[];
}

/** The first executable file called `name` in a PATH, or undefined. */
export function findOnPath(name: string, pathVariable: string | undefined): string | undefined {
  for (const dir of (pathVariable ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not there or not executable: the next directory may have it.
    }
  }
  return undefined;
}

/** `v3.274.1` (what `pulumi version` prints) → "3.274.1"; undefined when it is not a version. */
export function parsePulumiVersion(output: string): string | undefined {
  return /^v?(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?)\s*$/.exec(output.trim())?.[1];
}

/** The Pulumi CLI on PATH answers `pulumi version` with a version. */
export function checkPulumiCli(env: Env): { problems: string[]; version?: string } {
  const cli = findOnPath("pulumi", env.PATH);
  if (!cli) return { problems: ["the Pulumi CLI (`pulumi`) is not on PATH: install it (https://www.pulumi.com/docs/install/) and put it on PATH"] };
  const run = spawnSync(cli, ["version"], { env: { ...env, PULUMI_SKIP_UPDATE_CHECK: "true" }, encoding: "utf8", timeout: 30_000 });
  const version = run.status === 0 ? parsePulumiVersion(run.stdout) : undefined;
  if (!version) {
    const said = (run.error?.message ?? `${run.stdout}${run.stderr}`.trim()).split("\n")[0].slice(0, 200);
    return { problems: [`\`${cli} version\` did not print a version (exit ${run.status ?? "none"}${said ? `: ${said}` : ""}): reinstall the Pulumi CLI`] };
  }
  return { problems: [], version };
}

export interface RequiredPlugin {
  readonly name: string;
  readonly version: string;
  /** The SDK that asks for it. */
  readonly sdk: string;
}

/** An installed package's package.json, as this process resolves it (the SDKs the programs load). */
function readInstalledPackageJson(name: string): unknown {
  return JSON.parse(readFileSync(require.resolve(`${name}/package.json`), "utf8"));
}

/** The resource plugin each SDK asks for, from its package.json `pulumi` block. */
export function requiredPlugins(sdks: readonly string[], readPackageJson: (sdk: string) => unknown = readInstalledPackageJson): { plugins: RequiredPlugin[]; problems: string[] } {
  const plugins: RequiredPlugin[] = [];
  const problems: string[] = [];
  for (const sdk of sdks) {
    let manifest: { version?: unknown; pulumi?: { name?: unknown; version?: unknown } };
    try {
      manifest = readPackageJson(sdk) as typeof manifest;
    } catch (error) {
      problems.push(`the ${sdk} SDK cannot be loaded (${(error as Error).message.split("\n")[0]}): run \`npm ci\` where kube-on-kube is installed`);
      continue;
    }
    const name = manifest.pulumi?.name;
    const version = manifest.pulumi?.version ?? manifest.version;
    if (typeof name !== "string" || typeof version !== "string") {
      problems.push(`${sdk}/package.json names no provider plugin (its "pulumi" block lacks name or version): reinstall ${sdk}`);
      continue;
    }
    plugins.push({ name, version: version.replace(/^v/, ""), sdk });
  }
  return { plugins, problems };
}

/** Where the CLI keeps plugins: `$PULUMI_HOME/plugins`, else `~/.pulumi/plugins`. */
export function pluginDir(env: Env, home: string = homedir()): string {
  return path.join(env.PULUMI_HOME || path.join(env.HOME || home, ".pulumi"), "plugins");
}

/**
 * Each plugin is installed at the exact version its SDK asks for (a directory
 * `resource-<name>-v<version>` not marked partial), or is an ambient `pulumi-resource-<name>` on
 * PATH (how the operator's image carries them). A missing one is only a note when the CLI may
 * download plugins itself.
 */
export function checkPlugins(plugins: readonly RequiredPlugin[], env: Env, home?: string): Omit<EngineCheck, "hints"> {
  const dir = pluginDir(env, home);
  const problems: string[] = [];
  const notes: string[] = [];
  const ambientAllowed = !/^(1|true)$/i.test(env.PULUMI_IGNORE_AMBIENT_PLUGINS ?? "");
  const downloads = /^(0|false)$/i.test(env.PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION ?? "");
  for (const p of plugins) {
    const installed = path.join(dir, `resource-${p.name}-v${p.version}`);
    if (existsSync(installed) && !existsSync(`${installed}.partial`)) continue;
    if (ambientAllowed && findOnPath(`pulumi-resource-${p.name}`, env.PATH)) {
      notes.push(`provider ${p.name}: using pulumi-resource-${p.name} from PATH (its version is not checked; ${p.sdk} asks for ${p.version})`);
      continue;
    }
    const what = `provider plugin ${p.name} v${p.version} (asked for by ${p.sdk}) is not installed in ${dir}${existsSync(`${installed}.partial`) ? " (a partial install is there)" : ""}`;
    if (downloads) notes.push(`${what}: the Pulumi CLI will download it at the first update`);
    else problems.push(`${what}: run \`pulumi plugin install resource ${p.name} ${p.version}\` with the operator's PULUMI_HOME`);
  }
  return { problems, notes };
}

/** The local directory of a `file://` backend URL (`file://~/x` is under the home directory). */
export function fileBackendDir(url: string, home: string = homedir()): string {
  const rest = url.slice("file://".length);
  return rest === "~" || rest.startsWith("~/") ? path.join(home, rest.slice(1)) : rest;
}

/**
 * A file:// backend's directory exists (or is created) and takes a file. Other backends (s3://,
 * gs://, azblob://, https://) are reached with credentials only the engine resolves: not checked.
 */
export function checkBackend(url: string, home?: string): Omit<EngineCheck, "hints"> {
  if (!url.startsWith("file://")) {
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1];
    if (!scheme) return { problems: [`--backend-url "${url}" is not a URL: use file:///path/to/state or an object store such as s3://bucket/prefix`], notes: [] };
    return { problems: [], notes: [`state backend ${scheme}:// not checked at start: the first stack operation reaches it`] };
  }
  const dir = fileBackendDir(url, home);
  if (!dir || !path.isAbsolute(dir)) return { problems: [`--backend-url "${url}": a file:// backend needs an absolute path, e.g. file:///var/lib/kube-on-kube/state`], notes: [] };
  try {
    mkdirSync(dir, { recursive: true });
    const probe = path.join(dir, `.kok-write-check-${process.pid}`);
    writeFileSync(probe, "");
    rmSync(probe);
    return { problems: [], notes: [] };
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return { problems: [`the state backend directory ${dir} cannot be created or written (${reason}): fix its permissions, or pass --backend-url (or --state-dir) naming a writable place`], notes: [] };
  }
}

/**
 * Stack secrets need a passphrase (`PULUMI_CONFIG_PASSPHRASE`, or a readable non-empty
 * `PULUMI_CONFIG_PASSPHRASE_FILE`) unless a secrets provider (a KMS URL) encrypts them.
 */
export function checkPassphrase(env: Env, secretsProvider?: string): string[] {
  if (secretsProvider) return [];
  if (env.PULUMI_CONFIG_PASSPHRASE) return [];
  const file = env.PULUMI_CONFIG_PASSPHRASE_FILE;
  if (file) {
    try {
      if (readFileSync(file, "utf8").trim()) return [];
      return [`PULUMI_CONFIG_PASSPHRASE_FILE ${file} is empty: put the state passphrase in it`];
    } catch (error) {
      return [`PULUMI_CONFIG_PASSPHRASE_FILE ${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`];
    }
  }
  return [
    "no state passphrase: set PULUMI_CONFIG_PASSPHRASE (from a Secret in a Deployment) or PULUMI_CONFIG_PASSPHRASE_FILE, or pass --secrets-provider (a KMS URL): stack secrets are encrypted with it",
  ];
}

export interface EngineCheckInput {
  /** The engine's environment (PATH, PULUMI_HOME, the passphrase variables, HOME). */
  readonly env: Env;
  readonly backendUrl: string;
  readonly secretsProvider?: string;
  readonly sdks?: readonly string[];
  readonly readPackageJson?: (sdk: string) => unknown;
  readonly home?: string;
}

/** Every check; the problems of all of them together. */
export function checkEngine(input: EngineCheckInput): EngineCheck & { pulumiVersion?: string } {
  const cli = checkPulumiCli(input.env);
  const required = requiredPlugins(input.sdks ?? PROVIDER_SDKS, input.readPackageJson);
  const plugins = checkPlugins(required.plugins, input.env, input.home);
  const backend = checkBackend(input.backendUrl, input.home);
  const toolchainFixes = cli.problems.length + plugins.problems.length > 0;
  return {
    problems: [...cli.problems, ...required.problems, ...plugins.problems, ...backend.problems, ...checkPassphrase(input.env, input.secretsProvider)],
    notes: [...plugins.notes, ...backend.notes],
    hints: toolchainFixes ? [TOOLCHAIN_HINT] : [],
    pulumiVersion: cli.version,
  };
}

/** One message naming every problem, then the hints. */
export function formatProblems(command: string, problems: readonly string[], hints: readonly string[] = []): string {
  return [`${command}: cannot start:`, ...problems.map((p) => `  - ${p}`), ...hints].join("\n");
}
