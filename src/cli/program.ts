/**
 * The `kok` command line: every command, subcommand and flag, declared once with commander. Help,
 * `--version`, unknown options and missing arguments are commander's; what each command does lives
 * in its own module, loaded only when it runs, so `--help` never starts anything (nor loads the
 * Kubernetes client or Pulumi). test/unit/docs-commands.test.ts checks the docs' `kok` lines
 * against this definition.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import * as path from "node:path";
import { Command, CommanderError, Option } from "commander";
import { DEFAULT_PORT_BASE, DEFAULT_STATE_DIR } from "../dev/config";
import { DEFAULT_TERMINATION_GRACE_SECONDS } from "../operator/install-manifests";
import { DEFAULT_HISTORY_KEEP } from "../runtime/state-history";

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Exit codes, also in the top help and docs/operations.md. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

const EXIT_CODES_HELP = `
Exit codes:
  ${EXIT.ok}  success
  ${EXIT.failure}  failure: the command failed, \`kok validate\` found a problem, \`kok operator\`'s
     start-up checks failed (each problem is named)
  ${EXIT.usage}  usage error: unknown command or option, missing argument, bad flag value or file

Durations are written like 90s, 5m or 1h. Docs: README.md, docs/operations.md,
docs/dev-cluster.md, docs/api.md.`;

/** The package's version, from the package.json two levels up (src/cli or dist/cli). */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8")) as { version: string }).version;
}

/** Where commander writes help and errors; tests capture it. */
export interface Output {
  writeOut(text: string): void;
  writeErr(text: string): void;
}

const processOutput: Output = {
  writeOut: (text) => void process.stdout.write(text),
  writeErr: (text) => void process.stderr.write(text),
};

/** "kok dev up" for the `up` under `dev`. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/** Every command of the tree, the root first. */
export function allCommands(root: Command): Command[] {
  return [root, ...root.commands.flatMap((c) => allCommands(c as Command))];
}

/**
 * The whole tree. Each action stores its exit code through `exit`; commander's own errors (and
 * help, and `--version`) are thrown as CommanderError (exitOverride) and mapped by `runKok`.
 */
