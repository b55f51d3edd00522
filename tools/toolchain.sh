#!/usr/bin/env bash
# Builds the project's real toolchain from Go modules: the Pulumi CLI, its provider plugins,
# Kubernetes control-plane binaries (two adjacent minors), etcd, and a real node's parts: containerd,
# runc, CNI plugins, pause, a registry, crane, an S3 object store, CoreDNS, local-path-provisioner,
# flanneld (the business clusters' pod network), and helm (the operator's chart, docs/helm.md).
#
#   bash tools/toolchain.sh                       # every available target
#   bash tools/toolchain.sh pulumi etcd           # only these
#   bash tools/toolchain.sh --prune               # also delete cache entries of old pins
#   eval "$(bash tools/toolchain-env.sh)"         # then use them
#
# Knobs: KOK_BUILD_JOBS (go build -p, default 2), KOK_TOOLCHAIN_LANES (targets built at once,
# default 1), KOK_TOOLCHAIN_DIR (cache root).
#
# Targets (tools/lib/targets.sh): pulumi kubernetes-provider command-provider tls-provider etcd
#          kube-1.36 kube-1.35 yaml-language containerd runc cni-plugins pause registry crane
#          versitygw coredns local-path-provisioner flannel helm
#
# Each target is a small wrapper Go module of ours under tools/go/<target>/ that pins exact
# versions (go.mod + go.sum committed). Output is cached outside the work tree:
#   $KOK_TOOLCHAIN_DIR/<target>-<key>/bin/...   key = hash(versions, wrapper files, Go version)
# and a present cache entry is skipped, so a second run is a quick no-op. Builds go to a
# temporary directory beside the cache and are renamed into place only when complete.
# The stable layout the rest of the project uses:
#   $KOK_TOOLCHAIN_DIR/bin/{pulumi,kube-apiserver,kube-controller-manager,kube-scheduler,kubectl,kubelet,
#                            etcd,etcdctl,etcdutl}
#   $KOK_TOOLCHAIN_DIR/k8s/<kube version>/bin/...   (both minors)
#   $KOK_TOOLCHAIN_DIR/pulumi-home                  (PULUMI_HOME with the provider plugins)
#   $KOK_TOOLCHAIN_DIR/bin/pulumi-language-yaml     (target yaml-language; runs Pulumi.yaml programs)
#   $KOK_TOOLCHAIN_DIR/bin/{containerd,ctr,containerd-shim-runc-v2,runc,pause,pause.version,registry,
#                            crane,versitygw,coredns,local-path-provisioner,flanneld,helm}
#   $KOK_TOOLCHAIN_DIR/cni/bin/{bridge,host-local,loopback,portmap,bandwidth,firewall,tuning}
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/lib/common.sh
source "${TOOLS_DIR}/lib/common.sh"

# shellcheck source=tools/lib/targets.sh
source "${TOOLS_DIR}/lib/targets.sh"

BUILD_JOBS="${KOK_BUILD_JOBS:-2}"   # go build -p; the machines have 2 cores

# --- cache ------------------------------------------------------------------------------------
# cache_key TARGET: changes whenever anything that affects the binaries changes.
cache_key() {
  target_spec "$1"
  {
    echo "target=$1"
    echo "versions=${T_VERSIONS}"
    echo "ldflags=${T_LDFLAGS}"
    printf 'binary=%s\n' "${T_BINARIES[@]}"
    echo "go=$(go env GOVERSION) $(go env GOOS)/$(go env GOARCH) cgo=${CGO_ENABLED}"
    (cd "${T_MODULE_DIR}" && find . -type f | LC_ALL=C sort | xargs sha256sum)
    # Only the newer targets set these; written only when set, so older keys stay the same.
    [[ -z "${T_TAGS}" ]] || echo "tags=${T_TAGS}"
    [[ -z "${T_CGO}" ]] || echo "cgo-target=${T_CGO}"
    [[ -z "${T_BUILD}" ]] || echo "build=${T_BUILD} $(declare -f "${T_BUILD}" | sha256sum)"
    [[ -z "${T_KEY_EXTRA}" ]] || echo "extra=${T_KEY_EXTRA}"
  } | sha256sum | cut -c1-16
}

cache_dir_for() { echo "${KOK_TOOLCHAIN_DIR}/$1-$(cache_key "$1")"; }

