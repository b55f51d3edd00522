# Target definitions for tools/toolchain.sh (sourced after common.sh, not run).
#
# Ordered by value: the engine first, then what the components deploy with, then the cluster,
# then the container runtime and the parts of a real node (issue 15), in the order other work
# waits for them.
ALL_TARGETS=(pulumi kubernetes-provider tls-provider command-provider etcd kube-1.36 kube-1.35 yaml-language
             containerd runc cni-plugins pause registry crane versitygw coredns local-path-provisioner
             flannel helm)

# --- target definitions -----------------------------------------------------------------------
# target_spec TARGET sets, for the target:
#   T_MODULE_DIR   wrapper module directory
#   T_VERSIONS     human-readable versions (part of the cache key, printed in logs)
#   T_BINARIES     array of "output-name package-path [extra,build,tags]"
#   T_LDFLAGS      -ldflags value (version stamping)
#   T_PREBUILD     function run in the temporary source copy before `go build` (or empty)
#   T_BLOCKED      non-empty reason when the target cannot be built on this machine
#   T_TAGS         build tags for every binary of the target (comma-separated, or empty)
#   T_CGO          1 when the target needs cgo (everything else is built with CGO_ENABLED=0)
#   T_BUILD        function SRC_DIR OUT_DIR that replaces the download + `go build` steps (a
#                  target that is not a Go build, like pause)
#   T_LINK_DIR     stable directory under $KOK_TOOLCHAIN_DIR where every file of the build's
#                  bin/ is linked (bin, cni/bin); empty for the older targets, linked by name
#   T_KEY_EXTRA    more inputs for the cache key (C compiler, system libraries)
target_spec() {
  T_MODULE_DIR="${TOOLS_DIR}/go/$1"
  T_BINARIES=()
  T_LDFLAGS="-s -w"
  T_PREBUILD=""
  T_BLOCKED=""
  T_TAGS=""
  T_CGO=""
  T_BUILD=""
  T_LINK_DIR=""
  T_KEY_EXTRA=""
  case "$1" in
    pulumi)
      T_VERSIONS="pulumi ${PULUMI_VERSION}"
      T_BINARIES=("pulumi github.com/pulumi/pulumi/pkg/v3/cmd/pulumi")
      # Without the stamp `pulumi version` prints v0.0.0-dev (or similar) and the Automation API
      # cannot parse it; refresh/destroy of inline programs then fail.
      T_LDFLAGS+=" -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=${PULUMI_VERSION}"
      ;;
    kubernetes-provider)
      T_VERSIONS="pulumi-resource-kubernetes ${KUBERNETES_PROVIDER_VERSION} (${KUBERNETES_PROVIDER_MODULE})"
      T_BINARIES=("pulumi-resource-kubernetes .")
      T_LDFLAGS+=" -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=${KUBERNETES_PROVIDER_VERSION}"
      T_PREBUILD=prebuild_kubernetes_provider
      ;;
    command-provider)
      T_VERSIONS="pulumi-resource-command ${COMMAND_PROVIDER_VERSION} (${COMMAND_PROVIDER_MODULE})"
      # Probed 2026-11-25 (docs/toolchain.md): the Go module proxy refuses this module at every
      # version form (@v/list, the commit hash, v1.2.1). Nothing to build from; never fake it.
      T_BLOCKED="the Go module proxy does not serve github.com/pulumi/pulumi-command/provider (list and ${COMMAND_PROVIDER_MODULE#*@} refused with 403, v1.2.1 unknown)"
      ;;
    tls-provider)
      # github.com/pulumi/pulumi-tls/provider/v5 is not served (403 at every version), so
      # tools/go/tls-provider bridges the same Terraform provider itself with the bridge's
      # plugin-framework (pf) support: our shim + ProviderInfo + main, schema generated first.
      T_VERSIONS="pulumi-resource-tls ${TLS_PROVIDER_VERSION} (${TLS_PROVIDER_MODULE}, ${TLS_BRIDGE_MODULE})"
      T_BINARIES=("pulumi-resource-tls .")
      # Without it tlsinfo panics at start; it is also what GetPluginInfo and the schema report.
      T_LDFLAGS+=" -X kube-on-kube.local/toolchain/tls-provider/internal/tlsinfo.Version=${TLS_PROVIDER_VERSION}"
      T_PREBUILD=prebuild_tls_provider
      ;;
    etcd)
      T_VERSIONS="etcd ${ETCD_VERSION}"
      T_BINARIES=("etcd go.etcd.io/etcd/server/v3"
                  "etcdctl go.etcd.io/etcd/etcdctl/v3"
                  "etcdutl go.etcd.io/etcd/etcdutl/v3")
      # etcd's version is a constant in go.etcd.io/etcd/api/v3/version; only GitSHA is stamped
      # upstream, and a module zip has no git SHA to give it.
      ;;
    kube-1.36 | kube-1.35)
      local minor="${1#kube-}" kube_version
      kube_version="$(kube_version_for_minor "${minor}")"
      T_VERSIONS="k8s.io/kubernetes ${kube_version}"
      local cmd
      for cmd in $(kube_commands_for_minor "${minor}"); do
        T_BINARIES+=("${cmd} k8s.io/kubernetes/cmd/${cmd}")
      done
      T_LDFLAGS+=" $(kube_version_ldflags "${kube_version}")"
      ;;
    yaml-language)
      # The Pulumi YAML language host, so examples/yaml runs under the real engine (the CLI finds
      # pulumi-language-yaml on its PATH, which bin/ is on).
      T_VERSIONS="pulumi-language-yaml ${YAML_LANGUAGE_VERSION}"
      T_BINARIES=("pulumi-language-yaml github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml")
      T_LDFLAGS+=" -X github.com/pulumi/pulumi-yaml/pkg/version.Version=${YAML_LANGUAGE_VERSION}"
      ;;
    containerd | runc | cni-plugins | pause | registry | crane | versitygw | coredns | local-path-provisioner \
      | flannel | helm)
      T_LINK_DIR=bin
      "spec_${1//-/_}"
      ;;
    *)
      die "unknown target '$1' (known: ${ALL_TARGETS[*]})"
      ;;
  esac
}

