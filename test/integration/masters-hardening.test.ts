/**
 * The masters' hardening against a real kube-apiserver + etcd (the dev meta-cluster cannot enforce
 * NetworkPolicies and does not apply securityContexts, so the apiserver is the judge here):
 *
 * - ControlPlane's objects, rendered with Pulumi mocks, are sent to the apiserver: the masters'
 *   namespace with its Pod Security labels for real, then every workload, its Pods (as their
 *   controllers would create them) and the NetworkPolicies with a server-side dry run. PodSecurity
 *   admission admits the masters' Pods and refuses a weaker Pod in the same namespace.
 * - The apiserver runs with the default audit policy and a generation-1 encryption configuration
 *   as ControlPlane renders them: Secrets land in etcd encrypted, the audit log records a Secret's
 *   metadata but never its data and no health check; after a rotation to generation 2 the old
 *   Secret still reads and a new one is written with the new key.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, CoreV1Api, NetworkingV1Api, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installMocks, plain, settle, valueOf, type RecordedResource } from "../support/pulumi-mocks";
import { standardSpec } from "../support/specs";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";
import { ControlPlane } from "../../src/components/control-plane";
import { auditPolicyYaml, encryptionConfigurationYaml, encryptionKeyFromSeed, keyGenerations } from "../../src/components/apiserver-config";

const recorder = installMocks();

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const NS = "kok-prod-a";
const rendered = (type: string) => recorder.ofType(type).map((r: RecordedResource) => plain<Obj>(r.inputs));

let dir: string;
let apiserver: TestApiserver;
let core: CoreV1Api;
let apps: AppsV1Api;
let networking: NetworkingV1Api;

/** The encryption configuration of one generation, keys derived as ControlPlane derives them. */
function encryptionConfig(generation: number): string {
  return encryptionConfigurationYaml(keyGenerations(generation).map((n) => ({ name: `key-${n}`, secret: encryptionKeyFromSeed(`test seed ${n}`) })));
}

beforeAll(async () => {
  const cp = new ControlPlane("prod-a", { spec: standardSpec(), namespace: NS, operatorNamespace: "kok-system" });
  await valueOf(cp.adminKubeconfig);
  await settle();

  dir = mkdtempSync(join(tmpdir(), "kok-masters-hardening-"));
  writeFileSync(join(dir, "audit-policy.yaml"), auditPolicyYaml());
  writeFileSync(join(dir, "encryption.yaml"), encryptionConfig(1));
  apiserver = await startTestApiserver({
    extraArgs: [
      `--audit-policy-file=${join(dir, "audit-policy.yaml")}`,
      `--audit-log-path=${join(dir, "audit.log")}`,
      `--encryption-provider-config=${join(dir, "encryption.yaml")}`,
    ],
  });
  const kc = apiserver.kubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  networking = kc.makeApiClient(NetworkingV1Api);

  const [namespace] = rendered("kubernetes:core/v1:Namespace");
  await core.createNamespace({ body: { metadata: { name: namespace.metadata.name, labels: namespace.metadata.labels } } });
  await core.createNamespace({ body: { metadata: { name: "kok-system" } } });
  // No controller-manager here to create it, and Pod admission wants it.
  await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: "default" } } });
}, 120_000);

afterAll(async () => {
  await apiserver?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The Pod a workload's controller would create: its template, plus the claim of each volumeClaimTemplate. */
function podOf(workload: Obj, name: string): V1Pod {
  const template = workload.spec.template;
  const claims = (workload.spec.volumeClaimTemplates ?? []).map((c: Obj) => ({ name: c.metadata.name, persistentVolumeClaim: { claimName: `${c.metadata.name}-${name}` } }));
  return { metadata: { name, namespace: NS, labels: template.metadata.labels, annotations: template.metadata.annotations }, spec: { ...template.spec, volumes: [...template.spec.volumes, ...claims] } };
}

const workloads = () => [...rendered("kubernetes:apps/v1:StatefulSet"), ...rendered("kubernetes:apps/v1:Deployment")];

/** The apiserver's message when it refuses, "admitted" otherwise. */
async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    const body = (error as { body?: unknown }).body;
    if (typeof body !== "string") return String(error);
    try {
      return String((JSON.parse(body) as { message?: unknown }).message);
    } catch {
      return body;
    }
  }
  return "admitted";
}

