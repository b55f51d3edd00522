/**
 * The steps that make a host a node: join (credentials, labels, taints), verify (versions read
 * back from the host), and the host cleanup that runs when the WorkerNode is deleted.
 */
import type { Taint } from "../../api/v1alpha1";
import { PACKAGE_NAMES } from "../../api/v1alpha1";
import { writeFileLines, type HostLayout } from "./install";
import { restartLines, runningCheckLines, serviceFunctions, ServiceManager, stopLines } from "./services";
import { bashCommand, PACKAGE_HOME, preamble, rootPrefix, shellQuote } from "./shell";

export const ZONE_LABEL = "topology.kubernetes.io/zone";

/** The labels a node registers with: the machine's labels plus the zone from `idc`. */
export function nodeLabels(labels: Record<string, string> | undefined, idc: string | undefined): Record<string, string> {
  return { ...(labels ?? {}), ...(idc ? { [ZONE_LABEL]: idc } : {}) };
}

/** The kubelet's extra flags: node IP, name, labels and taints (sorted, so the text is stable). */
export function kubeletFlags(args: {
  ip: string;
  hostname: string;
  labels: Record<string, string>;
  taints: readonly Taint[];
  bootstrap: boolean;
  /** The install root; prefixes the bootstrap kubeconfig path. Default "/". */
  installRoot?: string;
}): string {
  const flags = [`--node-ip=${args.ip}`, `--hostname-override=${args.hostname}`];
  const labels = Object.keys(args.labels).sort().map((k) => `${k}=${args.labels[k]}`);
  if (labels.length) flags.push(`--node-labels=${labels.join(",")}`);
  const taints = args.taints.map((t) => `${t.key}${t.value ? `=${t.value}` : ""}:${t.effect}`);
  if (taints.length) flags.push(`--register-with-taints=${taints.join(",")}`);
  if (args.bootstrap) flags.push(`--bootstrap-kubeconfig=${rootPrefix(args.installRoot ?? "/")}/etc/kubernetes/bootstrap-kubelet.conf`);
  return `KUBELET_ARGS="${flags.join(" ")}"\n`;
}

export interface JoinScriptArgs {
  readonly ip: string;
  readonly hostname: string;
  readonly labels: Record<string, string>;
  readonly taints: readonly Taint[];
  /** The cluster CA certificate (public). */
  readonly caCertificate: string;
  /** `certificate`: stdin is the kubelet's kubeconfig; `bootstrapToken`: stdin is a bootstrap kubeconfig. */
  readonly credentials: "certificate" | "bootstrapToken";
}

/**
 * Writes the CA, the kubelet's flags and the kubeconfig that arrives on stdin (it holds a private
 * key or a token, so it is never part of the command text), then (re)starts the kubelet.
 */
export function joinScript(args: JoinScriptArgs, layout: HostLayout): string {
  const bootstrap = args.credentials === "bootstrapToken";
  const kubeconfigPath = bootstrap ? "/etc/kubernetes/bootstrap-kubelet.conf" : "/etc/kubernetes/kubelet.conf";
  return bashCommand(`${preamble("join", layout.installRoot)}${serviceFunctions(layout.serviceManager)}changed=0
${writeFileLines("/etc/kubernetes/pki/ca.crt", "0644", args.caCertificate)}${writeFileLines(
    "/etc/kubernetes/kubelet-flags.env",
    "0644",
    kubeletFlags({ ...args, bootstrap, installRoot: layout.installRoot }),
  )}if write_file "$ROOT${kubeconfigPath}" 0600; then changed=1; log "wrote ${kubeconfigPath}"; fi
[ -s "$ROOT${kubeconfigPath}" ] || fail "no kubeconfig arrived on stdin"
${restartLines(layout.serviceManager, "kubelet", "changed-or-stopped", { waitHealthy: !bootstrap })}`);
}

