/**
 * A hostile tenant against the platform, end to end (docs/security.md). On the local meta-cluster,
 * a tenant is a ServiceAccount bound to `edit` in its own namespace only, and every attack goes
 * through `kubectl --as` as a tenant's would. The operator runs as its own ServiceAccount with the
 * RBAC and the admission policy of `kok manifests` (a token kubeconfig, not the admin one), so
 * the least-privilege grants are what this run exercises too.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { mastersNamespaceOf, type ClusterSpec } from "../../src/api/v1alpha1";
import { devAdminPolicy } from "../../src/dev/dev-policy";
import { toolchainBinary, toolchainEngineEnv } from "../../src/dev/toolchain";
import { admissionPolicies } from "../../src/operator/admission-policy";
import { installManifests } from "../../src/operator/install-manifests";
import { startOperator, type RunningOperator } from "../../src/operator/operator";
import { eventually, freeNodePort } from "../support/dev-cluster";
import { startMetaCluster, type ClusterJson, type MetaCluster } from "../support/operator-e2e";
import { minimalSpec } from "../support/specs";
import { HOST_KEY } from "../support/worker-fixtures";

const OPERATOR_NS = "kube-on-kube-system";
const TENANT = "system:serviceaccount:team-a:tenant";
const MARKER = "/tmp/kok-tenant-e2e-exec-ran";

let meta: MetaCluster;
let operator: RunningOperator | undefined;
/** The operator's log lines (redacted by the operator), shown when a wait gives up. */
const logs: string[] = [];
const kubectl = (...args: string[]) => meta.kubectl(...args);

/** kubectl as the tenant; returns the exit status and what it printed, never throws. */
function asTenant(args: string[], input?: string): { ok: boolean; out: string } {
  const r = spawnSync(toolchainBinary("kubectl"), ["--kubeconfig", meta.dev.kubeconfig, `--as=${TENANT}`, ...args], { input, encoding: "utf8" });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

const clusterManifest = (name: string, spec: ClusterSpec) => stringify({ apiVersion: "kubeonkube.io/v1alpha1", kind: "Cluster", metadata: { name, namespace: "team-a" }, spec });
const getCluster = (name: string) => meta.json<ClusterJson & { metadata: { uid: string } }>("-n", "team-a", "get", "cluster", name);
const readyCondition = (c: ClusterJson) => c.status?.conditions?.find((x) => x.type === "Ready") as { status: string; reason: string; message?: string } | undefined;
const namespaceExists = (name: string) => spawnSync(toolchainBinary("kubectl"), ["--kubeconfig", meta.dev.kubeconfig, "get", "namespace", name], { encoding: "utf8" }).status === 0;

/** A kubeconfig for the operator's ServiceAccount: the meta-cluster's server and CA, a bound token. */
function operatorKubeconfig(): string {
  const admin = parse(readFileSync(meta.dev.kubeconfig, "utf8")) as { clusters: { cluster: Record<string, string> }[] };
  const token = kubectl("-n", OPERATOR_NS, "create", "token", "kube-on-kube-operator", "--duration=4h").trim();
  const file = join(meta.work, "operator.kubeconfig");
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "meta", cluster: admin.clusters[0]!.cluster }],
    users: [{ name: "operator", user: { token } }],
    contexts: [{ name: "operator", context: { cluster: "meta", user: "operator" } }],
    "current-context": "operator",
  };
  writeFileSync(file, stringify(config), { mode: 0o600 });
  return file;
}

beforeAll(async () => {
  rmSync(MARKER, { force: true });
  meta = await startMetaCluster("kok-tenant-e2e");
  // What `kok manifests` installs, but the operator's Deployment (no image is built yet: it runs
  // in this process instead, under the same identity).
  const platform = installManifests({ namespace: OPERATOR_NS }).filter((o) => !["CustomResourceDefinition", "Deployment", "PersistentVolumeClaim"].includes(String(o.kind)));
  writeFileSync(join(meta.work, "platform.yaml"), platform.map((o) => stringify(o, { aliasDuplicateObjects: false })).join("---\n"));
  kubectl("apply", "-f", join(meta.work, "platform.yaml"));
  for (const ns of ["team-a", "team-b"]) kubectl("create", "namespace", ns);
  kubectl("-n", "team-a", "create", "serviceaccount", "tenant");
  kubectl("-n", "team-a", "create", "rolebinding", "tenant-edit", "--clusterrole=edit", `--serviceaccount=team-a:tenant`);
  // The aggregation controller folds the kube-on-kube tenant role into `edit`.
  await eventually("edit aggregates the kube-on-kube kinds", async () => (asTenant(["auth", "can-i", "create", "clusters.kubeonkube.io", "-n", "team-a"]).ok ? true : undefined), 60_000);
  operator = await startOperator({
    kubeconfigPath: operatorKubeconfig(),
    backendUrl: meta.backendUrl,
    workRoot: join(meta.work, "work"),
    resyncMs: 20_000,
    concurrency: 2,
    metricsAddr: "127.0.0.1:0",
    leaderElectionNamespace: OPERATOR_NS,
    operatorNamespace: OPERATOR_NS,
    policy: devAdminPolicy(),
    engineEnv: toolchainEngineEnv("kok-tenant-e2e"),
    log: (line) => logs.push(JSON.stringify(line)),
  });
});

