/**
 * What each image holds, with upstream's repository names, tags and paths, so Pod specs written
 * for the upstream images (kubeadm's, ours) run unchanged through a registry mirror:
 *
 *   registry.k8s.io/kube-apiserver|kube-controller-manager|kube-scheduler:<v>  /usr/local/bin/<name>
 *   registry.k8s.io/kube-proxy:<v>            /usr/local/bin/kube-proxy + iptables, nft, conntrack, ipset
 *   registry.k8s.io/etcd:<etcd version>-0     /usr/local/bin/{etcd,etcdctl,etcdutl}, /var/lib/etcd
 *   registry.k8s.io/pause:<version>           /pause only, USER 65535:65535
 *   registry.k8s.io/coredns/coredns:v<version> /coredns (cap_net_bind_service), USER nonroot:nonroot
 *   docker.io/rancher/local-path-provisioner:<version>  /usr/bin/local-path-provisioner
 *   docker.io/library/busybox:<version>, :latest  Debian's busybox-static with its applet links
 *   docker.io/flannel/flannel:<version>       /opt/bin/flanneld + kube-proxy's netfilter tools + busybox
 *   docker.io/kube-on-kube/operator:<package version>  the operator itself (operator.ts)
 *
 * Versions come from the toolchain's binaries themselves (the k8s/<version>/ directories,
 * `etcd --version`, bin/pause.version, `coredns -version`, `local-path-provisioner --version`,
 * `flanneld --version`) and
 * from apt (busybox), never from a second copy of the pins. docs/images.md has the reasons for
 * each choice.
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import type { BomEntry } from "./bom";
import type { DebCache } from "./debs";
import { parseReference, type ImageReference } from "./layout";
import { OPERATOR_PACKAGES, operatorImage } from "./operator";
import type { RunConfig } from "./oci";
import { baseEntries, busyboxApplets, busyboxEntries, packageEntries } from "./rootfs";
import type { TarEntry } from "./tar";

export interface LayerPlan {
  /** What the layer holds, as the config's history says. */
  readonly comment: string;
  readonly entries: readonly TarEntry[];
}

export interface ImagePlan {
  /** The image's short name, as `--only` takes it: "kube-apiserver", "busybox". */
  readonly name: string;
  /** Every reference the image is tagged with; the first names its layout directory. */
  readonly refs: readonly ImageReference[];
  readonly layers: readonly LayerPlan[];
  readonly run: RunConfig;
  /** Each part with its version, where the image has a bill of materials (the operator's). */
  readonly bom?: readonly BomEntry[];
}

/** Names `--only` accepts, in build order. */
export const IMAGE_NAMES = ["pause", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "coredns", "local-path-provisioner", "busybox", "flannel", "operator"] as const;
export type ImageName = (typeof IMAGE_NAMES)[number];
/**
 * What `buildImages` builds when not told (`kok dev up`): the images the real node runs. The
 * operator's own image costs a build and production install of this package and about 190 MB of
 * layers, redone at every source change: `kok images build` (all of IMAGE_NAMES) or
 * `--only operator` makes it.
 */
export const DEFAULT_IMAGE_NAMES: readonly ImageName[] = IMAGE_NAMES.filter((n) => n !== "operator");

