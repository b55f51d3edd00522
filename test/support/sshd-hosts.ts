/**
 * The tests' throwaway SSH hosts, on 127.0.0.x (x in 10..250) in a temporary directory, built from
 * the parts the demo's kept hosts use (src/dev/sshd-hosts.ts):
 *   const hosts = await startSshHosts(3);   // in beforeAll
 *   await stopSshHosts(hosts);              // in afterAll
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { canConnect, prepareDaemons, prepareHost, SSH_PORT, startSshd, stopSshd, type SshHost } from "../../src/dev/sshd-hosts";

export { startSshd, stopSshd, type SshHost } from "../../src/dev/sshd-hosts";

// A random start, so that two test processes rarely probe the same addresses.
let nextOctet = 10 + Math.floor(Math.random() * 200);

export async function startSshHosts(count: number, prefix = "worker"): Promise<SshHost[]> {
  prepareDaemons();
  const base = mkdtempSync(path.join(tmpdir(), "kok-sshd-"));
  const hosts: SshHost[] = [];
  for (let i = 0; i < count; i++) {
    let ip: string;
    do {
      ip = `127.0.0.${nextOctet}`;
      nextOctet = nextOctet >= 250 ? 10 : nextOctet + 1;
    } while (await canConnect(ip, SSH_PORT));
    const host = prepareHost(path.join(base, `${prefix}-${i}`), `${prefix}-${i}`, ip);
    await startSshd(host);
    hosts.push(host);
  }
  return hosts;
}

export async function stopSshHosts(hosts: readonly SshHost[]): Promise<void> {
  for (const host of hosts) await stopSshd(host);
  const bases = new Set(hosts.map((h) => path.dirname(h.dir)));
  for (const base of bases) rmSync(base, { recursive: true, force: true });
}

/**
 * Runs a command on a host with the real OpenSSH client, checking the pinned host key.
 * Asynchronous on purpose: the mirror a script downloads from may live in this same process.
 */
export function sshRun(host: SshHost, command: string, stdin = ""): Promise<{ status: number; stdout: string; stderr: string }> {
  const knownHosts = path.join(host.dir, "known_hosts");
  // OpenSSH looks port 22 up by the bare address (network hosts, host-netns.ts).
  writeFileSync(knownHosts, host.port === 22 ? `${host.ip} ${host.hostKey}\n` : `[${host.ip}]:${host.port} ${host.hostKey}\n`);
  const args = ["-i", path.join(host.dir, "client_key"), "-p", String(host.port), "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", `${host.user}@${host.ip}`, command];
  return new Promise((resolve, reject) => {
    const child = spawn("ssh", args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("close", (status) => resolve({ status: status ?? -1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}
