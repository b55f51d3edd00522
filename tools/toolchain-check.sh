#!/usr/bin/env bash
# Verifies that the toolchain built by tools/toolchain.sh is present and reports its versions.
#
#   bash tools/toolchain-check.sh            # everything the default build provides
#   bash tools/toolchain-check.sh --quiet    # only problems
#
# Exits non-zero naming what is missing and the command that builds it. Checks are by running
# each binary (not only by file presence), so a stale symlink or a broken build is caught too.
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/lib/common.sh
source "${TOOLS_DIR}/lib/common.sh"

QUIET=false
MISSING=()

ok()   { [[ "${QUIET}" == true ]] || printf '  ok       %-34s %s\n' "$1" "$2"; }
bad()  { printf '  MISSING  %-34s %s\n' "$1" "$2"; MISSING+=("$1|$3"); }
note() { printf '  note     %-34s %s\n' "$1" "$2"; }

# check_version LABEL BUILD_TARGET EXPECTED CMD...: runs CMD, expects EXPECTED in its output.
check_version() {
  local label="$1" target="$2" expected="$3"; shift 3
  local out
  if [[ ! -x "$1" ]]; then
    bad "${label}" "not built: $1" "${target}"
  elif ! out="$("$@" 2>&1)"; then
    bad "${label}" "does not run: $(printf '%s' "${out}" | head -n1)" "${target}"
  elif [[ "${out}" != *"${expected}"* ]]; then
    bad "${label}" "wrong version: $(printf '%s' "${out}" | head -n1) (want ${expected})" "${target}"
  else
    ok "${label}" "$(printf '%s' "${out}" | head -n1)"
  fi
}

check_plugin() {
  local name="$1" version="$2" target="$3" listing="$4"
  if grep -Eq "^${name}[[:space:]]+resource[[:space:]]+${version}[[:space:]]" <<<"${listing}"; then
    ok "plugin resource ${name}" "${version}"
  else
    bad "plugin resource ${name}" "${version} not installed in ${PULUMI_HOME}" "${target}"
  fi
}

