/**
 * How the host scripts start, restart, check and stop containerd and the kubelet, for each
 * service manager: `systemd` (units, the production path), `process` (the daemons run as
 * detached processes with pid files under `<installRoot>/run/kube-on-kube`, for hosts without
 * systemd such as containers and test hosts), and `none` (nothing is started).
 */
import { shellQuote } from "./shell";

export const ServiceManager = { Systemd: "systemd", Process: "process", None: "none" } as const;
export type ServiceManager = (typeof ServiceManager)[keyof typeof ServiceManager];

export type Service = "containerd" | "kubelet";

/** The command line of a service in `process` mode (paths under the install root). */
const PROCESS_COMMAND: Record<Service, string> = {
  containerd: `"$ROOT/usr/local/bin/containerd" --config "$ROOT/etc/containerd/config.toml"`,
  kubelet: `"$ROOT/usr/local/bin/kubelet" --config="$ROOT/var/lib/kubelet/config.yaml" --kubeconfig="$ROOT/etc/kubernetes/kubelet.conf" --root-dir="$ROOT/var/lib/kubelet" $KUBELET_ARGS`,
};

/** Shell functions of `process` mode; empty for the others. */
export function serviceFunctions(manager: ServiceManager): string {
  if (manager !== ServiceManager.Process) return "";
  return `RUN_DIR="$ROOT/run/kube-on-kube"
svc_pid() { cat "$RUN_DIR/$1.pid" 2>/dev/null || true; }
svc_running() { local p; p=$(svc_pid "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
svc_stop() {
  local p; p=$(svc_pid "$1")
  if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
    kill "$p"
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    # Still there after 10 s: forgetting its pid would orphan it beside the next one started.
    if kill -0 "$p" 2>/dev/null; then kill -9 "$p"; for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; fi
  fi
  rm -f "$RUN_DIR/$1.pid"
}
# Nothing restarts a kubelet that exits because its runtime does not answer yet (systemd would):
# wait for containerd to answer, for up to 10 s.
svc_wait_runtime() {
  local sock="$ROOT/run/containerd/containerd.sock" ctr="$ROOT/usr/local/bin/ctr"
  for _ in $(seq 1 100); do
    if [ -x "$ctr" ]; then "$ctr" --address "$sock" version >/dev/null 2>&1 && return 0
    elif [ -S "$sock" ]; then return 0; fi
    sleep 0.1
  done
}
# Two restarts of one host at once (a repair and an install step) would both read the old pid and
# both start a daemon, orphaning one: restarts run inside lockedLines, which holds fd 9 on a lock
# file in the run directory (flock, util-linux; without flock they run unlocked, as before).
svc_lock_wait() {
  if command -v flock >/dev/null 2>&1; then flock -w 300 9 || fail "another restart of the services still holds $RUN_DIR/services.lock after 300 s"; fi
}
svc_start() {
  local name=$1; shift
  mkdir -p "$RUN_DIR" "$ROOT/var/log/kube-on-kube"
  KUBELET_ARGS=""
  [ -f "$ROOT/etc/kubernetes/kubelet-flags.env" ] && . "$ROOT/etc/kubernetes/kubelet-flags.env"
  # 9>&-: the daemon must not inherit the restart lock (svc_locked), or it would hold it for life.
  # The installed binaries first: containerd finds its shim and the shim finds runc on PATH, and a
  # test host's are under its install root.
  PATH="$ROOT/usr/local/sbin:$ROOT/usr/local/bin:$PATH" ROOT="$ROOT" KUBELET_ARGS="$KUBELET_ARGS" setsid bash -c "exec $*" >>"$ROOT/var/log/kube-on-kube/$name.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$RUN_DIR/$name.pid"
}
`;
}

/** How long a restarted kubelet has to answer on its health and serving ports. */
export const KUBELET_HEALTHY_SECONDS = 90;

/**
 * A bash function that waits until a restarted kubelet answers: `/healthz` says 200 on its health
 * port and its serving port (where the apiserver asks for logs, exec and port-forward) accepts a
 * connection. Without it a step that restarted the kubelet (new certificates, a new trust bundle,
 * an upgrade) reported success while the kubelet was still starting, and the Node's Ready, which
 * lags by the node monitor's grace period, said nothing of it. The ports and addresses come from
 * the kubelet's config file; with none there is no kubelet of ours to wait for. Bash's /dev/tcp,
 * so the host needs no curl.
 */
export function kubeletWaitFunction(log: string, seconds = KUBELET_HEALTHY_SECONDS): string {
  return `kubelet_wait_healthy() {
  local cfg="$ROOT/var/lib/kubelet/config.yaml" hp=10248 ha=127.0.0.1 sp=10250 sa=127.0.0.1 v
  [ -f "$cfg" ] || { log "no $cfg: not waiting for the kubelet to answer"; return 0; }
  v=$(sed -n 's/^healthzPort: *\\([0-9]*\\).*/\\1/p' "$cfg" | head -n 1); [ -n "$v" ] && hp=$v
  v=$(sed -n 's/^healthzBindAddress: *"\\{0,1\\}\\([0-9.]*\\).*/\\1/p' "$cfg" | head -n 1); [ -n "$v" ] && [ "$v" != 0.0.0.0 ] && ha=$v
  v=$(sed -n 's/^port: *\\([0-9]*\\).*/\\1/p' "$cfg" | head -n 1); [ -n "$v" ] && sp=$v
  v=$(sed -n 's/^address: *"\\{0,1\\}\\([0-9.]*\\).*/\\1/p' "$cfg" | head -n 1); [ -n "$v" ] && [ "$v" != 0.0.0.0 ] && sa=$v
  [ "$hp" = 0 ] && { log "the kubelet's health port is off: not waiting for it"; return 0; }
  local deadline=$((SECONDS + ${seconds}))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n" >&3 && head -n 1 <&3 | grep -q " 200 "' "$ha" "$hp" 2>/dev/null \
      && timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$sa" "$sp" 2>/dev/null; then
      log "the kubelet answers on $ha:$hp/healthz and $sa:$sp"; return 0
    fi
    sleep 0.5
  done
  fail "the kubelet did not answer on http://$ha:$hp/healthz and port $sa:$sp within ${seconds} s of its restart; see ${log}"
}
`;
}