# What hack/lib/version.sh stamps in a release build. Without gitVersion, /version reports
# v0.0.0-master and clients (pulumi-kubernetes included) mis-detect the server version. Both
# copies are stamped: component-base (servers) and client-go (kubectl's client side).
kube_version_ldflags() {
  local kube_version="$1"
  local major="${kube_version#v}"; major="${major%%.*}"
  local minor="${kube_version#v*.}"; minor="${minor%%.*}"
  # The release's commit time from the proxy's .info: a reproducible build date.
  local build_date
  build_date="$(module_time "k8s.io/kubernetes@${kube_version}")"
  local pkg flags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X ${pkg}.gitVersion=${kube_version}"
    flags+=" -X ${pkg}.gitMajor=${major}"
    flags+=" -X ${pkg}.gitMinor=${minor}"
    # Built from the module zip (like upstream's tarball builds): no git commit to report.
    flags+=" -X ${pkg}.gitCommit="
    flags+=" -X ${pkg}.gitTreeState=archive"
    flags+=" -X ${pkg}.buildDate=${build_date:-1970-01-01T00:00:00Z}"
  done
  echo "${flags# }"
}

# Upstream's main.go embeds schema-embed.json/terraform-mapping-embed.json, which a generate step
# writes and which are not in the module zip; produce them from the module's schema.json.
prebuild_kubernetes_provider() {
  local src_dir="$1" module_dir
  module_dir="$(cd "${src_dir}" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)"
  (cd "${src_dir}" && go run ./internal/genschema "${module_dir}" "${KUBERNETES_PROVIDER_VERSION}" .)
}

