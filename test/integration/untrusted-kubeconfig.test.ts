/**
 * A business cluster's admin kubeconfig with an `exec` entry, against a real kube-apiserver + etcd
 * (test/support/apiserver.ts) and the toolchain's kubectl. The entry's command creates a marker
 * file and hands out the apiserver's real token, as a credential plugin would, so a client that
 * runs it succeeds: the first tests show that the ways the operator used to load the kubeconfig
 * (client-node's `loadFromString`, kubectl fed the text on stdin) run the command as the
 * operator; the others show that the Node watch, the kubectl steps' filter and the Machine
 * context refuse it, name `exec`, and leave no marker, while the same kubeconfig without the entry
 * works against the same apiserver.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { objectNames } from "../../src/components/cluster-context";
import { trustedKubeconfig } from "../../src/components/trusted-kubeconfig";
import { workerNodeProblems } from "../../src/components/worker-node";
import { drainScript } from "../../src/host/scripts/kubectl";
import { caSecretOf, mastersNamespaceOf, type ClusterObject, type MachineObject } from "../../src/api/v1alpha1";
import { machineCatalog, machineSecrets, type MachineDependencies } from "../../src/controllers/machine/context";
import { BusinessNodeWatches } from "../../src/controllers/machine/node-health";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";
import { TOOLCHAIN_DIR } from "../support/engine";
import { execEntry, pem, tokenKubeconfig, withFields } from "../support/kubeconfigs";
import { machine } from "../support/worker-fixtures";
import { eventually } from "../support/poll";

let apiserver: TestApiserver;
let core: CoreV1Api;
let clean: string;
/** The apiserver's CA (PEM): the CA of the clean kubeconfig, so the CA Secret must hold it. */
let caPem: string;
let markers: string;
let token: string;

/** The clean kubeconfig with its token replaced by an exec entry that creates `marker`. */
const hostile = (marker: string) => withFields(clean, "user", { token: undefined, exec: execEntry(path.join(markers, marker), token) });

/** Runs a kubectl step script as WorkerNode's local step does: bash, the kubeconfig on stdin. */
function runStep(script: string, stdin: string) {
  const env = { ...process.env, PATH: [path.join(TOOLCHAIN_DIR, "bin"), process.env.PATH ?? ""].join(path.delimiter) };
  return spawnSync("/bin/bash", ["-c", script], { input: stdin, env, encoding: "utf8", timeout: 60_000 });
}

beforeAll(async () => {
  apiserver = await startTestApiserver();
  const kc = apiserver.kubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  token = kc.getCurrentUser()!.token!;
  caPem = readFileSync(kc.getCurrentCluster()!.caFile!, "utf8");
  clean = tokenKubeconfig(apiserver.url, caPem, token);
  markers = mkdtempSync(path.join(tmpdir(), "kok-exec-markers-"));
});
afterAll(async () => {
  await apiserver?.stop();
  if (markers) rmSync(markers, { recursive: true, force: true });
});

describe("an admin kubeconfig with an exec entry", () => {
  it("runs its command through client-node's loadFromString, as the operator loaded it before", async () => {
    const kc = new KubeConfig();
    kc.loadFromString(hostile("client-node"));
    await kc.makeApiClient(CoreV1Api).listNode();
    expect(existsSync(path.join(markers, "client-node"))).toBe(true);
  });

  it("runs its command through kubectl fed the text on stdin, as the drain step got it before", () => {
    const result = runStep(drainScript("worker-0001", 10), hostile("kubectl"));
    expect(result.stderr + result.stdout).toContain("nothing to drain");
    expect(existsSync(path.join(markers, "kubectl"))).toBe(true);
  });

  it("is refused by the Node watch, naming exec, before any client exists; the clean one watches", async () => {
    const watches = new BusinessNodeWatches({ onChange: () => undefined });
    expect(() => watches.ensure("fleet/prod-a", hostile("watch"))).toThrow(/its admin kubeconfig is refused: users\[0\]\.user\.exec is not allowed/);
    watches.ensure("fleet/prod-a", clean);
    await eventually("the clean kubeconfig's first list", () => watches.synced("fleet/prod-a"));
    await watches.stopAll();
    expect(existsSync(path.join(markers, "watch"))).toBe(false);
  });

  it("never reaches kubectl through WorkerNode; the rebuilt clean one drives kubectl against the apiserver", () => {
    const args = { machine: machine(), credentials: { privateKey: "k" }, cluster: { endpoint: apiserver.url, caCertificate: pem("CERTIFICATE", "ca"), caPrivateKey: "k", adminKubeconfig: hostile("worker-node") } };
    expect(workerNodeProblems(args).map((p) => `${p.path}: ${p.message}`).join("\n")).toContain("cluster.adminKubeconfig: users[0].user.exec is not allowed");
    expect(() => trustedKubeconfig(hostile("worker-node"))).toThrow(/users\[0\]\.user\.exec is not allowed/);
    const result = runStep(drainScript("worker-0001", 10), trustedKubeconfig(clean));
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain("node worker-0001 is not registered; nothing to drain");
    expect(existsSync(path.join(markers, "worker-node"))).toBe(false);
  });
});

