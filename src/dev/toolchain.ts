/**
 * Where the locally built binaries are (tools/toolchain.sh builds them; nothing is downloaded).
 * Every lookup fails with the binary's name, where it was looked for and how to get it.
 */
import { accessSync, constants } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export function toolchainDir(): string {
  return process.env.KOK_TOOLCHAIN_DIR || join(homedir(), ".cache", "kube-on-kube", "toolchain");
}

/**
 * tools/toolchain.sh targets of binaries whose target is not a Kubernetes minor, so the error can
 * name the one quick build (a lone missing part, e.g. after a pin changed) besides the full one.
 */
const TOOLCHAIN_TARGET: Readonly<Record<string, string>> = {
  etcd: "etcd",
  etcdctl: "etcd",
  etcdutl: "etcd",
  registry: "registry",
  versitygw: "versitygw",
  containerd: "containerd",
  ctr: "containerd",
  "containerd-shim-runc-v2": "containerd",
  runc: "runc",
  crane: "crane",
  coredns: "coredns",
  flanneld: "flannel",
  pause: "pause",
  "local-path-provisioner": "local-path-provisioner",
};

export class MissingBinaryError extends Error {
  constructor(
    readonly binary: string,
    readonly path: string,
  ) {
    const target = TOOLCHAIN_TARGET[binary];
    const only = target ? `, or only this part: \`bash tools/toolchain.sh ${target}\`` : "";
    super(`${binary} not found at ${path}: build it with \`npm run toolchain\`${only} (or set KOK_TOOLCHAIN_DIR to a toolchain that has it)`);
    this.name = "MissingBinaryError";
  }
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The toolchain's default build of `name` (bin/ holds the default Kubernetes minor and etcd). */
export function toolchainBinary(name: string): string {
  const path = join(toolchainDir(), "bin", name);
  if (!executable(path)) throw new MissingBinaryError(name, path);
  return path;
}

/** A Kubernetes binary of one exact version (`v1.35.4`), as built under k8s/<version>/bin. */
export function kubernetesBinary(name: string, version: string): string {
  const path = join(toolchainDir(), "k8s", version, "bin", name);
  if (!executable(path)) throw new MissingBinaryError(`${name} ${version}`, path);
  return path;
}

/** Every missing binary of a list, so one run names them all. */
export function missingBinaries(names: readonly string[]): MissingBinaryError[] {
  const missing: MissingBinaryError[] = [];
  for (const name of names) {
    try {
      toolchainBinary(name);
    } catch (error) {
      if (error instanceof MissingBinaryError) missing.push(error);
      else throw error;
    }
  }
  return missing;
}


/**
 * The environment of Pulumi engine processes that use the toolchain: its CLI and the project's
 * dynamic-provider launcher on PATH, its plugin home, no plugin downloads, and the node_modules the
 * dynamic-provider host loads from. One definition for `kok demo`, the tests and the operator e2e.
 */
export function toolchainEngineEnv(passphrase: string, base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const repo = join(__dirname, "..", "..");
  const inherited = Object.fromEntries(Object.entries(base).filter((e): e is [string, string] => e[1] !== undefined));
  return {
    ...inherited,
    PATH: [join(toolchainDir(), "bin"), join(repo, "tools", "bin"), base.PATH ?? ""].join(":"),
    PULUMI_HOME: join(toolchainDir(), "pulumi-home"),
    PULUMI_CONFIG_PASSPHRASE: passphrase,
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    KOK_NODE_MODULES: join(repo, "node_modules"),
  };
}
