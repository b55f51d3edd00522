/**
 * A `minimal` ControlPlane on the real dev node (`kok dev up`): its etcd
 * StatefulSet with `claimTemplate` storage binds a PersistentVolumeClaim through
 * local-path-provisioner, the masters run from the registry's images (pulled by containerd 2.4
 * through the mirror config), the business apiserver answers /readyz?verbose through its NodePort
 * (kube-proxy in the node's namespace) on the node's address, and the master Pods answer
 * `kubectl logs` and `kubectl exec`. Destroy and `kok dev down --purge` leave nothing. Needs root,
 * the toolchain and the images; fails, never skips, without them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterSpec } from "../../src/api/v1alpha1";
import { defaultConfig } from "../../src/dev/config";
import { mountsUnder } from "../../src/dev/node/cleanup";
import { realNodeLayout } from "../../src/dev/node/layout";
import { clusterProgram } from "../../src/program/cluster-program";
import { kubectl, serverVersion } from "../support/business-cluster";
import { upClusterStack, type ClusterStackWorld } from "../support/cluster-stack";
import { kok } from "../support/dev-cluster";
import { minimalSpec } from "../support/specs";

let world: ClusterStackWorld;
const meta = (...args: string[]) => world.meta(...args);
const log = (line: string) => process.stdout.write(line);

beforeAll(async () => {
  world = await upClusterStack({
    name: "real",
    stackName: "e2e",
    what: "a minimal ControlPlane on the real node",
    program: ({ cluster, nodePort, metaKubeconfig }) => {
      // The NodePort is served by kube-proxy in the node's namespace: reach it on the node's address.
      const nodeIP = realNodeLayout(defaultConfig(cluster.stateDir, cluster.portBase, cluster.podCIDR)).nodeIP;
      const spec: ClusterSpec = minimalSpec({
        kubernetesVersion: "v1.36.3",
        imageRepository: "registry.k8s.io",
        etcd: { version: "3.6.16", storage: { claimTemplate: { size: "100Mi" } } },
        apiServer: { service: { type: "NodePort", externalHost: nodeIP, nodePort, port: 6443 } },
      });
      return async () => clusterProgram({ name: "e2e", spec, metaKubeconfig });
    },
  });
});

afterAll(() => world?.stop());

describe("ControlPlane on the real dev node", () => {
  it("answers /readyz?verbose through its NodePort", () => {
    const readyz = kubectl(world.adminKubeconfig, "get", "--raw", "/readyz?verbose");
    expect(readyz).toContain("[+]etcd ok");
    expect(readyz.trim().split("\n").at(-1)).toBe("readyz check passed");
    expect(serverVersion(world.adminKubeconfig)).toBe("v1.36.3");
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
    await world.test.stack.destroy({ onOutput: log });
    const down = await kok(["dev", "down", ...world.cluster.args, "--purge"]);
    expect(down.code, down.stderr).toBe(0);
    expect(mountsUnder(world.cluster.stateDir)).toEqual([]);
  });
});
