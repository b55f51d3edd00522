#!/usr/bin/env bash
# Proves the built container runtime works on this machine: starts the toolchain's containerd
# (own root, state and sockets under a temporary directory) and registry on loopback, makes a tiny
# busybox image from Debian's busybox-static with crane, pushes it, pulls it with ctr, runs one
# container to completion and one detached (exec into it, list it with runc), attaches a third to
# a network namespace set up by the CNI plugins (bridge + host-local + loopback) and pings the
# bridge from it, then removes everything and checks that no mount, shim, process, cgroup,
# network namespace or bridge is left.
#
#   sudo bash tools/runtime-smoke.sh        # needs root (namespaces, mounts, cgroups)
#
# Port: KOK_SMOKE_REGISTRY_PORT (default 25000, 127.0.0.1 only); pod subnet KOK_SMOKE_SUBNET_PREFIX
# (default 10.250.99, a /24 on bridge kok-smoke0). Needs the toolchain targets containerd, runc,
# cni-plugins, registry, crane (bash tools/toolchain.sh containerd runc cni-plugins registry crane) and
# busybox-static's .deb (fetched with `apt-get download` into the temporary directory).
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/lib/common.sh
source "${TOOLS_DIR}/lib/common.sh"

BIN="${KOK_TOOLCHAIN_DIR}/bin"
PORT="${KOK_SMOKE_REGISTRY_PORT:-25000}"
NS=kok-smoke
SUBNET="${KOK_SMOKE_SUBNET_PREFIX:-10.250.99}"
BRIDGE=kok-smoke0
NETNS="kok-smoke-$$"
IMAGE="127.0.0.1:${PORT}/library/busybox:smoke"
WORK=""
PIDS=()
runc_opts=()
# Everything must stay under WORK; /run/containerd appearing would mean a default path leaked.
RUN_CONTAINERD_EXISTED=false
[[ -e /run/containerd ]] && RUN_CONTAINERD_EXISTED=true

ctr_() { "${BIN}/ctr" --address "${WORK}/containerd.sock" -n "${NS}" "$@" 2> >(grep -v 'DEPRECATION: The support for cgroup v1' >&2); }