/**
 * Bash lines that read back what is installed into two arrays of JSON members: `versions`, the
 * version stamp of each package's active directory (written only after its sha256 matched), and
 * `binaries`, the first line each binary prints for --version. Shared by the verify step and the
 * operator's host probe, so both report the same versions. Needs the preamble (`$ROOT`, `$PKG_HOME`).
 */
export function observedVersionLines(): string {
  const stamps = PACKAGE_NAMES.map(
    (p) => `v=$(cat "$PKG_HOME/${p}/current/.kube-on-kube-version" 2>/dev/null || true); [ -n "$v" ] && versions+=("\\"${p}\\":\\"$(json "$v")\\"")`,
  ).join("\n");
  return `json() { printf '%s' "$1" | sed 's/\\\\/\\\\\\\\/g; s/"/\\\\"/g' | tr -d '\\n\\r'; }
versions=()
${stamps}
binaries=()
for bin in usr/local/bin/containerd usr/local/sbin/runc usr/local/bin/kubelet; do
  [ -x "$ROOT/$bin" ] || continue
  line=$("$ROOT/$bin" --version 2>&1 | head -n 1 || true)
  binaries+=("\\"\${bin##*/}\\":\\"$(json "$line")\\"")
done
`;
}

/** Bash function joining its arguments with commas (the members printed by `observedVersionLines`). */
export const JOINED_FUNCTION = `joined() { local IFS=,; echo "$*"; }\n`;

/**
 * Reads back what is installed (`observedVersionLines`) and prints one JSON object; with a
 * service manager it also fails unless containerd and the kubelet run.
 */
export function verifyScript(layout: HostLayout): string {
  return bashCommand(`${preamble("verify", layout.installRoot)}${serviceFunctions(layout.serviceManager)}${observedVersionLines()}${runningCheckLines(layout.serviceManager)}${JOINED_FUNCTION}printf '{"observedVersions":{%s},"binaries":{%s}}\\n' "$(joined "\${versions[@]}")" "$(joined "\${binaries[@]}")"
`);
}

/**
 * The cleanup's lines that end the Pods' containers, between the kubelet's stop and containerd's.
 * A container outlives containerd (its shim is a process of its own), so without them a removed
 * Machine kept running its last Pods: flanneld and kube-proxy of a Node that no longer exists,
 * rewriting routes and iptables rules, and the tenant's workloads. TERM first, as the kubelet
 * stops a Pod, so that flannel's install-cni removes its CNI configuration (flannel-cni-script.ts;
 * a configuration left behind would make the next Node on this host Ready before its network
 * is); whatever still runs after 10 s is killed. Through containerd's own client (`ctr`, in its
 * package) in the kubelet's namespace `k8s.io` only.
 */
export function stopPodsLines(): string {
  return `CTR="$ROOT/usr/local/bin/ctr"; CTR_SOCK="$ROOT/run/containerd/containerd.sock"
ctr_k8s() { "$CTR" --address "$CTR_SOCK" --timeout 10s -n k8s.io "$@"; }
if [ -x "$CTR" ] && [ -S "$CTR_SOCK" ] && ctr_k8s version >/dev/null 2>&1; then
  tasks=$(ctr_k8s tasks ls -q 2>/dev/null || true)
  for t in $tasks; do ctr_k8s tasks kill -a -s SIGTERM "$t" >/dev/null 2>&1 || true; done
  for _ in $(seq 1 100); do
    running=$( (ctr_k8s tasks ls 2>/dev/null || true) | awk 'NR > 1 && $3 == "RUNNING"' | wc -l)
    [ "$running" -eq 0 ] && break
    sleep 0.1
  done
  for t in $(ctr_k8s tasks ls -q 2>/dev/null || true); do ctr_k8s tasks delete -f "$t" >/dev/null 2>&1 || true; done
  for c in $(ctr_k8s containers ls -q 2>/dev/null || true); do ctr_k8s containers delete "$c" >/dev/null 2>&1 || true; done
  left=$( (ctr_k8s tasks ls -q 2>/dev/null || true) | wc -l)
  [ "$left" -eq 0 ] && log "stopped the Pods' containers" || log "$left Pod container(s) could not be removed"
fi
`;
}

