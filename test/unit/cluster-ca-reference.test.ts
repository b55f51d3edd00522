/**
 * Where a Machine's install finds its cluster CA: the Secret the Cluster's status names (recorded
 * from its stack's `caSecret` output), read only inside the Cluster's own masters' namespace, its
 * certificate only when it is the CA of the masters' admin kubeconfig; and, for a Cluster whose
 * status predates the reference, the Secret ControlPlane kept the CA in before. The Machine
 * context runs as the reconciler calls it, over an in-memory Secret store.
 */
import { describe, expect, it } from "vitest";
import { caSecretOf, caSecretRefProblem, mastersNamespaceOf, type CaSecretReference, type ClusterObject, type MachineObject } from "../../src/api/v1alpha1";
import { machineCatalog, machineSecrets, type MachineContext, type MachineDependencies, type Waiting } from "../../src/controllers/machine/context";
import { cleanKubeconfig, pem, TEST_CA } from "../support/kubeconfigs";
import { machine, packages } from "../support/worker-fixtures";

const MASTERS = mastersNamespaceOf({ metadata: { namespace: "fleet", name: "prod-a" } });
/** Another tenant's Cluster: its masters' namespace holds a CA too. */
const OTHER_MASTERS = mastersNamespaceOf({ metadata: { namespace: "team-b", name: "prod-b" } });
const CA_KEY = pem("EC PRIVATE KEY", "unit-test-ca-key");
const OTHER_CA_KEY = pem("EC PRIVATE KEY", "another-tenants-ca-key");
const SA_KEY = pem("RSA PRIVATE KEY", "service-account-signing-key");
const REF: CaSecretReference = { namespace: MASTERS, name: "prod-a-cluster-ca", certificateKey: "tls.crt", privateKeyKey: "tls.key" };

function world(caSecretRef: CaSecretReference | undefined) {
  const cluster: ClusterObject = {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "Cluster",
    metadata: { name: "prod-a", namespace: "fleet" },
    spec: {} as ClusterObject["spec"],
    status: { phase: "Ready", endpoint: "https://127.0.0.1:30443", ...(caSecretRef ? { caSecretRef } : {}) },
  };
  const secrets = new Map<string, Record<string, string>>([
    ["fleet/worker-ssh", { privateKey: "unit-test-ssh-key" }],
    [`${MASTERS}/prod-a-admin-kubeconfig`, { kubeconfig: cleanKubeconfig() }],
    [`${MASTERS}/prod-a-cluster-ca`, { "tls.crt": TEST_CA, "tls.key": CA_KEY }],
    [`${MASTERS}/prod-a-controller-manager-certs`, { "ca.crt": TEST_CA, "ca.key": CA_KEY }],
    [`${MASTERS}/prod-a-apiserver-certs`, { "ca.crt": TEST_CA, "sa.key": SA_KEY }],
    [`${OTHER_MASTERS}/prod-b-controller-manager-certs`, { "ca.crt": TEST_CA, "ca.key": OTHER_CA_KEY }],
  ]);
  const reads: string[] = [];
  const deps: MachineDependencies = {
    cluster: () => cluster,
    packageVersion: () => undefined,
    mastersNamespace: async (c) => mastersNamespaceOf(c),
    secret: async (namespace, name) => (reads.push(`${namespace}/${name}`), secrets.get(`${namespace}/${name}`)),
  };
  const machineObject: MachineObject = {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "Machine",
    metadata: { name: "worker-0001", namespace: "fleet" },
    spec: machine({ packages: packages() }),
  };
  const load = async (): Promise<MachineContext | Waiting> => {
    const catalog = machineCatalog(machineObject, deps);
    if ("waiting" in catalog) throw new Error(catalog.message);
    return machineSecrets(machineObject, catalog, deps);
  };
  return { cluster, secrets, reads, load };
}

const loaded = (ctx: MachineContext | Waiting): MachineContext => {
  if ("waiting" in ctx) throw new Error(`${ctx.reason}: ${ctx.message}`);
  return ctx;
};