describe("Pod Security on the masters' namespace", () => {
  it("labels it restricted, and admits every master workload and its Pods", async () => {
    const ns = await core.readNamespace({ name: NS });
    expect(ns.metadata?.labels?.["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    expect(workloads()).toHaveLength(4);
    for (const w of workloads()) {
      const body = { metadata: { name: w.metadata.name, namespace: NS, labels: w.metadata.labels }, spec: w.spec };
      if (w.spec.serviceName) await apps.createNamespacedStatefulSet({ namespace: NS, body, dryRun: "All" });
      else await apps.createNamespacedDeployment({ namespace: NS, body, dryRun: "All" });
      const pod = await core.createNamespacedPod({ namespace: NS, body: podOf(w, `${w.metadata.name}-0`), dryRun: "All" });
      expect(pod.spec?.containers[0].securityContext?.runAsNonRoot, w.metadata.name).toBe(true);
    }
  });

  it("refuses a master Pod without its securityContext, and one with a hostPath volume", async () => {
    const etcd = rendered("kubernetes:apps/v1:StatefulSet")[0];
    const pod = podOf(etcd, "weak-0");
    const spec: Obj = { ...pod.spec };
    const noContext = { ...pod, spec: { ...spec, securityContext: undefined, containers: spec.containers.map((c: Obj) => ({ ...c, securityContext: undefined })) } };
    expect(await rejection(core.createNamespacedPod({ namespace: NS, body: noContext, dryRun: "All" }))).toMatch(/violates PodSecurity "restricted/);
    const hostPath: V1Pod = { ...pod, spec: { ...spec, containers: spec.containers, volumes: [...spec.volumes.filter((v: Obj) => v.name !== "data"), { name: "data", hostPath: { path: "/" } }] } };
    expect(await rejection(core.createNamespacedPod({ namespace: NS, body: hostPath, dryRun: "All" }))).toMatch(/violates PodSecurity "restricted[\s\S]*hostPath/);
  });
});

describe("the masters' NetworkPolicies", () => {
  it("are accepted by the apiserver as rendered", async () => {
    const policies = rendered("kubernetes:networking.k8s.io/v1:NetworkPolicy");
    // The masters' four, and the membership Jobs' egress-only policy.
    expect(policies.map((p) => p.metadata.name).sort()).toEqual(["prod-a-apiserver-entry", "prod-a-default-deny-ingress", "prod-a-etcd-membership", "prod-a-operator", "prod-a-same-namespace"]);
    for (const p of policies) {
      const created = await networking.createNamespacedNetworkPolicy({ namespace: NS, body: { metadata: { name: p.metadata.name, namespace: NS }, spec: p.spec }, dryRun: "All" });
      expect(created.spec?.podSelector, p.metadata.name).toEqual(p.spec.podSelector);
      expect(created.spec?.ingress?.length ?? 0, p.metadata.name).toBe(p.spec.ingress?.length ?? 0);
    }
  });

  it("select the operator's namespace by a label the apiserver sets itself", async () => {
    const operator = await core.readNamespace({ name: "kok-system" });
    const policy = rendered("kubernetes:networking.k8s.io/v1:NetworkPolicy").find((p) => p.metadata.name === "prod-a-operator") as Obj;
    const selector: Record<string, string> = policy.spec.ingress[0].from[0].namespaceSelector.matchLabels;
    for (const [key, value] of Object.entries(selector)) expect(operator.metadata?.labels?.[key], key).toBe(value);
  });
});

/** The bytes etcd holds for a key, through its JSON gateway. */
async function stored(key: string): Promise<Buffer> {
  const response = await fetch(`${apiserver.etcdUrl}/v3/kv/range`, { method: "POST", body: JSON.stringify({ key: Buffer.from(key).toString("base64") }) });
  const body = (await response.json()) as { kvs?: { value: string }[] };
  expect(body.kvs, key).toHaveLength(1);
  return Buffer.from(body.kvs?.[0].value ?? "", "base64");
}

async function auditEvents(): Promise<Obj[]> {
  return readFileSync(join(dir, "audit.log"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Obj);
}

describe("Secrets at rest and the audit log", () => {
  const plaintext = "TEST-ONLY-not-a-real-password";

  it("stores a Secret encrypted with the current key and reads it back", async () => {
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: "first" }, stringData: { password: plaintext } } });
    const raw = await stored(`/registry/secrets/${NS}/first`);
    expect(raw.subarray(0, "k8s:enc:secretbox:v1:key-1:".length).toString()).toBe("k8s:enc:secretbox:v1:key-1:");
    expect(raw.includes(plaintext)).toBe(false);
    const read = await core.readNamespacedSecret({ namespace: NS, name: "first" });
    expect(Buffer.from(read.data?.password ?? "", "base64").toString()).toBe(plaintext);
  });

  it("audits who wrote the Secret without its data, and not the health checks", async () => {
    const events = await auditEvents();
    const create = events.find((e) => e.verb === "create" && e.objectRef?.resource === "secrets" && e.objectRef?.name === "first");
    expect(create).toMatchObject({ level: "Metadata", user: { username: "admin" } });
    expect(JSON.stringify(events)).not.toContain(plaintext);
    expect(events.filter((e) => /^\/(readyz|livez|healthz)/.test(e.requestURI))).toEqual([]);
  });

  it("after a rotation, reads what the old key wrote and writes with the new one", async () => {
    writeFileSync(join(dir, "encryption.yaml"), encryptionConfig(2));
    await apiserver.stopApiserver();
    await apiserver.startApiserver();
    const old = await core.readNamespacedSecret({ namespace: NS, name: "first" });
    expect(Buffer.from(old.data?.password ?? "", "base64").toString()).toBe(plaintext);
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: "second" }, stringData: { password: plaintext } } });
    expect((await stored(`/registry/secrets/${NS}/second`)).subarray(0, 27).toString()).toBe("k8s:enc:secretbox:v1:key-2:");
  });
});
