/**
 * How kube-on-kube runs the OpenSSH client, shared by `SshStep` (host steps under Pulumi) and the
 * operator's `HostProbe` (short checks and repairs outside Pulumi), so both pin host keys, hand
 * over credentials and explain failures the same way.
 *
 * SshStep's dynamic provider is serialized into the state by Pulumi's closure serializer, which
 * copies these functions into the provider's text. So each one loads its modules with `require`
 * when it runs and captures nothing from this module: no imports, no constants, no secrets.
 */

/* eslint-disable @typescript-eslint/no-require-imports -- see above: serialized with the provider. */

export interface SshConnection {
  readonly host: string;
  readonly port?: number;
  readonly user?: string;
  readonly hostKey?: string;
  readonly privateKey?: string;
  readonly password?: string;
}

export interface SshInvocationOptions {
  /** ssh's ConnectTimeout, in seconds. Default 10. */
  readonly connectTimeoutSeconds?: number;
  /** ssh's ConnectionAttempts. Default 3. */
  readonly connectionAttempts?: number;
}

export interface SshInvocation {
  /** Arguments of `ssh`, ending with the destination and the remote command. */
  readonly args: string[];
  /** Variables to add to the environment of `ssh` (the askpass helper for a password). */
  readonly env: Record<string, string>;
}

/**
 * The `ssh` arguments for one run of `command` on `c`. Writes the pinned known_hosts file and the
 * credentials (mode 0600) into `dir`, which must be a private directory (mkdtemp) that the caller
 * removes once `ssh` has exited. A key means BatchMode; a password is answered by an askpass
 * script that reads it from its file, so it never appears in an argument or the environment.
 * Without `hostKey` any host key is accepted: callers must have decided to allow that.
 */
export function sshInvocation(c: SshConnection, dir: string, command: string, options: SshInvocationOptions = {}): SshInvocation {
  const fs = require("node:fs") as typeof import("node:fs");
  const path = require("node:path") as typeof import("node:path");
  const port = c.port ?? 22;
  const env: Record<string, string> = {};
  const args = [
    "-p",
    String(port),
    "-o",
    `ConnectTimeout=${options.connectTimeoutSeconds ?? 10}`,
    "-o",
    `ConnectionAttempts=${options.connectionAttempts ?? 3}`,
    "-o",
    "LogLevel=ERROR",
    "-o",
    "IdentitiesOnly=yes",
  ];
  if (c.hostKey) {
    const knownHosts = path.join(dir, "known_hosts");
    // ssh looks a host up as "[host]:port", and as plain "host" on port 22.
    fs.writeFileSync(knownHosts, `[${c.host}]:${port} ${c.hostKey}\n${port === 22 ? `${c.host} ${c.hostKey}\n` : ""}`);
    args.push("-o", `UserKnownHostsFile=${knownHosts}`, "-o", "StrictHostKeyChecking=yes", "-o", "GlobalKnownHostsFile=/dev/null");
  } else {
    args.push("-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "GlobalKnownHostsFile=/dev/null");
  }
  if (c.privateKey) {
    const key = path.join(dir, "key");
    fs.writeFileSync(key, c.privateKey.endsWith("\n") ? c.privateKey : `${c.privateKey}\n`, { mode: 0o600 });
    args.push("-i", key, "-o", "BatchMode=yes");
  } else if (c.password) {
    const secret = path.join(dir, "password");
    const askpass = path.join(dir, "askpass");
    fs.writeFileSync(secret, c.password, { mode: 0o600 });
    fs.writeFileSync(askpass, `#!/bin/sh\ncat '${secret}'\n`, { mode: 0o700 });
    Object.assign(env, { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: "force", DISPLAY: "none" });
    args.push("-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "NumberOfPasswordPrompts=1");
  }
  args.push(`${c.user ?? "root"}@${c.host}`, command);
  return { args, env };
}

/** `user@host:port`: how errors name the host. */
export function sshDestination(c: SshConnection): string {
  return `${c.user ?? "root"}@${c.host}:${c.port ?? 22}`;
}

/**
 * Why an `ssh` run that exited with `code` failed, on one line: a refused host key or an
 * unreachable host are said plainly; otherwise the last lines of the remote output. ssh never
 * echoes the key or password it was given, and the scripts keep secrets out of their output.
 */
export function sshFailureReason(c: SshConnection, code: number | null, stderr: string, stdout: string): string {
  const why = (stderr.trim() || stdout.trim()).split("\n").slice(-8).join(" | ");
  if (code === 255 && /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/.test(stderr)) {
    return `the host's key does not match the pinned ssh.hostKey (${(c.hostKey ?? "").split(" ")[0]}); refusing to connect. If the host was reinstalled, update ssh.hostKey from a trusted source.`;
  }
  if (code === 255 && /Connection refused|timed out|No route to host/.test(stderr)) return `cannot connect: ${why}`;
  return why;
}
