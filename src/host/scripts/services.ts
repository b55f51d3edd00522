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

/**
 * Lines that (re)start a service. `when`: `changed` restarts on change (and starts it if it is
 * not running); `changed-and-running` restarts only a running service (an upgrade; the first
 * start belongs to a later step); `changed-or-stopped` also starts a stopped one.
 */
export function restartLines(
  manager: ServiceManager,
  service: Service,
  when: "changed" | "changed-and-running" | "changed-or-stopped",
  opts: { locked?: boolean } = {},
): string {
  if (manager === ServiceManager.None) {
    return `if [ "$changed" = 1 ]; then log "serviceManager none: ${service} was not (re)started"; fi\n`;
  }
  if (manager === ServiceManager.Systemd) {
    const condition =
      when === "changed-and-running"
        ? `[ "$changed" = 1 ] && systemctl is-active --quiet ${service}`
        : `[ "$changed" = 1 ] || ! systemctl is-active --quiet ${service}`;
    return `systemctl daemon-reload
systemctl enable ${service} >/dev/null 2>&1
if ${condition}; then systemctl restart ${service} && log "restarted ${service}"; fi
`;
  }
  const condition = when === "changed-and-running" ? `[ "$changed" = 1 ] && svc_running ${service}` : `[ "$changed" = 1 ] || ! svc_running ${service}`;
  const wait = service === "kubelet" ? "svc_wait_runtime; " : "";
  const lines = `if ${condition}; then svc_stop ${service}; ${wait}svc_start ${service} ${shellQuote(PROCESS_COMMAND[service])}; log "started ${service} (pid $(svc_pid ${service}))"; fi
`;
  return opts.locked === false ? lines : lockedLines(manager, lines);
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
