/**
 * A `minimal` ControlPlane on the real dev node (`kok dev up`): its etcd
 * StatefulSet with `claimTemplate` storage binds a PersistentVolumeClaim through
 * local-path-provisioner, the masters run from the registry's images (pulled by containerd 2.4
 * through the mirror config), the business apiserver answers /readyz?verbose through its NodePort
 * (kube-proxy in the node's namespace) on the node's address, and the master Pods answer
 * `kubectl logs` and `kubectl exec`. Destroy and `kok dev down --purge` leave nothing. Needs root,
 * the toolchain and the images; fails, never skips, without them.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterSpec } from "../../src/api/v1alpha1";
import { defaultConfig } from "../../src/dev/config";
import { mountsUnder } from "../../src/dev/node/cleanup";
import { realNodeLayout } from "../../src/dev/node/layout";
import { clusterProgram } from "../../src/program/cluster-program";
import { kubectl, serverVersion } from "../support/business-cluster";
import { devUp, freeNodePort, kok, newDevCluster, type DevCluster } from "../support/dev-cluster";
import { assertPlugins, CONTROL_PLANE_PLUGINS, newTestStack, type TestStack } from "../support/engine";
import { minimalSpec } from "../support/specs";

let cluster: DevCluster;
let test: TestStack;
let adminKubeconfig: string;
const work = mkdtempSync(join(tmpdir(), "kok-e2e-real-"));
const meta = (...args: string[]) => kubectl(cluster.kubeconfig, ...args);
const log = (line: string) => process.stdout.write(line);

beforeAll(async () => {
  assertPlugins(CONTROL_PLANE_PLUGINS);
  cluster = await newDevCluster();
  const nodePort = await freeNodePort();
  await devUp(cluster);
  // The NodePort is served by kube-proxy in the node's namespace: reach it on the node's address.
  const nodeIP = realNodeLayout(defaultConfig(cluster.stateDir, cluster.portBase, cluster.podCIDR)).nodeIP;
  const spec: ClusterSpec = minimalSpec({
    kubernetesVersion: "v1.36.3",
    imageRepository: "registry.k8s.io",
    etcd: { version: "3.6.16", storage: { claimTemplate: { size: "100Mi" } } },
    apiServer: { service: { type: "NodePort", externalHost: nodeIP, nodePort, port: 6443 } },
  });
  const metaKubeconfig = readFileSync(cluster.kubeconfig, "utf8");
  test = await newTestStack("kok-e2e-real", async () => clusterProgram({ name: "e2e", spec, metaKubeconfig }), "e2e");
  const started = Date.now();
  const result = await test.stack.up({ onOutput: log });
  console.log(`pulumi up of a minimal ControlPlane on the real node: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  adminKubeconfig = join(work, "e2e-admin.kubeconfig");
  writeFileSync(adminKubeconfig, String(result.outputs.adminKubeconfig.value), { mode: 0o600 });
});

afterAll(async () => {
  if (test) await test.stack.destroy({ onOutput: log }).catch((error: unknown) => console.error(error));
  test?.dispose();
  rmSync(work, { recursive: true, force: true });
  if (!cluster) return;
  // Normally already down (the last test); after a failure this cleans up, and says when it cannot.
  const down = await kok(["dev", "down", ...cluster.args, "--purge"]);
  if (down.code !== 0) console.error(`kok dev down failed:\n${down.stdout}\n${down.stderr}`);
});

describe("ControlPlane on the real dev node", () => {
  it("answers /readyz?verbose through its NodePort", () => {
    const readyz = kubectl(adminKubeconfig, "get", "--raw", "/readyz?verbose");
    expect(readyz).toContain("[+]etcd ok");
    expect(readyz.trim().split("\n").at(-1)).toBe("readyz check passed");
    expect(serverVersion(adminKubeconfig)).toBe("v1.36.3");
  });

  it("keeps etcd's data on a bound PersistentVolumeClaim of the default StorageClass", () => {
    const pvc = JSON.parse(meta("-n", "e2e", "get", "pvc", "-o", "json")) as { items: { status?: { phase?: string }; spec?: { storageClassName?: string } }[] };
    expect(pvc.items.map((p) => [p.status?.phase, p.spec?.storageClassName])).toEqual([["Bound", "local-path"]]);
  });

  it("runs the masters from the registry's images, on containerd", () => {
    const pods = JSON.parse(meta("-n", "e2e", "get", "pods", "-o", "json")) as { items: { status?: { containerStatuses?: { image: string; containerID?: string; ready: boolean }[] } }[] };
    const statuses = pods.items.flatMap((p) => p.status?.containerStatuses ?? []);
    expect(statuses.map((s) => s.image).sort()).toEqual([
      "registry.k8s.io/etcd:3.6.16-0",
      "registry.k8s.io/kube-apiserver:v1.36.3",
      "registry.k8s.io/kube-controller-manager:v1.36.3",
      "registry.k8s.io/kube-scheduler:v1.36.3",
    ]);
    for (const s of statuses) expect(s.containerID).toMatch(/^containerd:\/\//);
  });

  it("answers kubectl logs and kubectl exec on master Pods", () => {
    expect(meta("-n", "e2e", "logs", "e2e-etcd-0")).toMatch(/"msg":"serving client traffic securely"/);
    expect(meta("-n", "e2e", "exec", "e2e-etcd-0", "--", "etcdctl", "version")).toMatch(/etcdctl version: 3\.6\.16/);
    expect(meta("-n", "e2e", "logs", "deployment/e2e-apiserver")).toContain("Serving securely");
  });

  it("destroy and down --purge leave no mount of the node behind", async () => {
    await test.stack.destroy({ onOutput: log });
    const down = await kok(["dev", "down", ...cluster.args, "--purge"]);
    expect(down.code, down.stderr).toBe(0);
    expect(mountsUnder(cluster.stateDir)).toEqual([]);
  });
});
