/**
 * `kok manifests --policy FILE`'s ValidatingAdmissionPolicies on a real kube-apiserver: the CEL the
 * policy compiles into is accepted, a Cluster or Machine the admin policy forbids is refused at
 * create with the field and the rule, and one it allows is admitted.
 */
import * as k8s from "@kubernetes/client-node";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { resolveAdminPolicy } from "../../src/api/v1alpha1";
import { admissionPolicies } from "../../src/operator/admission-policy";
import { allCustomResourceDefinitions } from "../../src/api/v1alpha1/crds";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";
import { minimalSpec } from "../support/specs";
import { machine } from "../support/worker-fixtures";

let api: TestApiserver;
let objects: k8s.KubernetesObjectApi;
const POLICY = resolveAdminPolicy({
  sshTargets: { allowed: ["10.0.0.0/8", "192.0.2.0/24"] },
  masters: { requiredNodeSelector: { pool: "masters" } },
  allowedBackupEndpoints: [{ host: "s3.example.com" }, { host: "*.r2.example.net" }, { cidr: "10.20.0.0/16", plainHttp: true }, { host: "2001:db8::9" }, { cidr: "198.51.100.0/24" }],
});

const cluster = (name: string, spec: Record<string, unknown>) =>
  ({ apiVersion: "kubeonkube.io/v1alpha1", kind: "Cluster", metadata: { name, namespace: "fleet" }, spec }) as k8s.KubernetesObject;
const machineObject = (name: string, spec: Record<string, unknown>) =>
  ({ apiVersion: "kubeonkube.io/v1alpha1", kind: "Machine", metadata: { name, namespace: "fleet" }, spec }) as k8s.KubernetesObject;

async function outcome(object: k8s.KubernetesObject): Promise<string> {
  try {
    await objects.create(object);
    await objects.delete(object);
    return "accepted";
  } catch (error) {
    return String((error as { body?: string }).body ?? error);
  }
}

beforeAll(async () => {
  api = await startTestApiserver();
  const kc = api.kubeConfig();
  objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  const dir = mkdtempSync(path.join(tmpdir(), "kok-vap-"));
  writeFileSync(path.join(dir, "kubeconfig"), kc.exportConfig());
  const kubectl = (...args: string[]) =>
    execFileSync(path.join(process.env.KOK_TOOLCHAIN_DIR ?? path.join(homedir(), ".cache", "kube-on-kube", "toolchain"), "bin", "kubectl"), ["--kubeconfig", path.join(dir, "kubeconfig"), ...args], { encoding: "utf8" });
  writeFileSync(path.join(dir, "crds.yaml"), allCustomResourceDefinitions().map((d) => stringify(d)).join("---\n"));
  kubectl("apply", "-f", path.join(dir, "crds.yaml"));
  kubectl("wait", "--for=condition=Established", "crd/clusters.kubeonkube.io", "crd/machines.kubeonkube.io", "--timeout=60s");
  writeFileSync(path.join(dir, "vap.yaml"), admissionPolicies(POLICY).map((d) => stringify(d, { lineWidth: 0 })).join("---\n"));
  kubectl("apply", "-f", path.join(dir, "vap.yaml"));
  const typeChecks = kubectl("get", "validatingadmissionpolicies", "-o", "jsonpath={.items[*].status.typeChecking}");
  rmSync(dir, { recursive: true, force: true });
  expect(typeChecks).not.toContain("warning");
  await objects.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "fleet" } });
  // The apiserver loads a new policy asynchronously: wait until a forbidden object is refused.
  for (let i = 0; (await outcome(cluster("probe", minimalSpec({ imageRepository: "evil.example.com" })))) === "accepted"; i++) {
    if (i > 200) throw new Error("the admission policy never took effect");
    await new Promise((r) => setTimeout(r, 100));
  }
});
afterAll(async () => api?.stop());

