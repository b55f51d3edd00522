/**
 * SSH users other than root, on a real host: a real sshd on loopback, the real OpenSSH client, real
 * system users made for this test with Debian's useradd, and the real sudo. One user has a
 * NOPASSWD rule in /etc/sudoers.d and logs in with a key or with a password; another has no sudo
 * rights at all. The host scripts must run as root through `sudo -n` for the first and fail at
 * once, saying what to configure, for the second; and a whole WorkerNode goes up and is destroyed
 * as the first under the real Pulumi engine (stepProvider "openssh", a real mirror of Debian-built
 * artifacts, serviceManager "none"). The users, their homes and the sudoers drop-in are removed
 * afterwards.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMirror, type Mirror } from "../../src/cli/mirror";
import { runStep } from "../../src/components/ssh-step";
import { WorkerNode } from "../../src/components/worker-node";
import { HostProbe, type HostConnection, type HostLayoutLike } from "../../src/host/host-probe";
import { hostMarkerScript } from "../../src/host/scripts/node";
import { bashCommand } from "../../src/host/scripts/shell";
import { asRoot } from "../../src/host/scripts/sudo";
import { mirrorDirectory, workerArtifacts, type BuiltArtifact } from "../support/artifacts";
import { startSshd, startSshHosts, stopSshd, stopSshHosts, type SshHost } from "../support/sshd-hosts";
import { engineStack, requireEngine } from "../support/worker-engine";

const suffix = randomBytes(3).toString("hex");
const SUDOER = `kok-sudo-${suffix}`;
const PLAIN = `kok-plain-${suffix}`;
// No dot in the name: sudo skips drop-ins whose names contain one.
const DROP_IN = `/etc/sudoers.d/kok-test-${suffix}`;
const PASSWORD = `test-only-${randomBytes(9).toString("base64url")}`;

let host: SshHost;
let homes: string;
const created: string[] = [];
const keys: Record<string, string> = {};
const credentialsDir = mkdtempSync(path.join(tmpdir(), "kok-sudo-test-"));
const probe = new HostProbe({ timeoutSeconds: 60, credentialsDir });
const layout = (): HostLayoutLike => ({ installRoot: host.root, serviceManager: "process" });

const as = (user: string, auth: "key" | "password" = "key"): HostConnection => ({
  host: host.ip,
  port: host.port,
  user,
  hostKey: host.hostKey,
  ...(auth === "key" ? { privateKey: keys[user] } : { password: PASSWORD }),
});

/** A login user with its own key in ~/.ssh/authorized_keys; `password` unlocks password login too. */
function addUser(name: string, shell: string, password?: string): void {
  const home = path.join(homes, name);
  execFileSync("useradd", ["--create-home", "--home-dir", home, "--shell", shell, name]);
  created.push(name);
  // sshd without PAM refuses a locked account even for a key: give it a password, or "*" (none, not locked).
  if (password) execFileSync("chpasswd", [], { input: `${name}:${password}\n` });
  else execFileSync("usermod", ["--password", "*", name]);
  const keyFile = path.join(homes, `${name}.key`);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", keyFile]);
  keys[name] = readFileSync(keyFile, "utf8");
  mkdirSync(path.join(home, ".ssh"), { mode: 0o700 });
  writeFileSync(path.join(home, ".ssh/authorized_keys"), readFileSync(`${keyFile}.pub`));
  execFileSync("chown", ["-R", `${name}:${name}`, home]);
}

beforeAll(async () => {
  if (!existsSync("/usr/bin/sudo")) throw new Error("this test needs Debian's sudo (apt-get install sudo; .ci/run installs it)");
  [host] = await startSshHosts(1, "sudo");
  homes = mkdtempSync(path.join(tmpdir(), "kok-sudo-homes-"));
  chmodSync(homes, 0o755);
  addUser(SUDOER, "/bin/bash", PASSWORD);
  addUser(PLAIN, "/bin/sh");
  writeFileSync(DROP_IN, `${SUDOER} ALL=(ALL) NOPASSWD: ALL\n`, { mode: 0o440 });
  execFileSync("visudo", ["-c", "-q", "-f", DROP_IN]);
  // The test host takes keys from each user's own authorized_keys, and passwords (from /etc/shadow).
  const config = readFileSync(path.join(host.dir, "sshd_config"), "utf8")
    .replace(/^AuthorizedKeysFile (.*)$/m, "AuthorizedKeysFile $1 .ssh/authorized_keys")
    .replace(/^PasswordAuthentication no$/m, "PasswordAuthentication yes");
  writeFileSync(path.join(host.dir, "sshd_config"), config);
  await stopSshd(host);
  await startSshd(host);
  // What the probe reads: a version stamp under the host's root, which only root can reach (its
  // parent directory is a 0700 mkdtemp of root's).
  const stamp = path.join(host.root, "opt/kube-on-kube/kubelet/v1.36.3-0123456789ab");
  mkdirSync(stamp, { recursive: true });
  writeFileSync(path.join(stamp, ".kube-on-kube-version"), "v1.36.3\n");
  execFileSync("ln", ["-s", stamp, path.join(host.root, "opt/kube-on-kube/kubelet/current")]);
});

afterAll(async () => {
  rmSync(DROP_IN, { force: true });
  for (const name of created) execFileSync("userdel", ["--remove", name], { stdio: "ignore" });
  if (homes) rmSync(homes, { recursive: true, force: true });
  rmSync(credentialsDir, { recursive: true, force: true });
  if (host) await stopSshHosts([host]);
});