main() {
  [[ "${1:-}" == "--quiet" ]] && QUIET=true
  local bin="${KOK_TOOLCHAIN_DIR}/bin"
  export PULUMI_HOME="${KOK_TOOLCHAIN_DIR}/pulumi-home"
  export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
  [[ "${QUIET}" == true ]] || echo "toolchain in ${KOK_TOOLCHAIN_DIR}:"

  check_version pulumi pulumi "${PULUMI_VERSION}" "${bin}/pulumi" version
  if [[ -x "${bin}/pulumi" ]]; then
    local listing
    listing="$("${bin}/pulumi" plugin ls 2>&1 || true)"
    [[ "${QUIET}" == true ]] || printf '%s\n' "${listing}" | sed 's/^/           /'
    check_plugin kubernetes "${KUBERNETES_PROVIDER_VERSION}" kubernetes-provider "${listing}"
    check_plugin tls "${TLS_PROVIDER_VERSION}" tls-provider "${listing}"
  else
    bad "plugin resource kubernetes" "cannot list plugins without pulumi" kubernetes-provider
  fi
  # command cannot be built here (see docs/toolchain.md); say so instead of failing.
  note "plugin resource command ${COMMAND_PROVIDER_VERSION}" "not buildable here: Go module not served (docs/toolchain.md)"

  check_version etcd etcd "etcd Version: ${ETCD_VERSION}" "${bin}/etcd" --version
  check_version etcdctl etcd "etcdctl version: ${ETCD_VERSION}" "${bin}/etcdctl" version
  check_version etcdutl etcd "etcdutl version: ${ETCD_VERSION}" "${bin}/etcdutl" version

  local minor kube_version dir cmd
  for minor in 1.36 1.35; do
    kube_version="$(kube_version_for_minor "${minor}")"
    dir="${KOK_TOOLCHAIN_DIR}/k8s/${kube_version}/bin"
    for cmd in $(kube_commands_for_minor "${minor}"); do
      if [[ "${cmd}" == kubectl ]]; then
        check_version "k8s ${kube_version} kubectl" "kube-${minor}" "Client Version: ${kube_version}" "${dir}/kubectl" version --client
      else
        check_version "k8s ${kube_version} ${cmd}" "kube-${minor}" "Kubernetes ${kube_version}" "${dir}/${cmd}" --version
      fi
    done
  done
  local default_version; default_version="$(kube_version_for_minor "${DEFAULT_KUBE_MINOR}")"
  for cmd in $(kube_commands_for_minor "${DEFAULT_KUBE_MINOR}"); do
    if [[ "${cmd}" == kubectl ]]; then
      check_version "bin/kubectl" "kube-${DEFAULT_KUBE_MINOR}" "Client Version: ${default_version}" "${bin}/kubectl" version --client
    else
      check_version "bin/${cmd}" "kube-${DEFAULT_KUBE_MINOR}" "Kubernetes ${default_version}" "${bin}/${cmd}" --version
    fi
  done

  # The container runtime and the real node's parts (issue 15).
  check_version containerd containerd "containerd github.com/containerd/containerd/v2 ${CONTAINERD_VERSION}" "${bin}/containerd" --version
  check_version ctr containerd "ctr github.com/containerd/containerd/v2 ${CONTAINERD_VERSION}" "${bin}/ctr" --version
  check_version containerd-shim-runc-v2 containerd "Version:  ${CONTAINERD_VERSION}" "${bin}/containerd-shim-runc-v2" -v
  check_version runc runc "runc version ${RUNC_VERSION#v}" "${bin}/runc" --version
  check_version "runc seccomp" runc "libseccomp: " "${bin}/runc" --version
  local plugin
  for plugin in bridge host-local loopback portmap bandwidth firewall tuning; do
    check_version "cni/bin/${plugin}" cni-plugins "plugin ${CNI_PLUGINS_VERSION}" "${KOK_TOOLCHAIN_DIR}/cni/bin/${plugin}" --version
  done
  local pause_tag=""
  [[ -f "${bin}/pause.version" ]] && pause_tag="$(cat "${bin}/pause.version")"
  check_version pause pause "pause.c v${pause_tag:-?}-$(kube_version_for_minor "${DEFAULT_KUBE_MINOR}")" "${bin}/pause" -v
  check_version registry registry "registry github.com/distribution/distribution/v3 ${REGISTRY_VERSION}" "${bin}/registry" --version
  check_version crane crane "${CRANE_VERSION#v}" "${bin}/crane" version
  check_version versitygw versitygw "Version  : ${VERSITYGW_VERSION}" "${bin}/versitygw" --version
  check_version coredns coredns "CoreDNS-${COREDNS_VERSION#v}" "${bin}/coredns" -version
  check_version local-path-provisioner local-path-provisioner "${LOCAL_PATH_PROVISIONER_VERSION}" "${bin}/local-path-provisioner" --version
  # The business clusters' add-ons (issue 16). flanneld prints its version on stderr.
  check_version flanneld flannel "${FLANNEL_VERSION}" "${bin}/flanneld" --version
  # The operator's Helm chart (issue 17; docs/helm.md).
  check_version helm helm "Version:\"${HELM_VERSION}\"" "${bin}/helm" version

  if (( ${#MISSING[@]} > 0 )); then
    local targets=() entry
    for entry in "${MISSING[@]}"; do targets+=("${entry#*|}"); done
    mapfile -t targets < <(printf '%s\n' "${targets[@]}" | awk '!seen[$0]++')
    echo
    echo "toolchain incomplete: ${#MISSING[@]} check(s) failed:"
    for entry in "${MISSING[@]}"; do echo "  - ${entry%%|*}"; done
    echo "build it with:  bash tools/toolchain.sh ${targets[*]}"
    exit 1
  fi
  [[ "${QUIET}" == true ]] || echo "toolchain complete."
}

main "$@"