describe("the admin policy as a ValidatingAdmissionPolicy", () => {
  // The apiserver answers with the first validation that fails: one hostile field per object here
  // (the operator's own check names them all at once).
  const base = () => minimalSpec({ masterNodeSelector: { pool: "masters" } });
  it.each([
    ["foreign registry", { ...base(), imageRepository: "evil.example.com/k8s" }, "spec.imageRepository must be under registry.k8s.io (admin policy: allowedRegistries)"],
    ["hostPath /", { ...base(), etcd: { version: "3.6.16", storage: { volumeSource: { hostPath: { path: "/" } } } } }, "spec.etcd.storage.volumeSource.hostPath is not an allowed etcd volume type (admin policy: etcdVolumeTypes)"],
    ["replicas over the cap", { ...base(), apiServer: { replicas: 9 } }, "spec.apiServer.replicas must be at most 5 (admin policy: caps.maxReplicas)"],
    ["authorization-mode", { ...base(), apiServer: { extraArgs: { "authorization-mode": "AlwaysAllow", "audit-log-maxage": "30" } } }, "spec.apiServer.extraArgs: authorization-mode are set by the platform (admin policy: extraArgs.denied)"],
    ["a keyless toleration", { ...base(), masterTolerations: [{ operator: "Exists" }] }, "spec.masterTolerations may only name node-role.kubeonkube.io/master (admin policy: masters.allowedTolerationKeys)"],
    ["off the masters' pool", minimalSpec(), "(admin policy: masters.requiredNodeSelector)"],
    ["etcd storage over the cap", { ...base(), etcd: { version: "3.6.16", storage: { claimTemplate: { size: "10Ti" } } } }, "spec.etcd.storage.claimTemplate.size must be at most 100Gi (admin policy: caps.maxEtcdStorage)"],
    ["cpu over the cap", { ...base(), scheduler: { resources: { limits: { cpu: "100000" } } } }, "spec.scheduler.resources.limits.cpu must be at most 8 (admin policy: caps.maxCpu)"],
    ["a foreign flannel image", { ...base(), addons: { network: { image: "evil.example.com/flannel:v1" } } }, "spec.addons.network.image must be under registry.k8s.io (admin policy: allowedRegistries)"],
    ["a load-balancer annotation", { ...base(), apiServer: { service: { type: "LoadBalancer", annotations: { "metallb.universe.tf/loadBalancerIPs": "203.0.113.1" } } } }, "spec.apiServer.service.annotations may only use no key (admin policy: apiServerService.allowedAnnotations)"],
  ])("refuses a Cluster with %s, naming the field and rule", async (_what, spec, expected) => {
    expect(await outcome(cluster("hostile", spec as Record<string, unknown>))).toContain(expected);
  });

  const withBackup = (endpoint: string, restore?: string) => {
    const spec = base();
    return {
      ...spec,
      etcd: {
        ...spec.etcd,
        backup: { store: { s3: { bucket: "kok-backups", prefix: "fleet/c", endpoint, credentialsSecretRef: { name: "store" } } } },
        ...(restore ? { restore: { snapshot: restore } } : {}),
      },
    };
  };
  it.each([
    ["the metadata service", "http://169.254.169.254", "is a loopback, link-local or metadata address"],
    ["loopback", "https://127.0.0.1:9000", "is a loopback, link-local or metadata address"],
    ["an unlisted store", "https://s3.evil.example.org", "spec.etcd.backup.store.s3.endpoint must be one of s3.example.com, *.r2.example.net, 10.20.0.0/16 (http), 2001:db8::9, 198.51.100.0/24 (admin policy: allowedBackupEndpoints)"],
    ["the bare wildcard suffix", "https://r2.example.net", "must be one of"],
    ["an unlisted address", "https://203.0.113.7", "must be one of"],
    ["plain http to a https-only entry", "http://s3.example.com", "must use https"],
  ])("refuses a backup endpoint: %s", async (_what, endpoint, expected) => {
    expect(await outcome(cluster("hostile-backup", withBackup(endpoint)))).toContain(expected);
  });

  it("admits backup endpoints the policy lists, and a restore only with its store", async () => {
    for (const endpoint of ["https://s3.example.com", "https://acct.r2.example.net:443", "http://10.20.1.2:9000", "https://198.51.100.7", "https://[2001:db8::9]:9000"]) {
      expect(await outcome(cluster("backup", withBackup(endpoint))), endpoint).toBe("accepted");
    }
    expect(await outcome(cluster("restore", withBackup("https://s3.example.com", "s3://kok-backups/fleet/old/2026-12-04T06-00-00Z.db")))).toBe("accepted");
    const noStore = { ...base(), etcd: { ...base().etcd, restore: { snapshot: "s3://kok-backups/a.db" } } };
    expect(await outcome(cluster("restore-alone", noStore))).toContain("spec.etcd.restore needs spec.etcd.backup.store");
  });

  it("refuses adding, changing or dropping a restore after creation (the CRD's transition rules)", async () => {
    const created = await objects.create(cluster("restored", withBackup("https://s3.example.com", "s3://kok-backups/fleet/a.db")));
    const update = async (spec: Record<string, unknown>) => {
      const live = (await objects.read(created as k8s.KubernetesObject & { metadata: { name: string; namespace: string } })) as k8s.KubernetesObject & { spec: unknown };
      try {
        await objects.replace({ ...live, spec } as k8s.KubernetesObject);
        return "accepted";
      } catch (error) {
        return String((error as { body?: string }).body ?? error);
      }
    };
    expect(await update(withBackup("https://s3.example.com", "s3://kok-backups/fleet/b.db"))).toContain("spec.etcd.restore is immutable");
    expect(await update(withBackup("https://s3.example.com"))).toContain("spec.etcd.restore is set only when the Cluster is created");
    // The backup itself may change.
    expect(await update(withBackup("https://other.r2.example.net", "s3://kok-backups/fleet/a.db"))).toBe("accepted");
    const plain = await objects.create(cluster("plain", withBackup("https://s3.example.com")));
    const live = (await objects.read(plain as k8s.KubernetesObject & { metadata: { name: string; namespace: string } })) as k8s.KubernetesObject;
    const added = await objects.replace({ ...live, spec: withBackup("https://s3.example.com", "s3://kok-backups/fleet/a.db") } as k8s.KubernetesObject).then(
      () => "accepted",
      (error: { body?: string }) => String(error.body ?? error),
    );
    expect(added).toContain("spec.etcd.restore is set only when the Cluster is created");
  });

  it("admits a Cluster within the policy", async () => {
    expect(await outcome(cluster("fine", { ...base(), apiServer: { extraArgs: { "audit-log-maxage": "30" } } }))).toBe("accepted");
  });

  it("refuses a Machine outside the SSH target ranges, and admits one inside", async () => {
    expect(await outcome(machineObject("loopback", { ...machine({ ip: "127.0.0.1" }) }))).toContain("spec.ip must be in 10.0.0.0/8, 192.0.2.0/24 (admin policy: sshTargets.allowed)");
    expect(await outcome(machineObject("elsewhere", { ...machine({ ip: "203.0.113.5" }) }))).toContain("(admin policy: sshTargets.allowed)");
    expect(await outcome(machineObject("inside", { ...machine({ ip: "192.0.2.11" }), packages: undefined, packageVersionRef: { name: "p" } }))).toBe("accepted");
  });
});