# --- build ------------------------------------------------------------------------------------
# build_target TARGET: builds into a temporary directory and renames it into the cache.
build_target() {
  local target="$1"
  target_spec "${target}"
  if [[ -n "${T_BLOCKED}" ]]; then
    log "[${target}] cannot be built here: ${T_BLOCKED}"
    log "[${target}] see docs/toolchain.md; the npm pin needs a decision by the lead"
    return 1
  fi
  [[ -f "${T_MODULE_DIR}/go.mod" ]] || die "[${target}] wrapper module missing: ${T_MODULE_DIR}/go.mod"

  local key final_dir
  key="$(cache_key "${target}")"
  target_spec "${target}"    # cache_key reset the T_* variables; set them again
  final_dir="${KOK_TOOLCHAIN_DIR}/${target}-${key}"
  if [[ -f "${final_dir}/BUILDINFO" ]]; then
    log "[${target}] cached: ${final_dir} (${T_VERSIONS})"
    return 0
  fi

  mkdir -p "${KOK_TOOLCHAIN_DIR}/.tmp" "${KOK_TOOLCHAIN_DIR}/logs"
  local work log_file started step_started
  work="$(mktemp -d "${KOK_TOOLCHAIN_DIR}/.tmp/${target}-${key}.XXXXXX")"
  log_file="${KOK_TOOLCHAIN_DIR}/logs/${target}-${key}-$(date +%Y%m%dT%H%M%S).log"
  started="$(now)"
  log "[${target}] building ${T_VERSIONS}; log: ${log_file}"

  # A copy of the wrapper module, so generated files never land in the work tree.
  cp -r "${T_MODULE_DIR}" "${work}/src"
  mkdir -p "${work}/out/bin"

  if [[ -n "${T_BUILD}" ]]; then
    run_step "${target}" "build (${T_BUILD})" "${log_file}" "${T_BUILD}" "${work}/src" "${work}/out" || return 1
  else
    run_step "${target}" "download modules" "${log_file}" \
      bash -c "cd '${work}/src' && go mod download -x" || return 1
    if [[ -n "${T_PREBUILD}" ]]; then
      run_step "${target}" "prebuild (${T_PREBUILD})" "${log_file}" "${T_PREBUILD}" "${work}/src" || return 1
    fi
    local entry name pkg tags
    for entry in "${T_BINARIES[@]}"; do
      read -r name pkg tags <<<"${entry}"
      tags="${T_TAGS}${T_TAGS:+${tags:+,}}${tags}"
      run_step "${target}" "go build ${name} (${pkg}${tags:+, tags ${tags}})" "${log_file}" \
        env CGO_ENABLED="${T_CGO:-${CGO_ENABLED}}" bash -c "cd '${work}/src' && go build -p '${BUILD_JOBS}' -trimpath -tags '${tags}' -ldflags '${T_LDFLAGS}' -o '${work}/out/bin/${name}' '${pkg}'" \
        || return 1
    done
  fi

  local seconds=$(( $(now) - started ))
  {
    echo "target: ${target}"
    echo "versions: ${T_VERSIONS}"
    echo "key: ${key}"
    echo "go: $(go env GOVERSION)"
    echo "ldflags: ${T_LDFLAGS}"
    [[ -z "${T_TAGS}" ]] || echo "tags: ${T_TAGS}"
    [[ -z "${T_CGO}" ]] || echo "cgo: ${T_CGO}"
    [[ -z "${T_KEY_EXTRA}" ]] || echo "extra: ${T_KEY_EXTRA}"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "build_seconds: ${seconds}"
    echo "log: ${log_file}"
  } > "${work}/out/BUILDINFO"
  # Atomic publish: same filesystem, one rename. A concurrent identical build loses the race
  # harmlessly (its output is discarded).
  if ! mv -T "${work}/out" "${final_dir}" 2>/dev/null; then
    log "[${target}] ${final_dir} appeared meanwhile; keeping it"
  fi
  rm -rf "${work}"
  BUILT=true
  log "[${target}] done in $(human_duration "${seconds}"): ${final_dir} ($(du -sh "${final_dir}" | cut -f1))"
}

# run_step TARGET STEP LOG CMD...: runs one step with its output appended to LOG, prints timing,
# and on failure names target, module and step and shows the log's tail.
run_step() {
  local target="$1" step="$2" log_file="$3"; shift 3
  local t0; t0="$(now)"
  log "[${target}] ${step} ..."
  echo "=== ${step} ($(date))" >> "${log_file}"
  if "$@" >> "${log_file}" 2>&1; then
    log "[${target}] ${step}: ok in $(human_duration $(( $(now) - t0 )))"
  else
    log "[${target}] FAILED at step '${step}' after $(human_duration $(( $(now) - t0 )))"
    log "[${target}] module: ${T_MODULE_DIR} (${T_VERSIONS})"
    tail -n 30 "${log_file}" | sed 's/^/    /' >&2
    log "[${target}] full log kept at ${log_file}"
    return 1
  fi
}

