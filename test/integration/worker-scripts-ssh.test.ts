/**
 * The host scripts against real hosts: real sshd daemons on loopback addresses, the real OpenSSH
 * client, a real HTTP mirror serving real Debian-built artifacts. The Pulumi engine is not
 * involved here (see worker-node-engine.test.ts for that); this shows what each script does to a
 * host, that re-runs are no-ops, and that a bad download changes nothing.
 */
import { existsSync, readFileSync, readlinkSync, statSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PackageArtifact } from "../../src/api/v1alpha1";
import { startMirror, type Mirror } from "../../src/cli/mirror";
import { cniScript, containerdScript, kubeletScript, runcScript, type HostLayout } from "../../src/host/scripts/install";
import { kubeletKubeconfig } from "../../src/host/scripts/kubectl";
import { cleanupScript, joinScript, verifyScript } from "../../src/host/scripts/node";
import { preflightScript } from "../../src/host/scripts/preflight";
import { parseVerifyOutput } from "../../src/components/worker-node";
import { mirrorDirectory, workerArtifacts, type BuiltArtifact } from "../support/artifacts";
import { sshRun, startSshHosts, stopSshHosts, type SshHost } from "../support/sshd-hosts";

let hosts: SshHost[];
let mirror: Mirror;
let bumped: BuiltArtifact;
let artifacts: ReturnType<typeof workerArtifacts>;

const artifact = (a: BuiltArtifact): PackageArtifact => {
  const served = mirror.artifacts.find((m) => m.name === path.basename(a.file));
  if (!served) throw new Error(`${a.file} is not on the mirror`);
  return { version: a.version, url: served.url, sha256: served.sha256 };
};
const layoutOf = (host: SshHost): HostLayout => ({ installRoot: host.root, serviceManager: "none" });
const run = (host: SshHost, script: string, stdin = "") => sshRun(host, script, stdin);
const downloads = () => mirror.downloads;

let removeMirrorDir: (() => void) | undefined;

beforeAll(async () => {
  artifacts = workerArtifacts();
  const m = mirrorDirectory(artifacts);
  removeMirrorDir = m.remove;
  bumped = m.bumpedKubelet;
  mirror = await startMirror({ dir: m.dir, host: "127.0.0.1", port: 0 });
  hosts = await startSshHosts(2, "scripts");
});
afterAll(async () => {
  await mirror?.close();
  removeMirrorDir?.();
  await stopSshHosts(hosts ?? []);
});