/**
 * Stops the kubelet (it would start the Pods again), then ends the Pods' containers
 * (stopPodsLines): the Machine's cleanup (`disable`: the unit is being removed) and the repair of
 * a deleted Node. Nothing where kube-on-kube runs no services.
 */
export function stopKubeletAndPodsLines(manager: ServiceManager, opts: { disable?: boolean } = {}): string {
  if (manager === ServiceManager.Systemd) return `systemctl ${opts.disable ? "disable --now" : "stop"} kubelet >/dev/null 2>&1 || true\n${stopPodsLines()}`;
  if (manager === ServiceManager.Process) return `svc_stop kubelet\n${stopPodsLines()}`;
  return "";
}

/** Run when the WorkerNode is deleted (after the node was drained and removed): stops the kubelet, the Pods' containers and containerd, and removes what kube-on-kube installed. */
export function cleanupScript(layout: HostLayout): string {
  // The kubelet bind-mounts its root directory onto itself and mounts pod volumes below it.
  const unmount = `awk -v d="$ROOT/var/lib/kubelet" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount "$m" || true; done\n`;
  // The kubelet first (it would start the Pods again), then the Pods, then containerd.
  const pods = stopKubeletAndPodsLines(layout.serviceManager, { disable: true });
  const stop =
    layout.serviceManager === ServiceManager.Systemd
      ? `${pods}${stopLines(layout.serviceManager)}${unmount}rm -f /etc/systemd/system/kubelet.service /etc/systemd/system/containerd.service /etc/modules-load.d/kube-on-kube.conf /etc/sysctl.d/99-kube-on-kube.conf
systemctl daemon-reload
`
      : `${pods}${stopLines(layout.serviceManager)}${layout.serviceManager === ServiceManager.Process ? unmount : ""}rm -f "$ROOT/etc/systemd/system/kubelet.service" "$ROOT/etc/systemd/system/containerd.service"\n`;
  const links = ["usr/local/bin/kubelet", "usr/local/sbin/runc", "opt/cni/bin"].map((l) => `"$ROOT/${l}"`).join(" ");
  return bashCommand(`${preamble("cleanup", layout.installRoot)}${serviceFunctions(layout.serviceManager)}${stop}if [ -d "$PKG_HOME/containerd/current/bin" ]; then
  for f in "$PKG_HOME/containerd/current/bin/"*; do rm -f "$ROOT/usr/local/bin/\${f##*/}"; done
fi
rm -f ${links}
[ -d "$ROOT/opt/cni/bin.before-kube-on-kube" ] && mv -T "$ROOT/opt/cni/bin.before-kube-on-kube" "$ROOT/opt/cni/bin"
rm -rf "$ROOT/var/lib/kubelet" "$ROOT/etc/containerd/config.toml"${rootPrefix(layout.installRoot) ? ' "$ROOT/var/log/pods"' : ""} "$ROOT${PACKAGE_HOME}" "$ROOT/run/kube-on-kube"
rm -f "$ROOT/etc/kubernetes/kubelet.conf" "$ROOT/etc/kubernetes/bootstrap-kubelet.conf" "$ROOT/etc/kubernetes/kubelet-flags.env" "$ROOT/etc/kubernetes/pki/ca.crt"
log "removed kube-on-kube's files from the host"
`);
}

/** The host step's create: a marker that the host is managed (its delete is the cleanup). */
export function hostMarkerScript(hostname: string, layout: HostLayout): string {
  return bashCommand(`${preamble("host", layout.installRoot)}mkdir -p "$PKG_HOME"
printf '%s\\n' ${shellQuote(hostname)} > "$PKG_HOME/.managed-node"
log "managing ${hostname}"
`);
}