describe("the cluster CA of a Machine's install", () => {
  it("is read from the Secret and keys the Cluster's status names", async () => {
    const w = world(REF);
    const ctx = loaded(await w.load());
    expect(ctx.cluster.caCertificate).toBe(TEST_CA);
    expect(ctx.cluster.caPrivateKey).toBe(CA_KEY);
    expect(w.reads).toContain(`${MASTERS}/prod-a-cluster-ca`);
    expect(w.reads).not.toContain(`${MASTERS}/prod-a-controller-manager-certs`);
  });

  it("falls back to the controller-manager's Secret for a Cluster whose status predates the reference", async () => {
    const w = world(undefined);
    const ctx = loaded(await w.load());
    expect(ctx.cluster.caPrivateKey).toBe(CA_KEY);
    expect(w.reads).toContain(`${MASTERS}/prod-a-controller-manager-certs`);
  });

  it("refuses a reference to another Cluster's masters' namespace: nothing is read there", async () => {
    const w = world({ namespace: OTHER_MASTERS, name: "prod-b-controller-manager-certs", certificateKey: "ca.crt", privateKeyKey: "ca.key" });
    const ctx = await w.load();
    expect(ctx).toMatchObject({ waiting: true, reason: "UntrustedCaReference" });
    expect((ctx as Waiting).message).toContain(`Secret ${OTHER_MASTERS}/prod-b-controller-manager-certs, outside the Cluster's masters' namespace ${MASTERS}`);
    expect(w.reads.filter((r) => r.startsWith(`${OTHER_MASTERS}/`))).toEqual([]);
    expect(JSON.stringify(ctx)).not.toContain("another-tenants-ca-key");
  });

  it("refuses a reference whose certificate is not the admin kubeconfig's CA, without quoting what it read", async () => {
    // Inside the masters' namespace, but naming a private key as the certificate (it would go onto the host).
    const w = world({ namespace: MASTERS, name: "prod-a-apiserver-certs", certificateKey: "sa.key", privateKeyKey: "sa.key" });
    const ctx = await w.load();
    expect(ctx).toMatchObject({ waiting: true, reason: "UntrustedCaReference" });
    expect((ctx as Waiting).message).toContain(`the CA of Cluster fleet/prod-a (Secret ${MASTERS}/prod-a-apiserver-certs, keys sa.key and sa.key) is not a CA of its admin kubeconfig`);
    expect(JSON.stringify(ctx)).not.toContain(Buffer.from("service-account-signing-key").toString("base64"));
  });

  it("waits, naming the Secret and its keys, while the referenced Secret lacks a key", async () => {
    const w = world(REF);
    w.secrets.set(`${MASTERS}/prod-a-cluster-ca`, { "tls.crt": TEST_CA });
    expect(await w.load()).toMatchObject({
      waiting: true,
      reason: "WaitingForCluster",
      message: `the CA of Cluster fleet/prod-a (Secret ${MASTERS}/prod-a-cluster-ca, keys tls.crt and tls.key) is not there yet`,
    });
  });
});

describe("caSecretOf and caSecretRefProblem", () => {
  const cluster = (caSecretRef?: CaSecretReference) => ({ metadata: { namespace: "fleet", name: "prod-a" }, status: { caSecretRef } });

  it("prefer the status' reference and accept it only inside the given masters' namespace", () => {
    expect(caSecretOf(cluster(REF), MASTERS)).toEqual(REF);
    expect(caSecretRefProblem(REF, MASTERS)).toBeUndefined();
    expect(caSecretRefProblem(REF, "fleet-prod-a")).toMatch(/outside the Cluster's masters' namespace fleet-prod-a/);
    expect(caSecretRefProblem({ ...REF, namespace: "kube-system" }, MASTERS)).toMatch(/names Secret kube-system\/prod-a-cluster-ca, outside/);
  });

  it("derive the name ControlPlane used before the reference, in the namespace they are given", () => {
    expect(caSecretOf(cluster(), "fleet-prod-a")).toEqual({ namespace: "fleet-prod-a", name: "prod-a-controller-manager-certs", certificateKey: "ca.crt", privateKeyKey: "ca.key" });
  });
});
