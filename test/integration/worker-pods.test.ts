/**
 * Workers that run Pods: the real WorkerNode scripts install the toolchain's containerd 2, runc
 * and CNI plugins and a kubelet (v1.36.3 on one sshd host, v1.35.4 on another), with the catalog's registry mirrors
 * (`registry.k8s.io` and `docker.io` → a real distribution registry on loopback holding the
 * images `kok images build` makes). The kubelets join a real kube-apiserver; a busybox Pod bound to
 * each Node runs to completion, its sandbox being `registry.k8s.io/pause:3.10.2` pulled through the
 * mirror under its upstream name (nothing upstream is reachable from here, so a pull that
 * succeeds came through the mirror). The bridge CNI config is written by the test, as in
 * worker-kubelet-joins: these workers join a bare apiserver, with no business cluster and so no
 * network add-on; where there is one, flannel writes it (test/e2e/workloads.test.ts).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_PAUSE_VERSION, type PackageArtifact } from "../../src/api/v1alpha1";
import { WorkerNode } from "../../src/components/worker-node";
import { buildImages, defaultImagesDir, pushImages, type BuiltImage } from "../../src/images";
import { kubernetesBinary } from "../../src/dev/toolchain";
import { placeArtifact, type BuiltArtifact } from "../support/artifacts";
import { fixtureToolchain } from "../support/images-toolchain";
import { startRegistry, type TestRegistry } from "../support/registry";
import type { SshHost } from "../support/sshd-hosts";
import { engineStack, requireEngine, type EngineStack } from "../support/worker-engine";
import { sandboxWorkerArgs, writeTestBridgeCni } from "../support/worker-fixtures";
import { startWorkerTestbed, type WorkerTestbed } from "../support/worker-testbed";

const work = mkdtempSync(path.join(tmpdir(), "kok-worker-pods-"));
let registry: TestRegistry;
let bed: WorkerTestbed;
let target: EngineStack;
let built: BuiltImage[];
const figures: Record<string, string> = {};
const PAUSE = `registry.k8s.io/pause:${DEFAULT_PAUSE_VERSION}`;
/** The kubelet of each host, in host order. */
const KUBELETS = ["v1.36.3", "v1.35.4"] as const;

const ctr = (host: SshHost, ...args: string[]) =>
  execFileSync(path.join(host.root, "usr/local/bin/ctr"), ["--address", path.join(host.root, "run/containerd/containerd.sock"), ...args], { encoding: "utf8", timeout: 60_000 });

/** Polls the Pod until `done` says so; fails with its last status (and the kubelet's log tail) when the deadline passes. */
async function podUntil(name: string, host: number, done: (phase: string) => boolean, deadlineMs = 180_000): Promise<Record<string, unknown>> {
  const until = Date.now() + deadlineMs;
  let pod: { status?: { phase?: string } } = {};
  while (Date.now() < until) {
    pod = JSON.parse(bed.api.kubectl(["get", "pod", name, "-o", "json"])) as typeof pod;
    if (done(pod.status?.phase ?? "")) return pod as Record<string, unknown>;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const log = readFileSync(path.join(bed.hosts[host].root, "var/log/kube-on-kube/kubelet.log"), "utf8").slice(-3000);
  throw new Error(`Pod ${name} did not get there: ${JSON.stringify(pod.status)}\nkubelet log:\n${log}`);
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("containers need root: run this test as root");
  requireEngine(["tls-5.3.0"]);
  const t0 = process.hrtime.bigint();
  const since = () => (Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1);
  registry = await startRegistry(path.join(work, "registry"));
  built = await buildImages({ imagesDir: path.join(work, "images"), debsDir: path.join(defaultImagesDir(), "debs"), toolchainDir: fixtureToolchain(path.join(work, "toolchain")), only: ["pause", "busybox"] });
  await pushImages({ registry: registry.address, images: built });
  figures.imagesBuiltAndPushedSeconds = since();

  let older: BuiltArtifact | undefined;
  bed = await startWorkerTestbed({
    prefix: "podder",
    hosts: KUBELETS.length,
    extraArtifacts: (dir) => (older = { version: "v1.35.4", file: placeArtifact(kubernetesBinary("kubelet", "v1.35.4"), dir, "kubelet-v1.35.4-linux-amd64") }),
  });
  figures.apiAndHostsStartedSeconds = since();
  bed.hosts.forEach((host, i) => writeTestBridgeCni(host.root, `kokp${i}`, `10.244.${20 + i}.0/24`));
  const served = bed.packages();
  const kubelets: Record<string, PackageArtifact> = { "v1.36.3": served.kubelet, "v1.35.4": bed.artifact(older!) };
  const local = `http://${registry.address}`;
  target = await engineStack("pods", async () => {
    const versions: Record<string, pulumi.Output<unknown>> = {};
    bed.hosts.forEach((host, i) => {
      const node = new WorkerNode(`podder-${i}`, {
        ...sandboxWorkerArgs({ host, hostname: `podder-${i}`, packages: { ...served, kubelet: kubelets[KUBELETS[i]] }, api: bed.api, ca: bed.ca }),
        runtime: { registryMirrors: { "registry.k8s.io": [local], "docker.io": [local] } },
        // This machine grants no CAP_SYS_RESOURCE, so no sandbox may get the kubelet's -998 (containerd.ts).
        containerd: { restrictOomScoreAdj: true },
      });
      versions[`podder-${i}`] = node.observedVersions;
    });
    return versions;
  });
  figures.setupSeconds = since();
}, 900_000);