# Removes the containers first (a task left running would keep its shim, mounts and cgroups),
# then stops containerd and the registry, then checks nothing is left.
cleanup() {
  local status=$?
  if [[ -S "${WORK}/containerd.sock" ]]; then
    local id
    for id in $(ctr_ containers ls -q 2>/dev/null); do
      ctr_ task kill -s SIGKILL "${id}" >/dev/null 2>&1 || true
      ctr_ task delete --force "${id}" >/dev/null 2>&1 || true
      ctr_ containers rm "${id}" >/dev/null 2>&1 || true
    done
  fi
  [[ -z "${WORK}" || ! -f "${WORK}/cni-added" ]] || cni eth0 bridge DEL >/dev/null 2>&1 || true
  ip netns delete "${NETNS}" 2>/dev/null || true
  ip link delete "${BRIDGE}" 2>/dev/null || true
  local pid
  for pid in "${PIDS[@]}"; do
    kill "${pid}" 2>/dev/null || continue
    for _ in $(seq 1 20); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.25; done
    kill -9 "${pid}" 2>/dev/null || true
  done
  # ctr puts a container's cgroups under /<namespace>/<id>; the namespace level stays behind.
  local dir
  for dir in /sys/fs/cgroup/*/"${NS}" /sys/fs/cgroup/unified/"${NS}"; do
    [[ -d "${dir}" ]] && rmdir "${dir}" 2>/dev/null || true
  done
  if [[ -n "${WORK}" ]]; then
    local left=()
    grep -q " ${WORK}/" /proc/mounts && left+=("mounts: $(grep " ${WORK}/" /proc/mounts | cut -d' ' -f2 | tr '\n' ' ')")
    pgrep -f "containerd-shim-runc-v2 -namespace ${NS} " >/dev/null && left+=("shim processes: $(pgrep -f "containerd-shim-runc-v2 -namespace ${NS} " | tr '\n' ' ')")
    compgen -G "/sys/fs/cgroup/*/${NS}" >/dev/null && left+=("cgroups: $(compgen -G "/sys/fs/cgroup/*/${NS}" | tr '\n' ' ')")
    [[ "${RUN_CONTAINERD_EXISTED}" == true || ! -e /run/containerd ]] || left+=("/run/containerd (created by this run)")
    ip netns list | grep -q "^${NETNS}\b" && left+=("network namespace ${NETNS}")
    ip link show "${BRIDGE}" >/dev/null 2>&1 && left+=("bridge ${BRIDGE}")
    if (( ${#left[@]} > 0 )); then
      log "runtime smoke: LEFT BEHIND: ${left[*]} (work dir kept: ${WORK})"
      exit 1
    fi
    rm -rf "${WORK}"
    (( status == 0 )) && log "runtime smoke: cleaned up: no mounts, shims, cgroups, network namespace or bridge left"
  fi
}
trap cleanup EXIT

wait_for() {
  local what="$1" seconds="$2"; shift 2
  local deadline=$(( $(now) + seconds ))
  until "$@" >/dev/null 2>&1; do
    (( $(now) <= deadline )) || { log "runtime smoke: ${what} did not come up within ${seconds}s"; return 1; }
    sleep 0.25
  done
}

start_containerd() {
  cat > "${WORK}/containerd.toml" <<EOF
version = 4
root = '${WORK}/root'
state = '${WORK}/state'
# Only what this check needs: no CRI (a node configures it), no NRI socket under /var/run.
# Without socket_dir the shims' sockets go to /run/containerd/s, shared by every containerd.
disabled_plugins = ['io.containerd.grpc.v1.cri', 'io.containerd.cri.v1.runtime', 'io.containerd.cri.v1.images', 'io.containerd.nri.v1.nri']
imports = []
[plugins]
  [plugins.'io.containerd.server.v1.grpc']
    address = '${WORK}/containerd.sock'
  [plugins.'io.containerd.server.v1.ttrpc']
    address = '${WORK}/containerd.sock.ttrpc'
  [plugins.'io.containerd.shim.v1.manager']
    socket_dir = '${WORK}/state/s'
  [plugins.'io.containerd.internal.v1.opt']
    path = '${WORK}/opt'
EOF
  # The shim is found on containerd's PATH; runc is named explicitly per container below.
  PATH="${BIN}:${PATH}" "${BIN}/containerd" --config "${WORK}/containerd.toml" >"${WORK}/containerd.log" 2>&1 &
  PIDS+=("$!")
  wait_for containerd 30 "${BIN}/ctr" --address "${WORK}/containerd.sock" version \
    || { tail -n 20 "${WORK}/containerd.log" >&2; return 1; }
  log "runtime smoke: $(ctr_ version | sed -n '/Server/,$p' | sed -n 's/^ *Version: *//p' | sed 's/^/containerd server /')"
}

start_registry() {
  cat > "${WORK}/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${WORK}/registry
http:
  addr: 127.0.0.1:${PORT}
EOF
  "${BIN}/registry" serve "${WORK}/registry.yml" >"${WORK}/registry.log" 2>&1 &
  PIDS+=("$!")
  wait_for registry 30 curl -fsS "http://127.0.0.1:${PORT}/v2/" || { tail -n 20 "${WORK}/registry.log" >&2; return 1; }
}

# One layer: busybox at /bin/busybox plus the applet links the checks use, reproducible tar.
build_image() {
  (cd "${WORK}" && apt-get download busybox-static >/dev/null 2>&1) \
    || die "apt-get download busybox-static failed (needs the Debian package index: apt-get update)"
  dpkg-deb -x "${WORK}"/busybox-static_*.deb "${WORK}/deb"
  mkdir -p "${WORK}/rootfs/bin"
  cp "${WORK}/deb/bin/busybox" "${WORK}/rootfs/bin/busybox"
  local applet
  for applet in sh cat echo hostname id ip ls ping ps sleep; do ln -s busybox "${WORK}/rootfs/bin/${applet}"; done
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "${WORK}/rootfs" -cf "${WORK}/layer.tar" bin
  # crane's empty base has no platform; containerd filters such images out, so set it.
  "${BIN}/crane" append --oci-empty-base -f "${WORK}/layer.tar" -t "${IMAGE}" >/dev/null 2>&1
  "${BIN}/crane" mutate --set-platform linux/amd64 --cmd /bin/sh -t "${IMAGE}" "${IMAGE}" >/dev/null 2>&1
  log "runtime smoke: pushed ${IMAGE} ($("${BIN}/crane" digest "${IMAGE}"))"
}

# cni IFNAME PLUGIN COMMAND: runs one CNI plugin of the toolchain on the smoke's namespace. No
# masquerading and no portmap: neither iptables nor nft is installed on these machines.
cni() {
  local ifname="$1" plugin="$2" command="$3" conf
  if [[ "${plugin}" == bridge ]]; then
    conf='{"cniVersion":"1.1.0","name":"kok-smoke","type":"bridge","bridge":"'"${BRIDGE}"'","isGateway":true,"ipMasq":false,
      "ipam":{"type":"host-local","ranges":[[{"subnet":"'"${SUBNET}"'.0/24"}]],"dataDir":"'"${WORK}/cni-ipam"'"}}'
  else
    conf='{"cniVersion":"1.1.0","name":"kok-smoke-lo","type":"loopback"}'
  fi
  CNI_COMMAND="${command}" CNI_CONTAINERID=smoke-net CNI_NETNS="/var/run/netns/${NETNS}" CNI_IFNAME="${ifname}" \
    CNI_PATH="${KOK_TOOLCHAIN_DIR}/cni/bin" "${KOK_TOOLCHAIN_DIR}/cni/bin/${plugin}" <<<"${conf}"
}

# A container in a network namespace the CNI plugins set up, as the CRI plugin does for a pod.
network_check() {
  ip netns add "${NETNS}"
  cni lo loopback ADD >/dev/null
  touch "${WORK}/cni-added"
  local result; result="$(cni eth0 bridge ADD)"
  [[ "${result}" == *"\"${SUBNET}.2/24\""* ]] || die "CNI bridge ADD did not assign ${SUBNET}.2: ${result}"
  ctr_ run -d "${runc_opts[@]}" --with-ns "network:/var/run/netns/${NETNS}" "${IMAGE}" smoke-net /bin/sleep 300 >/dev/null
  local out
  out="$(ctr_ task exec --fifo-dir "${WORK}/fifo" --exec-id ping smoke-net /bin/sh -c "ip -4 addr show eth0; ping -c 1 -W 2 ${SUBNET}.1")" || true
  [[ "${out}" == *"inet ${SUBNET}.2/24"* && "${out}" == *"1 packets received"* ]] \
    || die "the container on the CNI network could not reach the bridge ${SUBNET}.1: ${out}"
  log "runtime smoke: CNI $("${KOK_TOOLCHAIN_DIR}/cni/bin/bridge" --version 2>&1 | head -n1 | sed 's/^CNI //'): container at ${SUBNET}.2 pings ${BRIDGE} ${SUBNET}.1"
  cni eth0 bridge DEL
  rm -f "${WORK}/cni-added"
}

main() {
  [[ "$(id -u)" == 0 ]] || die "runtime smoke needs root (namespaces, overlay mounts, cgroups)"
  local b
  for b in containerd ctr containerd-shim-runc-v2 runc registry crane ../cni/bin/bridge ../cni/bin/host-local ../cni/bin/loopback; do
    [[ -x "${BIN}/${b}" ]] || die "${b#../} not built: bash tools/toolchain.sh containerd runc cni-plugins registry crane"
  done
  WORK="$(mktemp -d /tmp/kok-runtime-smoke.XXXXXX)"
  start_containerd
  start_registry
  build_image
  ctr_ images pull --plain-http "${IMAGE}" >/dev/null
  # ctr keeps stdio FIFOs in /run/containerd/fifo unless told otherwise; keep them in WORK too.
  runc_opts=(--runc-binary "${BIN}/runc" --runc-root "${WORK}/runc" --fifo-dir "${WORK}/fifo")
  local out
  out="$(ctr_ run --rm "${runc_opts[@]}" "${IMAGE}" smoke-run /bin/sh -c 'echo hello from busybox; cat /proc/self/cgroup')"
  printf '%s\n' "${out}" | sed 's/^/    /' >&2
  [[ "${out}" == *"hello from busybox"* ]] || die "the container did not print its greeting"
  ctr_ run -d "${runc_opts[@]}" "${IMAGE}" smoke-detached /bin/sleep 300 >/dev/null
  out="$(ctr_ task exec --fifo-dir "${WORK}/fifo" --exec-id probe smoke-detached /bin/sh -c 'echo exec ok')" || true
  [[ "${out}" == "exec ok" ]] || die "exec into the running container printed '${out}'"
  out="$("${BIN}/runc" --root "${WORK}/runc/${NS}" list)"
  [[ "${out}" == *"smoke-detached"*"running"* ]] || die "runc does not list the container as running: ${out}"
  log "runtime smoke: $("${BIN}/runc" --version | head -n1) runs smoke-detached; exec ok"
  network_check
  log "runtime smoke: ok"
}

main "$@"