describe("host scripts over real SSH", () => {
  it("preflight lists every problem in one message, and passes when they are ignored", async () => {
    const host = hosts[0];
    const failing = await run(host, preflightScript({ hostname: "scripts-0", arch: "arm64", minFreeDiskMiB: 1 << 30 }, layoutOf(host)));
    expect(failing.status).toBe(1);
    expect(failing.stderr).toMatch(/kube-on-kube preflight: \d+ problem\(s\) on scripts-0:/);
    expect(failing.stderr).toContain("arch: the host is amd64 but the packages are for arm64");
    expect(failing.stderr).toMatch(/disk: .* MiB free, needs 1073741824 MiB/);
    const ok = await run(host, preflightScript({ hostname: "scripts-0", ignore: ["kernel", "swap", "ports"] }, layoutOf(host)));
    expect(ok.stderr).toBe("");
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain("all checks passed on scripts-0");
  });

  it("installs containerd, runc, kubelet and the CNI plugins under the host's root", async () => {
    const host = hosts[0];
    const layout = layoutOf(host);
    for (const script of [
      containerdScript(artifact(artifacts.containerd), layout),
      runcScript(artifact(artifacts.runc), layout),
      kubeletScript(artifact(artifacts.kubelet), {}, layout),
      cniScript(artifact(artifacts.cni), layout),
    ]) {
      const result = await run(host, script);
      expect(result.stderr).toBe("");
      expect(result.status).toBe(0);
      expect(result.stdout).toMatch(/is now active/);
    }
    const r = host.root;
    expect(readFileSync(path.join(r, "opt/kube-on-kube/kubelet/current/.kube-on-kube-version"), "utf8").trim()).toBe(artifacts.kubelet.version);
    expect(statSync(path.join(r, "opt/cni/bin/bridge")).isFile()).toBe(true);
    expect(readFileSync(path.join(r, "var/lib/kubelet/config.yaml"), "utf8")).toContain("kind: KubeletConfiguration");
    expect(readFileSync(path.join(r, "etc/containerd/config.toml"), "utf8")).toContain("SystemdCgroup = true");
    const containerd = await run(host, `${r}/usr/local/bin/containerd --version`);
    expect(containerd.stdout).toContain(artifacts.containerd.version);
  });

  it("a second run of every package step downloads nothing and changes nothing", async () => {
    const host = hosts[0];
    const layout = layoutOf(host);
    const before = downloads();
    const link = readlinkSync(path.join(host.root, "opt/kube-on-kube/kubelet/current"));
    for (const script of [containerdScript(artifact(artifacts.containerd), layout), kubeletScript(artifact(artifacts.kubelet), {}, layout), cniScript(artifact(artifacts.cni), layout)]) {
      const result = await run(host, script);
      expect(result.status).toBe(0);
      expect(result.stdout).toMatch(/is already active/);
      expect(result.stdout).not.toMatch(/wrote/);
    }
    expect(downloads()).toBe(before);
    expect(readlinkSync(path.join(host.root, "opt/kube-on-kube/kubelet/current"))).toBe(link);
  });

  it("a wrong sha256 fails before anything is replaced, and the old kubelet still runs", async () => {
    const host = hosts[0];
    const good = artifact(bumped);
    const wrong = { ...good, sha256: "0".repeat(64) };
    const link = readlinkSync(path.join(host.root, "opt/kube-on-kube/kubelet/current"));
    const result = await run(host, kubeletScript(wrong, {}, layoutOf(host)));
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`sha256 mismatch for ${good.url}: expected ${"0".repeat(64)}, got ${good.sha256}; nothing was replaced`);
    expect(readlinkSync(path.join(host.root, "opt/kube-on-kube/kubelet/current"))).toBe(link);
    const kubelet = await run(host, `${host.root}/usr/local/bin/kubelet ${artifacts.kubeletVersionCommand}`);
    expect(kubelet.status).toBe(0);
    expect(kubelet.stdout).toContain(artifacts.kubelet.version.replace(/^v/, ""));
    expect((await run(host, `ls -A ${host.root}/opt/kube-on-kube/kubelet`)).stdout.trim().split("\n").sort()).toEqual(["current", link].sort());
  });

  it("a new kubelet version switches atomically and keeps the previous one for rollback", async () => {
    const host = hosts[0];
    const old = readlinkSync(path.join(host.root, "opt/kube-on-kube/kubelet/current"));
    const result = await run(host, kubeletScript(artifact(bumped), {}, layoutOf(host)));
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(`kubelet ${bumped.version} is now active`);
    expect(readlinkSync(path.join(host.root, "opt/kube-on-kube/kubelet/previous"))).toBe(old);
    expect(readFileSync(path.join(host.root, "opt/kube-on-kube/kubelet/current/.kube-on-kube-version"), "utf8").trim()).toBe(bumped.version);
  });

  it("join takes the kubeconfig on stdin, writes it 0600, and the command text holds no secret", async () => {
    const host = hosts[0];
    const secretKey = "-----BEGIN EC PRIVATE KEY-----\nTEST-ONLY-not-a-real-key\n-----END EC PRIVATE KEY-----\n";
    const kubeconfig = kubeletKubeconfig({ endpoint: "https://127.0.0.1:6443", caCertificate: "CA", user: "system:node:scripts-0", clientCertificate: "CERT", clientKey: secretKey });
    const script = joinScript(
      { ip: host.ip, hostname: "scripts-0", labels: { pool: "general", "topology.kubernetes.io/zone": "hz-a" }, taints: [{ key: "dedicated", value: "gpu", effect: "NoSchedule" }], caCertificate: "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n", credentials: "certificate" },
      layoutOf(host),
    );
    expect(script).not.toContain(Buffer.from(secretKey).toString("base64"));
    const result = await run(host, script, kubeconfig);
    expect(result.status).toBe(0);
    expect(result.stdout + result.stderr).not.toContain(Buffer.from(secretKey).toString("base64"));
    const file = path.join(host.root, "etc/kubernetes/kubelet.conf");
    expect(readFileSync(file, "utf8")).toBe(kubeconfig);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(host.root, "etc/kubernetes/kubelet-flags.env"), "utf8")).toBe(
      `KUBELET_ARGS="--node-ip=${host.ip} --hostname-override=scripts-0 --node-labels=pool=general,topology.kubernetes.io/zone=hz-a --register-with-taints=dedicated=gpu:NoSchedule"\n`,
    );
    expect((await run(host, script, kubeconfig)).stdout).not.toContain("wrote");
  });

  it("verify reads the versions back from the host", async () => {
    const host = hosts[0];
    const result = await run(host, verifyScript(layoutOf(host)));
    expect(result.status).toBe(0);
    const parsed = parseVerifyOutput(result.stdout);
    expect(parsed.observedVersions).toEqual({ containerd: artifacts.containerd.version, runc: artifacts.runc.version, kubelet: bumped.version, cni: artifacts.cni.version });
    expect(parsed.binaries.containerd).toContain(artifacts.containerd.version);
    expect(parsed.binaries.runc).toMatch(/runc version/);
  });

  it("cleanup removes what was installed and leaves the other host alone", async () => {
    const [host, other] = hosts;
    const otherLayout = layoutOf(other);
    expect((await run(other, cniScript(artifact(artifacts.cni), otherLayout))).status).toBe(0);
    const result = await run(host, cleanupScript(layoutOf(host)));
    expect(result.status).toBe(0);
    for (const gone of ["opt/kube-on-kube", "usr/local/bin/kubelet", "usr/local/bin/containerd", "opt/cni/bin", "etc/kubernetes/kubelet.conf", "var/lib/kubelet"]) {
      expect(existsSync(path.join(host.root, gone)), gone).toBe(false);
    }
    expect(existsSync(path.join(other.root, "opt/cni/bin/bridge"))).toBe(true);
  });
});