/** Everything that is missing, one line each, so one run names all of it. */
export class MissingInputsError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`cannot build the images:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "MissingInputsError";
  }
}

const PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SSL = "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt";

/** security.capability granting cap_net_bind_service (+ep): what `setcap cap_net_bind_service=+ep` writes. */
export function netBindServiceCapability(): Buffer {
  const value = Buffer.alloc(20);
  value.writeUInt32LE(0x02000001, 0); // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
  value.writeUInt32LE(1 << 10, 4); // permitted: CAP_NET_BIND_SERVICE (10)
  return value;
}

export interface PlanContext {
  readonly toolchainDir: string;
  readonly debs: DebCache;
  /** Where the operator image's production install is staged (app-stage.ts). */
  readonly stagesDir: string;
  readonly log?: (line: string) => void;
}

/** What an image definition in another file (operator.ts) uses of the plan's inputs. */
export type PlanInputs = Pick<Inputs, "problems" | "ctx" | "file" | "version" | "baseLayer">;

/** Looks binaries up, collecting every missing one instead of stopping at the first. */
class Inputs {
  readonly problems: string[] = [];
  private base?: LayerPlan;
  private netfilter?: LayerPlan;

  constructor(readonly ctx: PlanContext) {}

  /** A toolchain file, or undefined (and a problem naming the image, the file and the fix). */
  file(image: string, rel: string, target: string, executable = true): string | undefined {
    const file = path.join(this.ctx.toolchainDir, rel);
    try {
      accessSync(file, executable ? constants.X_OK : constants.R_OK);
      return file;
    } catch {
      this.problems.push(`${image}: ${path.basename(file)} not found at ${file}: build it with \`bash tools/toolchain.sh ${target}\``);
      return undefined;
    }
  }

  /** A version printed by a binary (on stdout or, as flanneld does, stderr), matched by `pattern`'s first group. */
  version(image: string, binary: string, args: string[], pattern: RegExp): string | undefined {
    const run = spawnSync(binary, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
    if (run.error || run.status !== 0) {
      const why = run.error ? run.error.message.split("\n")[0] : `exit ${run.status ?? run.signal}: ${run.stderr.trim().split("\n")[0] ?? ""}`;
      this.problems.push(`${image}: \`${binary} ${args.join(" ")}\` failed (${why}): rebuild it with the toolchain`);
      return undefined;
    }
    const output = `${run.stdout}${run.stderr}`;
    const found = pattern.exec(output)?.[1];
    if (!found) this.problems.push(`${image}: \`${binary} ${args.join(" ")}\` printed no version (${JSON.stringify(output.trim().slice(0, 80))})`);
    return found;
  }

  baseLayer(): LayerPlan {
    this.base ??= { comment: "base: users, groups, nsswitch.conf, CA certificates and time zones (Debian ca-certificates, tzdata)", entries: baseEntries(this.ctx.debs.get("ca-certificates"), this.ctx.debs.get("tzdata")) };
    return this.base;
  }

  /** One plan for kube-proxy's and flannel's images: the same layer bytes, stored once. */
  netfilterLayer(): LayerPlan {
    this.netfilter ??= netfilterLayer(this);
    return this.netfilter;
  }
}

/** The Kubernetes versions the toolchain holds: its k8s/<version>/ directories, sorted. */
export function kubernetesVersions(toolchainDir: string): string[] {
  const dir = path.join(toolchainDir, "k8s");
  return existsSync(dir) ? readdirSync(dir).filter((v) => /^v\d+\.\d+\.\d+$/.test(v)).sort() : [];
}

const minorTarget = (version: string) => `kube-${version.replace(/^v(\d+\.\d+)\..*$/, "$1")}`;

const binaryLayer = (comment: string, files: readonly [string, string | undefined][]): LayerPlan => ({
  comment,
  entries: files.map(([at, source]) => ({ type: "file", path: at, source: source!, mode: 0o755 })),
});

function kubernetesImages(inputs: Inputs, name: ImageName): (ImagePlan | undefined)[] {
  const versions = kubernetesVersions(inputs.ctx.toolchainDir);
  if (versions.length === 0) {
    inputs.problems.push(`${name}: no Kubernetes versions under ${path.join(inputs.ctx.toolchainDir, "k8s")}: build them with \`bash tools/toolchain.sh kube-1.36 kube-1.35\``);
  }
  // The toolchain builds kube-proxy for the default (newest) minor only: the node runs one.
  // Its image is made for every version that has it; none at all is a missing input.
  const proxyVersions = versions.filter((v) => existsSync(path.join(inputs.ctx.toolchainDir, "k8s", v, "bin", name)));
  const chosen = name === "kube-proxy" && proxyVersions.length > 0 ? proxyVersions : name === "kube-proxy" ? versions.slice(-1) : versions;
  return chosen.map((version) => {
    const ref = parseReference(`registry.k8s.io/${name}:${version}`);
    const binary = inputs.file(`registry.k8s.io/${name}:${version}`, `k8s/${version}/bin/${name}`, minorTarget(version));
    if (!binary) return undefined;
    const layers = [inputs.baseLayer()];
    if (name === "kube-proxy") layers.push(inputs.netfilterLayer());
    layers.push(binaryLayer(`${name} ${version}`, [[`usr/local/bin/${name}`, binary]]));
    // Upstream's entrypoint is /go-runner, a log-redirecting wrapper we do not build; Pod specs
    // name the command anyway. Without one, the binary itself is the nearest equivalent.
    return { name, refs: [ref], layers, run: { entrypoint: [`/usr/local/bin/${name}`], env: [PATH, SSL] } };
  });
}

const NETFILTER_PACKAGES = ["iptables", "nftables", "conntrack", "ipset"];

/**
 * kube-proxy's tools as upstream's distroless-iptables has them: iptables (nft and legacy),
 * ip6tables, nft, conntrack, ipset with their libraries. `iptables` is iptables-nft, Debian's
 * default alternative (dpkg-deb -x runs no update-alternatives, so the links are made here).
 */
