#!/usr/bin/env bash
# Prints the export lines that put the built toolchain to use:
#   eval "$(bash tools/toolchain-env.sh)"
# Honours KOK_TOOLCHAIN_DIR (default ~/.cache/kube-on-kube/toolchain). Prints only; builds nothing.
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/lib/common.sh
source "${TOOLS_DIR}/lib/common.sh"

print_env_exports
