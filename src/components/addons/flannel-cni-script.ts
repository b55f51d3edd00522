/**
 * The flannel DaemonSet's `install-cni` container: a POSIX sh script run in the flannel image.
 *
 * Upstream's DaemonSet copies the `flannel` CNI plugin onto each node and a conflist that names it;
 * at every Pod creation that plugin reads /run/flannel/subnet.env (written by flanneld) and calls
 * the `bridge` plugin with a configuration it derives from it. That plugin
 * (github.com/flannel-io/cni-plugin) is not served by the Go module proxy this project builds its
 * toolchain from, so it cannot be built here. This script writes what it would have delegated
 * instead: a `bridge` + `host-local` conflist derived from subnet.env the same way (flannel_linux.go,
 * doCmdAdd and getDelegateIPAM), plus `portmap` as upstream's conflist has. The worker install lays
 * down bridge, host-local, portmap and loopback.
 *
 * - Waits until flanneld has written subnet.env (its node lease).
 * - Renders the conflist; the subnet is written by flanneld as the first address of the node's
 *   range (10.244.1.1/24), and host-local refuses a range with host bits set, so the script masks it
 *   (10.244.1.0/24), as the plugin's net.ParseCIDR does.
 * - Writes a dot-file (ignored by the container runtime, which reads *.conf, *.conflist and *.json)
 *   and renames it over the conflist: a runtime never reads half a file.
 * - Polls; re-renders when subnet.env changes (a new lease, another MTU) or the conflist was
 *   removed or edited on the host.
 *
 * Only sh builtins and cat, mkdir, mv, sleep: the flannel image built here (src/images) carries
 * busybox with those applets. IPv4 only, as the add-on (an IPv6 pod range means bringing your own CNI).
 * Knobs, as environment variables (the tests run the script in a temporary directory with them):
 * SUBNET_ENV, CNI_CONF_DIR, POLL_SECONDS, and ONCE=1 to render once and exit.
 */
export const FLANNEL_CONFLIST_NAME = "10-flannel.conflist";
/** The network name of the conflist, as upstream's (`cbr0`); the bridge device is `cni0`. */
export const FLANNEL_CNI_NETWORK = "cbr0";

export const FLANNEL_INSTALL_CNI_SCRIPT = String.raw`set -eu
subnet_env=${"${SUBNET_ENV:-/run/flannel/subnet.env}"}
conf_dir=${"${CNI_CONF_DIR:-/etc/cni/net.d}"}
poll=${"${POLL_SECONDS:-5}"}
conflist="$conf_dir/${FLANNEL_CONFLIST_NAME}"
tmp="$conf_dir/.${FLANNEL_CONFLIST_NAME}.tmp"

log() { echo "install-cni: $*" >&2; }

# a.b.c.d/len → its network address with the same length; fails on anything else.
ipv4_network() {
  case "$1" in
    */*) ;;
    *) return 1 ;;
  esac
  _len=${"${1#*/}"}
  _addr=${"${1%/*}"}
  case "$_len$_addr" in
    *[!0-9.]*) return 1 ;;
  esac
  [ -n "$_len" ] && [ "$_len" -le 32 ] || return 1
  _ifs=$IFS
  IFS=.
  # shellcheck disable=SC2086
  set -- $_addr
  IFS=$_ifs
  [ $# -eq 4 ] || return 1
  for _octet in "$@"; do
    [ -n "$_octet" ] && [ "$_octet" -le 255 ] || return 1
  done
  _ip=$(( ($1 << 24) | ($2 << 16) | ($3 << 8) | $4 ))
  _mask=$(( _len == 0 ? 0 : (4294967295 << (32 - _len)) & 4294967295 ))
  _net=$(( _ip & _mask ))
  echo "$(( (_net >> 24) & 255 )).$(( (_net >> 16) & 255 )).$(( (_net >> 8) & 255 )).$(( _net & 255 ))/$_len"
}

# Prints the conflist for the subnet.env in $subnet_env; fails (saying why) while it is incomplete.
render() {
  network="" subnet="" mtu="" ipmasq=""
  while IFS='=' read -r key value; do
    case "$key" in
      FLANNEL_NETWORK) network=$value ;;
      FLANNEL_SUBNET) subnet=$value ;;
      FLANNEL_MTU) mtu=$value ;;
      FLANNEL_IPMASQ) ipmasq=$value ;;
    esac
  done < "$subnet_env"
  network=$(ipv4_network "$network") || { log "$subnet_env: FLANNEL_NETWORK is not an IPv4 CIDR"; return 1; }
  subnet=$(ipv4_network "$subnet") || { log "$subnet_env: FLANNEL_SUBNET is not an IPv4 CIDR"; return 1; }
  case "$mtu" in
    ''|*[!0-9]*) log "$subnet_env: FLANNEL_MTU is not a number"; return 1 ;;
  esac
  # flanneld masquerades itself (--ip-masq): then the bridge must not (the plugin's rule).
  case "$ipmasq" in
    true) bridge_masq=false ;;
    false) bridge_masq=true ;;
    *) log "$subnet_env: FLANNEL_IPMASQ is not true or false"; return 1 ;;
  esac
  cat <<EOF
{
  "cniVersion": "1.0.0",
  "name": "${FLANNEL_CNI_NETWORK}",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "isDefaultGateway": true,
      "ipMasq": $bridge_masq,
      "hairpinMode": true,
      "mtu": $mtu,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$subnet" }]],
        "routes": [{ "dst": "$network" }]
      }
    },
    {
      "type": "portmap",
      "capabilities": { "portMappings": true }
    }
  ]
}
EOF
}

waiting=""
while :; do
  if [ -f "$subnet_env" ]; then
    if conf=$(render); then
      current=""
      [ -f "$conflist" ] && current=$(cat "$conflist")
      if [ "$conf" != "$current" ]; then
        mkdir -p "$conf_dir"
        printf '%s\n' "$conf" > "$tmp"
        mv -f "$tmp" "$conflist"
        log "wrote $conflist from $subnet_env"
      fi
    fi
    waiting=""
  elif [ -z "$waiting" ]; then
    log "waiting for flanneld to write $subnet_env"
    waiting=1
  fi
  [ "${"${ONCE:-}"}" = 1 ] && exit 0
  sleep "$poll"
done
`;
