/**
 * HostProbe against real hosts: real sshd daemons on loopback addresses and the real OpenSSH
 * client. The "installed" packages are stand-ins laid out exactly as the install steps lay them
 * out (version stamps under /opt/kube-on-kube, binaries under /usr/local), and the daemons are
 * small shell scripts, so the restart test checks the real pid-file machinery of services.ts.
 *
 * Password authentication is not tested here: the test hosts accept public keys only (they run
 * without PAM and root has no password to check), so there is no real password path to exercise.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HostProbe, type HostConnection, type HostLayoutLike } from "../../src/host/host-probe";
import { startSshd, startSshHosts, stopSshd, stopSshHosts, type SshHost } from "../support/sshd-hosts";
import { eventually } from "../support/poll";

let hosts: SshHost[];
const operations: Array<[string, string]> = [];
const figures: Record<string, number> = {};
// A private credentials directory: other processes' probes (a parallel e2e run) must not count here.
const credentialsDir = mkdtempSync(path.join(tmpdir(), "kok-probe-test-"));
const probe = new HostProbe({ timeoutSeconds: 30, credentialsDir, onOperation: (op, result) => operations.push([op, result]) });

const connectionOf = (host: SshHost, extra: Partial<HostConnection> = {}): HostConnection => ({
  host: host.ip,
  port: host.port,
  user: host.user,
  hostKey: host.hostKey,
  privateKey: host.privateKey,
  ...extra,
});
const processLayout = (host: SshHost): HostLayoutLike => ({ installRoot: host.root, serviceManager: "process" });
// The directory is this test's alone: anything in it is a run's leftover.
const probeDirs = () => readdirSync(credentialsDir);

/** A package as the install step leaves it: a stamped version directory behind a `current` link. */
function installStamp(root: string, pkg: string, version: string): void {
  const dir = path.join(root, "opt/kube-on-kube", pkg, `${version}-0123456789ab`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, ".kube-on-kube-version"), `${version}\n`);
  symlinkSync(dir, path.join(root, "opt/kube-on-kube", pkg, "current"));
}

/**
 * A stand-in daemon: prints a version line for --version (hanging instead while `hang-version`
 * exists), otherwise runs until killed or until its own file is removed with the host.
 */
function installDaemon(root: string, relative: string, versionLine: string): void {
  const file = path.join(root, relative);
  mkdirSync(path.dirname(file), { recursive: true });
  const hang = path.join(root, "hang-version");
  writeFileSync(
    file,
    `#!/bin/bash
if [ "\${1:-}" = "--version" ]; then
  while [ -e ${JSON.stringify(hang)} ]; do sleep 0.1; done
  echo ${JSON.stringify(versionLine)}; exit 0
fi
while [ -e "$0" ]; do sleep 0.2; done
`,
  );
  chmodSync(file, 0o755);
}

function pidOf(host: SshHost, service: string): number | undefined {
  const file = path.join(host.root, "run/kube-on-kube", `${service}.pid`);
  return existsSync(file) ? Number(readFileSync(file, "utf8").trim()) : undefined;
}

function runs(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  hosts = await startSshHosts(2, "probe");
});
afterAll(async () => {
  rmSync(credentialsDir, { recursive: true, force: true });
  // The stand-in daemons were started by the restart test; stop exactly those.
  for (const host of hosts ?? []) {
    for (const service of ["containerd", "kubelet"]) {
      const pid = pidOf(host, service);
      if (runs(pid)) process.kill(pid!, "SIGTERM");
    }
  }
  await stopSshHosts(hosts ?? []);
  console.log(`host-probe figures (ms): ${JSON.stringify(figures)}`);
});

