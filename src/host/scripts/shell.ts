/**
 * Building blocks of the host scripts: quoting, the shared bash preamble (failure reporting,
 * verified downloads, atomic activation of a package version) and the wrapper that makes a
 * script runnable through whatever login shell the SSH user has.
 *
 * Every script is a pure function of its inputs, so the same inputs give byte-identical text and
 * Pulumi sees no change; the scripts never contain secrets (those arrive on stdin).
 */

/** Quotes one word for bash: the result is always a single word with no expansion. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'"'"'`)}'`;
}

/** Runs `script` with bash in strict mode, whatever the login shell of the SSH user is. */
export function bashCommand(script: string): string {
  return `/bin/bash -c ${shellQuote(script)}`;
}

/** Where a host's files go: "/" on a real host, a directory on a test host. */
export function rootPrefix(installRoot: string): string {
  const trimmed = installRoot.replace(/\/+$/, "");
  return trimmed === "" ? "" : trimmed;
}

/** The directory under which every package version is unpacked, relative to the install root. */
export const PACKAGE_HOME = "/opt/kube-on-kube";

/**
 * The preamble every host script starts with. `fail` prints one line prefixed with the step so a
 * @pulumi/command error names it; `fetch_verified` downloads to a staging path and checks sha256
 * before anything is touched; `activate` switches a package's `current` link with one rename, the
 * only atomic switch a file system offers, and keeps the previous version for rollback.
 */
export function preamble(step: string, installRoot: string): string {
  return `set -euo pipefail
umask 022
ROOT=${shellQuote(rootPrefix(installRoot))}
PKG_HOME="$ROOT${PACKAGE_HOME}"
fail() { echo "kube-on-kube ${step}: $*" >&2; exit 1; }
log() { echo "kube-on-kube ${step}: $*"; }
fetch_verified() {
  local url=$1 want=$2 dest=$3 got
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 3 --connect-timeout 10 -o "$dest" "$url" || fail "download of $url failed; nothing was replaced"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$dest" "$url" || fail "download of $url failed; nothing was replaced"
  else
    fail "neither curl nor wget is installed"
  fi
  got=$(sha256sum "$dest" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    rm -f "$dest"
    fail "sha256 mismatch for $url: expected $want, got $got; nothing was replaced"
  fi
}
activate() {
  local pkgdir=$1 version_dir=$2 old=""
  [ -L "$pkgdir/current" ] && old=$(readlink "$pkgdir/current")
  ln -sfn "$version_dir" "$pkgdir/current.new"
  mv -Tf "$pkgdir/current.new" "$pkgdir/current"
  if [ -n "$old" ] && [ "$old" != "$version_dir" ]; then
    ln -sfn "$old" "$pkgdir/previous.new" && mv -Tf "$pkgdir/previous.new" "$pkgdir/previous"
  fi
  local keep_prev=""
  [ -L "$pkgdir/previous" ] && keep_prev=$(readlink "$pkgdir/previous")
  for dir in "$pkgdir"/*/; do
    dir=\${dir%/}; name=\${dir##*/}
    [ "$name" = "$version_dir" ] || [ "$name" = "$keep_prev" ] || [ -L "$dir" ] || rm -rf "$dir"
  done
}
write_file() {
  local path=$1 mode=$2 tmp
  mkdir -p "$(dirname "$path")"
  tmp=$(mktemp "$path.XXXXXX")
  cat > "$tmp"
  chmod "$mode" "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then rm -f "$tmp"; return 1; fi
  mv -f "$tmp" "$path"
}
link_into() {
  local target=$1 link=$2
  mkdir -p "$(dirname "$link")"
  ln -sfn "$target" "$link.new" && mv -Tf "$link.new" "$link"
}
`;
}