function netfilterLayer(inputs: Inputs): LayerPlan {
  const debs = inputs.ctx.debs.withDependencies(NETFILTER_PACKAGES);
  const alternatives = ["iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"].map(
    (n): TarEntry => ({ type: "symlink", path: `usr/sbin/${n}`, target: n.replace(/^(ip6?tables)/, "$1-nft") }),
  );
  const entries = packageEntries(debs).filter((e) => !e.path.startsWith("etc/nftables.conf") && !e.path.startsWith("lib/systemd"));
  return { comment: `netfilter tools from Debian: ${debs.map((d) => `${d.name} ${d.version}`).join(", ")}`, entries: [...entries, ...alternatives] };
}

function etcdImage(inputs: Inputs): ImagePlan | undefined {
  const files = (["etcd", "etcdctl", "etcdutl"] as const).map((b) => [b, inputs.file("registry.k8s.io/etcd", `bin/${b}`, "etcd")] as const);
  if (files.some(([, f]) => !f)) return undefined;
  const version = inputs.version("registry.k8s.io/etcd", files[0][1]!, ["--version"], /etcd Version:\s*(\d+\.\d+\.\d+)/);
  if (!version) return undefined;
  const layer = binaryLayer(`etcd ${version}`, files.map(([b, f]) => [`usr/local/bin/${b}`, f]));
  const dirs: TarEntry[] = [
    { type: "dir", path: "var/lib/etcd", mode: 0o700 },
    { type: "dir", path: "var/etcd", mode: 0o700 },
  ];
  return {
    name: "etcd",
    refs: [parseReference(`registry.k8s.io/etcd:${version}-0`)],
    layers: [inputs.baseLayer(), { ...layer, entries: [...layer.entries, ...dirs] }],
    run: { cmd: ["/usr/local/bin/etcd"], env: [PATH, SSL], workingDir: "/", exposedPorts: ["2379/tcp", "2380/tcp"] },
  };
}

function pauseImage(inputs: Inputs): ImagePlan | undefined {
  const binary = inputs.file("registry.k8s.io/pause", "bin/pause", "pause");
  const versionFile = inputs.file("registry.k8s.io/pause", "bin/pause.version", "pause", false);
  if (!binary || !versionFile) return undefined;
  const version = readFileSync(versionFile, "utf8").trim();
  if (!/^\d+\.\d+(\.\d+)?$/.test(version)) {
    inputs.problems.push(`registry.k8s.io/pause: ${versionFile} holds "${version}", not a version like 3.10.1: rebuild with \`bash tools/toolchain.sh pause\``);
    return undefined;
  }
  // Upstream's pause image is FROM scratch: the binary alone, run as 65535.
  return { name: "pause", refs: [parseReference(`registry.k8s.io/pause:${version}`)], layers: [binaryLayer(`pause ${version}`, [["pause", binary]])], run: { entrypoint: ["/pause"], env: [PATH], user: "65535:65535" } };
}

function corednsImage(inputs: Inputs): ImagePlan | undefined {
  const binary = inputs.file("registry.k8s.io/coredns/coredns", "bin/coredns", "coredns");
  if (!binary) return undefined;
  const version = inputs.version("registry.k8s.io/coredns/coredns", binary, ["-version"], /CoreDNS-(\d+\.\d+\.\d+)/);
  if (!version) return undefined;
  const coredns: TarEntry = { type: "file", path: "coredns", source: binary, mode: 0o755, xattrs: { "security.capability": netBindServiceCapability() } };
  return {
    name: "coredns",
    refs: [parseReference(`registry.k8s.io/coredns/coredns:v${version}`)],
    layers: [inputs.baseLayer(), { comment: `coredns ${version} with cap_net_bind_service`, entries: [coredns] }],
    run: { entrypoint: ["/coredns"], env: [PATH, SSL], user: "nonroot:nonroot", workingDir: "/", exposedPorts: ["53/tcp", "53/udp"] },
  };
}

function localPathProvisionerImage(inputs: Inputs): ImagePlan | undefined {
  const image = "docker.io/rancher/local-path-provisioner";
  const binary = inputs.file(image, "bin/local-path-provisioner", "local-path-provisioner");
  if (!binary) return undefined;
  const version = inputs.version(image, binary, ["--version"], /version\s+(v\d+\.\d+\.\d+)/);
  if (!version) return undefined;
  return {
    name: "local-path-provisioner",
    refs: [parseReference(`${image}:${version}`)],
    layers: [inputs.baseLayer(), binaryLayer(`local-path-provisioner ${version}`, [["usr/bin/local-path-provisioner", binary]])],
    run: { cmd: ["local-path-provisioner"], env: [PATH, SSL] },
  };
}