afterAll(async () => {
  try {
    // The Pod first, so the kubelet tears its sandbox down (network namespace, veth) before the host is cleaned.
    bed?.api.kubectl(["delete", "pod", "hello-0", "hello-1", "--ignore-not-found", "--wait=true", "--timeout=60s"]);
    if (target) await target.stack.destroy();
  } catch (error) {
    console.log(`destroy failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  target?.remove();
  await bed?.stop();
  await registry?.stop();
  // The test's bridge CNI config made this bridge; nothing of the product owns it.
  for (const i of KUBELETS.keys()) execFileSync("bash", ["-c", `ip link show kokp${i} >/dev/null 2>&1 && ip link delete kokp${i} || true`]);
  rmSync(work, { recursive: true, force: true });
  console.log(`worker pod figures: ${JSON.stringify(figures)}`);
});

describe("workers with registry mirrors run Pods", () => {
  it("join with containerd 2.4.2 and the mirrors written as certs.d hosts.toml", async () => {
    const started = process.hrtime.bigint();
    const result = await target.stack.up();
    figures.installToReadySeconds = (Number(process.hrtime.bigint() - started) / 1e9).toFixed(1);
    expect(result.summary.result).toBe("succeeded");
    bed.hosts.forEach((host, i) => {
      const node = JSON.parse(bed.api.kubectl(["get", "node", `podder-${i}`, "-o", "json"])) as { status: { nodeInfo: { containerRuntimeVersion: string; kubeletVersion: string } } };
      expect(node.status.nodeInfo).toMatchObject({ containerRuntimeVersion: "containerd://2.4.2", kubeletVersion: KUBELETS[i] });
      expect(readFileSync(path.join(host.root, "etc/containerd/config.toml"), "utf8")).toContain(`sandbox = "${PAUSE}"`);
      expect(readFileSync(path.join(host.root, "etc/containerd/certs.d/docker.io/hosts.toml"), "utf8")).toContain(`[host."http://${registry.address}"]`);
    });
  });

  it.each(KUBELETS.map((version, i) => ({ version, i })))("runs a busybox Pod to completion under kubelet $version, its sandbox image pulled through the mirror", async ({ i }) => {
    const busybox = built.find((b) => b.name === "busybox")!.refs.find((r) => !r.endsWith(":latest"))!;
    // No controller-manager here: the ServiceAccount admission wants the namespace's default account to exist.
    if (i === 0) bed.api.kubectl(["create", "serviceaccount", "default", "--namespace", "default"]);
    const name = `hello-${i}`;
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: "default" },
      spec: {
        nodeName: `podder-${i}`,
        restartPolicy: "Never",
        automountServiceAccountToken: false,
        containers: [{ name: "hello", image: busybox, command: ["sh", "-c", "echo hello from $(hostname); wget --help >/dev/null 2>&1; test -x /bin/httpd"] }],
      },
    };
    const started = process.hrtime.bigint();
    bed.api.kubectl(["apply", "-f", "-"], JSON.stringify(pod));
    const done = await podUntil(name, i, (phase) => phase === "Succeeded" || phase === "Failed");
    figures[`${name}CreatedToSucceededSeconds`] = (Number(process.hrtime.bigint() - started) / 1e9).toFixed(1);
    const status = done.status as { phase: string; containerStatuses: { state: { terminated?: { exitCode: number } } }[] };
    expect(status.phase).toBe("Succeeded");
    expect(status.containerStatuses[0].state.terminated?.exitCode).toBe(0);
    const images = ctr(bed.hosts[i], "--namespace", "k8s.io", "images", "ls", "-q");
    expect(images).toContain(PAUSE);
    expect(images).toContain(busybox);
  });
});
