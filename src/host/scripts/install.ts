/**
 * The package steps: containerd, runc, kubelet (with its config and unit) and the CNI plugins.
 * Each downloads its artifact into a staging directory, checks sha256, unpacks it into
 * `/opt/kube-on-kube/<package>/<version>-<sha12>/` and only then switches the package's
 * `current` link with one rename; a step that fails anywhere before that leaves the previous
 * version in place and running. A re-run with the version already active downloads nothing.
 */
import type { ContainerRuntimeSettings, PackageArtifact, PackageName } from "../../api/v1alpha1";
import { containerdConfig, registryHostsLines, type CgroupDriver, type ContainerdHostSettings } from "./containerd";
import YAML from "yaml";
import { restartLines, serviceFunctions, type ServiceManager } from "./services";
import { bashCommand, preamble, rootPrefix, shellQuote } from "./shell";

export { ServiceManager } from "./services";
export { containerdConfig, hostsToml, type CgroupDriver, type ContainerdHostSettings } from "./containerd";

export interface HostLayout {
  /** "/" on a real host; a directory on a test host. */
  readonly installRoot: string;
  /** `systemd`; `process` (detached daemons with pid files); `none` (units written, nothing started). */
  readonly serviceManager: ServiceManager;
}

interface PackageShape {
  readonly format: "binary" | "tarball";
  /** A file the unpacked artifact must contain, relative to its version directory. */
  readonly mustContain: string;
  /** Shell lines that expose the active version, run after `activate`. */
  readonly links: string;
}

const SHAPES: Record<PackageName, PackageShape> = {
  containerd: {
    format: "tarball",
    mustContain: "bin/containerd",
    links: `for f in "$pkgdir/current/bin/"*; do link_into "$pkgdir/current/bin/\${f##*/}" "$ROOT/usr/local/bin/\${f##*/}"; done`,
  },
  runc: { format: "binary", mustContain: "runc", links: `link_into "$pkgdir/current/runc" "$ROOT/usr/local/sbin/runc"` },
  kubelet: { format: "binary", mustContain: "kubelet", links: `link_into "$pkgdir/current/kubelet" "$ROOT/usr/local/bin/kubelet"` },
  cni: {
    format: "tarball",
    mustContain: "bridge",
    links: `if [ -d "$ROOT/opt/cni/bin" ] && [ ! -L "$ROOT/opt/cni/bin" ]; then mv -T "$ROOT/opt/cni/bin" "$ROOT/opt/cni/bin.before-kube-on-kube"; fi
link_into "$pkgdir/current" "$ROOT/opt/cni/bin"`,
  },
};

/** Lines that fetch, verify, unpack and activate one artifact; sets `changed=1` when a new version became active. */
function installArtifact(name: PackageName, artifact: PackageArtifact): string {
  const shape = SHAPES[name];
  const unpack =
    shape.format === "tarball"
      ? `tar -xf "$stage/artifact" -C "$stage/tree" --no-same-owner || fail "$URL is not a tar archive; nothing was replaced"`
      : `install -m 0755 "$stage/artifact" "$stage/tree/${shape.mustContain}"`;
  return `PKG=${name}
URL=${shellQuote(artifact.url)}
SHA=${shellQuote(artifact.sha256)}
VERSION=${shellQuote(artifact.version)}
pkgdir="$PKG_HOME/$PKG"
vdir="$VERSION-\${SHA:0:12}"
changed=0
mkdir -p "$pkgdir"
if [ "$(readlink "$pkgdir/current" 2>/dev/null || true)" = "$vdir" ] && [ -f "$pkgdir/$vdir/.kube-on-kube-version" ]; then
  log "$PKG $VERSION is already active"
else
  stage=$(mktemp -d "$pkgdir/.staging.XXXXXX")
  trap 'rm -rf "$stage"' EXIT
  fetch_verified "$URL" "$SHA" "$stage/artifact"
  mkdir "$stage/tree"
  ${unpack}
  [ -f "$stage/tree/${shape.mustContain}" ] || fail "$URL does not contain ${shape.mustContain}; nothing was replaced"
  printf '%s\\n' "$VERSION" > "$stage/tree/.kube-on-kube-version"
  printf '%s\\n' "$SHA" > "$stage/tree/.kube-on-kube-sha256"
  rm -rf "\${pkgdir:?}/$vdir"
  mv -T "$stage/tree" "$pkgdir/$vdir"
  activate "$pkgdir" "$vdir"
  changed=1
  log "$PKG $VERSION is now active"
fi
${shape.links}
`;
}