describe("host scripts as a user other than root", () => {
  it("runs a script as root through sudo -n for a user with a NOPASSWD rule (key login)", async () => {
    const who = await runStep({ connection: as(SUDOER), create: "" }, asRoot(SUDOER, bashCommand('echo "uid=$(id -u) sudo_user=${SUDO_USER:-}"')));
    expect(who.stdout.trim()).toBe(`uid=0 sudo_user=${SUDOER}`);
    // The same command without the wrapper runs as the user: the wrapper is what gives root.
    const plain = await runStep({ connection: as(SUDOER), create: "" }, bashCommand("id -u"));
    expect(plain.stdout.trim()).not.toBe("0");
  });

  it("runs a real worker step as root: the host marker is written by root where the user cannot write", async () => {
    const script = hostMarkerScript("sudo-0", { installRoot: host.root, serviceManager: "process" });
    await runStep({ connection: as(SUDOER), create: "" }, asRoot(SUDOER, script));
    const marker = path.join(host.root, "opt/kube-on-kube/.managed-node");
    expect(readFileSync(marker, "utf8")).toBe("sudo-0\n");
    expect(statSync(marker).uid).toBe(0);
    await expect(runStep({ connection: as(SUDOER), create: "" }, script)).rejects.toThrow(/Permission denied/);
  });

  it("probes the host through sudo, with a key and with a password", async () => {
    for (const auth of ["key", "password"] as const) {
      const result = await probe.probe(as(SUDOER, auth), layout());
      expect(result.observedVersions).toEqual({ kubelet: "v1.36.3" });
    }
  });

  it("fails at once for a user without sudo rights, naming the user and host and saying to configure NOPASSWD", async () => {
    const where = `${PLAIN}@${host.ip}:${host.port}`;
    const step = runStep({ connection: as(PLAIN), create: "" }, asRoot(PLAIN, bashCommand("id -u")));
    await expect(step).rejects.toThrow(`step failed on ${where} (exit 1): kube-on-kube: ssh user ${PLAIN} on host `);
    await expect(step).rejects.toThrow(/cannot become root with sudo -n \(sudo: a password is required ?\): kube-on-kube needs password-less sudo for it; add a NOPASSWD rule/);
    const probing = probe.probe(as(PLAIN), layout());
    await expect(probing).rejects.toThrow(`host probe of ${where} failed (exit 1): kube-on-kube: ssh user ${PLAIN} on host `);
    await expect(probing).rejects.toThrow(/NOPASSWD/);
  });
});

describe("a WorkerNode as a user with password-less sudo, under the real engine", () => {
  let mirror: Mirror | undefined;
  let removeMirror: (() => void) | undefined;
  afterAll(async () => {
    await mirror?.close();
    removeMirror?.();
  });

  it("installs, joins and verifies as root through sudo, then cleans the host on destroy", async () => {
    requireEngine(["tls-5.3.0"]);
    const artifacts = workerArtifacts();
    const dir = mirrorDirectory(artifacts);
    removeMirror = dir.remove;
    mirror = await startMirror({ dir: dir.dir, host: "127.0.0.1", port: 0 });
    const served = (a: BuiltArtifact) => {
      const m = mirror!.artifacts.find((x) => x.name === path.basename(a.file));
      if (!m) throw new Error(`${a.file} is not on the mirror`);
      return { version: a.version, url: m.url, sha256: m.sha256 };
    };
    const packages = { containerd: served(artifacts.containerd), runc: served(artifacts.runc), kubelet: served(artifacts.kubelet), cni: served(artifacts.cni) };
    const engine = await engineStack("sudo", async () => {
      const node = new WorkerNode("sudo", {
        machine: { clusterRef: { name: "it" }, ip: host.ip, hostname: "sudo-0", ssh: { port: host.port, user: SUDOER, hostKey: host.hostKey } },
        packages,
        credentials: { privateKey: pulumi.secret(keys[SUDOER]) },
        // A bootstrap token keeps this test to the SSH side: no CA key, no certificate to sign.
        cluster: { endpoint: "https://127.0.0.1:6443", caCertificate: "-----BEGIN CERTIFICATE-----\nTEST\n-----END CERTIFICATE-----\n", bootstrapToken: pulumi.secret("abcdef.0123456789abcdef") },
        installRoot: host.root,
        serviceManager: "none",
        stepProvider: "openssh",
        preflight: { ignore: ["kernel", "swap", "ports"] },
      });
      return { observedVersions: node.observedVersions };
    });
    try {
      const up = await engine.stack.up();
      expect(up.summary.result).toBe("succeeded");
      expect(up.outputs.observedVersions.value).toEqual({ containerd: artifacts.containerd.version, runc: artifacts.runc.version, kubelet: artifacts.kubelet.version, cni: artifacts.cni.version });
      // The join step's stdin (the bootstrap kubeconfig) went through the check and sudo intact.
      const kubeconfig = path.join(host.root, "etc/kubernetes/bootstrap-kubelet.conf");
      expect(readFileSync(kubeconfig, "utf8")).toContain("token: abcdef.0123456789abcdef");
      expect(statSync(kubeconfig).uid).toBe(0);
      expect(statSync(path.join(host.root, "usr/local/bin/kubelet")).uid).toBe(0);
      await engine.stack.destroy();
      expect(existsSync(path.join(host.root, "opt/kube-on-kube"))).toBe(false);
      expect(existsSync(kubeconfig)).toBe(false);
    } finally {
      engine.remove();
    }
  });
});
