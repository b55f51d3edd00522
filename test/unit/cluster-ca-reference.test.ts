/**
 * Where a Machine's install finds its cluster CA: the Secret the Cluster's status names (recorded
 * from its stack's `caSecret` output), read only inside the Cluster's own masters' namespace, its
 * certificate only when it is the CA of the masters' admin kubeconfig; and, for a Cluster whose
 * status predates the reference, the Secret ControlPlane kept the CA in before. The Machine
 * context runs as the reconciler calls it, over an in-memory Secret store.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { caSecretOf, caSecretRefProblem, mastersNamespaceOf, type CaSecretReference, type ClusterObject, type MachineObject } from "../../src/api/v1alpha1";
import { machineCatalog, machineSecrets, type MachineContext, type MachineDependencies, type Waiting } from "../../src/controllers/machine/context";
import { cleanKubeconfig, pem, TEST_CA } from "../support/kubeconfigs";
import { bundleFingerprint } from "../../src/runtime/certificates";
import { testCa, type TestCa } from "../support/test-pki";
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

describe("the trust bundle of a Machine's install (a CA rotation's ca-bundle.crt)", () => {
  let rotated: TestCa;
  let foreign: TestCa;
  beforeAll(async () => {
    [rotated, foreign] = await Promise.all([testCa("kubernetes-ca-g1"), testCa("another-tenants-ca")]);
  });
  /** The CA Secret and admin kubeconfig as a rotation's phase 1 writes them: the new CA signs, both are trusted. */
  const rotating = (w: ReturnType<typeof world>, secret: Record<string, string>, adminCa = `${TEST_CA}${rotated.pem}`) => {
    w.secrets.set(`${MASTERS}/prod-a-cluster-ca`, secret);
    w.secrets.set(`${MASTERS}/prod-a-admin-kubeconfig`, { kubeconfig: cleanKubeconfig(undefined, { caCertPem: adminCa }) });
  };

  it("is the CA alone while the Secret has no bundle (stacks before rotations)", async () => {
    const ctx = loaded(await world(REF).load());
    expect(ctx.cluster.trustBundle).toBe(TEST_CA);
  });

  it("is the Secret's bundle during a rotation, with the new CA signing, when the admin kubeconfig trusts the signing CA", async () => {
    const w = world(REF);
    rotating(w, { "tls.crt": rotated.pem, "tls.key": CA_KEY, "ca-bundle.crt": `${TEST_CA}${rotated.pem}` });
    const ctx = loaded(await w.load());
    expect(ctx.cluster.caCertificate).toBe(rotated.pem);
    expect(ctx.cluster.trustBundle).toBe(`${TEST_CA}${rotated.pem}`);
  });

  it("is the CA's own text when the bundle holds just that CA, so hosts re-run nothing for it", async () => {
    const w = world(REF);
    w.secrets.set(`${MASTERS}/prod-a-cluster-ca`, { "tls.crt": TEST_CA, "tls.key": CA_KEY, "ca-bundle.crt": `\n${TEST_CA}${TEST_CA}` });
    expect(loaded(await w.load()).cluster.trustBundle).toBe(TEST_CA);
  });

  it("refuses a signing CA that the admin kubeconfig does not trust, even with a bundle that holds it", async () => {
    const w = world(REF);
    rotating(w, { "tls.crt": foreign.pem, "tls.key": CA_KEY, "ca-bundle.crt": `${TEST_CA}${foreign.pem}` });
    const ctx = await w.load();
    expect(ctx).toMatchObject({ waiting: true, reason: "UntrustedCaReference" });
    expect((ctx as Waiting).message).toContain(`the CA of Cluster fleet/prod-a (Secret ${MASTERS}/prod-a-cluster-ca, keys tls.crt and tls.key) is not a CA of its admin kubeconfig`);
  });

  it("refuses a bundle without the signing CA (the kubelet would refuse its own certificates' CA), and a bundle that is no certificate, never quoting it", async () => {
    const w = world(REF);
    rotating(w, { "tls.crt": rotated.pem, "tls.key": CA_KEY, "ca-bundle.crt": TEST_CA });
    expect(((await w.load()) as Waiting).message).toContain(`the trust bundle (Secret ${MASTERS}/prod-a-cluster-ca, key ca-bundle.crt) does not hold the CA of Cluster fleet/prod-a`);
    // A private key's PEM in the bundle: only the certificates reach the host (its ca.crt is 0644).
    rotating(w, { "tls.crt": rotated.pem, "tls.key": CA_KEY, "ca-bundle.crt": `${TEST_CA}${CA_KEY}${rotated.pem}` });
    const trust = loaded(await w.load()).cluster.trustBundle;
    expect(bundleFingerprint(trust)).toBe(bundleFingerprint(`${TEST_CA}${rotated.pem}`));
    expect(trust).not.toContain("PRIVATE KEY");
    expect(trust).not.toContain(Buffer.from("unit-test-ca-key").toString("base64"));
    const broken = pem("CERTIFICATE", "unit-test-ca-key-material");
    rotating(w, { "tls.crt": rotated.pem, "tls.key": CA_KEY, "ca-bundle.crt": `${rotated.pem}${broken}` });
    const ctx = await w.load();
    expect(ctx).toMatchObject({ waiting: true, reason: "UntrustedCaReference" });
    expect((ctx as Waiting).message).toContain("certificate 2 of 2 is not a valid X.509 certificate");
    expect(JSON.stringify(ctx)).not.toContain(Buffer.from("unit-test-ca-key-material").toString("base64"));
  });
});
