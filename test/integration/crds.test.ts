/**
 * The generated CRDs against a real kube-apiserver: accepted as structural schemas, the sample
 * resources validate, and the apiserver itself refuses what the CEL rules and schema forbid.
 */
import * as k8s from "@kubernetes/client-node";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { allCustomResourceDefinitions } from "../../src/api/v1alpha1/crds";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";
import { minimalSpec } from "../support/specs";

let api: TestApiserver;
let objects: k8s.KubernetesObjectApi;

const samples = (file: string) =>
  parseAllDocuments(readFileSync(path.join(__dirname, "..", "..", "examples", "resources", file), "utf8")).map((d) => d.toJS() as k8s.KubernetesObject);

async function rejection(object: k8s.KubernetesObject): Promise<string> {
  try {
    await objects.create(object);
  } catch (error) {
    return String((error as { body?: string }).body ?? error);
  }
  throw new Error(`${object.kind} ${object.metadata?.name} was accepted`);
}

beforeAll(async () => {
  api = await startTestApiserver();
  const kc = api.kubeConfig();
  objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  // kubectl, as users install them: client-node's typed serializer would drop the
  // x-kubernetes-* extensions of the schema.
  const dir = mkdtempSync(path.join(tmpdir(), "kok-crds-"));
  writeFileSync(path.join(dir, "kubeconfig"), kc.exportConfig());
  writeFileSync(path.join(dir, "crds.yaml"), allCustomResourceDefinitions().map((d) => stringify(d)).join("---\n"));
  const kubectl = path.join(process.env.KOK_TOOLCHAIN_DIR ?? path.join(homedir(), ".cache", "kube-on-kube", "toolchain"), "bin", "kubectl");
  execFileSync(kubectl, ["--kubeconfig", path.join(dir, "kubeconfig"), "apply", "-f", path.join(dir, "crds.yaml")], { stdio: "pipe" });
  rmSync(dir, { recursive: true, force: true });
  const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
  for (const crd of allCustomResourceDefinitions()) {
    const name = (crd.metadata as { name: string }).name;
    for (let i = 0; ; i++) {
      const read = await ext.readCustomResourceDefinition({ name });
      if (read.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) break;
      if (i > 200) throw new Error(`CRD ${name} not Established: ${JSON.stringify(read.status?.conditions)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await objects.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "fleet" } });
});
afterAll(async () => api?.stop());

describe("CRDs on a real kube-apiserver", () => {
  it("accepts the sample Cluster, Machine and ClusterPackageVersion", async () => {
    for (const object of [...samples("cluster.yaml"), ...samples("machines.yaml")]) {
      await expect(objects.create(object)).resolves.toMatchObject({ kind: object.kind });
    }
  });

  it("refuses a Cluster with an even etcd member count, two storage choices and a bad CIDR, naming each", async () => {
    const message = await rejection({
      apiVersion: "kubeonkube.io/v1alpha1",
      kind: "Cluster",
      metadata: { name: "bad", namespace: "fleet" },
      spec: { ...minimalSpec(), etcd: { version: "3.6.16", replicas: 2, storage: { claimTemplate: { size: "1Gi" }, volumeSource: { emptyDir: {} } } }, network: { serviceCIDR: "10.96.0.0/33" } },
    } as k8s.KubernetesObject);
    expect(message).toContain("spec.etcd.replicas must be odd");
    expect(message).toContain("set exactly one of claimTemplate or volumeSource");
    expect(message).toContain("spec.network.serviceCIDR must be a CIDR");
  });

  it("refuses a kube-proxy newer than the masters and a service range without a 10th address; accepts one 3 minors older", async () => {
    const cluster = (name: string, spec: Record<string, unknown>) =>
      ({ apiVersion: "kubeonkube.io/v1alpha1", kind: "Cluster", metadata: { name, namespace: "fleet" }, spec: { ...minimalSpec(), ...spec } }) as k8s.KubernetesObject;
    const message = await rejection(cluster("skewed", { addons: { kubeProxy: { version: "v1.37.0" } }, network: { serviceCIDR: "10.96.0.0/29" } }));
    expect(message).toContain("spec.addons.kubeProxy.version must be the masters' minor or up to 3 older");
    expect(message).toContain("spec.network.serviceCIDR must be a /28 (IPv6: /124) or larger");
    expect(await rejection(cluster("ancient", { addons: { kubeProxy: { version: "v1.32.0" } } }))).toContain("spec.addons.kubeProxy.version");
    expect(await rejection(cluster("tiny6", { network: { serviceCIDR: "fd00::/125" } }))).toContain("spec.network.serviceCIDR must be a /28");
    await expect(objects.create(cluster("older-proxy", { addons: { kubeProxy: { version: "v1.33.0", mode: "nftables" } }, network: { serviceCIDR: "fd00::/124" } }))).resolves.toMatchObject({
      kind: "Cluster",
    });
  });

  it("keeps mode immutable", async () => {
    const cluster = samples("cluster.yaml")[0] as k8s.KubernetesObject & { spec: { mode: string } };
    const current = await objects.read({ apiVersion: cluster.apiVersion, kind: cluster.kind, metadata: { name: "prod-a", namespace: "fleet" } });
    const message = await objects.replace({ ...current, spec: { ...(current as typeof cluster).spec, mode: "minimal" } } as k8s.KubernetesObject).then(
      () => "accepted",
      (e: { body?: string }) => String(e.body ?? e),
    );
    expect(message).toContain("spec.mode is immutable");
  });

  it("refuses a hostile Cluster (issue 13), naming each field", async () => {
    const message = await rejection({
      apiVersion: "kubeonkube.io/v1alpha1",
      kind: "Cluster",
      metadata: { name: "hostile", namespace: "fleet" },
      spec: {
        ...minimalSpec(),
        kubernetesVersion: "v99.0.0",
        etcd: { version: "3.6.16", storage: { volumeSource: { hostPath: { path: "/var/lib/../../" } } } },
        apiServer: { replicas: 100000, extraArgs: { "--authorization-mode": "AlwaysAllow" } },
        kubeconfigs: [{ name: "root", user: "root", groups: ["system:masters"] }],
      },
    } as k8s.KubernetesObject);
    expect(message).toContain("spec.kubernetesVersion must be v1.33 to v1.37");
    expect(message).toContain("hostPath.path must be an absolute path");
    expect(message).toContain("spec.apiServer.replicas");
    expect(message).toContain("spec.apiServer.extraArgs keys are flag names");
    expect(message).toContain("must not name a system: group");
  });

  it("keeps no volume type but emptyDir and hostPath in etcd.storage.volumeSource (others are pruned, not stored)", async () => {
    const smuggled = {
      apiVersion: "kubeonkube.io/v1alpha1",
      kind: "Cluster",
      metadata: { name: "smuggler", namespace: "fleet" },
      spec: { ...minimalSpec(), etcd: { version: "3.6.16", storage: { volumeSource: { emptyDir: {}, secret: { secretName: "operator-token" } } } } },
    } as k8s.KubernetesObject;
    const stored = (await objects.create(smuggled)) as k8s.KubernetesObject & { spec: { etcd: { storage: unknown } } };
    expect(stored.spec.etcd.storage).toEqual({ volumeSource: { emptyDir: {} } });
    await objects.delete(smuggled);
  });

  it("refuses a Cluster name its masters' objects cannot carry", async () => {
    const message = await rejection({
      apiVersion: "kubeonkube.io/v1alpha1",
      kind: "Cluster",
      metadata: { name: "c".repeat(41), namespace: "fleet" },
      spec: minimalSpec(),
    } as k8s.KubernetesObject);
    expect(message).toContain("metadata.name of a Cluster must be a lowercase DNS label of at most 40 characters");
  });

  it("refuses a hostile Machine: metadata address, option-like user, two host key lines, traversing version, long name", async () => {
    const [, machine] = samples("machines.yaml") as (k8s.KubernetesObject & { spec: Record<string, any> })[]; // eslint-disable-line @typescript-eslint/no-explicit-any
    const message = await rejection({
      ...machine,
      metadata: { name: "m".repeat(120), namespace: "fleet" },
      spec: {
        ...machine.spec,
        ip: "169.254.169.254",
        ssh: { ...machine.spec.ssh, user: "-oProxyCommand=id", hostKey: `${machine.spec.ssh.hostKey ?? "ssh-ed25519 AAAA"}\n@cert-authority * ssh-ed25519 AAAA` },
      },
    } as k8s.KubernetesObject);
    expect(message).toContain("spec.ip must be a unicast IP address");
    expect(message).toContain("spec.ssh.user");
    expect(message).toContain("spec.ssh.hostKey");
    expect(message).toContain("metadata.name of a Machine must be at most 63 characters");
    const [cpv] = samples("machines.yaml") as (k8s.KubernetesObject & { spec: Record<string, any> })[]; // eslint-disable-line @typescript-eslint/no-explicit-any
    const traversing = await rejection({
      ...cpv,
      metadata: { name: "traversing", namespace: "fleet" },
      spec: { ...cpv.spec, packages: { ...cpv.spec.packages, kubelet: { ...cpv.spec.packages.kubelet, version: "../../../../tmp/x" } } },
    } as k8s.KubernetesObject);
    expect(traversing).toContain("spec.packages.kubelet.version");
  });

  it("accepts a loopback Machine address (left to the admin policy)", async () => {
    const [, machine] = samples("machines.yaml") as (k8s.KubernetesObject & { spec: Record<string, unknown> })[];
    const loopback = { ...machine, metadata: { name: "loopback", namespace: "fleet" }, spec: { ...machine.spec, ip: "127.0.0.12" } };
    await expect(objects.create(loopback as k8s.KubernetesObject)).resolves.toMatchObject({ kind: "Machine" });
  });

  it("refuses a Machine with both packageVersionRef and packages", async () => {
    const [cpv, machine] = samples("machines.yaml") as (k8s.KubernetesObject & { spec: Record<string, unknown> })[];
    const both = { ...machine, metadata: { name: "both", namespace: "fleet" }, spec: { ...machine.spec, packages: cpv.spec.packages } };
    const message = await rejection(both as k8s.KubernetesObject);
    expect(message).toContain("set exactly one of packageVersionRef or packages");
  });
});