export function buildProgram(exit: (code: number) => void = () => undefined): Command {
  const program = new Command("kok")
    .description("kube-on-kube: Kubernetes as a service on your own hardware. Business-cluster masters run as Pods in a meta-cluster; worker hosts are installed over SSH.")
    .version(packageVersion(), "-V, --version", "print the package version")
    .helpOption("-h, --help", "show help")
    // The operator's longest flag leaves 36 columns of an 80-column help: wrap them rather than not at all.
    .configureHelp({ minWidthToWrap: 30 })
    .addHelpText("after", EXIT_CODES_HELP);

  program
    .command("demo")
    .summary("the whole product on this machine: meta-cluster, operator, a Cluster and Machines (npm start)")
    .description(
      "Starts the local meta-cluster (kok dev up), installs the CRDs, runs the operator in this process, applies a sample Cluster, " +
        "two Machines on loopback worker hosts and their catalog, follows them to Ready, and prints where to look. Needs root. " +
        "Ctrl-C stops the operator and the hosts; `kok dev down` stops the meta-cluster.",
    )
    .action(async () => exit(await (await import("./demo")).runDemo()));

  program
    .command("validate")
    .summary("check kube-on-kube manifests offline, listing every problem")
    .description("Runs the checks of the components and the operator, the admin policy included, on YAML manifests. Exit 1 when any document has a problem.")
    .argument("<files...>", "YAML manifests ('-' reads standard input)")
    .option("--policy <file>", "the operator's admin policy (default: the built-in one)")
    .action(async (files: string[], flags: { policy?: string }) => exit(await (await import("./validate")).runValidate(files, flags)));

  program
    .command("mirror")
    .summary("serve a directory of artifacts over HTTP, printing each URL and sha256")
    .description("A package mirror for air-gapped sites and tests: serves the regular files of DIR (no dotfiles, nothing outside it) until interrupted.")
    .argument("<dir>", "the directory to serve")
    .option("--addr <host:port>", "listen address (port 0 picks a free one)", "127.0.0.1:8099")
    .action(async (dir: string, flags: { addr: string }) => exit(await (await import("./mirror")).runMirror(dir, flags)));

  program
    .command("operator")
    .summary("reconcile Cluster, Machine and ClusterPackageVersion resources into Pulumi stacks (docs/operator.md)")
    .description(
      "Runs the operator until SIGINT/SIGTERM. Before it starts it checks its engine: the Pulumi CLI on PATH, the provider plugins the " +
        "installed SDKs ask for, a writable file:// state backend and a state passphrase (PULUMI_CONFIG_PASSPHRASE or " +
        "PULUMI_CONFIG_PASSPHRASE_FILE) unless --secrets-provider is given; it exits 1 naming every problem.",
    )
    .option("--kubeconfig <path>", "the meta-cluster's kubeconfig (default: $KUBECONFIG, in-cluster, or ~/.kube/config)")
    .option("--namespace <ns>", "watch only this namespace (default: all)")
    .option("--operator-namespace <ns>", "the operator's own namespace, admitted to the masters' apiservers (default: $POD_NAMESPACE)")
    .addOption(new Option("--state-dir <dir>", "work directories and, with the default backend, the Pulumi state").default(path.join(homedir(), ".kube-on-kube", "operator"), "~/.kube-on-kube/operator"))
    .option("--backend-url <url>", "Pulumi state backend: file:///dir or an object store such as s3://bucket/prefix (default: file://<state-dir>/state)")
    .option("--state-history-keep <n>", "file:// backend: updates of history and backups kept per stack, older ones pruned (0 keeps all)", String(DEFAULT_HISTORY_KEEP))
    .option("--secrets-provider <url>", "encrypt stack secrets with a KMS (e.g. awskms://...) instead of the passphrase")
    .option("--resync-interval <duration>", "how often a reconciled Cluster is checked for drift and a Machine's health looked at", "5m")
    .option("--full-drift-check-interval <duration>", "a Cluster's full preview --refresh at least this often", "24h")
    .option("--concurrency <n>", "engine operations at once, per kind", "4")
    .option("--cluster-workers <n>", "Cluster reconciles at once (default: 4 x concurrency)")
    .option("--machine-workers <n>", "Machine reconciles at once (default: 4 x concurrency)")
    .option("--metrics-addr <addr>", "listen address of /metrics, /healthz and /readyz", ":8080")
    .option("--leader-election-namespace <ns>", "turn leader election on, with its Lease in this namespace (default: off, a single replica)")
    .option("--worker-defaults <file>", "YAML host settings for every Machine (install root, service manager, ...)")
    .option("--probe-interval <duration>", "one SSH probe per Machine (installed versions, services) this often", "10m")
    .option("--repair-after <duration>", "repair a Machine whose Node is NotReady this long", "5m")
    .option("--max-repairs <n>", "repairs of a Machine before it is Failed", "3")
    .option("--max-unhealthy <percent>", "no repairs while more than this share of a cluster's Machines is unhealthy", "40%")
    .option("--policy <file>", "the admin policy: what tenants' Clusters and Machines may ask for (default: the built-in one)")
    .option("--backup-image <image>", "the image of Clusters' etcd backup jobs and restore init containers, with kok, etcdctl and etcdutl (default: docker.io/kube-on-kube/operator:<version>)")
    .addOption(new Option("--log-level <level>", "the least severe log lines written").choices(LOG_LEVELS).default("info"))
    .action(async (flags) => exit(await (await import("./operator")).runOperator(flags)));

  program
    .command("manifests")
    .summary("print the CRDs, RBAC, admission policies and operator Deployment for a meta-cluster")
    .description("Prints the install YAML on stdout; with --policy also the admin policy as a ConfigMap and as ValidatingAdmissionPolicies.")
    .option("--namespace <ns>", "the operator's namespace", "kube-on-kube-system")
    .option("--image <image>", "the operator image (default: kube-on-kube/operator:<version>)")
    .option("--backend-url <url>", "Pulumi state backend (default: file:// on a PersistentVolumeClaim)")
    .option("--passphrase-secret <name>", "the Secret holding the state passphrase (key: passphrase)", "kube-on-kube-operator-state-passphrase")
    .option("--crds-only", "only the CustomResourceDefinitions")
    .option("--operator-heap-mb <mb>", "V8 heap cap of the operator process", "512")
    .option("--termination-grace-seconds <s>", "grace between SIGTERM and SIGKILL: an update in flight may finish", String(DEFAULT_TERMINATION_GRACE_SECONDS))
    .option("--policy <file>", "the admin policy to install with it")
    .option("--worker-defaults <file>", "the operator's --worker-defaults (host settings for every Machine) to install with it")
    .option("--replicas <n>", "operator replicas (more than one needs an object-store backend: one leads, the others stand by)")
    .option("--concurrency <n>", "the operator's --concurrency (engine operations at once per stack project)")
    .option("--cluster-workers <n>", "the operator's Cluster workers")
    .option("--machine-workers <n>", "the operator's Machine workers")
    .option("--secrets-provider <url>", "a KMS secrets provider URL for the state (instead of the passphrase Secret)")
    .option("--object-store-secret <name>", "the Secret with the object store's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (given to the operator as its environment)")
    .action(async (flags) => exit(await (await import("./manifests")).runManifests(flags)));

  const images = program
    .command("images")
    .summary("container images of the toolchain's binaries, with upstream's names: build (docs/images.md)")
    .description("Images for the local environment's real node, built here (nothing is pulled) with the repository names and tags of the upstream ones.");
  images
    .command("build")
    .description(
      "build the images as OCI layouts (skipping those whose inputs did not change) and push them to a registry on loopback when one is given; " +
        "registry.k8s.io/kube-apiserver:v1.36.3 is pushed as HOST:PORT/kube-apiserver:v1.36.3",
    )
    .option("--only <names>", "comma-separated image names: pause, etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, coredns, local-path-provisioner, busybox, flannel, operator (default: all)")
    .option("--registry <host:port>", "push to this registry over plain HTTP, loopback only (default: $KOK_REGISTRY; none: no push)")
    .option("--images-dir <dir>", "where the OCI layouts are written (default: $KOK_IMAGES_DIR or ~/.cache/kube-on-kube/images)")
    .option("--force", "rebuild every chosen image even when its inputs did not change")
    .action(async (flags) => exit(await (await import("./images")).imagesBuildCommand(flags)));
  images
    .command("bom")
    .description("print the bill of materials of the built operator image (kube-on-kube/operator:<version>): each binary and package with its version")
    .option("--images-dir <dir>", "where the OCI layouts are (default: $KOK_IMAGES_DIR or ~/.cache/kube-on-kube/images)")
    .action(async (flags) => exit((await import("./images")).imagesBomCommand(flags)));

  const etcd = program
    .command("etcd")
    .summary("a Cluster's etcd: take a backup into an S3 bucket, restore a member from one (docs/backups.md), change the membership one step")
    .description(
      "What a Cluster's backup CronJob and its etcd members' restore init containers run (in the operator image). The store's credentials " +
        "come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN when set), never from a flag; AWS_CA_BUNDLE names a private " +
        "CA's PEM for an https store. Every bad flag is named at once (exit 2).",
    );
  etcd
    .command("backup")
    .description(
      "snapshot one member (the first of --endpoints that answers) with etcdctl, verify it with etcdutl, upload <prefix>/<time>.db and its .json sidecar, " +
        "prune by --keep and --max-age; prints one JSON line {time, location, revision, size, sha256, pruned}",
    )
    .option("--cluster <ns/name>", "the Cluster, recorded in the sidecar")
    .option("--endpoints <urls>", "etcd client URLs, comma-separated (https://host:2379)")
    .option("--cacert <file>", "the etcd CA certificate")
    .option("--cert <file>", "the client certificate")
    .option("--key <file>", "the client certificate's key")
    .option("--s3-endpoint <url>", "the object store (https://host[:port]; path-style requests)")
    .option("--region <region>", "the store's region")
    .option("--bucket <bucket>", "the bucket")
    .option("--prefix <prefix>", "key prefix inside the bucket (default: none)")
    .option("--keep <n>", "complete backups kept (1-1000)")
    .option("--max-age <duration>", "backups older than this are pruned (Go duration: 168h)")
    .option("--work-dir <dir>", "where the snapshot is written before upload (needs room for one snapshot)")
    .option("--result-file <file>", "also write the result line, or the failure's one line, here (/dev/termination-log)")
    .option("--etcdctl <path>", "etcdctl binary (default: $KOK_ETCDCTL, or etcdctl on PATH)")
    .option("--etcdutl <path>", "etcdutl binary (default: $KOK_ETCDUTL, or etcdutl on PATH)")
    .option("--timeout <duration>", "longest snapshot or verification", "10m")
    .action(async (flags) => exit(await (await import("./etcd")).etcdBackupCommand(flags)));
  etcd
    .command("restore")
    .description(
      "restore one member's data dir from a backup: does nothing when DIR/member exists; else downloads the snapshot and its sidecar, checks size, " +
        "SHA-256 and revision, and runs etcdutl snapshot restore (a new cluster ID)",
    )
    .option("--snapshot <s3-url>", "the backup: s3://<bucket>/<key>.db")
    .option("--s3-endpoint <url>", "the object store (https://host[:port])")
    .option("--region <region>", "the store's region")
    .option("--data-dir <dir>", "the member's etcd data dir")
    .option("--name <name>", "the member's name")
    .option("--initial-cluster <list>", "name=peer-url,... of every member, as etcd's flag")
    .option("--initial-cluster-token <token>", "the new cluster's token, as etcd's flag")
    .option("--initial-advertise-peer-urls <urls>", "this member's peer URLs, as etcd's flag")
    .option("--result-file <file>", "also write the result line, or the failure's one line, here")
    .option("--etcdutl <path>", "etcdutl binary (default: $KOK_ETCDUTL, or etcdutl on PATH)")
    .option("--timeout <duration>", "longest verification or restore", "10m")
    .action(async (flags) => exit(await (await import("./etcd")).etcdRestoreCommand(flags)));
  etcd
    .command("member")
    .argument("<action>", "list, add, promote or remove")
    .description(
      "one step of a Cluster's etcd membership (what the operator's membership Jobs run): add a learner, promote it, remove a member (leadership " +
        "moved away first), or only list; then prints one JSON line {action, member, done, message, members} with each member's status",
    )
    .option("--member <name>", "the member (its Pod's name) to add, promote or remove")
    .option("--peer-url <url>", "the added member's peer URL (https://<member>.<peer service>:2380)")
    .option("--endpoints <urls>", "etcd client URLs, comma-separated (https://host:2379)")
    .option("--cacert <file>", "the etcd CA certificate")
    .option("--cert <file>", "the client certificate")
    .option("--key <file>", "the client certificate's key")
    .option("--result-file <file>", "also write the result line, or the failure's one line, here (/dev/termination-log)")
    .option("--etcdctl <path>", "etcdctl binary (default: $KOK_ETCDCTL, or etcdctl on PATH)")
    .action(async (action, flags) => exit(await (await import("./etcd")).etcdMemberCommand(action, flags)));

  const dev = program
    .command("dev")
    .summary("the local meta-cluster and node for development: up, down, env, status, logs")
    .description("The local meta-cluster (etcd, kube-apiserver, controller-manager, scheduler on loopback), its image registry and S3 object store, and its node (a real kubelet on containerd 2 + runc + CNI). See docs/dev-cluster.md.");
  const stateDir = () => new Option("--state-dir <dir>", "certificates, kubeconfig, data, logs and pid files").default(DEFAULT_STATE_DIR, DEFAULT_STATE_DIR.replace(homedir(), "~"));
  dev
    .command("up")
    .description("start (or finish starting) the meta-cluster and its node; waits until ready")
    .addOption(stateDir())
    .option("--port-base <n>", `ports are N+2379/2380 (etcd), N+6443 (apiserver), N+10257, N+10259, N+5000 (registry), N+9000 (object store); fixed at a state dir's first up (default: ${DEFAULT_PORT_BASE})`)
    .option("--pod-cidr <cidr>", "addresses of the node's Pods; fixed at a state dir's first up (default: 10.88.0.0/16)")
    .option("--no-node", "control plane only: no node, Pods stay Pending")
    .action(async (flags) => exit(await (await import("./dev")).devUpCommand(flags)));
  dev
    .command("down")
    .description("stop every process `up` started and remove the node's namespaces")
    .addOption(stateDir())
    .option("--purge", "also delete the state directory")
    .action(async (flags) => exit(await (await import("./dev")).devDownCommand(flags)));
  dev
    .command("env")
    .description("print export lines: KUBECONFIG, KOK_REGISTRY, and the object store's KOK_S3_* and AWS_* (with its secret key)")
    .addOption(stateDir())
    .action(async (flags) => exit(await (await import("./dev")).devEnvCommand(flags)));
  dev
    .command("status")
    .description("list the processes and whether they are healthy (exit 1 when one is not)")
    .addOption(stateDir())
    .action(async (flags) => exit(await (await import("./dev")).devStatusCommand(flags)));
  dev
    .command("logs")
    .description("print a Pod container's log (kubectl logs through the real node's kubelet)")
    .argument("<pod>", "the Pod's name")
    .addOption(stateDir())
    .option("-n, --namespace <ns>", "the Pod's namespace, when the name is not unique")
    .option("-c, --container <name>", "the container, when the Pod has several")
    .action(async (pod: string, flags) => exit((await import("./dev")).devLogsCommand(pod, flags)));

  for (const command of allCommands(program)) {
    command.exitOverride().showHelpAfterError(`(run \`${commandPath(command)} --help\` for usage)`);
  }
  return program;
}

/** Help and `--version` end well; every other commander error is a usage error. */
function exitCodeOf(error: CommanderError): number {
  return error.code === "commander.helpDisplayed" || error.code === "commander.version" ? EXIT.ok : EXIT.usage;
}

/** Runs `kok` with these arguments (without "node main.js") and returns its exit code. */
export async function runKok(argv: readonly string[], output: Output = processOutput): Promise<number> {
  let code: number = EXIT.ok;
  return runProgram(buildProgram((c) => (code = c)), argv, output, () => code);
}

/** Parses and runs; `code` reads what the action stored. Tests pass a program whose actions are stubs. */
export async function runProgram(program: Command, argv: readonly string[], output: Output, code: () => number): Promise<number> {
  for (const command of allCommands(program)) command.configureOutput({ writeOut: output.writeOut, writeErr: output.writeErr });
  try {
    await program.parseAsync([...argv], { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) return exitCodeOf(error);
    output.writeErr(`kok: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.failure;
  }
  return code();
}
