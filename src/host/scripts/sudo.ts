/**
 * Root on the host for an SSH user that is not root. Every host script needs root (it writes under
 * /etc, /opt and /usr/local and starts daemons), so for another user the command runs through
 * `sudo -n`: non-interactive, because nothing could answer a password prompt over a command-mode
 * SSH session, and a sudo that asks for one fails at once instead of hanging the step.
 *
 * The wrapper is applied where the user is known (WorkerNode from `machine.ssh.user`, HostProbe
 * from its connection), not inside SshStep: SshStep and @pulumi/command's `remote.Command` then run
 * the same text, and both stay plain "run this command" executors. For root the command comes back
 * unchanged, so stacks of root machines see no diff.
 */
import { shellQuote } from "./shell";

/** Whether `user` (default root) needs sudo to run the host scripts. */
export function needsSudo(user: string | undefined): boolean {
  return (user ?? "root") !== "root";
}

/**
 * `command` (a complete remote command such as `bashCommand(...)`), run as root: unchanged for
 * root, else through `sudo -n` after a check that names the user and the host and says what to
 * configure when sudo is missing or wants a password. `/bin/sh -c` with one quoted word, like
 * bashCommand, so it works whatever the user's login shell is; stdin reaches `command` untouched
 * (the check reads none of it).
 */
export function asRoot(user: string | undefined, command: string): string {
  if (!needsSudo(user)) return command;
  const check = `u=$(id -un 2>/dev/null || echo "uid $(id -u)"); h=$(uname -n)
if [ "$(id -u)" = 0 ]; then exec ${command}; fi
if ! command -v sudo >/dev/null 2>&1; then
  echo "kube-on-kube: ssh user $u on host $h is not root and sudo is not installed there: install sudo and give $u password-less sudo (a NOPASSWD rule in /etc/sudoers.d), or connect as root" >&2
  exit 1
fi
if ! why=$(sudo -n true 2>&1); then
  echo "kube-on-kube: ssh user $u on host $h cannot become root with sudo -n ($(printf '%s' "$why" | tr '\\n' ' ')): kube-on-kube needs password-less sudo for it; add a NOPASSWD rule (e.g. '$u ALL=(ALL) NOPASSWD: ALL' in /etc/sudoers.d/kube-on-kube), or connect as root" >&2
  exit 1
fi
exec sudo -n -- ${command}
`;
  return `/bin/sh -c ${shellQuote(check)}`;
}