# main.go embeds schema.json and bridge-metadata.json; the bridge's tfgen writes them from the
# same ProviderInfo (docs converted from the terraform-provider-tls module in the module cache).
prebuild_tls_provider() {
  local src_dir="$1" upstream_dir
  upstream_dir="$(cd "${src_dir}" && go list -m -f '{{.Dir}}' "${TLS_PROVIDER_MODULE%@*}")"
  (cd "${src_dir}" && go run -p "${BUILD_JOBS}" -trimpath -ldflags "${T_LDFLAGS}" ./internal/genschema . "${upstream_dir}")
}


# module_time M@V: the release's commit time from the proxy's .info (a reproducible build date).
module_time() {
  go mod download -json "$1" | sed -n 's/^\t"Info": "\(.*\)",$/\1/p' | xargs cat \
    | sed -n 's/.*"Time":"\([^"]*\)".*/\1/p'
}

# --- the container runtime and the real node's parts (issue 15) --------------------------------
# A module zip carries no git commit, so where upstream stamps the commit we stamp the module's
# go.sum hash (h1:...), which names the exact source just as well.
# Empty without a wrapper module; build_target refuses to build that anyway, naming the cause.
module_sum() {
  [[ -f "${T_MODULE_DIR}/go.sum" ]] || return 0
  awk -v m="$1" -v v="$2" '$1 == m && $2 == v { print $3 }' "${T_MODULE_DIR}/go.sum"
}

spec_containerd() {
  local m=github.com/containerd/containerd/v2
  T_VERSIONS="containerd ${CONTAINERD_VERSION}"
  # What upstream's Makefile passes. Without cgo the btrfs snapshotter (needs btrfs headers) is
  # left out by its own build constraint; overlayfs and native remain.
  T_TAGS="urfave_cli_no_docs"
  T_BINARIES=("containerd ${m}/cmd/containerd"
              "ctr ${m}/cmd/ctr"
              "containerd-shim-runc-v2 ${m}/cmd/containerd-shim-runc-v2 no_grpc")
  # The CRI plugin reports version.Version to the kubelet (the node's containerRuntimeVersion).
  T_LDFLAGS+=" -X ${m}/version.Version=${CONTAINERD_VERSION}"
  T_LDFLAGS+=" -X ${m}/version.Revision=$(module_sum "${m}" "${CONTAINERD_VERSION}")"
  T_LDFLAGS+=" -X ${m}/version.Package=${m}"
}

spec_runc() {
  local m=github.com/opencontainers/runc
  T_VERSIONS="runc ${RUNC_VERSION}"
  # Upstream's default tags minus libpathrs (a Rust library Debian 12 does not package; runc then
  # uses its pure-Go path resolution), plus what its `static` target adds.
  T_TAGS="seccomp,urfave_cli_no_docs,netgo,osusergo"
  T_CGO=1
  T_BINARIES=("runc ${m}")
  # The version itself is embedded from the module's VERSION file; upstream also stamps the commit.
  # Static like upstream's release binary (which is static-pie; that needs -buildmode=pie, which
  # the script does not pass), so it runs on any worker host whatever its libseccomp.
  T_LDFLAGS+=" -X main.gitCommit=$(module_sum "${m}" "${RUNC_VERSION}") -linkmode external -extldflags -static"
  T_KEY_EXTRA="$(gcc --version 2>/dev/null | head -n1); libseccomp $(pkg-config --modversion libseccomp 2>/dev/null || echo missing)"
  if [[ ! -f /usr/include/seccomp.h ]]; then
    T_BLOCKED="runc needs libseccomp's headers for cgo: apt-get install libseccomp-dev (and gcc, pkg-config)"
  fi
}

spec_cni_plugins() {
  local m=github.com/containernetworking/plugins p
  T_VERSIONS="cni-plugins ${CNI_PLUGINS_VERSION}"
  T_LINK_DIR=cni/bin
  # What a node needs: bridge + host-local + loopback + portmap, and the meta plugins a
  # conflist commonly chains (bandwidth, firewall, tuning).
  for p in main/bridge main/loopback ipam/host-local meta/portmap meta/bandwidth meta/firewall meta/tuning; do
    T_BINARIES+=("${p#*/} ${m}/plugins/${p}")
  done
  T_LDFLAGS+=" -X ${m}/pkg/utils/buildversion.BuildVersion=${CNI_PLUGINS_VERSION}"
}