describe("the Machine context", () => {
  const cluster: ClusterObject = {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "Cluster",
    metadata: { name: "prod-a", namespace: "fleet" },
    spec: {} as ClusterObject["spec"],
    // A tenant may write its status: it points it at a Secret of its own.
    status: { phase: "Ready", endpoint: "https://203.0.113.9:6443", adminKubeconfigSecret: "planted" },
  };
  const machineObject: MachineObject = { apiVersion: "kubeonkube.io/v1alpha1", kind: "Machine", metadata: { name: "worker-0001", namespace: "fleet" }, spec: machine() };
  const reads: string[] = [];
  const deps: MachineDependencies = {
    cluster: () => cluster,
    packageVersion: () => undefined,
    mastersNamespace: async (c) => mastersNamespaceOf(c),
    // As fleet.ts reads Secrets: live from the API server, decoded.
    async secret(namespace, name) {
      reads.push(`${namespace}/${name}`);
      try {
        const secret = await core.readNamespacedSecret({ namespace, name });
        return Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
      } catch (err) {
        if ((err as { code?: number }).code === 404) return undefined;
        throw err;
      }
    },
  };
  // Where ControlPlane writes it, spelled out here so the test does not trust the code under test.
  const admin = { namespace: mastersNamespaceOf(cluster), name: objectNames("prod-a").adminKubeconfig };
  const putSecret = async (namespace: string, name: string, stringData: Record<string, string>) => {
    await core.deleteNamespacedSecret({ namespace, name }).catch(() => undefined);
    await core.createNamespacedSecret({ namespace, body: { metadata: { name }, stringData } });
  };

  beforeAll(async () => {
    for (const name of ["fleet", mastersNamespaceOf(cluster)]) await core.createNamespace({ body: { metadata: { name } } });
    await putSecret("fleet", "worker-ssh", { privateKey: "test-only-ssh-key" });
    await putSecret("fleet", "prod-a-admin-kubeconfig", { kubeconfig: hostile("tenant-copy") });
    await putSecret("fleet", "planted", { kubeconfig: hostile("planted") });
    const ca = caSecretOf(cluster, mastersNamespaceOf(cluster));
    await putSecret(ca.namespace, ca.name, { [ca.certificateKey]: caPem, [ca.privateKeyKey]: pem("EC PRIVATE KEY", "test-only-ca-key") });
  });

  it("reads the masters' namespace Secret, never the tenant's copy nor the one its status names", async () => {
    await putSecret(admin.namespace, admin.name, { kubeconfig: clean, "kubeconfig-internal": hostile("internal") });
    const catalog = machineCatalog(machineObject, deps);
    if ("waiting" in catalog) throw new Error(catalog.message);
    const ctx = await machineSecrets(machineObject, catalog, deps);
    if ("waiting" in ctx) throw new Error(ctx.message);
    expect(ctx.cluster.adminKubeconfig).toBe(trustedKubeconfig(clean));
    expect(ctx.cluster.endpoint).toBe(apiserver.url);
    expect(reads).not.toContain("fleet/prod-a-admin-kubeconfig");
    expect(reads).not.toContain("fleet/planted");
    const watches = new BusinessNodeWatches({ onChange: () => undefined });
    watches.ensure(catalog.clusterKey, ctx.cluster.adminKubeconfig);
    await eventually("the watch through the masters' kubeconfig", () => watches.synced(catalog.clusterKey));
    await watches.stopAll();
    for (const marker of ["tenant-copy", "planted", "internal"]) expect(existsSync(path.join(markers, marker))).toBe(false);
  });

  it("waits with UntrustedKubeconfig, naming exec, when the masters' Secret holds an exec entry", async () => {
    await putSecret(admin.namespace, admin.name, { kubeconfig: hostile("masters") });
    const catalog = machineCatalog(machineObject, deps);
    if ("waiting" in catalog) throw new Error(catalog.message);
    const ctx = await machineSecrets(machineObject, catalog, deps);
    expect(ctx).toMatchObject({ waiting: true, reason: "UntrustedKubeconfig" });
    expect((ctx as { message: string }).message).toContain("users[0].user.exec is not allowed");
    expect(existsSync(path.join(markers, "masters"))).toBe(false);
  });

  it("refuses a CA reference in the status that leaves the masters' namespace, reading nothing there", async () => {
    await putSecret(admin.namespace, admin.name, { kubeconfig: clean });
    await core.createNamespace({ body: { metadata: { name: "planted-ca" } } });
    await putSecret("planted-ca", "ca", { "ca.crt": caPem, "ca.key": pem("EC PRIVATE KEY", "test-only-planted-key") });
    const planted = { ...cluster, status: { ...cluster.status, caSecretRef: { namespace: "planted-ca", name: "ca", certificateKey: "ca.crt", privateKeyKey: "ca.key" } } };
    const withPlanted: MachineDependencies = { ...deps, cluster: () => planted };
    const catalog = machineCatalog(machineObject, withPlanted);
    if ("waiting" in catalog) throw new Error(catalog.message);
    const ctx = await machineSecrets(machineObject, catalog, withPlanted);
    expect(ctx).toMatchObject({ waiting: true, reason: "UntrustedCaReference" });
    expect(reads.filter((r) => r.startsWith("planted-ca/"))).toEqual([]);
  });
});
