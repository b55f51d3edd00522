#!/usr/bin/env bash
# Smoke test of the built control plane: starts etcd and kube-apiserver on loopback with temporary
# state, checks they answer, then stops them. Proves the binaries run, not just that they exist.
#
#   bash tools/toolchain-smoke.sh              # etcd + kube-apiserver of the default minor
#   bash tools/toolchain-smoke.sh v1.35.4      # kube-apiserver of another built version
#
# Ports (override with KOK_SMOKE_ETCD_PORT / KOK_SMOKE_APISERVER_PORT): etcd client 23790,
# peer 23800, kube-apiserver 26443. Everything listens on 127.0.0.1 only.
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/lib/common.sh
source "${TOOLS_DIR}/lib/common.sh"

ETCD_PORT="${KOK_SMOKE_ETCD_PORT:-23790}"
ETCD_PEER_PORT="$(( ETCD_PORT + 10 ))"
APISERVER_PORT="${KOK_SMOKE_APISERVER_PORT:-26443}"
WORK=""
PIDS=()

# Stops what we started, newest first: kube-apiserver before etcd, since an apiserver whose etcd
# is gone retries forever during its graceful shutdown. SIGKILL after 15 s as a last resort.
cleanup() {
  local i pid waited
  for (( i = ${#PIDS[@]} - 1; i >= 0; i-- )); do
    pid="${PIDS[i]}"
    kill "${pid}" 2>/dev/null || continue
    waited=0
    while kill -0 "${pid}" 2>/dev/null && (( waited < 30 )); do sleep 0.5; waited=$(( waited + 1 )); done
    kill -9 "${pid}" 2>/dev/null || true
    wait "${pid}" 2>/dev/null || true
  done
  if [[ -n "${WORK}" ]]; then rm -rf "${WORK}"; fi
}
trap cleanup EXIT

# wait_for DESCRIPTION SECONDS CMD...: polls CMD until it succeeds or time runs out.
wait_for() {
  local what="$1" seconds="$2"; shift 2
  local deadline=$(( $(now) + seconds ))
  until "$@" >/dev/null 2>&1; do
    if (( $(now) > deadline )); then
      log "smoke: ${what} did not come up within ${seconds}s"
      return 1
    fi
    sleep 0.5
  done
}

start_etcd() {
  local etcd_bin="${KOK_TOOLCHAIN_DIR}/bin/etcd"
  [[ -x "${etcd_bin}" ]] || die "etcd not built: bash tools/toolchain.sh etcd"
  "${etcd_bin}" --name smoke --data-dir "${WORK}/etcd" \
    --listen-client-urls "http://127.0.0.1:${ETCD_PORT}" \
    --advertise-client-urls "http://127.0.0.1:${ETCD_PORT}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-cluster "smoke=http://127.0.0.1:${ETCD_PEER_PORT}" \
    >"${WORK}/etcd.log" 2>&1 &
  PIDS+=("$!")
  local t0; t0="$(now)"
  wait_for "etcd /health" 30 curl -fsS "http://127.0.0.1:${ETCD_PORT}/health" \
    || { tail -n 20 "${WORK}/etcd.log" >&2; return 1; }
  log "smoke: etcd healthy after $(human_duration $(( $(now) - t0 ))): $(curl -fsS "http://127.0.0.1:${ETCD_PORT}/health"); version $(curl -fsS "http://127.0.0.1:${ETCD_PORT}/version")"
}

start_apiserver() {
  local kube_version="$1"
  local apiserver="${KOK_TOOLCHAIN_DIR}/k8s/${kube_version}/bin/kube-apiserver"
  [[ -x "${apiserver}" ]] || die "kube-apiserver ${kube_version} not built: bash tools/toolchain.sh kube-${kube_version#v}"
  openssl genrsa -out "${WORK}/sa.key" 2048 2>/dev/null
  openssl rsa -in "${WORK}/sa.key" -pubout -out "${WORK}/sa.pub" 2>/dev/null
  # A static admin token is enough for a smoke test (envtest does the same kind of thing).
  local token; token="$(openssl rand -hex 16)"
  echo "${token},smoke-admin,smoke-admin,system:masters" > "${WORK}/tokens.csv"
  "${apiserver}" \
    --etcd-servers "http://127.0.0.1:${ETCD_PORT}" \
    --cert-dir "${WORK}/certs" \
    --secure-port "${APISERVER_PORT}" --bind-address 127.0.0.1 \
    --service-cluster-ip-range 10.0.0.0/24 \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "${WORK}/sa.pub" \
    --service-account-signing-key-file "${WORK}/sa.key" \
    --token-auth-file "${WORK}/tokens.csv" \
    --authorization-mode RBAC --allow-privileged=true \
    >"${WORK}/apiserver.log" 2>&1 &
  PIDS+=("$!")
  local t0; t0="$(now)"
  local curl_api=(curl -fsSk -H "Authorization: Bearer ${token}")
  wait_for "kube-apiserver /readyz" 90 "${curl_api[@]}" "https://127.0.0.1:${APISERVER_PORT}/readyz" \
    || { tail -n 20 "${WORK}/apiserver.log" >&2; return 1; }
  local reported
  reported="$("${curl_api[@]}" "https://127.0.0.1:${APISERVER_PORT}/version" | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')"
  log "smoke: kube-apiserver ready after $(human_duration $(( $(now) - t0 ))); /version gitVersion=${reported}"
  [[ "${reported}" == "${kube_version}" ]] || die "kube-apiserver reports ${reported}, want ${kube_version}"
  local kubectl="${KOK_TOOLCHAIN_DIR}/k8s/${kube_version}/bin/kubectl"
  if [[ -x "${kubectl}" ]]; then
    "${kubectl}" --server "https://127.0.0.1:${APISERVER_PORT}" --token "${token}" \
      --insecure-skip-tls-verify get namespaces >&2
  fi
}

main() {
  local kube_version="${1:-$(kube_version_for_minor "${DEFAULT_KUBE_MINOR}")}"
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/kok-smoke.XXXXXX")"
  start_etcd
  if [[ -x "${KOK_TOOLCHAIN_DIR}/k8s/${kube_version}/bin/kube-apiserver" ]]; then
    start_apiserver "${kube_version}"
  else
    log "smoke: kube-apiserver ${kube_version} not built; checked etcd only"
  fi
  log "smoke: ok"
}

main "$@"
