/**
 * The masters' namespace ownership check against a real kube-apiserver + etcd: the labels are read
 * as the apiserver serves them, and the namespaces it creates itself (kube-system, default) are
 * never taken for a Cluster's.
 */
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { legacyStackNameOf, mastersNamespaceLabels, mastersNamespaceOf } from "../../src/api/v1alpha1";
import { mastersNamespaceFor, namespaceConflict, namespaceLabelsReader, type NamespaceLabels, type Placement } from "../../src/controllers/cluster/masters-namespace";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";

let apiserver: TestApiserver;
let core: CoreV1Api;
let labelsOf: NamespaceLabels;

const cluster = (namespace: string, name: string) => ({ metadata: { namespace, name, uid: `uid-of-${namespace}-${name}` } });
const placementOf = (c: ReturnType<typeof cluster>, mastersNamespace = mastersNamespaceOf(c)): Placement => ({
  stack: `${c.metadata.namespace}.${c.metadata.name}`,
  resources: undefined,
  mastersNamespace,
  namespaceInStack: false,
});
const createNamespace = (name: string, labels?: Record<string, string>) => core.createNamespace({ body: { metadata: { name, labels } } });

beforeAll(async () => {
  apiserver = await startTestApiserver();
  core = apiserver.kubeConfig().makeApiClient(CoreV1Api);
  labelsOf = namespaceLabelsReader(core);
}, 120_000);

afterAll(async () => apiserver?.stop());

describe("masters' namespace ownership with a real apiserver", () => {
  it("allows a namespace that does not exist yet (the stack creates it) and one labelled with the Cluster's UID", async () => {
    const dev = cluster("fleet", "dev");
    expect(await labelsOf(mastersNamespaceOf(dev))).toBeUndefined();
    expect(namespaceConflict(dev, placementOf(dev), await labelsOf(mastersNamespaceOf(dev)))).toBeUndefined();
    await createNamespace(mastersNamespaceOf(dev), { ...mastersNamespaceLabels(dev), "kubeonkube.io/cluster": "dev" });
    expect(namespaceConflict(dev, placementOf(dev), await labelsOf(mastersNamespaceOf(dev)))).toBeUndefined();
  });

  it("refuses a namespace someone else created at the derived name, and one labelled for another Cluster", async () => {
    const squatted = cluster("team", "prod-a");
    await createNamespace(mastersNamespaceOf(squatted));
    expect(namespaceConflict(squatted, placementOf(squatted), await labelsOf(mastersNamespaceOf(squatted)))).toContain("without the label kubeonkube.io/cluster-uid");
    const other = cluster("team-prod", "a");
    await createNamespace(mastersNamespaceOf(other), mastersNamespaceLabels(cluster("team-x", "a")));
    expect(namespaceConflict(other, placementOf(other), await labelsOf(mastersNamespaceOf(other)))).toContain("names another Cluster");
  });

  it("never takes kube-system or default, which the apiserver made, for a Cluster's", async () => {
    const kubeSystem = cluster("kube", "system");
    expect(legacyStackNameOf(kubeSystem)).toBe("kube-system");
    expect(await labelsOf("kube-system")).toBeDefined();
    // Even were a stack to point at it, a namespace without this Cluster's UID is refused.
    expect(namespaceConflict(kubeSystem, placementOf(kubeSystem, "kube-system"), await labelsOf("kube-system"))).toContain('"kube-system" cannot be used');
    expect(namespaceConflict(kubeSystem, placementOf(kubeSystem, "default"), await labelsOf("default"))).toContain('"default" cannot be used');
    // A Machine of Cluster kube/system looks for the masters in the derived namespace, not kube-system.
    expect(await mastersNamespaceFor(kubeSystem, labelsOf)).toBe(mastersNamespaceOf(kubeSystem));
  });

  it("finds a migrated Cluster's masters in its legacy namespace only once that carries the Cluster's UID", async () => {
    const ops = cluster("fleet", "ops");
    await createNamespace("fleet-ops", { "kubeonkube.io/cluster": "ops" });
    expect(await mastersNamespaceFor(ops, labelsOf)).toBe(mastersNamespaceOf(ops));
    // What the migrated stack's next up does to it.
    const ns = await core.readNamespace({ name: "fleet-ops" });
    await core.replaceNamespace({ name: "fleet-ops", body: { ...ns, metadata: { ...ns.metadata, labels: { ...ns.metadata?.labels, ...mastersNamespaceLabels(ops) } } } });
    expect(await mastersNamespaceFor(ops, labelsOf)).toBe("fleet-ops");
  });
});
