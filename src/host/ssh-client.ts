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
 * credentials (mode 0600) into `dir`, which must be a private directory (`privateRunDir`) that the
 * caller removes once `ssh` has exited. A key means BatchMode; a password is answered by an askpass
 * script that reads it from its file, so it never appears in an argument or the environment.
 * Without `hostKey` any host key is accepted: callers must have decided to allow that.
 *
 * The user goes in `-l` and the host after `--`, so neither can be read as an option
 * (`-oProxyCommand=…` as a user name ran a command on the operator with older OpenSSH clients);
 * and both are checked here too, whatever validated the Machine before.
 */
export function sshInvocation(c: SshConnection, dir: string, command: string, options: SshInvocationOptions = {}): SshInvocation {
  const fs = require("node:fs") as typeof import("node:fs");
  const path = require("node:path") as typeof import("node:path");
  const port = c.port ?? 22;
  const user = c.user ?? "root";
  // POSIX portable user names (useradd's NAME_REGEX), at most 32 characters.
  if (user.length > 32 || !/^[a-z_][a-z0-9_-]*[$]?$/.test(user)) {
    throw new Error(`ssh user ${JSON.stringify(user)} is not a POSIX user name (lower-case letters, digits, "_" and "-", not starting with "-" or a digit, at most 32 characters)`);
  }
  if (!c.host || c.host.startsWith("-") || /[\s@]/.test(c.host)) {
    throw new Error(`ssh host ${JSON.stringify(c.host)} is not a host name or address (it must not be empty, start with "-" or hold spaces or "@")`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`ssh port ${port} of ${c.host} is not a port number (1-65535)`);
  const env: Record<string, string> = {};
  const args = [
    "-l",
    user,
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
  args.push("--", c.host, command);
  return { args, env };
}

/**
 * A fresh private directory (0700, from mkdtemp) for one run's credentials and known_hosts, under
 * `base`, else `$KOK_SSH_DIR` (the operator sets it to a directory on its work volume that it
 * empties at start, for itself and for the engine's providers), else the OS temp directory. The
 * caller removes it when the run is over.
 */
export function privateRunDir(base?: string): string {
  const fs = require("node:fs") as typeof import("node:fs");
  const os = require("node:os") as typeof import("node:os");
  const path = require("node:path") as typeof import("node:path");
  const root = base || process.env.KOK_SSH_DIR || os.tmpdir();
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  return fs.mkdtempSync(path.join(root, "kok-ssh-"));
}

/**
 * The environment of a child the operator or a provider starts (`ssh`, the local kubectl steps):
 * only what such a tool needs (the search path, home, locale, proxies), never the engine's
 * passphrase, cloud credentials or anything else the parent happens to hold; plus `extra`.
 */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const keep = /^(PATH|HOME|USER|LOGNAME|SHELL|LANG|LANGUAGE|LC_[A-Z]+|TZ|TERM|(HTTPS?|NO|ALL)_PROXY|(https?|no|all)_proxy)$/;
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined && keep.test(name)) env[name] = value;
  return { ...env, ...extra };
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

const PRIVATE_KEY_BLOCK = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g;

/**
 * `message` without the given credentials (a key's text, line by line too, and a password) and
 * without any PEM private key: what the host layer itself knows is secret about a connection.
 */
export function scrubCredentials(message: string, credentials: readonly (string | undefined)[]): string {
  let out = message.replace(PRIVATE_KEY_BLOCK, "[REDACTED]");
  for (const value of credentials) {
    if (!value) continue;
    for (const part of [value, value.trim(), ...value.split("\n").filter((line) => line.trim().length >= 16)]) {
      if (part) out = out.split(part).join("[REDACTED]");
    }
  }
  return out;
}
