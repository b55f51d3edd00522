/**
 * Real SSH hosts on this machine: one Debian OpenSSH daemon per host with its own host key,
 * authorized client key, config and root directory (the WorkerNode's installRoot). A loopback host
 * listens on its own 127.x address and shares the machine's network stack; a network host
 * (`netns` set, host-netns.ts) runs its daemon in its own network, mount and UTS namespaces on its
 * address in the dev cluster's hosts subnet, port 22. Nothing listens on another address.
 *
 * The demo's hosts (`npm start`) are kept network hosts (sandbox-fleet.ts `netnsHosts`): each keeps
 * its keys and root in a directory of its own from one start to the next, as a machine keeps its
 * disk across reboots. The tests' throwaway hosts (test/support/sshd-hosts.ts) are built from the
 * same parts.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import * as path from "node:path";
import { inHost, prepareHostDirs } from "./host-netns";
import { stopFromPlainPidFile } from "./processes";

export const SSHD = "/usr/sbin/sshd";

export interface SshHost {
  readonly name: string;
  readonly ip: string;
  readonly port: number;
  readonly user: string;
  /** The client's private key (OpenSSH PEM); a secret in the tests that use it. */
  readonly privateKey: string;
  /** The host's public key line ("ssh-ed25519 AAAA..."), to pin. */
  readonly hostKey: string;
  /** The host's root directory: the WorkerNode's installRoot. */
  readonly root: string;
  readonly dir: string;
  /** A host with namespaces of its own (host-netns.ts): sshd runs in them. Absent: a loopback host. */
  readonly netns?: { readonly path: string; readonly name: string; readonly index: number };
  process?: ChildProcess;
}

/** The Debian packages the SSH hosts need, installed with apt-get when a binary is missing (CI machines start fresh). */
const NEEDED: Record<string, string> = { "/usr/sbin/sshd": "openssh-server", "/usr/bin/ssh": "openssh-client", "/usr/bin/ssh-keygen": "openssh-client", "/usr/bin/curl": "curl", "/usr/bin/openssl": "openssl" };

function requireSshd(): void {
  const missing = [...new Set(Object.entries(NEEDED).filter(([bin]) => !existsSync(bin)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  try {
    execFileSync("apt-get", ["update"], { stdio: "pipe", env });
    execFileSync("apt-get", ["install", "-y", "--no-install-recommends", ...missing], { stdio: "pipe", env });
  } catch (e) {
    throw new Error(`the SSH hosts need Debian's ${missing.join(", ")} and installing them failed: ${(e as Error).message}`);
  }
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is still missing after installing openssh-server`);
}

/** Whether something accepts a TCP connection on ip:port within a second (an unanswered SYN counts as no). */
export const canConnect = (ip: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect({ host: ip, port });
    socket.setTimeout(1000, () => (socket.destroy(), resolve(false)));
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });

async function waitUntil(what: string, probe: () => Promise<boolean>, attempts = 200): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not happen`);
}

function keygen(file: string, comment: string): void {
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file]);
}

/** Starts (or restarts) the daemon of a host whose files exist. */
export async function startSshd(host: SshHost): Promise<void> {
  const args = ["-D", "-e", "-f", path.join(host.dir, "sshd_config")];
  // A network host's sshd runs in its namespaces, and so does everything started over SSH.
  if (host.netns) prepareHostDirs(host.root);
  const command = host.netns ? inHost(host.netns.path, host.name, host.root, SSHD, args) : { command: SSHD, args };
  const child = spawn(command.command, command.args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  host.process = child;
  let exited = false;
  child.once("exit", () => (exited = true));
  await waitUntil(`sshd on ${host.ip}:${host.port} to listen`, async () => {
    if (exited) throw new Error(`sshd for ${host.name} on ${host.ip}:${host.port} exited: ${stderr}`);
    return canConnect(host.ip, host.port);
  });
}

/** Stops a host's daemon (a host that is down). */
export async function stopSshd(host: SshHost): Promise<void> {
  const child = host.process;
  // A daemon gone already (a signal sets signalCode, not exitCode) would never emit "exit" again.
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
  host.process = undefined;
}

export const SSH_PORT = 2222;

/** Writes what a host's daemon needs into `dir`, keeping keys that are there already. */
export function prepareHost(dir: string, name: string, ip: string, port = SSH_PORT): SshHost {
  const root = path.join(dir, "root");
  mkdirSync(root, { recursive: true });
  const hostKeyFile = path.join(dir, "ssh_host_ed25519_key");
  const clientKeyFile = path.join(dir, "client_key");
  if (!existsSync(hostKeyFile)) keygen(hostKeyFile, name);
  if (!existsSync(clientKeyFile)) keygen(clientKeyFile, `client-of-${name}`);
  writeFileSync(path.join(dir, "authorized_keys"), readFileSync(`${clientKeyFile}.pub`));
  writeFileSync(
    path.join(dir, "sshd_config"),
    [
      `ListenAddress ${ip}:${port}`,
      `HostKey ${hostKeyFile}`,
      `PidFile ${path.join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
      "UsePAM no",
      "StrictModes no",
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PubkeyAuthentication yes",
      "LogLevel ERROR",
      "",
    ].join("\n"),
  );
  return {
    name,
    ip,
    port,
    user: "root",
    privateKey: readFileSync(clientKeyFile, "utf8"),
    hostKey: readFileSync(`${hostKeyFile}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" "),
    root,
    dir,
  };
}

/** Makes sure sshd is installed and its privilege-separation directory exists. */
export function prepareDaemons(): void {
  requireSshd();
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
}


/** Stops the daemon of a kept host by its pid file, if one of ours still runs. */
export async function stopLeftoverSshd(dir: string): Promise<boolean> {
  return stopFromPlainPidFile(path.join(dir, "sshd.pid"), path.join(dir, "sshd_config"));
}