function busyboxImage(inputs: Inputs): ImagePlan {
  const deb = inputs.ctx.debs.get("busybox-static");
  // 1:1.35.0-4+deb12u1+b1 → 1.35.0, the upstream version Docker's busybox tags use.
  const version = deb.version.replace(/^\d+:/, "").replace(/-[^-]*$/, "");
  return {
    name: "busybox",
    refs: [parseReference(`docker.io/library/busybox:${version}`), parseReference("docker.io/library/busybox:latest")],
    layers: [{ comment: `busybox ${version} (Debian busybox-static ${deb.version})`, entries: busyboxEntries(deb) }],
    run: { cmd: ["sh"], env: [PATH] },
  };
}

/** Applets the flannel DaemonSet's `install-cni` script runs (`/bin/sh -c`) to render the CNI conflist. */
export const FLANNEL_SCRIPT_APPLETS = ["sh", "cat", "mv", "mkdir", "sleep", "sed", "grep", "cp", "rm", "test", "[", "ip"] as const;

/**
 * flannel as upstream's image lays it out (/opt/bin/flanneld, the entrypoint), with what flanneld
 * runs: iptables/ip6tables (its --ip-masq and forward rules, through go-iptables) and nft (the
 * nftables mode) — kube-proxy's netfilter layer, so both images share it — and a shell with the
 * usual utilities (upstream's is Alpine's busybox), here Debian's busybox-static with every
 * applet linked in /bin as the busybox image has them, because the DaemonSet's `install-cni`
 * container runs a POSIX sh script in this image.
 */
function flannelImage(inputs: Inputs): ImagePlan | undefined {
  const image = "docker.io/flannel/flannel";
  const binary = inputs.file(image, "bin/flanneld", "flannel");
  if (!binary) return undefined;
  const version = inputs.version(image, binary, ["--version"], /^(v\d+\.\d+\.\d+)\s*$/m);
  if (!version) return undefined;
  const deb = inputs.ctx.debs.get("busybox-static");
  return {
    name: "flannel",
    refs: [parseReference(`${image}:${version}`)],
    layers: [
      inputs.baseLayer(),
      inputs.netfilterLayer(),
      { comment: `busybox applets (Debian busybox-static ${deb.version})`, entries: busyboxApplets(deb, FLANNEL_SCRIPT_APPLETS) },
      binaryLayer(`flanneld ${version}`, [["opt/bin/flanneld", binary]]),
    ],
    run: { entrypoint: ["/opt/bin/flanneld"], env: [PATH, SSL] },
  };
}

/** The plans of the chosen images (all by default); throws MissingInputsError naming every missing input. */
export function planImages(ctx: PlanContext, only: readonly ImageName[] = IMAGE_NAMES): ImagePlan[] {
  const inputs = new Inputs(ctx);
  const chosen = IMAGE_NAMES.filter((n) => only.includes(n));
  // Every top-level package in one apt-cache call; only pause needs none.
  const needs = (...names: ImageName[]) => names.some((n) => chosen.includes(n));
  if (chosen.some((n) => n !== "pause")) {
    ctx.debs.resolve(["ca-certificates", "tzdata", ...(needs("busybox", "flannel") ? ["busybox-static"] : []), ...(needs("kube-proxy", "flannel") ? NETFILTER_PACKAGES : []), ...(needs("operator") ? OPERATOR_PACKAGES : [])]);
  }
  const plans: (ImagePlan | undefined)[] = [];
  for (const name of chosen) {
    if (name === "pause") plans.push(pauseImage(inputs));
    else if (name === "etcd") plans.push(etcdImage(inputs));
    else if (name === "coredns") plans.push(corednsImage(inputs));
    else if (name === "local-path-provisioner") plans.push(localPathProvisionerImage(inputs));
    else if (name === "busybox") plans.push(busyboxImage(inputs));
    else if (name === "flannel") plans.push(flannelImage(inputs));
    else if (name === "operator") plans.push(operatorImage(inputs, { stagesDir: ctx.stagesDir, log: ctx.log ?? (() => undefined) }));
    else plans.push(...kubernetesImages(inputs, name));
  }
  if (inputs.problems.length > 0) throw new MissingInputsError(inputs.problems);
  return plans.filter((p): p is ImagePlan => p !== undefined);
}
