/**
 * A `standard` (HA) ControlPlane on the local meta-cluster, through the real engine: three etcd
 * members that must find each other by their StatefulSet DNS names before any is Ready, three
 * apiservers behind one NodePort, two controller-managers and two schedulers of which one each
 * leads, and PodDisruptionBudgets. The dev node is one node, so spreading is only preferred.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterProgram } from "../../src/program/cluster-program";
import { kubectl, serviceAccountTokenUser } from "../support/business-cluster";
import { devUp, eventually, freeNodePort, kok, newDevCluster, type DevCluster } from "../support/dev-cluster";
import { assertPlugins, CONTROL_PLANE_PLUGINS, newTestStack, type TestStack } from "../support/engine";
import { standardSpec } from "../support/specs";

let cluster: DevCluster;
let test: TestStack;
const work = mkdtempSync(join(tmpdir(), "kok-e2e-ha-"));
const adminKubeconfig = join(work, "admin.kubeconfig");
const log = (line: string) => process.stdout.write(line);
const meta = (...args: string[]) => kubectl(cluster.kubeconfig, ...args);

describe("a standard ControlPlane on the local meta-cluster", () => {
  beforeAll(async () => {
    assertPlugins(CONTROL_PLANE_PLUGINS);
    cluster = await newDevCluster();
    const nodePort = await freeNodePort();
    await devUp(cluster);
    const metaKubeconfig = readFileSync(cluster.kubeconfig, "utf8");
    const spec = standardSpec({
      imageRepository: "registry.k8s.io",
      masterTolerations: [],
      etcd: { version: "3.6.16", storage: { volumeSource: { emptyDir: {} } } },
      apiServer: { replicas: 3, service: { type: "NodePort", externalHost: "127.0.0.1", nodePort, port: 6443 } },
      kubeconfigs: [],
    });
    test = await newTestStack("kok-e2e-ha", async () => clusterProgram({ name: "ha", spec, metaKubeconfig }), "ha");
    const started = Date.now();
    const result = await test.stack.up({ onOutput: log });
    console.log(`pulumi up of a standard ControlPlane: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    writeFileSync(adminKubeconfig, String(result.outputs.adminKubeconfig.value), { mode: 0o600 });
  });

  afterAll(async () => {
    if (test) await test.stack.destroy({ onOutput: log }).catch((error: unknown) => console.error(error));
    test?.dispose();
    if (cluster) await kok(["dev", "down", ...cluster.args, "--purge"]);
    rmSync(work, { recursive: true, force: true });
  });

  it("runs every replica: 3 etcd members, 3 apiservers, 2 controller-managers, 2 schedulers, 4 PDBs", () => {
    const ready = (kind: string, name: string) => meta("-n", "ha", "get", kind, name, "-o", "jsonpath={.status.readyReplicas}");
    expect(ready("statefulset", "ha-etcd")).toBe("3");
    expect(ready("deployment", "ha-apiserver")).toBe("3");
    expect(ready("deployment", "ha-controller-manager")).toBe("2");
    expect(ready("deployment", "ha-scheduler")).toBe("2");
    expect(meta("-n", "ha", "get", "pdb", "-o", "name").trim().split("\n")).toHaveLength(4);
  });

  it("answers through the NodePort with etcd healthy, and accepts its ServiceAccount tokens", async () => {
    const readyz = kubectl(adminKubeconfig, "get", "--raw", "/readyz?verbose");
    expect(readyz).toContain("[+]etcd ok");
    expect(readyz.trim().split("\n").at(-1)).toBe("readyz check passed");
    expect(await serviceAccountTokenUser(adminKubeconfig, "ha-check")).toEqual({ status: 201, username: "system:serviceaccount:default:ha-check" });
  });

  it("has exactly one leading controller-manager and scheduler, each a Pod of its Deployment", async () => {
    const pods = meta("-n", "ha", "get", "pods", "-o", "jsonpath={.items[*].metadata.name}").split(" ");
    for (const lease of ["kube-controller-manager", "kube-scheduler"]) {
      const holder = await eventually(`Lease kube-system/${lease} held`, async () => {
        const json = JSON.parse(kubectl(adminKubeconfig, "-n", "kube-system", "get", "lease", lease, "-o", "json")) as { spec?: { holderIdentity?: string } };
        return json.spec?.holderIdentity || undefined;
      });
      expect(pods).toContain(holder.split("_")[0]);
    }
  });

  it("shows no changes in a preview right after up", async () => {
    const preview = await test.stack.preview({ expectNoChanges: true });
    expect(Object.keys(preview.changeSummary).filter((op) => op !== "same")).toEqual([]);
  });
});
