/**
 * The preflight step: every check runs, and one message lists all that failed, the way
 * `kubeadm join` does. Checks named in `ignore` are reported as warnings (kubeadm's
 * --ignore-preflight-errors). With systemd the step also loads the kernel modules and sets the
 * sysctls Kubernetes needs before checking them; with serviceManager "none" it only checks.
 */
import { bashCommand, preamble, shellQuote } from "./shell";
import { ServiceManager, type HostLayout } from "./install";

export const PreflightCheck = {
  Os: "os",
  Arch: "arch",
  Swap: "swap",
  Kernel: "kernel",
  Disk: "disk",
  Ports: "ports",
  Tools: "tools",
} as const;
export type PreflightCheck = (typeof PreflightCheck)[keyof typeof PreflightCheck];

export interface PreflightOptions {
  /** Package architecture: "amd64" (default) or "arm64". */
  readonly arch?: string;
  /** Free space needed under `<installRoot>/var/lib`, in MiB. Default 2048. */
  readonly minFreeDiskMiB?: number;
  /** Checks reported as warnings instead of problems. Default none. */
  readonly ignore?: readonly PreflightCheck[];
  /** The node's name, for the message. */
  readonly hostname: string;
}

const KERNEL_MODULES = ["overlay", "br_netfilter"];
const SYSCTLS: Record<string, string> = {
  "net.ipv4.ip_forward": "1",
  "net.bridge.bridge-nf-call-iptables": "1",
};
/** Ports the kubelet listens on; checked only before the first install (later the kubelet holds them). */
const KUBELET_PORTS = [10250, 10248];

export function preflightScript(options: PreflightOptions, layout: HostLayout): string {
  const systemd = layout.serviceManager === ServiceManager.Systemd;
  const sysctlFile = Object.entries(SYSCTLS).map(([k, v]) => `${k} = ${v}`).join("\n");
  const prepare = systemd
    ? `for m in ${KERNEL_MODULES.join(" ")}; do modprobe "$m" 2>/dev/null || true; done
printf '%s\\n' ${KERNEL_MODULES.map(shellQuote).join(" ")} > /etc/modules-load.d/kube-on-kube.conf
printf '%s\\n' ${shellQuote(sysctlFile)} > /etc/sysctl.d/99-kube-on-kube.conf
sysctl -q -p /etc/sysctl.d/99-kube-on-kube.conf 2>/dev/null || true
`
    : "";
  const portHex = KUBELET_PORTS.map((p) => p.toString(16).toUpperCase().padStart(4, "0"));
  return bashCommand(`${preamble("preflight", layout.installRoot)}IGNORE=" ${(options.ignore ?? []).join(" ")} "
problems=()
check() {
  if [[ "$IGNORE" == *" $1 "* ]]; then echo "WARNING (preflight check $1 ignored): $2"; else problems+=("$1: $2"); fi
}
${prepare}[ "$(uname -s)" = Linux ] || check os "the host runs $(uname -s), not Linux"
case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
[ "$arch" = ${shellQuote(options.arch ?? "amd64")} ] || check arch "the host is $arch but the packages are for ${options.arch ?? "amd64"}"
if [ "$(grep -vc '^Filename' /proc/swaps || true)" -gt 0 ]; then
  check swap "swap is on ($(awk 'NR>1{print $1}' /proc/swaps | paste -sd, -)); run swapoff -a and remove swap from /etc/fstab"
fi
for m in ${KERNEL_MODULES.join(" ")}; do
  [ -d "/sys/module/$m" ] || check kernel "kernel module $m is not loaded (modprobe $m)"
done
${Object.entries(SYSCTLS)
  .map(([k, v]) => `value=$(cat /proc/sys/${k.replace(/\./g, "/")} 2>/dev/null || echo missing)
[ "$value" = ${v} ] || check kernel "sysctl ${k} is $value, needs ${v}"`)
  .join("\n")}
dir="$ROOT/var/lib"
while [ ! -d "$dir" ]; do dir=$(dirname "$dir"); done
free_kib=$(df -Pk "$dir" | awk 'NR==2{print $4}')
need_kib=$(( ${options.minFreeDiskMiB ?? 2048} * 1024 ))
[ "$free_kib" -ge "$need_kib" ] || check disk "$dir has $(( free_kib / 1024 )) MiB free, needs ${options.minFreeDiskMiB ?? 2048} MiB"
if [ ! -L "$PKG_HOME/kubelet/current" ]; then
  for hex in ${portHex.join(" ")}; do
    if awk -v p=":$hex" '$4=="0A" && substr($2, length($2)-4)==p {found=1} END{exit !found}' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
      check ports "port $((16#$hex)) is already in use; the kubelet needs it"
    fi
  done
fi
for tool in tar sha256sum awk mktemp; do command -v "$tool" >/dev/null 2>&1 || check tools "$tool is not installed"; done
command -v curl >/dev/null 2>&1 || command -v wget >/dev/null 2>&1 || check tools "neither curl nor wget is installed"
if [ \${#problems[@]} -gt 0 ]; then
  {
    echo "kube-on-kube preflight: \${#problems[@]} problem(s) on ${options.hostname}:"
    for p in "\${problems[@]}"; do echo "  - $p"; done
  } >&2
  exit 1
fi
log "all checks passed on ${options.hostname}"
`);
}