describe("HostProbe over real SSH", () => {
  it("probes a host with nothing installed: no versions, nothing running", async () => {
    const result = await probe.probe(connectionOf(hosts[0]), processLayout(hosts[0]));
    expect(result.observedVersions).toEqual({});
    expect(result.services).toEqual({ containerd: false, kubelet: false });
    figures.probeEmptyHost = Math.round(result.durationMs);
  });

  it("reads back the installed versions, as the verify step does", async () => {
    const host = hosts[0];
    installStamp(host.root, "containerd", "1.7.22");
    installStamp(host.root, "runc", "1.1.14");
    installStamp(host.root, "kubelet", "v1.36.3");
    installStamp(host.root, "cni", "v1.5.1");
    installDaemon(host.root, "usr/local/bin/containerd", "containerd github.com/containerd/containerd v1.7.22");
    installDaemon(host.root, "usr/local/bin/kubelet", "Kubernetes v1.36.3");
    const result = await probe.probe(connectionOf(host), processLayout(host));
    expect(result.observedVersions).toEqual({ containerd: "1.7.22", runc: "1.1.14", kubelet: "v1.36.3", cni: "v1.5.1" });
    expect(result.services).toEqual({ containerd: false, kubelet: false });
    figures.probeInstalledHost = Math.round(result.durationMs);
  });

  it("restarts stopped process-mode services: pid files appear and the daemons run", async () => {
    const host = hosts[0];
    expect(pidOf(host, "containerd")).toBeUndefined();
    const started = performance.now();
    await probe.restartServices(connectionOf(host), processLayout(host));
    figures.restartStoppedServices = Math.round(performance.now() - started);
    const first = { containerd: pidOf(host, "containerd"), kubelet: pidOf(host, "kubelet") };
    expect(runs(first.containerd)).toBe(true);
    expect(runs(first.kubelet)).toBe(true);
    // The pid is bash's until it execs the daemon: wait (bounded) for the daemon's command line.
    await eventually("the kubelet stand-in to run under the recorded pid", () => readFileSync(`/proc/${first.kubelet}/cmdline`, "utf8").includes(path.join(host.root, "usr/local/bin/kubelet")));
    expect((await probe.probe(connectionOf(host), processLayout(host))).services).toEqual({ containerd: true, kubelet: true });

    // A restart of running services replaces both processes.
    const t0 = performance.now();
    await probe.restartServices(connectionOf(host), processLayout(host));
    figures.restartRunningServices = Math.round(performance.now() - t0);
    const second = { containerd: pidOf(host, "containerd"), kubelet: pidOf(host, "kubelet") };
    expect(second.containerd).not.toBe(first.containerd);
    expect(second.kubelet).not.toBe(first.kubelet);
    expect(runs(first.containerd) || runs(first.kubelet)).toBe(false);
    expect(runs(second.containerd) && runs(second.kubelet)).toBe(true);
  });

  it("serializes concurrent restarts of one host: one containerd and one kubelet run afterwards, none orphaned", async () => {
    // The operator's repair and an install step (or two repairs) can restart the same host at
    // once; interleaved, both read the old pid and both start a daemon, and one is left orphaned.
    const host = hosts[0];
    const daemons = (service: string) => {
      const matching = readdirSync("/proc")
        .filter((d) => /^\d+$/.test(d))
        .filter((pid) => {
          try {
            const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
            return cmd.includes(path.join(host.root, "usr/local/bin", service)) && !cmd.includes("--version");
          } catch {
            return false;
          }
        });
      // The stand-in's loop forks for each `sleep`: a child caught before its exec still shows
      // the daemon's command line. It is that daemon, not a second one.
      const parentOf = (pid: string) => {
        try {
          return readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ")[1];
        } catch {
          return undefined;
        }
      };
      return matching.filter((pid) => !matching.includes(parentOf(pid) ?? ""));
    };
    // Each restart waits up to 10 s for the stand-in runtime: two in a row need more than 30 s.
    const patient = new HostProbe({ timeoutSeconds: 120, credentialsDir });
    await Promise.all([1, 2].map(() => patient.restartServices(connectionOf(host), processLayout(host))));
    await eventually("the kubelet stand-in to run under the recorded pid", () => readFileSync(`/proc/${pidOf(host, "kubelet")}/cmdline`, "utf8").includes(path.join(host.root, "usr/local/bin/kubelet")));
    expect(daemons("containerd")).toEqual([String(pidOf(host, "containerd"))]);
    expect(daemons("kubelet")).toEqual([String(pidOf(host, "kubelet"))]);
  });

  it("refuses to restart when kube-on-kube does not manage the services", async () => {
    await expect(probe.restartServices(connectionOf(hosts[0]), { installRoot: hosts[0].root, serviceManager: "none" })).rejects.toThrow(
      `cannot restart services on root@${hosts[0].ip}:${hosts[0].port}: its serviceManager is none`,
    );
  });

  it("refuses a host whose key is not the pinned one, with SshStep's message", async () => {
    const [host, other] = hosts;
    const error = await probe.probe(connectionOf(host, { hostKey: other.hostKey }), processLayout(host)).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe(
      `host probe of root@${host.ip}:${host.port} failed (exit 255): the host's key does not match the pinned ssh.hostKey (ssh-ed25519); refusing to connect. If the host was reinstalled, update ssh.hostKey from a trusted source.`,
    );
  });

  it("reports wrong credentials on one line naming the host, never the key or password", async () => {
    const [host, other] = hosts;
    const wrongKey = await probe.probe(connectionOf(host, { privateKey: other.privateKey }), processLayout(host)).catch((e: Error) => e);
    const message = (wrongKey as Error).message;
    expect(message).toMatch(new RegExp(`^host probe of root@${host.ip.replace(/\./g, "\\.")}:${host.port} failed \\(exit 255\\): .*Permission denied`));
    expect(message).not.toContain("\n");
    const keyBody = other.privateKey.split("\n").filter((l) => l && !l.startsWith("-----"));
    for (const line of keyBody) expect(message).not.toContain(line);

    const password = "pw-Zq81-never-in-errors";
    const withPassword = await probe.restartServices(connectionOf(host, { privateKey: undefined, password }), processLayout(host)).catch((e: Error) => e);
    expect((withPassword as Error).message).toMatch(/^host restart of root@.* failed \(exit 255\): .*Permission denied/);
    expect((withPassword as Error).message).not.toContain(password);
  });

  it("names an unreachable host, and probes it again once it is back", async () => {
    const host = hosts[1];
    await stopSshd(host);
    try {
      await expect(probe.probe(connectionOf(host), processLayout(host))).rejects.toThrow(
        new RegExp(`^host probe of root@${host.ip.replace(/\./g, "\\.")}:${host.port} failed \\(exit 255\\): cannot connect: .*Connection refused`),
      );
    } finally {
      await startSshd(host);
    }
    expect((await probe.probe(connectionOf(host), processLayout(host))).observedVersions).toEqual({});
  });

  it("refuses an ssh option as the user: the real ssh never runs it (ssh.user -oProxyCommand=…)", async () => {
    const host = hosts[0];
    const marker = mkdtempSync(path.join(tmpdir(), "kok-proxycommand-"));
    try {
      // Passed as "user@host" without "--", ssh read this as an option and ran the command.
      const user = `-oProxyCommand=touch ${marker}/pwned`;
      await expect(probe.probe(connectionOf(host, { user }), processLayout(host))).rejects.toThrow(/ssh user .* is not a POSIX user name/);
      expect(readdirSync(marker)).toEqual([]);
    } finally {
      rmSync(marker, { recursive: true, force: true });
    }
  });

  it("kills an operation that outlives its timeout", async () => {
    const host = hosts[0];
    const hang = path.join(host.root, "hang-version");
    writeFileSync(hang, "");
    try {
      const impatient = new HostProbe({ timeoutSeconds: 2, credentialsDir });
      await expect(impatient.probe(connectionOf(host), processLayout(host))).rejects.toThrow(
        `host probe of root@${host.ip}:${host.port} failed (exit null): timed out after 2s and was killed`,
      );
    } finally {
      rmSync(hang, { force: true });
    }
  });

  it("reported every operation, and left no credential directory behind", () => {
    expect(operations).toContainEqual(["probe", "success"]);
    expect(operations).toContainEqual(["probe", "error"]);
    expect(operations).toContainEqual(["restart", "success"]);
    expect(operations).toContainEqual(["restart", "error"]);
    expect(probeDirs()).toEqual([]);
  });
});
