/**
 * WorkerNode with its default step provider, @pulumi/command, and the kubelet certificate signed
 * by @pulumi/tls, through the real engine against a real sshd host. Needs the command 1.2.1 and
 * tls 5.3.0 provider plugins in the toolchain's Pulumi home; without them this test fails and
 * says so (docs/toolchain.md explains why they cannot be built on some machines; the same steps
 * run through the OpenSSH client in worker-pool-engine.test.ts).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { afterAll, describe, expect, it } from "vitest";
import { startMirror, type Mirror } from "../../src/cli/mirror";
import { WorkerNode } from "../../src/components/worker-node";
import { mirrorDirectory, workerArtifacts } from "../support/artifacts";
import { startSshHosts, stopSshHosts, type SshHost } from "../support/sshd-hosts";
import { engineStack, requireEngine } from "../support/worker-engine";

let mirror: Mirror | undefined;
let hosts: SshHost[] = [];
let removeMirrorDir: (() => void) | undefined;

afterAll(async () => {
  await mirror?.close();
  removeMirrorDir?.();
  await stopSshHosts(hosts);
});

describe("WorkerNode on @pulumi/command through the real engine", () => {
  it("installs a host, signs the kubelet certificate, then a second up changes nothing", async () => {
    // In the test, not a hook: a missing plugin must show as this test failing, not as a skip.
    requireEngine(["command-1.2.1", "tls-5.3.0"]);
    hosts = await startSshHosts(1, "cmd");
    const mirrorDir = mirrorDirectory(workerArtifacts());
    removeMirrorDir = mirrorDir.remove;
    mirror = await startMirror({ dir: mirrorDir.dir, host: "127.0.0.1", port: 0 });
    const host = hosts[0];
    const ca = mkdtempSync(path.join(tmpdir(), "kok-ca-"));
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path.join(ca, "ca.key"), "-out", path.join(ca, "ca.crt"), "-subj", "/CN=kubernetes", "-days", "1"], { stdio: "pipe" });
    const byPrefix = (p: string) => {
      const a = mirror!.artifacts.find((m) => m.name.startsWith(p));
      if (!a) throw new Error(`no ${p} artifact on the mirror`);
      return { version: a.name, url: a.url, sha256: a.sha256 };
    };
    const engine = await engineStack("command", async () => {
      const node = new WorkerNode("cmd", {
        machine: { clusterRef: { name: "it" }, ip: host.ip, hostname: host.name, ssh: { port: host.port, user: host.user, hostKey: host.hostKey } },
        packages: { containerd: byPrefix("containerd-"), kubelet: byPrefix("kubelet-"), cni: byPrefix("cni-") },
        credentials: { privateKey: pulumi.secret(host.privateKey) },
        cluster: { endpoint: "https://127.0.0.1:6443", caCertificate: readFileSync(path.join(ca, "ca.crt"), "utf8"), caPrivateKey: pulumi.secret(readFileSync(path.join(ca, "ca.key"), "utf8")) },
        installRoot: host.root,
        serviceManager: "none",
        preflight: { ignore: ["kernel", "swap", "ports"] },
      });
      return { observedVersions: node.observedVersions };
    });
    const { stack, backend } = engine;
    const first = await stack.up();
    expect(first.summary.result).toBe("succeeded");
    expect(existsSync(path.join(host.root, "etc/kubernetes/kubelet.conf"))).toBe(true);
    const second = await stack.up();
    expect(Object.keys(second.summary.resourceChanges ?? {})).toEqual(["same"]);
    const state = readFileSync(path.join(backend, ".pulumi", "stacks", "kok-workers-it", "command.json"), "utf8");
    expect(state.includes(host.privateKey.split("\n")[2])).toBe(false);
    await stack.destroy();
    engine.remove();
  });
});
