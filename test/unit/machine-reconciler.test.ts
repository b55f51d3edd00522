/**
 * The Machine reconciler's decisions with in-memory stand-ins for the API, the engine, the Node
 * watch and the SSH probe (the real ones run in the e2e suite): waiting for the Cluster and the
 * Secret, install with the secrets kept out of status and events, the catalog's revision, cheap
 * health checks that start no engine, drift → reinstall once, repair, short-circuit, deletion.
 */
import { describe, expect, it } from "vitest";
import { mastersNamespaceOf } from "../../src/api/v1alpha1";
import { TerminalError } from "../../src/runtime/controller";
import { MACHINE_FINALIZER, MachineReconciler } from "../../src/controllers/machine/reconciler";
import { packagesRevision } from "../../src/controllers/packageversion/revision";
import { StackOperationError } from "../../src/runtime/stack-runner";
import { ADMIN, ADMIN_KEY_DATA, CA_KEY, EXEC_MARKER, harness, HOSTILE, MASTERS } from "../support/machine-harness";
import { TEST_CA } from "../support/kubeconfigs";
import { machine as machineSpec, packages } from "../support/worker-fixtures";

const everything = (h: ReturnType<typeof harness>) => JSON.stringify({ machines: [...h.machines.values()], events: h.events });

describe("MachineReconciler", () => {
  it("waits with a clear condition while its Cluster does not exist, then installs once it is Ready", async () => {
    const h = harness();
    h.put(machineSpec({ packages: packages("v1.35.4") }));
    expect(await h.reconciler.reconcile("fleet/worker-0001")).toEqual({ requeueAfter: 15_000 });
    expect(h.current().metadata.finalizers).toEqual([MACHINE_FINALIZER]);
    expect(h.current().status?.phase).toBe("Pending");
    expect(h.current().status?.conditions?.find((c) => c.type === "Progressing")).toMatchObject({ reason: "WaitingForCluster" });
    expect(h.ups).toHaveLength(0);

    h.readyCluster();
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.ups.map((u) => u.stack)).toEqual(["fleet.worker-0001"]);
    expect(h.current().status).toMatchObject({ phase: "Ready", nodeName: "worker-0001", observedGeneration: 1, packagesRevision: packagesRevision(packages("v1.35.4")) });
    expect(h.events.map((e) => e.reason)).toEqual(["Installing", "Installed"]);
    // The key, the CA key and the kubeconfig went to the program only.
    expect(everything(h)).not.toMatch(/unit-test-secret-key|unit-test-ca-key/);
    expect(everything(h)).not.toContain(ADMIN_KEY_DATA);
  });

  it("reads the admin kubeconfig the stack wrote in the masters' namespace, never the tenant's copy nor a name from the status", async () => {
    const h = harness();
    h.readyCluster();
    // A tenant points the status at a Secret of its own and fills it, and its copy, with an exec entry.
    const cluster = h.clusters.get("fleet/prod-a")!;
    h.clusters.set("fleet/prod-a", { ...cluster, status: { ...cluster.status, adminKubeconfigSecret: "planted" } });
    h.secrets.set("fleet/planted", { kubeconfig: HOSTILE });
    h.put();
    await h.reconciler.reconcile("fleet/worker-0001");
    h.nodes.set("worker-0001", { name: "worker-0001", ready: true, kubeletVersion: "v1.36.3" });
    h.probes.versions = { containerd: "1.7.22", kubelet: "v1.36.3", cni: "v1.5.1" };
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.ups).toHaveLength(1);
    expect(h.secretReads).toContain(`${MASTERS}/prod-a-admin-kubeconfig`);
    expect(h.secretReads).not.toContain("fleet/prod-a-admin-kubeconfig");
    expect(h.secretReads).not.toContain("fleet/planted");
    expect(h.watched.length).toBeGreaterThan(0);
    for (const kubeconfig of h.watched) expect(kubeconfig).toBe(ADMIN);
  });

  it("refuses an admin kubeconfig with an exec entry: the condition says why and nothing runs", async () => {
    const h = harness();
    h.readyCluster();
    h.secrets.set(`${MASTERS}/prod-a-admin-kubeconfig`, { kubeconfig: HOSTILE });
    h.put();
    await h.reconciler.reconcile("fleet/worker-0001");
    const progressing = h.current().status?.conditions?.find((c) => c.type === "Progressing");
    expect(progressing).toMatchObject({ reason: "UntrustedKubeconfig" });
    expect(progressing?.message).toContain(`Secret ${MASTERS}/prod-a-admin-kubeconfig, key kubeconfig`);
    expect(progressing?.message).toContain("users[0].user.exec is not allowed");
    expect(progressing?.message).not.toContain(EXEC_MARKER);
    expect(h.ups).toHaveLength(0);
    expect(h.hostCalls).toEqual([]);
    expect(h.watched).toEqual([]);
  });

  it("waits for a missing credentials Secret instead of failing", async () => {
    const h = harness();
    h.readyCluster();
    h.secrets.delete("fleet/worker-ssh");
    h.put();
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.current().status?.conditions?.find((c) => c.type === "Progressing")).toMatchObject({ reason: "WaitingForCredentials", message: expect.stringContaining("fleet/worker-ssh") });
    expect(h.ups).toHaveLength(0);
  });

  it("refuses an invalid spec with every problem and no retry", async () => {
    const h = harness();
    h.readyCluster();
    h.put(machineSpec({ ip: "not-an-ip", ssh: { port: 22, user: "root", credentialsSecretRef: { name: "worker-ssh" } } }));
    await expect(h.reconciler.reconcile("fleet/worker-0001")).rejects.toBeInstanceOf(TerminalError);
    const message = h.events.find((e) => e.reason === "InvalidSpec")?.message ?? "";
    expect(message).toContain("spec.ip");
    expect(message).toContain("spec.ssh.hostKey");
    expect(h.ups).toHaveLength(0);
  });

  it("checks a healthy machine from its Node without an engine run, and probes the host only on its period", async () => {
    const h = harness();
    h.readyCluster();
    h.put();
    await h.reconciler.reconcile("fleet/worker-0001");
    h.nodes.set("worker-0001", { name: "worker-0001", ready: true, kubeletVersion: "v1.36.3" });
    h.probes.versions = { containerd: "1.7.22", kubelet: "v1.36.3", cni: "v1.5.1" };
    for (let i = 0; i < 3; i++) {
      await h.reconciler.reconcile("fleet/worker-0001");
      h.advance(60_000);
    }
    expect(h.ups).toHaveLength(1);
    expect(h.hostCalls.filter((c) => c === "probe")).toHaveLength(1);
    expect(h.current().status?.phase).toBe("Ready");
  });

  it("reinstalls once when the host's versions drift from the catalog, and does not loop on the same drift", async () => {
    const h = harness();
    h.readyCluster();
    h.put();
    await h.reconciler.reconcile("fleet/worker-0001");
    h.nodes.set("worker-0001", { name: "worker-0001", ready: true, kubeletVersion: "v1.36.3" });
    h.probes.versions = { containerd: "1.7.22", kubelet: "v1.35.4", cni: "v1.5.1" };
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.ups).toHaveLength(2);
    expect(h.current().status?.reinstalls).toBe(1);
    expect(h.events.find((e) => e.reason === "Drifted")?.message).toContain("kubelet v1.35.4 (catalog v1.36.3)");
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.ups).toHaveLength(2);
    expect(h.current().status?.conditions?.find((c) => c.type === "Drifted")).toMatchObject({ status: "True", reason: "CatalogMismatch" });
  });

  it("refuses, when it is made, a repair policy override that cannot work, naming every problem", () => {
    const parts = { store: undefined as never, events: undefined as never, stacks: undefined as never, nodes: undefined as never, hosts: undefined as never };
    expect(() => new MachineReconciler({ ...parts, remediation: { notReadyTimeoutMs: 0, maxUnhealthyShare: 1.5 } })).toThrow(
      /^invalid remediation policy: notReadyTimeoutMs: .*; maxUnhealthyShare: must be a share between 0 and 1/,
    );
    expect(() => new MachineReconciler({ ...parts, remediation: { maxRemediations: 0 } })).not.toThrow();
  });

  it("repairs a NotReady node after the timeout, and short-circuits when most machines are unhealthy", async () => {
    const h = harness();
    h.readyCluster();
    h.put();
    await h.reconciler.reconcile("fleet/worker-0001");
    h.probes.versions = { containerd: "1.7.22", kubelet: "v1.36.3", cni: "v1.5.1" };
    h.nodes.set("worker-0001", { name: "worker-0001", ready: false, readySince: h.now(), kubeletVersion: "v1.36.3" });
    // A second, healthy machine: one of two unhealthy is within the 50% share.
    h.put(machineSpec({ hostname: "worker-0002" }), 1, "worker-0002");
    h.machines.set("fleet/worker-0002", { ...h.machines.get("fleet/worker-0002")!, status: { packagesRevision: "x", nodeName: "worker-0002" } });
    h.nodes.set("worker-0002", { name: "worker-0002", ready: true });
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.current().status?.phase).toBe("NotReady");
    expect(h.hostCalls).not.toContain("restart");
    h.advance(61_000);
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.hostCalls).toContain("restart");
    expect(h.current().status).toMatchObject({ remediationCount: 1, lastRemediation: { action: "restart-services", result: "succeeded" } });
    expect(h.events.map((e) => e.reason)).toContain("Remediating");

    // Now the other machine fails too: 2 of 2 unhealthy is an outage, not a bad node.
    h.nodes.set("worker-0002", { name: "worker-0002", ready: false, readySince: h.now() });
    h.advance(600_000);
    const restarts = h.hostCalls.filter((c) => c === "restart").length;
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.hostCalls.filter((c) => c === "restart")).toHaveLength(restarts);
    expect(h.current().status?.conditions?.find((c) => c.type === "RemediationAllowed")).toMatchObject({ status: "False", reason: "TooManyUnhealthy" });
    expect(h.events.filter((e) => e.reason === "TooManyUnhealthy")).toHaveLength(1);
  });

  it("records a failed install with the engine's message and lets the controller retry", async () => {
    const h = harness();
    h.readyCluster();
    h.put();
    h.engine.failWith = new StackOperationError("fleet.worker-0001", "up", "engine", "worker-0001-kubelet: sha256 mismatch");
    await expect(h.reconciler.reconcile("fleet/worker-0001")).rejects.toThrow(/sha256 mismatch/);
    expect(h.current().status).toMatchObject({ phase: "Failed", targetRevision: packagesRevision(packages()), lastOperation: { result: "failed" } });
    expect(h.events.find((e) => e.reason === "InstallFailed")?.message).toContain("sha256 mismatch");
  });

  it("installs the catalog its ClusterPackageVersion names, and waits while it is missing", async () => {
    const h = harness();
    h.readyCluster();
    h.put(machineSpec({ packages: undefined, packageVersionRef: { name: "prod-a-v1.36" } }));
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.current().status?.conditions?.find((c) => c.type === "Progressing")).toMatchObject({ reason: "WaitingForPackageVersion" });
    h.cpvs.set("fleet/prod-a-v1.36", { apiVersion: "kubeonkube.io/v1alpha1", kind: "ClusterPackageVersion", metadata: { name: "prod-a-v1.36", namespace: "fleet", generation: 1 }, spec: { clusterRef: { name: "prod-a" }, packages: packages() } });
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.current().status?.packagesRevision).toBe(packagesRevision(packages()));
  });

  it("installs no kubelet that breaks the version-skew policy against its masters, and keeps caring for a host already running", async () => {
    const h = harness();
    h.readyCluster();
    const masters = (target: string, running: string) => {
      const cluster = h.clusters.get("fleet/prod-a")!;
      h.clusters.set("fleet/prod-a", { ...cluster, spec: { ...cluster.spec, kubernetesVersion: target }, status: { ...cluster.status, version: running } });
    };
    masters("v1.35.4", "v1.35.4");
    h.put(machineSpec({ packages: packages("v1.36.3") }));
    await h.reconciler.reconcile("fleet/worker-0001");
    const skew = h.current().status?.conditions?.find((c) => c.type === "Progressing");
    expect(skew).toMatchObject({ status: "False", reason: "VersionSkew" });
    expect(skew?.message).toContain("the machine's own spec.packages cannot run against the masters of Cluster fleet/prod-a: kubelet v1.36.3 is newer than the masters' v1.35.4");
    expect(h.ups).toHaveLength(0);
    expect(h.secretReads).toEqual([]);
    // The Cluster's masters upgrade: while the old ones still answer, the kubelet still waits.
    masters("v1.36.3", "v1.35.4");
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.current().status?.conditions?.find((c) => c.type === "Progressing")).toMatchObject({ reason: "VersionSkew" });
    expect(h.ups).toHaveLength(0);
    // Once the stack reports the new masters, the install goes ahead.
    masters("v1.36.3", "v1.36.3");
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.ups).toHaveLength(1);
    expect(h.current().status?.packagesRevision).toBe(packagesRevision(packages("v1.36.3")));
    // A host already at its packages keeps its health care (no install, no skew wait) whatever
    // the masters say now.
    h.nodes.set("worker-0001", { name: "worker-0001", ready: true, kubeletVersion: "v1.36.3" });
    h.probes.versions = { containerd: "1.7.22", kubelet: "v1.36.3", cni: "v1.5.1" };
    masters("v1.35.4", "v1.35.4");
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.ups).toHaveLength(1);
    expect(h.current().status?.phase).toBe("Ready");
    expect(h.current().status?.conditions?.some((c) => c.reason === "VersionSkew")).toBe(false);
  });

  it("makes no change and no repair while paused", async () => {
    const h = harness();
    h.readyCluster();
    h.put(machineSpec({ paused: true }));
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.ups).toHaveLength(0);
    expect(h.hostCalls).toHaveLength(0);
    expect(h.current().status?.conditions?.find((c) => c.type === "Progressing")).toMatchObject({ reason: "Paused" });
  });

  it("deletes through the finalizer: destroy the stack, then let go", async () => {
    const h = harness();
    h.readyCluster();
    h.put();
    await h.reconciler.reconcile("fleet/worker-0001");
    h.machines.set("fleet/worker-0001", { ...h.current(), metadata: { ...h.current().metadata, deletionTimestamp: new Date(), resourceVersion: "deleting" } });
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.engine.destroyed).toEqual(["fleet.worker-0001"]);
    expect(h.current().metadata.finalizers).toEqual([]);
    expect(h.events.at(-1)?.reason).toBe("Deleted");
  });

  it("renames its stack from the legacy fleet-worker-0001 before the first up, and only once", async () => {
    const h = harness();
    h.readyCluster();
    h.states.set("fleet-worker-0001", [{ type: "kube-on-kube:workers:WorkerNode", name: "worker-0001" }]);
    h.put();
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.engine.renamed).toEqual(["fleet-worker-0001 → fleet.worker-0001"]);
    expect(h.ups.map((u) => u.stack)).toEqual(["fleet.worker-0001"]);
    expect(h.events.find((e) => e.reason === "StackMigrated")?.message).toBe("stack fleet-worker-0001 renamed to fleet.worker-0001");
    h.machines.set("fleet/worker-0001", { ...h.current(), metadata: { ...h.current().metadata, deletionTimestamp: new Date(), resourceVersion: "deleting" } });
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.engine.renamed).toHaveLength(1);
    expect(h.engine.destroyed).toEqual(["fleet.worker-0001"]);
  });

  it("reads the cluster CA and admin kubeconfig from the legacy masters' namespace of a migrated Cluster, only when it carries the Cluster's UID", async () => {
    const h = harness();
    h.readyCluster();
    // Last applied before status.caSecretRef: the CA is where ControlPlane kept it then.
    const cluster = h.clusters.get("fleet/prod-a")!;
    h.clusters.set("fleet/prod-a", { ...cluster, status: { ...cluster.status, caSecretRef: undefined } });
    h.secrets.set("fleet-prod-a/prod-a-controller-manager-certs", { "ca.crt": TEST_CA, "ca.key": CA_KEY });
    // The admin kubeconfig moves with the masters: read from the same (legacy) namespace.
    h.secrets.set("fleet-prod-a/prod-a-admin-kubeconfig", h.secrets.get(`${MASTERS}/prod-a-admin-kubeconfig`)!);
    h.secrets.delete(`${MASTERS}/prod-a-admin-kubeconfig`);
    // A namespace of that name without this Cluster's UID (e.g. Cluster fleet-prod/a's of old) is not read.
    h.namespaceLabels.set("fleet-prod-a", { "kubeonkube.io/cluster-uid": "uid-of-someone-else" });
    h.put();
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.ups).toHaveLength(0);
    expect(h.current().status?.conditions?.find((c) => c.type === "Progressing")?.message).toContain(`Secret ${mastersNamespaceOf({ metadata: { namespace: "fleet", name: "prod-a" } })}/prod-a-controller-manager-certs`);
    h.namespaceLabels.set("fleet-prod-a", { "kubeonkube.io/cluster-uid": "uid-of-prod-a" });
    h.advance(60_000);
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.ups).toHaveLength(1);
  });

  it("refuses a name too long for its stack (and for a DNS name), before any engine call", async () => {
    const h = harness();
    h.readyCluster();
    const name = `w${"x".repeat(94)}`;
    h.put(undefined, 1, name);
    await expect(h.reconciler.reconcile(`fleet/${name}`)).rejects.toBeInstanceOf(TerminalError);
    expect(h.ups).toHaveLength(0);
    expect(h.events.find((e) => e.reason === "InvalidSpec")?.message).toContain("(95 characters) must be a lowercase DNS name of at most 63 characters");
  });

  it("never destroys another tenant's machine: a legacy stack of fleet-worker/0001 is not fleet/worker-0001's", async () => {
    const h = harness();
    h.readyCluster();
    h.states.set("fleet-worker-0001", [{ type: "kube-on-kube:workers:WorkerNode", name: "0001" }]);
    h.put();
    h.machines.set("fleet/worker-0001", { ...h.current(), metadata: { ...h.current().metadata, finalizers: [MACHINE_FINALIZER], deletionTimestamp: new Date(), resourceVersion: "deleting" } });
    await h.reconciler.reconcile("fleet/worker-0001");
    expect(h.engine.renamed).toEqual([]);
    expect(h.engine.destroyed).toEqual(["fleet.worker-0001"]);
    expect(h.states.has("fleet-worker-0001")).toBe(true);
  });
});
