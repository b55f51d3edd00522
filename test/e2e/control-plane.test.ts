/**
 * A `minimal` ControlPlane's life, driven by the real Pulumi engine (Automation API, inline
 * program, file:// backend) in the local meta-cluster, whose real node (kubelet + containerd) runs the masters:
 * deploy at v1.35.4; the business cluster answers /readyz?verbose through the generated admin
 * kubeconfig, its controller-manager and scheduler hold their Leases in its kube-system, and a
 * ServiceAccount token it issued is accepted; preview shows no changes; drift made by hand is
 * repaired by `up` with refresh; the upgrade to v1.36.3 really runs the new binaries, and no
 * v1.35.4 apiserver Pod exists any more when the new controller-manager and scheduler Pods are
 * created (the rollout gate); a two-minor jump is refused before anything changes; destroy leaves nothing behind. Needs the toolchain
 * (pulumi, providers, both Kubernetes minors, etcd) and root. The tests run in order, one stack.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterSpec } from "../../src/api/v1alpha1";
import { clusterProgram } from "../../src/program/cluster-program";
import { kubectl, serverVersion, serviceAccountTokenUser } from "../support/business-cluster";
import { devUp, eventually, freeNodePort, kok, newDevCluster, type DevCluster } from "../support/dev-cluster";
import { assertPlugins, CONTROL_PLANE_PLUGINS, newTestStack, type TestStack } from "../support/engine";
import { podsBefore, recordPods } from "../support/pod-timeline";
import { minimalSpec } from "../support/specs";

let NODE_PORT: number;
let cluster: DevCluster;
const work = mkdtempSync(join(tmpdir(), "kok-e2e-"));

const specAt = (kubernetesVersion: string) =>
  minimalSpec({
    kubernetesVersion,
    imageRepository: "registry.k8s.io",
    apiServer: { service: { type: "NodePort", externalHost: "127.0.0.1", nodePort: NODE_PORT, port: 6443 } },
  });

const meta = (...args: string[]) => kubectl(cluster.kubeconfig, ...args);

describe("ControlPlane on the local meta-cluster", () => {
  let test: TestStack;
  let adminKubeconfig: string;
  /** What the inline program deploys next; the tests move it forward. */
  let desired: { spec: ClusterSpec; running?: { kubernetesVersion: string } };
  const log = (line: string) => process.stdout.write(line);

  beforeAll(async () => {
    assertPlugins(CONTROL_PLANE_PLUGINS);
    cluster = await newDevCluster();
    NODE_PORT = await freeNodePort();
    desired = { spec: specAt("v1.35.4") };
    await devUp(cluster);
    const metaKubeconfig = readFileSync(cluster.kubeconfig, "utf8");
    test = await newTestStack("kok-e2e", async () => clusterProgram({ name: "e2e", spec: desired.spec, running: desired.running, metaKubeconfig }), "e2e");
    const started = Date.now();
    const result = await test.stack.up({ onOutput: log });
    console.log(`pulumi up of a minimal ControlPlane: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    adminKubeconfig = join(work, "e2e-admin.kubeconfig");
    writeFileSync(adminKubeconfig, String(result.outputs.adminKubeconfig.value), { mode: 0o600 });
  });

  afterAll(async () => {
    // Normally already destroyed by the last test; this only cleans up after a failure.
    if (test) await test.stack.destroy({ onOutput: log }).catch((error: unknown) => console.error(error));
    test?.dispose();
    if (cluster) await kok(["dev", "down", ...cluster.args, "--purge"]);
    rmSync(work, { recursive: true, force: true });
  });

  it("answers /readyz?verbose through the generated admin kubeconfig", () => {
    const readyz = kubectl(adminKubeconfig, "get", "--raw", "/readyz?verbose");
    expect(readyz).toContain("[+]etcd ok");
    expect(readyz.trim().split("\n").at(-1)).toBe("readyz check passed");
    expect(serverVersion(adminKubeconfig)).toBe("v1.35.4");
  });

  it("has the controller-manager and scheduler holding their Leases in kube-system", async () => {
    for (const lease of ["kube-controller-manager", "kube-scheduler"]) {
      const holder = await eventually(`Lease kube-system/${lease} held`, async () => {
        const json = JSON.parse(kubectl(adminKubeconfig, "-n", "kube-system", "get", "lease", lease, "-o", "json")) as { spec?: { holderIdentity?: string } };
        return json.spec?.holderIdentity || undefined;
      });
      expect(holder).toMatch(/^e2e-/);
    }
  });

  it("accepts a ServiceAccount token it issued", async () => {
    const who = await serviceAccountTokenUser(adminKubeconfig, "e2e-check");
    expect(who).toEqual({ status: 201, username: "system:serviceaccount:default:e2e-check" });
  });

  it("shows no changes in a preview right after up", async () => {
    const preview = await test.stack.preview({ expectNoChanges: true });
    expect(Object.keys(preview.changeSummary).filter((op) => op !== "same")).toEqual([]);
  });

  it("repairs drift made by hand with refresh and up", async () => {
    meta("-n", "e2e", "delete", "deployment", "e2e-apiserver", "--wait=true");
    // The Deployment goes at once; its Pod keeps serving through --shutdown-delay-duration and
    // its grace period. A preview that began meanwhile found the business apiserver reachable,
    // then lost it mid-refresh (EOF, not the unreachable cluster the add-ons are kept through).
    // The drift this test makes is "the apiservers are gone": wait until they are.
    meta("-n", "e2e", "wait", "--for=delete", "pod", "-l", "kubeonkube.io/component=kube-apiserver", "--timeout=300s");
    meta("-n", "e2e", "patch", "service", "e2e-etcd-client", "--type=json", "-p", '[{"op":"replace","path":"/spec/ports/0/name","value":"drifted"}]');
    const planned: { op: string; name: string }[] = [];
    await test.stack.preview({
      refresh: true,
      onEvent: (event) => {
        const step = event.resourcePreEvent?.metadata;
        if (step && (step.op === "create" || step.op === "update")) planned.push({ op: step.op, name: step.urn.split("::").pop() ?? step.urn });
      },
    });
    const named = (op: string) => planned.filter((p) => p.op === op).map((p) => p.name).sort();
    expect(named("create")).toEqual(["e2e-apiserver-deployment"]);
    // Without their apiserver the controller-manager and scheduler lose their Lease and exit
    // (upstream behaviour); their real probes then report them not Ready, and pulumi-kubernetes
    // plans an update of a Deployment a refresh found not Ready. Nothing else may be planned.
    const updates = named("update");
    expect(updates).toContain("e2e-etcd-client");
    expect(updates.filter((u) => u !== "e2e-etcd-client").every((u) => ["e2e-controller-manager-deployment", "e2e-scheduler-deployment"].includes(u)), updates.join(", ")).toBe(true);
    // A separate refresh, then up: `up --refresh` tried to update the deleted Deployment
    // ("deployments.apps not found"; see pulumi/pulumi-kubernetes#3089).
    await test.stack.refresh({ onOutput: log });
    await test.stack.up({ onOutput: log });
    expect(meta("-n", "e2e", "get", "service", "e2e-etcd-client", "-o", "jsonpath={.spec.ports[0].name}")).toBe("client");
    expect(meta("-n", "e2e", "get", "deployment", "e2e-apiserver", "-o", "jsonpath={.status.availableReplicas}")).toBe("1");
    expect(kubectl(adminKubeconfig, "get", "--raw", "/readyz")).toBe("ok");
  });

  it("upgrades one minor in the skew order: no old apiserver is left when the new controller-manager starts", async () => {
    desired = { spec: specAt("v1.36.3"), running: { kubernetesVersion: "v1.35.4" } };
    const steps: { step: string; at: number }[] = [];
    const tracked = new Set(["kubernetes:apps/v1:Deployment", "pulumi-nodejs:dynamic/kube-on-kube:RolloutGate"]);
    const pods = await recordPods(cluster.kubeconfig, "e2e");
    try {
      await test.stack.up({
        onOutput: log,
        onEvent: (event) => {
          const started = event.resourcePreEvent?.metadata;
          const finished = event.resOutputsEvent?.metadata;
          if (started && tracked.has(started.type)) steps.push({ step: `start ${started.urn.split("::").pop()}`, at: Date.now() });
          if (finished && tracked.has(finished.type)) steps.push({ step: `done ${finished.urn.split("::").pop()}`, at: Date.now() });
        },
      });
    } finally {
      pods.stop();
    }
    const at = (step: string) => steps.findIndex((s) => s.step === step);
    const time = (step: string) => steps[at(step)].at;
    // The engine: apiserver Deployment, then its gate, and only then the controller-manager and scheduler.
    expect(at("start e2e-apiserver-deployment")).toBeGreaterThanOrEqual(0);
    expect(at("done e2e-apiserver-deployment")).toBeGreaterThan(at("start e2e-apiserver-deployment"));
    expect(at("done e2e-apiserver-rollout")).toBeGreaterThan(at("done e2e-apiserver-deployment"));
    expect(at("start e2e-controller-manager-deployment")).toBeGreaterThan(at("done e2e-apiserver-rollout"));
    expect(at("start e2e-scheduler-deployment")).toBeGreaterThan(at("done e2e-apiserver-rollout"));

    // The meta-cluster, in the order it committed the Pod changes: when each new controller-manager
    // and scheduler Pod was created, every apiserver Pod in existence (terminating ones too) ran
    // v1.36.3, and the old one had been there at the start.
    const apiServers = (index: number) => podsBefore(pods.changes, index).filter((p) => p.component === "kube-apiserver");
    expect(apiServers(pods.listed).map((p) => p.image)).toEqual(["registry.k8s.io/kube-apiserver:v1.35.4"]);
    for (const component of ["kube-controller-manager", "kube-scheduler"]) {
      const created = pods.changes.findIndex((c) => c.type === "ADDED" && c.component === component && c.image.endsWith(":v1.36.3"));
      expect(created, `a v1.36.3 ${component} Pod was created`).toBeGreaterThanOrEqual(pods.listed);
      expect(apiServers(created).map((p) => `${p.name} ${p.image}${p.terminating ? " (terminating)" : ""}`)).toEqual([
        expect.stringMatching(/ registry\.k8s\.io\/kube-apiserver:v1\.36\.3$/),
      ]);
    }
    // And when `up` returned, the new apiserver alone (the gate's promise).
    expect(apiServers(pods.changes.length).map((p) => p.image)).toEqual(["registry.k8s.io/kube-apiserver:v1.36.3"]);
    const oldApiServerGone = pods.changes.findIndex((c) => c.type === "DELETED" && c.component === "kube-apiserver");
    const reportedDone = time("done e2e-apiserver-deployment");
    console.log(
      `apiserver rollout: pulumi-kubernetes reported the Deployment updated ${oldApiServerGone >= 0 && pods.changes[oldApiServerGone].seenAt > reportedDone ? "BEFORE" : "after"} ` +
        `the old Pod was deleted; the gate then waited ${((time("done e2e-apiserver-rollout") - reportedDone) / 1000).toFixed(1)} s`,
    );
    expect(serverVersion(adminKubeconfig)).toBe("v1.36.3");
    // Nothing waits after the controller-manager and scheduler, and an older one is allowed beside
    // a newer apiserver: their old Pods may still be terminating, so only their end state counts.
    const expected = ["registry.k8s.io/kube-apiserver:v1.36.3", "registry.k8s.io/kube-controller-manager:v1.36.3", "registry.k8s.io/kube-scheduler:v1.36.3"];
    await eventually("only v1.36.3 masters running", async () => {
      const images = meta("-n", "e2e", "get", "pods", "-l", "kubeonkube.io/component!=etcd", "-o", "jsonpath={.items[*].spec.containers[0].image}").split(" ");
      return images.length === 3 && expected.every((i) => images.includes(i)) ? true : undefined;
    });
    // The gates hold no diff once their rollouts are done: a no-change update stays one.
    const preview = await test.stack.preview({ expectNoChanges: true });
    expect(Object.keys(preview.changeSummary).filter((op) => op !== "same")).toEqual([]);
  });

  it("refuses a two-minor jump before anything changes", async () => {
    desired = { spec: specAt("v1.38.0"), running: { kubernetesVersion: "v1.36.3" } };
    await expect(test.stack.preview()).rejects.toThrow(/v1\.36\.3 → v1\.38\.0 skips 1 minor version/);
    expect(serverVersion(adminKubeconfig)).toBe("v1.36.3");
    desired = { spec: specAt("v1.36.3"), running: { kubernetesVersion: "v1.36.3" } };
  });

  it("destroy leaves nothing behind in the meta-cluster", async () => {
    await test.stack.destroy({ onOutput: log });
    expect(meta("get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}").split(" ")).not.toContain("e2e");
    expect(meta("get", "secrets", "-A", "-l", "kubeonkube.io/cluster=e2e", "-o", "name")).toBe("");
    // kube-system and local-path-storage hold the dev node's own add-ons (kube-proxy, CoreDNS,
    // local-path-provisioner); every other namespace must be empty of Pods.
    expect(meta("get", "pods", "-A", "--field-selector", "metadata.namespace!=kube-system,metadata.namespace!=local-path-storage", "-o", "name")).toBe("");
  });
});