afterAll(async () => {
  await operator?.stop();
  await meta?.down();
});

describe("a tenant with edit in its own namespace", () => {
  it("writes its Clusters' specs, but not their status, another namespace, or the platform's objects", () => {
    const can = (...args: string[]) => asTenant(["auth", "can-i", ...args]).out.trim();
    expect(can("create", "clusters.kubeonkube.io", "-n", "team-a")).toBe("yes");
    expect(can("create", "machines.kubeonkube.io", "-n", "team-a")).toBe("yes");
    expect(can("patch", "clusters.kubeonkube.io", "--subresource=status", "-n", "team-a")).toBe("no");
    expect(can("create", "clusters.kubeonkube.io", "-n", "team-b")).toBe("no");
    expect(can("get", "secrets", "-n", OPERATOR_NS)).toBe("no");
    expect(can("get", "configmaps", "-n", OPERATOR_NS)).toBe("no");
  });

  it("gets hostile Clusters refused by the operator, each field and policy rule named, nothing created", async () => {
    const hostile: Record<string, { spec: ClusterSpec; says: RegExp }> = {
      "root-disk": { spec: minimalSpec({ etcd: { version: "3.6.16", storage: { volumeSource: { hostPath: { path: "/" } } } } }), says: /spec\.etcd\.storage\.volumeSource.*hostPath.*etcdVolumeTypes/ },
      "own-images": { spec: minimalSpec({ imageRepository: "evil.example.com/k8s" }), says: /spec\.imageRepository.*allowedRegistries/ },
      "open-door": { spec: minimalSpec({ apiServer: { extraArgs: { "authorization-mode": "AlwaysAllow" } } }), says: /spec\.apiServer\.extraArgs.*authorization-mode/ },
      "greedy": { spec: minimalSpec({ apiServer: { replicas: 20 } }), says: /spec\.apiServer\.replicas.*maxReplicas/ },
    };
    for (const [name, { spec }] of Object.entries(hostile)) {
      const applied = asTenant(["apply", "-f", "-"], clusterManifest(name, spec));
      expect(applied.ok, applied.out).toBe(true);
    }
    for (const [name, { says }] of Object.entries(hostile)) {
      const failed = await eventually(`Cluster team-a/${name} refused`, async () => {
        const c = getCluster(name);
        return c.status?.phase === "Failed" ? c : undefined;
      });
      expect(readyCondition(failed)).toMatchObject({ status: "False", reason: "InvalidSpec" });
      expect(readyCondition(failed)?.message ?? "").toMatch(says);
      expect(namespaceExists(mastersNamespaceOf({ metadata: { namespace: "team-a", name } }))).toBe(false);
    }
  });

  it("cannot even store what the schema forbids: an ssh option as user, a metadata address, a traversing version, system:masters", () => {
    const machine = (name: string, patch: Record<string, unknown>) =>
      stringify({
        apiVersion: "kubeonkube.io/v1alpha1",
        kind: "Machine",
        metadata: { name, namespace: "team-a" },
        spec: {
          clusterRef: { name: "prod" },
          ip: "192.0.2.11",
          hostname: name,
          ssh: { user: "root", credentialsSecretRef: { name: "worker-ssh" }, hostKey: HOST_KEY },
          packages: {
            containerd: { version: "1.7.22", url: "http://mirror.local/containerd.tgz", sha256: "a".repeat(64) },
            kubelet: { version: "v1.36.3", url: "http://mirror.local/kubelet", sha256: "b".repeat(64) },
            cni: { version: "v1.5.1", url: "http://mirror.local/cni.tgz", sha256: "c".repeat(64) },
          },
          ...patch,
        },
      });
    const refused = (manifest: string, field: RegExp) => {
      const r = asTenant(["apply", "-f", "-"], manifest);
      expect(r.ok, r.out).toBe(false);
      expect(r.out).toMatch(field);
    };
    refused(machine("w-user", { ssh: { user: "-oProxyCommand=id", credentialsSecretRef: { name: "worker-ssh" }, hostKey: HOST_KEY } }), /spec\.ssh\.user/);
    refused(machine("w-metadata", { ip: "169.254.169.254" }), /spec\.ip/);
    refused(
      machine("w-traversal", {
        packages: {
          containerd: { version: "../../../../tmp/x", url: "http://mirror.local/containerd.tgz", sha256: "a".repeat(64) },
          kubelet: { version: "v1.36.3", url: "http://mirror.local/kubelet", sha256: "b".repeat(64) },
          cni: { version: "v1.5.1", url: "http://mirror.local/cni.tgz", sha256: "c".repeat(64) },
        },
      }),
      /spec\.packages\.containerd\.version/,
    );
    refused(machine("w-two-keys", { ssh: { user: "root", credentialsSecretRef: { name: "worker-ssh" }, hostKey: `${HOST_KEY}\n@cert-authority * ${HOST_KEY}` } }), /spec\.ssh\.hostKey/);
    refused(clusterManifest("masters", minimalSpec({ kubeconfigs: [{ name: "root", user: "me", groups: ["system:masters"] }] })), /spec\.kubeconfigs/);
  });

  it("cannot land its masters in a namespace the operator did not create", async () => {
    const target = mastersNamespaceOf({ metadata: { namespace: "team-a", name: "squatter" } });
    kubectl("create", "namespace", target);
    kubectl("label", "namespace", target, "owner=someone-else");
    expect(asTenant(["apply", "-f", "-"], clusterManifest("squatter", minimalSpec())).ok).toBe(true);
    const refused = await eventually("Cluster team-a/squatter refused", async () => {
      const c = getCluster("squatter");
      return c.status?.phase === "Failed" ? c : undefined;
    });
    expect(readyCondition(refused)).toMatchObject({ reason: "NamespaceConflict" });
    const ns = meta.json<{ metadata: { labels: Record<string, string> } }>("get", "namespace", target);
    expect(ns.metadata.labels).not.toHaveProperty("kubeonkube.io/cluster-uid");
    expect(meta.json<{ items: unknown[] }>("-n", target, "get", "deployments,statefulsets,secrets").items).toEqual([]);
  });

  it("gets a working Cluster under the operator's own least-privilege identity, its masters fenced off", async () => {
    const nodePort = await freeNodePort();
    const spec = minimalSpec({ apiServer: { service: { type: "NodePort", externalHost: "127.0.0.1", nodePort, port: 6443 } } });
    expect(asTenant(["apply", "-f", "-"], clusterManifest("prod", spec)).ok).toBe(true);
    const ready = await eventually(
      "Cluster team-a/prod Ready",
      async () => {
        const c = getCluster("prod");
        if (c.status?.lastOperation?.result === "failed") throw new Error(`the operator reported a failure: ${JSON.stringify(c.status)}`);
        return c.status?.phase === "Ready" ? c : undefined;
      },
      1_200_000,
    );
    const masters = mastersNamespaceOf({ metadata: { namespace: "team-a", name: "prod" } });
    const ns = meta.json<{ metadata: { labels: Record<string, string> } }>("get", "namespace", masters);
    expect(ns.metadata.labels).toMatchObject({
      "kubeonkube.io/cluster-uid": ready.metadata.uid,
      "app.kubernetes.io/managed-by": "kube-on-kube",
      "pod-security.kubernetes.io/enforce": "restricted",
    });
    const policies = meta.json<{ items: { spec: { ingress?: { from?: { namespaceSelector?: { matchLabels?: Record<string, string> } }[] }[] } }[] }>("-n", masters, "get", "networkpolicies");
    expect(policies.items.length).toBeGreaterThan(0);
    const admitted = policies.items.flatMap((p) => (p.spec.ingress ?? []).flatMap((i) => i.from ?? []).map((f) => f.namespaceSelector?.matchLabels?.["kubernetes.io/metadata.name"]));
    expect(admitted).toContain(OPERATOR_NS);
    expect(asTenant(["-n", masters, "get", "secrets"]).ok).toBe(false);
    // What the tenant may read: the copy of the admin kubeconfig next to its Cluster.
    expect(asTenant(["-n", "team-a", "get", "secret", "prod-admin-kubeconfig"]).ok).toBe(true);
  });

  it("never gets the operator to run the kubeconfig it rewrote, and sees its copy put back", async () => {
    const copy = meta.json<{ data: { kubeconfig: string } }>("-n", "team-a", "get", "secret", "prod-admin-kubeconfig");
    const hostile = parse(Buffer.from(copy.data.kubeconfig, "base64").toString("utf8")) as { users: { user: Record<string, unknown> }[] };
    hostile.users[0]!.user = { exec: { apiVersion: "client.authentication.k8s.io/v1", command: "/bin/sh", args: ["-c", `touch ${MARKER}`], interactiveMode: "Never" } };
    const replaced = asTenant(
      ["apply", "-f", "-"],
      stringify({ apiVersion: "v1", kind: "Secret", metadata: { name: "prod-admin-kubeconfig", namespace: "team-a" }, stringData: { kubeconfig: stringify(hostile) } }),
    );
    expect(replaced.ok, replaced.out).toBe(true);
    // A Machine makes the operator reach for the business cluster's credentials. Its host is a
    // loopback port nothing listens on (the dev policy allows loopback hosts): SSH fails, and the
    // operator says so, after having read everything it needs.
    expect(asTenant(["-n", "team-a", "create", "secret", "generic", "worker-ssh", "--from-literal=password=tenant-ssh-password"]).ok).toBe(true);
    const machine = stringify({
      apiVersion: "kubeonkube.io/v1alpha1",
      kind: "Machine",
      metadata: { name: "worker-0001", namespace: "team-a" },
      spec: {
        clusterRef: { name: "prod" },
        ip: "127.0.0.1",
        hostname: "worker-0001",
        ssh: { port: 1, user: "root", credentialsSecretRef: { name: "worker-ssh" }, hostKey: HOST_KEY },
        packages: {
          containerd: { version: "1.7.22", url: "http://127.0.0.1:1/containerd.tgz", sha256: "a".repeat(64) },
          kubelet: { version: "v1.36.3", url: "http://127.0.0.1:1/kubelet", sha256: "b".repeat(64) },
          cni: { version: "v1.5.1", url: "http://127.0.0.1:1/cni.tgz", sha256: "c".repeat(64) },
        },
      },
    });
    expect(asTenant(["apply", "-f", "-"], machine).ok).toBe(true);
    await eventually(
      "the Machine's install failed on SSH",
      async () => {
        const m = meta.json<{ status?: { lastOperation?: { result?: string }; conditions?: { message: string }[] } }>("-n", "team-a", "get", "machine", "worker-0001");
        return m.status?.lastOperation?.result === "failed" ? m : undefined;
      },
      600_000,
    );
    const restored = await eventually("the admin kubeconfig copy put back", async () => {
      const secret = meta.json<{ data: { kubeconfig: string } }>("-n", "team-a", "get", "secret", "prod-admin-kubeconfig");
      const text = Buffer.from(secret.data.kubeconfig, "base64").toString("utf8");
      return text.includes("exec") ? undefined : text;
    }).catch((error: Error) => {
      const events = meta
        .json<{ items: { reason: string; message: string; involvedObject: { name: string } }[] }>("-n", "team-a", "get", "events")
        .items.filter((e) => e.involvedObject.name === "prod")
        .map((e) => `${e.reason}: ${e.message}`);
      const conditions = JSON.stringify(getCluster("prod").status?.conditions, null, 1);
      throw new Error(`${error.message}\nConditions: ${conditions}\nEvents of team-a/prod:\n${events.join("\n")}\nOperator log:\n${logs.filter((l) => l.includes("prod")).slice(-30).join("\n")}`);
    });
    expect(restored).toContain("client-key-data");
    expect(existsSync(MARKER)).toBe(false);
    // Nothing of the tenant's SSH password in what the operator wrote back.
    expect(execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", meta.dev.kubeconfig, "-n", "team-a", "get", "machines,events", "-o", "yaml"], { encoding: "utf8" })).not.toContain("tenant-ssh-password");
  });

  it("is refused at kubectl apply once the admin policy's admission policies are installed", async () => {
    const file = join(meta.work, "admission.yaml");
    writeFileSync(file, admissionPolicies(devAdminPolicy()).map((o) => stringify(o)).join("---\n"));
    kubectl("apply", "-f", file);
    const spec = minimalSpec({ etcd: { version: "3.6.16", storage: { volumeSource: { hostPath: { path: "/" } } } } });
    const refusal = await eventually("the admission policy in force", async () => {
      const r = asTenant(["apply", "--dry-run=server", "-f", "-"], clusterManifest("late-root-disk", spec));
      return r.ok ? undefined : r.out;
    }, 120_000);
    expect(refusal).toMatch(/hostPath/);
  });
});