const CONTAINERD_UNIT = `[Unit]
Description=containerd container runtime (kube-on-kube)
After=network.target local-fs.target
[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999
[Install]
WantedBy=multi-user.target
`;

const KUBELET_UNIT = `[Unit]
Description=kubelet (kube-on-kube)
After=containerd.service
Wants=containerd.service
[Service]
EnvironmentFile=-/etc/kubernetes/kubelet-flags.env
ExecStart=/usr/local/bin/kubelet --config=/var/lib/kubelet/config.yaml --kubeconfig=/etc/kubernetes/kubelet.conf $KUBELET_ARGS
Restart=always
RestartSec=5
[Install]
WantedBy=multi-user.target
`;

/** Settings of the kubelet's config file (KubeletConfiguration). */
export interface KubeletSettings {
  /**
   * The cluster DNS Service's address(es). Default: the tenth address of the cluster's
   * serviceCIDR when the WorkerNode is given it (cluster.serviceCIDR), else ["10.96.0.10"] (the
   * tenth of the default 10.96.0.0/12). Set it for a node-local DNS cache.
   */
  readonly clusterDNS?: readonly string[];
  /** Default: the cluster's clusterDomain when given (cluster.clusterDomain), else "cluster.local". */
  readonly clusterDomain?: string;
  /** Default 110. */
  readonly maxPods?: number;
  /** Default "systemd" (containerd is configured to match). */
  readonly cgroupDriver?: CgroupDriver;
  /** Extra KubeletConfiguration fields; they override the generated ones (e.g. { address: "10.0.0.5" }). */
  readonly config?: Readonly<Record<string, unknown>>;
}

/**
 * Where the kubelet's serving certificate (signed by the cluster CA, so the apiserver can verify
 * the kubelet it calls for logs, exec and port-forward) and its key live, under the kubelet's pki
 * directory; names of their own, apart from the self-signed kubelet.crt a kubelet makes without one.
 */
export const KUBELET_SERVING_CERT = "/var/lib/kubelet/pki/kubelet-serving.crt";
export const KUBELET_SERVING_KEY = "/var/lib/kubelet/pki/kubelet-serving.key";

export function kubeletConfig(settings: KubeletSettings = {}, installRoot = "/", servingCertificate = false): string {
  const root = rootPrefix(installRoot);
  return YAML.stringify({
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: `${root}/etc/kubernetes/pki/ca.crt` } },
    authorization: { mode: "Webhook" },
    cgroupDriver: settings.cgroupDriver ?? "systemd",
    containerRuntimeEndpoint: `unix://${root}/run/containerd/containerd.sock`,
    clusterDNS: [...(settings.clusterDNS ?? ["10.96.0.10"])],
    clusterDomain: settings.clusterDomain ?? "cluster.local",
    maxPods: settings.maxPods ?? 110,
    failSwapOn: true,
    rotateCertificates: false,
    ...(servingCertificate ? { tlsCertFile: `${root}${KUBELET_SERVING_CERT}`, tlsPrivateKeyFile: `${root}${KUBELET_SERVING_KEY}` } : {}),
    // Under an install root (hosts sharing one filesystem), each kubelet its own Pod log directory:
    // a kubelet removes the log directories of Pods it does not know, i.e. every other kubelet's.
    ...(root ? { podLogsDir: `${root}/var/log/pods` } : {}),
    ...settings.config,
  });
}