/**
 * Lines that (re)start a service. `when`: `changed` restarts on change (and starts it if it is
 * not running); `changed-and-running` restarts only a running service (an upgrade; the first
 * start belongs to a later step); `changed-or-stopped` also starts a stopped one. A restarted
 * kubelet is waited for until it answers (kubeletWaitFunction), unless `waitHealthy` is false: a
 * kubelet joining with a bootstrap token serves nothing until its certificate request is approved,
 * which the step's later wait for the Node covers.
 */
export function restartLines(
  manager: ServiceManager,
  service: Service,
  when: "changed" | "changed-and-running" | "changed-or-stopped",
  opts: { locked?: boolean; waitHealthy?: boolean } = {},
): string {
  if (manager === ServiceManager.None) {
    return `if [ "$changed" = 1 ]; then log "serviceManager none: ${service} was not (re)started"; fi\n`;
  }
  const waitHealthy = service === "kubelet" && opts.waitHealthy !== false;
  if (manager === ServiceManager.Systemd) {
    const condition =
      when === "changed-and-running"
        ? `[ "$changed" = 1 ] && systemctl is-active --quiet ${service}`
        : `[ "$changed" = 1 ] || ! systemctl is-active --quiet ${service}`;
    const wait = waitHealthy ? "; kubelet_wait_healthy" : "";
    return `${waitHealthy ? kubeletWaitFunction("journalctl -u kubelet") : ""}systemctl daemon-reload
systemctl enable ${service} >/dev/null 2>&1
if ${condition}; then systemctl restart ${service} && log "restarted ${service}"${wait}; fi
`;
  }
  const condition = when === "changed-and-running" ? `[ "$changed" = 1 ] && svc_running ${service}` : `[ "$changed" = 1 ] || ! svc_running ${service}`;
  const runtime = service === "kubelet" ? "svc_wait_runtime; " : "";
  const wait = waitHealthy ? "; kubelet_wait_healthy" : "";
  const lines = `if ${condition}; then svc_stop ${service}; ${runtime}svc_start ${service} ${shellQuote(PROCESS_COMMAND[service])}; log "started ${service} (pid $(svc_pid ${service}))"${wait}; fi
`;
  const fn = waitHealthy ? kubeletWaitFunction("$ROOT/var/log/kube-on-kube/kubelet.log") : "";
  return fn + (opts.locked === false ? lines : lockedLines(manager, lines));
}

/**
 * `body` as one critical section against other restarts of the host's services (process mode; the
 * others need none: systemd serializes its own jobs). Runs in the script's own shell, so variables
 * and `fail` work as outside it. Not nestable: a body must not contain lockedLines again.
 */
export function lockedLines(manager: ServiceManager, body: string): string {
  if (manager !== ServiceManager.Process) return body;
  return `mkdir -p "$RUN_DIR"
{
svc_lock_wait
${body}} 9>"$RUN_DIR/services.lock"
`;
}

/** Lines that fail unless both services run (verify). */
export function runningCheckLines(manager: ServiceManager): string {
  if (manager === ServiceManager.Systemd) {
    return `for unit in containerd kubelet; do systemctl is-active --quiet "$unit" || fail "$unit is not active; see journalctl -u $unit"; done\n`;
  }
  if (manager === ServiceManager.Process) {
    return `for svc in containerd kubelet; do svc_running "$svc" || fail "$svc is not running; see $ROOT/var/log/kube-on-kube/$svc.log"; done\n`;
  }
  return "";
}

/**
 * Lines that set `running_containerd` and `running_kubelet` to `true` or `false` without failing,
 * by the same tests as `runningCheckLines` (the operator's host probe reports rather than fails).
 * With `none` nothing is managed, so both are `false`.
 */
export function runningStatusLines(manager: ServiceManager): string {
  const test = (service: Service) =>
    manager === ServiceManager.Systemd ? `systemctl is-active --quiet ${service}` : manager === ServiceManager.Process ? `svc_running ${service}` : "false";
  return (["containerd", "kubelet"] as const).map((s) => `running_${s}=false; if ${test(s)}; then running_${s}=true; fi
`).join("");
}

/** Lines that stop both services for good (cleanup). */
export function stopLines(manager: ServiceManager): string {
  if (manager === ServiceManager.Systemd) {
    return `for unit in kubelet containerd; do systemctl disable --now "$unit" >/dev/null 2>&1 || true; done\n`;
  }
  if (manager === ServiceManager.Process) return `svc_stop kubelet\nsvc_stop containerd\n`;
  return "";
}
