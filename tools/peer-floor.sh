#!/usr/bin/env bash
# Checks the low end of the package's peer ranges: installs the packed package with the LOWEST
# version each peerDependencies range allows (optional peers too), then
#   1. typechecks the shipped sources (tsconfig.build.json) against those peers' types, and
#   2. loads the packed package (require and import) and its CLI on them.
# The high end is what `npm ci` installs (the devDependencies pins), which the test suites run.
#
#   npm run build && bash tools/peer-floor.sh
#
# Uses the npm registry (or the npm cache) for the peers; install scripts are not run, so no
# provider plugin is fetched. Prints "peer floor: ok" or names what failed; exits non-zero then.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

fail() { echo "peer floor: FAILED: $*" >&2; exit 1; }
[[ -f dist/index.js && -f dist/cli/main.js ]] || fail "dist/ is missing or incomplete: run npm run build first"

# name@lowest for every peer, plus the compiler and the @types the sources are checked with, at
# the project's own pins. semver is the one npm itself resolves ranges with (a dependency of the tree).
mapfile -t SPECS < <(node -e '
  const semver = require("semver");
  const pkg = require("./package.json");
  for (const [name, range] of Object.entries(pkg.peerDependencies ?? {})) {
    const low = semver.minVersion(range);
    if (!low) { console.error(`no lowest version for ${name}@${range}`); process.exit(1); }
    console.log(`${name}@${low.version}`);
  }
  for (const [name, version] of Object.entries(pkg.devDependencies)) {
    if (name === "typescript" || name.startsWith("@types/")) console.log(`${name}@${version}`);
  }
')
(( ${#SPECS[@]} > 0 )) || fail "could not read peerDependencies from package.json"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/kok-peer-floor.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT
echo "peer floor: ${SPECS[*]}"

TARBALL="$(npm pack --silent --pack-destination "${WORK}" | tail -n1)"
[[ -f "${WORK}/${TARBALL}" ]] || fail "npm pack did not produce a tarball"
echo '{ "name": "kok-peer-floor", "private": true }' > "${WORK}/package.json"
# --legacy-peer-deps is NOT used: npm must accept the floors as satisfying every peer range,
# including the peers' own dependencies on @pulumi/pulumi.
( cd "${WORK}" && npm install --no-audit --no-fund --ignore-scripts --no-package-lock \
    "./${TARBALL}" "${SPECS[@]}" >/dev/null ) || fail "npm install of the floor peers"

# What really got installed (npm may not honour a spec silently; check it did).
( cd "${WORK}" && node -e '
  const want = process.argv.slice(1);
  const bad = [];
  for (const spec of want) {
    const at = spec.lastIndexOf("@"); const name = spec.slice(0, at); const version = spec.slice(at + 1);
    const got = require(`${name}/package.json`).version;
    if (got !== version) bad.push(`${name}: wanted ${version}, installed ${got}`);
  }
  if (bad.length) { console.error(bad.join("\n")); process.exit(1); }
' "${SPECS[@]}" ) || fail "installed versions differ from the floors"

# 1. The shipped sources against the floor peers' types.
cp -r src tsconfig.json tsconfig.build.json "${WORK}/"
( cd "${WORK}" && node node_modules/typescript/bin/tsc -p tsconfig.build.json --noEmit ) \
  || fail "typecheck of src/ against the floor peers"

# 2. The packed package loads on them, as CommonJS and as ESM, and its CLI starts.
( cd "${WORK}" && node -e '
  const kok = require("kube-on-kube");
  if (Object.keys(kok).length === 0) throw new Error("require(\"kube-on-kube\") exported nothing");
' ) || fail "require(\"kube-on-kube\")"
( cd "${WORK}" && node --input-type=module -e '
  const kok = await import("kube-on-kube");
  if (Object.keys(kok).length === 0) throw new Error("import(\"kube-on-kube\") exported nothing");
' ) || fail "import(\"kube-on-kube\")"
( cd "${WORK}" && node node_modules/kube-on-kube/dist/cli/main.js --help >/dev/null ) \
  || fail "kok --help on the floor peers"

echo "peer floor: ok"
