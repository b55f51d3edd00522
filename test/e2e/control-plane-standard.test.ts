/**
 * A `standard` (HA) ControlPlane on the local meta-cluster, through the real engine: three etcd
 * members that must find each other by their StatefulSet DNS names before any is Ready, three
 * apiservers behind one NodePort, two controller-managers and two schedulers of which one each
 * leads, and PodDisruptionBudgets. The dev node is one node, so spreading is only preferred.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterProgram } from "../../src/program/cluster-program";
import { kubectl, serviceAccountTokenUser } from "../support/business-cluster";
import { upClusterStack, type ClusterStackWorld } from "../support/cluster-stack";
import { eventually } from "../support/dev-cluster";
import { standardSpec } from "../support/specs";

let world: ClusterStackWorld;
const meta = (...args: string[]) => world.meta(...args);

describe("a standard ControlPlane on the local meta-cluster", () => {
  beforeAll(async () => {
    world = await upClusterStack({
      name: "ha",
      stackName: "ha",
      what: "a standard ControlPlane",
      program: ({ nodePort, metaKubeconfig }) => {
        const spec = standardSpec({
          imageRepository: "registry.k8s.io",
          masterTolerations: [],
          etcd: { version: "3.6.16", storage: { volumeSource: { emptyDir: {} } } },
          apiServer: { replicas: 3, service: { type: "NodePort", externalHost: "127.0.0.1", nodePort, port: 6443 } },
          kubeconfigs: [],
        });
        return async () => clusterProgram({ name: "ha", spec, metaKubeconfig });
      },
    });
  });

  afterAll(() => world?.stop());

  it("runs every replica: 3 etcd members, 3 apiservers, 2 controller-managers, 2 schedulers, 4 PDBs", () => {
    const ready = (kind: string, name: string) => meta("-n", "ha", "get", kind, name, "-o", "jsonpath={.status.readyReplicas}");
    expect(ready("statefulset", "ha-etcd")).toBe("3");
    expect(ready("deployment", "ha-apiserver")).toBe("3");
    expect(ready("deployment", "ha-controller-manager")).toBe("2");
    expect(ready("deployment", "ha-scheduler")).toBe("2");
    expect(meta("-n", "ha", "get", "pdb", "-o", "name").trim().split("\n")).toHaveLength(4);
  });

  it("answers through the NodePort with etcd healthy, and accepts its ServiceAccount tokens", async () => {
    const readyz = kubectl(world.adminKubeconfig, "get", "--raw", "/readyz?verbose");
    expect(readyz).toContain("[+]etcd ok");
    expect(readyz.trim().split("\n").at(-1)).toBe("readyz check passed");
    expect(await serviceAccountTokenUser(world.adminKubeconfig, "ha-check")).toEqual({ status: 201, username: "system:serviceaccount:default:ha-check" });
  });

  it("has exactly one leading controller-manager and scheduler, each a Pod of its Deployment", async () => {
    const pods = meta("-n", "ha", "get", "pods", "-o", "jsonpath={.items[*].metadata.name}").split(" ");
    for (const lease of ["kube-controller-manager", "kube-scheduler"]) {
      const holder = await eventually(`Lease kube-system/${lease} held`, async () => {
        const json = JSON.parse(kubectl(world.adminKubeconfig, "-n", "kube-system", "get", "lease", lease, "-o", "json")) as { spec?: { holderIdentity?: string } };
        return json.spec?.holderIdentity || undefined;
      });
      expect(pods).toContain(holder.split("_")[0]);
    }
  });

  it("shows no changes in a preview right after up", async () => {
    const preview = await world.test.stack.preview({ expectNoChanges: true });
    expect(Object.keys(preview.changeSummary).filter((op) => op !== "same")).toEqual([]);
  });
});
