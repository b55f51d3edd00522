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
 * - Removes the conflist when it is stopped (TERM). The conflist tells the kubelet that the node's
 *   Pod network is ready; without flannel it is not, and after a Node is deleted (its Pods, this
 *   one too, are removed) and registered again with another range, a conflist left from before
 *   would make the node Ready at once and give its first Pods addresses of the old range, which no
 *   other node routes. The node is NotReady from the stop until the next flannel Pod has written it
 *   (a few seconds in a rolling update of the DaemonSet). flanneld's container removes its old
 *   subnet.env as it starts (flannel.ts), so this script never renders the previous lease's range.
 * - Clears the addresses of the `cni0` bridge when they are not the node range's gateway. A Node
 *   deleted and registered again (a repaired machine) gets another Pod range, but the bridge keeps
 *   the old range's address, and the bridge plugin then fails every Pod with "cni0 already has an
 *   IP address different from ..." (flannel's classic failure; upstream's plugin has it too). The
 *   Pods that used the old range belonged to the deleted Node and are gone; the plugin puts the new
 *   gateway address on the bridge at the next Pod.
 *
 * Only sh builtins and cat, mkdir, mv, sleep, sed, ip: the flannel image built here (src/images)
 * carries busybox with those applets. IPv4 only, as the add-on (an IPv6 pod range means bringing your own CNI).
 * Knobs, as environment variables (the tests run the script in a temporary directory with them):
 * SUBNET_ENV, CNI_CONF_DIR, POLL_SECONDS, CNI_BRIDGE, and ONCE=1 to render once and exit.
 */
export const FLANNEL_CONFLIST_NAME = "10-flannel.conflist";
/** The network name of the conflist, as upstream's (`cbr0`); the bridge device is `cni0`. */
export const FLANNEL_CNI_NETWORK = "cbr0";

export const FLANNEL_INSTALL_CNI_SCRIPT = String.raw`set -eu
subnet_env=${"${SUBNET_ENV:-/run/flannel/subnet.env}"}
conf_dir=${"${CNI_CONF_DIR:-/etc/cni/net.d}"}
poll=${"${POLL_SECONDS:-5}"}
bridge=${"${CNI_BRIDGE:-cni0}"}
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

# The bridge's IPv4 addresses are cleared when one is not $1 (the range's gateway, a.b.c.d/len).
# No bridge (no Pod yet) or no ip tool: nothing to do.
clear_stale_bridge() {
  _addrs=$(ip -4 addr show dev "$bridge" 2>/dev/null | sed -n 's/^ *inet \([0-9./]*\) .*/\1/p') || return 0
  for _a in $_addrs; do
    if [ "$_a" != "$1" ]; then
      log "$bridge has $_a, not $1, the gateway of this node's range: clearing its addresses"
      ip addr flush dev "$bridge" || log "could not clear the addresses of $bridge"
      return 0
    fi
  done
}

# a.b.c.d/len (a network) → its first address a.b.c.(d+1)/len, the bridge plugin's gateway.
gateway_of() {
  _len=${"${1#*/}"}
  _addr=${"${1%/*}"}
  echo "${"${_addr%.*}"}.$(( ${"${_addr##*.}"} + 1 ))/$_len"
}

stop() {
  rm -f "$conflist" "$tmp"
  log "stopped: removed $conflist"
  exit 0
}
trap stop TERM INT

waiting=""
while :; do
  if [ -f "$subnet_env" ]; then
    if conf=$(render); then
      range=$(printf '%s\n' "$conf" | sed -n 's/.*"subnet": "\([0-9./]*\)".*/\1/p')
      clear_stale_bridge "$(gateway_of "$range")"
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
  # In the background, so that a TERM is handled at once, not after the sleep.
  sleep "$poll" &
  wait $! || :
done
`;