/** Lines that write a file only when its content differs; sets `changed=1` if it did. */
export function writeFileLines(path: string, mode: string, content: string): string {
  const marker = "KUBE_ON_KUBE_EOF";
  if (content.includes(marker)) throw new Error(`file content for ${path} contains the heredoc marker`);
  return `if write_file "$ROOT${path}" ${mode} <<'${marker}'
${content}${content.endsWith("\n") ? "" : "\n"}${marker}
then changed=1; log "wrote ${path}"; fi
`;
}

/**
 * containerd, its config (sandbox image, registry mirrors: `runtime`) and unit. `runtime` changes
 * restart containerd like a new version does; running containers keep running (their shims stay).
 */
export function containerdScript(artifact: PackageArtifact, layout: HostLayout, cgroupDriver: CgroupDriver = "systemd", runtime: ContainerRuntimeSettings = {}, host: ContainerdHostSettings = {}): string {
  return bashCommand(`${preamble("containerd", layout.installRoot)}${serviceFunctions(layout.serviceManager)}${installArtifact("containerd", artifact)}
${writeFileLines("/etc/containerd/config.toml", "0644", containerdConfig(layout.installRoot, cgroupDriver, runtime, host, artifact.version))}${registryHostsLines(runtime, writeFileLines)}${writeFileLines("/etc/systemd/system/containerd.service", "0644", CONTAINERD_UNIT)}${restartLines(layout.serviceManager, "containerd", "changed-or-stopped")}`);
}

export function runcScript(artifact: PackageArtifact, layout: HostLayout): string {
  return bashCommand(`${preamble("runc", layout.installRoot)}${installArtifact("runc", artifact)}`);
}

/**
 * The kubelet binary, its config file and unit. A running kubelet is restarted on change (an
 * upgrade, a renewed serving certificate); a fresh one is started by the join step once it has
 * credentials. With `servingCertificate`, stdin carries the serving certificate and its key (PEM,
 * one after the other): the key is never part of the command text.
 */
export function kubeletScript(artifact: PackageArtifact, settings: KubeletSettings, layout: HostLayout, servingCertificate = false): string {
  return bashCommand(`${preamble("kubelet", layout.installRoot)}${serviceFunctions(layout.serviceManager)}${installArtifact("kubelet", artifact)}
${servingCertificate ? servingCertificateLines() : ""}${writeFileLines("/var/lib/kubelet/config.yaml", "0644", kubeletConfig(settings, layout.installRoot, servingCertificate))}${writeFileLines("/etc/systemd/system/kubelet.service", "0644", KUBELET_UNIT)}${restartLines(layout.serviceManager, "kubelet", "changed-and-running")}`);
}

/** Splits the PEM bundle on stdin into the serving certificate (0644) and its key (0600). */
function servingCertificateLines(): string {
  const block = (begin: string, end: string) => `printf '%s\n' "$bundle" | sed -n '/^-----BEGIN ${begin}-----$/,/^-----END ${end}-----$/p'`;
  return `bundle=$(cat)
cert=$(${block("CERTIFICATE", "CERTIFICATE")})
key=$(${block("[A-Z ]*PRIVATE KEY", "[A-Z ]*PRIVATE KEY")})
[ -n "$cert" ] && [ -n "$key" ] || fail "no serving certificate and key arrived on stdin"
if printf '%s\n' "$cert" | write_file "$ROOT${KUBELET_SERVING_CERT}" 0644; then changed=1; log "wrote ${KUBELET_SERVING_CERT}"; fi
if printf '%s\n' "$key" | write_file "$ROOT${KUBELET_SERVING_KEY}" 0600; then changed=1; log "wrote ${KUBELET_SERVING_KEY}"; fi
unset bundle key
`;
}

export function cniScript(artifact: PackageArtifact, layout: HostLayout): string {
  return bashCommand(`${preamble("cni", layout.installRoot)}mkdir -p "$ROOT/opt/cni" "$ROOT/etc/cni/net.d"
${installArtifact("cni", artifact)}`);
}