# --- stable layout ----------------------------------------------------------------------------
# link_current: points $KOK_TOOLCHAIN_DIR/bin and k8s/<version>/bin at the cached builds that
# match the current pins. Links are replaced atomically (ln to a temp name, then rename).
link_current() {
  local bin_dir="${KOK_TOOLCHAIN_DIR}/bin"
  mkdir -p "${bin_dir}"
  local dir t cmd
  if dir="$(present_cache_dir pulumi)"; then link_atomic "${dir}/bin/pulumi" "${bin_dir}/pulumi"; fi
  if dir="$(present_cache_dir yaml-language)"; then link_atomic "${dir}/bin/pulumi-language-yaml" "${bin_dir}/pulumi-language-yaml"; fi
  if dir="$(present_cache_dir etcd)"; then
    for cmd in etcd etcdctl etcdutl; do link_atomic "${dir}/bin/${cmd}" "${bin_dir}/${cmd}"; done
  fi
  # The newer targets: every file of the build's bin/ into its stable directory.
  for t in "${ALL_TARGETS[@]}"; do
    target_spec "${t}"
    [[ -n "${T_LINK_DIR}" ]] || continue
    dir="$(present_cache_dir "${t}")" || continue
    mkdir -p "${KOK_TOOLCHAIN_DIR}/${T_LINK_DIR}"
    for cmd in "${dir}"/bin/*; do link_atomic "${cmd}" "${KOK_TOOLCHAIN_DIR}/${T_LINK_DIR}/$(basename "${cmd}")"; done
  done
  local minor kube_version
  for minor in 1.36 1.35; do
    dir="$(present_cache_dir "kube-${minor}")" || continue
    kube_version="$(kube_version_for_minor "${minor}")"
    mkdir -p "${KOK_TOOLCHAIN_DIR}/k8s/${kube_version}/bin"
    for cmd in "${dir}"/bin/*; do
      link_atomic "${cmd}" "${KOK_TOOLCHAIN_DIR}/k8s/${kube_version}/bin/$(basename "${cmd}")"
      if [[ "${minor}" == "${DEFAULT_KUBE_MINOR}" ]]; then
        link_atomic "${cmd}" "${bin_dir}/$(basename "${cmd}")"
      fi
    done
  done
}

present_cache_dir() {
  target_spec "$1"
  # A blocked target has no wrapper module, hence no cache entry.
  [[ -z "${T_BLOCKED}" && -f "${T_MODULE_DIR}/go.mod" ]] || return 1
  local dir; dir="$(cache_dir_for "$1")"
  [[ -f "${dir}/BUILDINFO" ]] && echo "${dir}"
}

link_atomic() {
  local target="$1" link="$2"
  # BASHPID, not $$: lanes are subshells that share $$ and may link at the same moment.
  ln -sfn "${target}" "${link}.tmp.${BASHPID}"
  mv -T "${link}.tmp.${BASHPID}" "${link}"
}

# install_plugins: installs each built provider into PULUMI_HOME at the exact version the npm SDK
# asks for (the engine accepts a cached plugin only at that version). Skipped when the same build
# is already installed (marker file holds the cache dir it came from).
install_plugins() {
  local pulumi_bin="${KOK_TOOLCHAIN_DIR}/bin/pulumi"
  export PULUMI_HOME="${KOK_TOOLCHAIN_DIR}/pulumi-home"
  export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
  mkdir -p "${PULUMI_HOME}"
  local entry target name version dir marker
  for entry in "kubernetes-provider kubernetes ${KUBERNETES_PROVIDER_VERSION}" \
               "tls-provider tls ${TLS_PROVIDER_VERSION}" \
               "command-provider command ${COMMAND_PROVIDER_VERSION}"; do
    read -r target name version <<<"${entry}"
    dir="$(present_cache_dir "${target}")" || continue
    [[ -x "${pulumi_bin}" ]] || { log "[plugins] pulumi not built; cannot install ${name} ${version}"; return 1; }
    marker="${PULUMI_HOME}/plugins/.kok-resource-${name}-v${version}"
    if [[ -f "${marker}" && "$(cat "${marker}")" == "${dir}" \
          && -d "${PULUMI_HOME}/plugins/resource-${name}-v${version}" ]]; then
      log "[plugins] resource ${name} ${version} already installed"
      continue
    fi
    local t0; t0="$(now)"
    "${pulumi_bin}" plugin install resource "${name}" "${version}" \
      --file "${dir}/bin/pulumi-resource-${name}" --reinstall >&2
    echo "${dir}" > "${marker}"
    log "[plugins] installed resource ${name} ${version} in $(human_duration $(( $(now) - t0 )))"
  done
}

# prune_stale: removes cache entries of buildable targets whose key no longer matches the pins
# (left behind by version bumps). Only on request (--prune): another checkout of the project on
# this machine may still pin the old versions and use them.
prune_stale() {
  local t current dir
  for t in "${ALL_TARGETS[@]}"; do
    target_spec "${t}"
    [[ -z "${T_BLOCKED}" && -f "${T_MODULE_DIR}/go.mod" ]] || continue
    current="$(cache_dir_for "${t}")"
    for dir in "${KOK_TOOLCHAIN_DIR}/${t}-"*; do
      [[ -d "${dir}" && "${dir}" != "${current}" ]] || continue
      # The key is 16 hex digits; this keeps kube-1.3 from matching kube-1.36-... and the like.
      [[ "$(basename "${dir}")" =~ ^${t}-[0-9a-f]{16}$ ]] || continue
      log "[prune] removing stale ${dir} ($(du -sh "${dir}" | cut -f1))"
      rm -rf "${dir}"
    done
  done
  rm -rf "${KOK_TOOLCHAIN_DIR}/.tmp"
}

# build_all TARGET...: builds the targets in order, up to KOK_TOOLCHAIN_LANES at a time (default 1).
# Two lanes fill what one leaves idle on 2 cores (a lone link or a single huge package compiling on
# one core, module downloads). Keeps going after a failure: one failing target should not hide
# whether the others build. Each target is linked as soon as it is built: other work waits on
# single binaries, not on the whole run. Adds failed targets to the caller's `failed`.
build_all() {
  local lanes="${KOK_TOOLCHAIN_LANES:-1}" t pid
  [[ "${lanes}" =~ ^[1-9][0-9]*$ ]] || die "KOK_TOOLCHAIN_LANES must be a positive integer, not '${lanes}'"
  local -A running=()
  for t in "$@"; do
    while (( ${#running[@]} >= lanes )); do
      if wait -n -p pid; then :; else failed+=("${running[${pid}]}"); fi
      unset "running[${pid}]"
    done
    # BUILT: set by build_target when it built (not found cached); only then link at once.
    ( BUILT=false; build_target "${t}" && if [[ "${BUILT}" == true ]]; then link_current; fi ) &
    running[$!]="${t}"
  done
  while (( ${#running[@]} > 0 )); do
    if wait -n -p pid; then :; else failed+=("${running[${pid}]}"); fi
    unset "running[${pid}]"
  done
}

# --- main -------------------------------------------------------------------------------------
usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -n 's/^# \{0,1\}//p'
}

main() {
  setup_go_env
  local prune=false
  local targets=()
  local arg
  for arg in "$@"; do
    case "${arg}" in
      -h | --help) usage; return 0 ;;
      --prune) prune=true ;;
      all) targets=("${ALL_TARGETS[@]}") ;;
      *) target_spec "${arg}"; targets+=("${arg}") ;;
    esac
  done
  if (( ${#targets[@]} == 0 )); then
    # Default: everything that can be built here (blocked targets are reported, not attempted).
    local t
    for t in "${ALL_TARGETS[@]}"; do
      target_spec "${t}"
      if [[ -z "${T_BLOCKED}" ]]; then targets+=("${t}"); else log "[${t}] skipped: ${T_BLOCKED}"; fi
    done
  fi

  mkdir -p "${KOK_TOOLCHAIN_DIR}"
  # One toolchain run at a time per cache directory.
  exec 9>"${KOK_TOOLCHAIN_DIR}/.lock"
  if ! flock -n 9; then
    log "another toolchain run holds ${KOK_TOOLCHAIN_DIR}/.lock; waiting"
    flock 9
  fi

  [[ "${prune}" == true ]] && prune_stale
  local started failed=() t
  started="$(now)"
  log "cache: ${KOK_TOOLCHAIN_DIR}; $(go env GOVERSION); GOPROXY=${GOPROXY}; targets: ${targets[*]}"
  build_all "${targets[@]}"
  link_current
  install_plugins || failed+=("plugins")

  log "finished in $(human_duration $(( $(now) - started )))"
  echo
  echo "# Toolchain ready. To use it in this shell:"
  print_env_exports
  if (( ${#failed[@]} > 0 )); then
    log "FAILED targets: ${failed[*]} (logs under ${KOK_TOOLCHAIN_DIR}/logs)"
    return 1
  fi
}

main "$@"