# pause is C: Kubernetes' build/pause/linux/pause.c, compiled as upstream's Makefile does it, from
# the k8s.io/kubernetes module the default minor is built from (so its wrapper is the module dir).
spec_pause() {
  local kube_version; kube_version="$(kube_version_for_minor "${DEFAULT_KUBE_MINOR}")"
  T_MODULE_DIR="${TOOLS_DIR}/go/kube-${DEFAULT_KUBE_MINOR}"
  T_VERSIONS="pause (build/pause of k8s.io/kubernetes ${kube_version})"
  T_BUILD=build_pause
  T_LDFLAGS=""
  T_KEY_EXTRA="$(gcc --version 2>/dev/null | head -n1); $(dpkg-query -W -f '${Package} ${Version}' libc6-dev 2>/dev/null)"
}

# build_pause SRC_DIR OUT_DIR: bin/pause and bin/pause.version (the image tag, e.g. 3.10.2).
build_pause() {
  local out_dir="$2" kube_version module_dir tag
  kube_version="$(kube_version_for_minor "${DEFAULT_KUBE_MINOR}")"
  module_dir="$(go mod download -json "k8s.io/kubernetes@${kube_version}" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  [[ -f "${module_dir}/build/pause/linux/pause.c" ]] || { echo "no build/pause/linux/pause.c in ${module_dir}"; return 1; }
  tag="$(sed -n 's/^TAG ?= *//p' "${module_dir}/build/pause/Makefile")"
  [[ -n "${tag}" ]] || { echo "no 'TAG ?=' in ${module_dir}/build/pause/Makefile"; return 1; }
  # Upstream: CFLAGS = -Os -Wall -Werror -static -DVERSION=v$(TAG)-$(REV), REV = git describe
  # --contains of the release commit, i.e. the Kubernetes tag.
  gcc -Os -Wall -Werror -static "-DVERSION=v${tag}-${kube_version}" \
    -o "${out_dir}/bin/pause" "${module_dir}/build/pause/linux/pause.c"
  strip "${out_dir}/bin/pause"
  echo "${tag}" > "${out_dir}/bin/pause.version"
  "${out_dir}/bin/pause" -v
}

spec_registry() {
  local m=github.com/distribution/distribution/v3
  T_VERSIONS="registry ${REGISTRY_VERSION}"
  T_BINARIES=("registry ${m}/cmd/registry")
  T_LDFLAGS+=" -X ${m}/version.version=${REGISTRY_VERSION}"
  T_LDFLAGS+=" -X ${m}/version.revision=$(module_sum "${m}" "${REGISTRY_VERSION}")"
  T_LDFLAGS+=" -X ${m}/version.mainpkg=${m}"
}

spec_crane() {
  local m=github.com/google/go-containerregistry
  T_VERSIONS="crane ${CRANE_VERSION}"
  T_BINARIES=("crane ${m}/cmd/crane")
  # Upstream's goreleaser stamps the tag without its "v".
  T_LDFLAGS+=" -X ${m}/cmd/crane/cmd.Version=${CRANE_VERSION#v}"
}

spec_versitygw() {
  local m=github.com/versity/versitygw
  T_VERSIONS="versitygw ${VERSITYGW_VERSION}"
  T_BINARIES=("versitygw ${m}/cmd/versitygw")
  T_LDFLAGS+=" -X main.Version=${VERSITYGW_VERSION} -X main.Build=$(module_sum "${m}" "${VERSITYGW_VERSION}")"
  T_LDFLAGS+=" -X main.BuildTime=$(module_time "${m}@${VERSITYGW_VERSION}")"
}

