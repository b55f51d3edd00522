/**
 * Where the operator's SSH credentials touch the disk, and who inherits its passphrase.
 *
 * Every `ssh` run (the HostProbe in this process, SshStep in the engine's dynamic provider) writes
 * the host's private key or password to a 0600 file in a fresh 0700 directory and removes it when
 * `ssh` exits (src/host/ssh-client.ts `privateRunDir`). A process killed in between (SIGKILL,
 * OOM, node loss) cannot remove it: so those directories live under one directory of the
 * operator's work volume, not the shared OS temp directory, and the operator empties that
 * directory whenever it starts. The engine and its providers learn it from `KOK_SSH_DIR`.
 */
import { chmodSync, mkdirSync, rmSync } from "node:fs";
import * as path from "node:path";

/** Tells SshStep's provider (in the engine's process tree) where to put credentials. */
export const SSH_DIR_VARIABLE = "KOK_SSH_DIR";

/** The credentials directory under the operator's work root. */
export function credentialsDirOf(workRoot: string): string {
  return path.join(workRoot, "ssh");
}

/**
 * Empties `dir` (what a killed predecessor left) and makes it again, 0700. Call once at start,
 * before anything connects to a host.
 */
export function resetCredentialsDir(dir: string): string {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // mkdir's mode passes through the umask, and an existing parent chain is left as it was.
  chmodSync(dir, 0o700);
  return dir;
}

/**
 * Removes `names` from this process's environment and returns their values: the passphrase is
 * then handed to the engine alone (StackRunner's `env`), and no other child of the operator (an
 * `ssh`, anything a library starts) inherits it.
 */
export function withdrawFromEnvironment(names: readonly string[], env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const taken: Record<string, string> = {};
  for (const name of names) {
    const value = env[name];
    if (value !== undefined) taken[name] = value;
    delete env[name];
  }
  return taken;
}