spec_coredns() {
  local m=github.com/coredns/coredns
  T_VERSIONS="coredns ${COREDNS_VERSION} (default plugin set)"
  # The version is a constant (coremain.CoreVersion); upstream stamps the commit.
  T_BINARIES=("coredns ${m}")
  T_LDFLAGS+=" -X ${m}/coremain.GitCommit=$(module_sum "${m}" "${COREDNS_VERSION}")"
}

spec_local_path_provisioner() {
  local m=github.com/rancher/local-path-provisioner
  T_VERSIONS="local-path-provisioner ${LOCAL_PATH_PROVISIONER_VERSION}"
  T_BINARIES=("local-path-provisioner ${m}")
  T_LDFLAGS+=" -X main.VERSION=${LOCAL_PATH_PROVISIONER_VERSION}"
}

# --- the business clusters' add-ons (issue 16) --------------------------------------------------
# flanneld, the pod network of the business clusters' workers.
spec_flannel() {
  local m=github.com/flannel-io/flannel
  T_VERSIONS="flannel ${FLANNEL_VERSION} (without the tencent-vpc backend)"
  # The main package is flannel's module root, which imports the Tencent Cloud VPC backend, whose
  # SDK module the proxy refuses (403): prebuild copies it into the wrapper minus that import.
  T_PREBUILD=prebuild_flannel
  T_BINARIES=("flanneld .")
  # Upstream builds amd64 with cgo: the udp backend's packet proxy is C (without cgo it does not
  # compile there). Static like upstream's release binary; netgo/osusergo (as for runc) keep glibc's
  # NSS out of a static binary, so names resolve by Go's resolver.
  T_CGO=1
  T_TAGS="netgo,osusergo"
  T_LDFLAGS+=" -X ${m}/pkg/version.Version=${FLANNEL_VERSION} -linkmode external -extldflags -static"
  T_KEY_EXTRA="$(gcc --version 2>/dev/null | head -n1); $(dpkg-query -W -f '${Package} ${Version}' libc6-dev 2>/dev/null)"
  if ! command -v gcc >/dev/null 2>&1 || [[ ! -f /usr/include/stdio.h ]]; then
    T_BLOCKED="flanneld's udp backend needs cgo on amd64: apt-get install gcc libc6-dev"
  fi
}

# prebuild_flannel SRC_DIR: the module root's main package (main.go; tests excluded) without the
# tencent-vpc backend import, into the wrapper copy. Fails if that import is not there exactly once,
# so a version bump cannot silently build something else.
prebuild_flannel() {
  local src_dir="$1" module_dir file count
  module_dir="$(cd "${src_dir}" && go list -m -f '{{.Dir}}' github.com/flannel-io/flannel)"
  local import='_ "github.com/flannel-io/flannel/pkg/backend/tencentvpc"'
  count="$(cat "${module_dir}"/*.go | grep -c -F "${import}" || true)"
  [[ "${count}" == 1 ]] || { echo "expected the tencentvpc import once in ${module_dir}/*.go, found ${count}"; return 1; }
  for file in "${module_dir}"/*.go; do
    [[ "${file}" != *_test.go ]] || continue
    grep -v -F "${import}" "${file}" > "${src_dir}/$(basename "${file}")"
  done
  ls "${src_dir}"/*.go
}

# --- the operator's Helm chart (issue 17) -------------------------------------------------------
spec_helm() {
  local m=helm.sh/helm/v4
  T_VERSIONS="helm ${HELM_VERSION}"
  T_BINARIES=("helm ${m}/cmd/helm")
  # What upstream's Makefile stamps for a tagged build (metadata stays empty: no "unreleased"):
  # the version and the commit (a module zip has none: its go.sum hash names the source instead). Without the
  # version `helm version` prints "v4.3" and charts' helmVersion constraints see no patch.
  T_LDFLAGS+=" -X ${m}/internal/version.version=${HELM_VERSION}"
  T_LDFLAGS+=" -X ${m}/internal/version.gitCommit=$(module_sum "${m}" "${HELM_VERSION}")"
  T_LDFLAGS+=" -X ${m}/internal/version.gitTreeState=archive"
}
