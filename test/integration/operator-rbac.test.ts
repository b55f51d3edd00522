/**
 * `kok manifests` against a real kube-apiserver: what the operator's ServiceAccount may do
 * (SubjectAccessReview, i.e. `kubectl auth can-i --as`), and what the ValidatingAdmissionPolicy
 * refuses when the operator's ServiceAccount tries it (kubectl impersonating it), while the writes
 * the operator does need still pass. Also: the operator's Pod passes Pod Security `restricted`.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { installManifests } from "../../src/operator/install-manifests";
import { startTestApiserver, type TestApiserver } from "../support/apiserver";
import { TOOLCHAIN_DIR } from "../support/engine";

const NS = "kube-on-kube-system";
const SA = "kube-on-kube-operator";
const USER = `system:serviceaccount:${NS}:${SA}`;
const GROUPS = ["system:serviceaccounts", `system:serviceaccounts:${NS}`, "system:authenticated"];
const MANAGED = { "app.kubernetes.io/managed-by": "kube-on-kube", "kubeonkube.io/cluster-uid": "0f3c7d9e-1111-4a2b-9c3d-123456789abc" };
const POLICY_MESSAGE = /kube-on-kube operator: /;

let api: TestApiserver;
let dir: string;
let authz: k8s.AuthorizationV1Api;

interface Result {
  readonly ok: boolean;
  readonly output: string;
}

/** kubectl as the admin, or as the operator's ServiceAccount (impersonation). */
function kubectl(args: string[], options: { asOperator?: boolean; input?: string } = {}): Result {
  const bin = path.join(TOOLCHAIN_DIR, "bin", "kubectl");
  if (!existsSync(bin)) throw new Error(`kubectl is missing at ${bin}: build it with \`npm run toolchain\` (see docs/toolchain.md)`);
  const as = options.asOperator ? [`--as=${USER}`, ...GROUPS.map((g) => `--as-group=${g}`)] : [];
  try {
    const output = execFileSync(bin, ["--kubeconfig", path.join(dir, "kubeconfig"), ...as, ...args], { encoding: "utf8", input: options.input, stdio: ["pipe", "pipe", "pipe"] });
    return { ok: true, output };
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string };
    return { ok: false, output: `${e.stdout ?? ""}${e.stderr ?? String(error)}` };
  }
}

const asOperator = (args: string[], input?: unknown) => kubectl(args, { asOperator: true, input: input === undefined ? undefined : JSON.stringify(input) });
const create = (object: Record<string, unknown>) => asOperator(["create", "-f", "-"], object);

async function allowed(verb: string, resource: string, options: { group?: string; namespace?: string; subresource?: string; name?: string } = {}): Promise<boolean> {
  const review = await authz.createSubjectAccessReview({
    body: {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SubjectAccessReview",
      spec: { user: USER, groups: GROUPS, resourceAttributes: { verb, resource, group: options.group ?? "", namespace: options.namespace, subresource: options.subresource, name: options.name } },
    },
  });
  return review.status?.allowed === true;
}

const namespace = (name: string, labels: Record<string, string> = {}) => ({ apiVersion: "v1", kind: "Namespace", metadata: { name, labels } });
const secret = (ns: string, name: string, type = "Opaque") => ({ apiVersion: "v1", kind: "Secret", metadata: { name, namespace: ns }, type, stringData: { kubeconfig: "x" } });
const deployment = (ns: string) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name: "kube-apiserver", namespace: ns },
  spec: { selector: { matchLabels: { app: "a" } }, template: { metadata: { labels: { app: "a" } }, spec: { containers: [{ name: "a", image: "registry.k8s.io/pause:3.10" }] } } },
});

beforeAll(async () => {
  api = await startTestApiserver();
  dir = mkdtempSync(path.join(tmpdir(), "kok-rbac-"));
  writeFileSync(path.join(dir, "kubeconfig"), api.kubeConfig().exportConfig());
  authz = api.kubeConfig().makeApiClient(k8s.AuthorizationV1Api);
  writeFileSync(path.join(dir, "install.yaml"), installManifests().map((o) => stringify(o, { aliasDuplicateObjects: false })).join("---\n"));
  const applied = kubectl(["apply", "-f", path.join(dir, "install.yaml")]);
  if (!applied.ok) throw new Error(`kubectl apply of kok manifests failed:\n${applied.output}`);
  for (const ns of [namespace("tenant-a"), namespace("masters-x", MANAGED)]) {
    const made = kubectl(["create", "-f", "-"], { input: JSON.stringify(ns) });
    if (!made.ok) throw new Error(made.output);
  }
  // The policy is enforced once the apiserver's admission informer has it: probe with a dry run
  // (admission runs, nothing is written) until the refusal shows.
  for (let attempt = 0; ; attempt++) {
    const probe = asOperator(["label", "namespace", "tenant-a", "probe=1", "--dry-run=server"]);
    if (!probe.ok && POLICY_MESSAGE.test(probe.output)) break;
    if (attempt > 300) throw new Error(`the admission policy is not enforced: ${probe.output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
});

afterAll(async () => {
  await api?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the operator's RBAC on a real apiserver", () => {
  it("may read and patch tenants' objects, write their status and Events, and read the Secrets they reference", async () => {
    expect(await allowed("list", "clusters", { group: "kubeonkube.io" })).toBe(true);
    expect(await allowed("watch", "machines", { group: "kubeonkube.io" })).toBe(true);
    expect(await allowed("patch", "machines", { group: "kubeonkube.io", namespace: "tenant-a" })).toBe(true);
    expect(await allowed("update", "clusters", { group: "kubeonkube.io", namespace: "tenant-a", subresource: "status" })).toBe(true);
    expect(await allowed("create", "events", { namespace: "tenant-a" })).toBe(true);
    expect(await allowed("get", "secrets", { namespace: "tenant-a" })).toBe(true);
  });

  it("may not delete or replace tenants' objects, nor touch RBAC, admission, Nodes, Pods, tokens or impersonation", async () => {
    const denied: Array<[string, string, { group?: string; namespace?: string; subresource?: string; name?: string }?]> = [
      ["delete", "clusters", { group: "kubeonkube.io", namespace: "tenant-a" }],
      ["update", "machines", { group: "kubeonkube.io", namespace: "tenant-a" }],
      ["create", "clusterrolebindings", { group: "rbac.authorization.k8s.io" }],
      ["create", "rolebindings", { group: "rbac.authorization.k8s.io", namespace: "masters-x" }],
      ["escalate", "clusterroles", { group: "rbac.authorization.k8s.io" }],
      ["bind", "clusterroles", { group: "rbac.authorization.k8s.io" }],
      ["impersonate", "users"],
      ["delete", "validatingadmissionpolicybindings", { group: "admissionregistration.k8s.io" }],
      ["update", "validatingadmissionpolicies", { group: "admissionregistration.k8s.io" }],
      ["update", "customresourcedefinitions", { group: "apiextensions.k8s.io" }],
      ["get", "nodes"],
      ["create", "pods", { namespace: "masters-x" }],
      ["create", "pods", { namespace: "masters-x", subresource: "exec" }],
      ["create", "serviceaccounts", { namespace: "masters-x", subresource: "token", name: "default" }],
      ["deletecollection", "secrets", { namespace: "tenant-a" }],
      ["create", "daemonsets", { group: "apps", namespace: "masters-x" }],
      ["update", "leases", { group: "coordination.k8s.io", namespace: NS, name: "someone-elses" }],
      ["create", "leases", { group: "coordination.k8s.io", namespace: "kube-system" }],
    ];
    const granted: string[] = [];
    for (const [verb, resource, options] of denied) if (await allowed(verb, resource, options)) granted.push(`${verb} ${resource} ${JSON.stringify(options ?? {})}`);
    expect(granted).toEqual([]);
    expect(await allowed("update", "leases", { group: "coordination.k8s.io", namespace: NS, name: "kube-on-kube-operator" })).toBe(true);
    // The holder records of an object-store backend (src/runtime/holder-leases.ts), and no other Lease.
    expect(await allowed("update", "leases", { group: "coordination.k8s.io", namespace: NS, name: "kube-on-kube-operator-holders" })).toBe(true);
    expect(await allowed("delete", "leases", { group: "coordination.k8s.io", namespace: NS, name: "kube-on-kube-operator-holders" })).toBe(false);
  });
});

describe("the admission policy, as the operator's ServiceAccount", () => {
  it("refuses changing or deleting a namespace it does not manage, and adopting one by labelling it", () => {
    for (const attempt of [
      ["label", "namespace", "kube-system", "x=y"],
      ["label", "namespace", "tenant-a", "app.kubernetes.io/managed-by=kube-on-kube"],
      ["delete", "namespace", "tenant-a", "--wait=false"],
      ["delete", "namespace", NS, "--wait=false"],
    ]) {
      const result = asOperator(attempt);
      expect([attempt.join(" "), result.ok, POLICY_MESSAGE.test(result.output)], result.output).toEqual([attempt.join(" "), false, true]);
    }
    expect(kubectl(["get", "namespace", "tenant-a"]).ok).toBe(true);
  });

  it("refuses a managed-looking system namespace, and a new namespace without the label", () => {
    expect(kubectl(["label", "namespace", "kube-node-lease", "app.kubernetes.io/managed-by=kube-on-kube", "--overwrite"]).ok).toBe(true);
    const lease = asOperator(["delete", "namespace", "kube-node-lease", "--wait=false"]);
    expect([lease.ok, POLICY_MESSAGE.test(lease.output)], lease.output).toEqual([false, true]);
    const bare = create(namespace("unlabelled"));
    expect([bare.ok, POLICY_MESSAGE.test(bare.output)], bare.output).toEqual([false, true]);
  });

  it("creates, changes and deletes a masters' namespace", () => {
    expect(create(namespace("masters-y", MANAGED)).output).toMatch(/created/);
    expect(asOperator(["label", "namespace", "masters-y", "extra=1"]).ok).toBe(true);
    expect(asOperator(["delete", "namespace", "masters-y", "--wait=false"]).ok).toBe(true);
  });

  it("writes the masters' objects in a masters' namespace, and nowhere else", () => {
    for (const object of [secret("masters-x", "prod-a-etcd-certs"), deployment("masters-x")]) {
      const result = create(object);
      expect(result.ok, result.output).toBe(true);
    }
    for (const object of [deployment("kube-system"), deployment("tenant-a"), secret("tenant-a", "worker-ssh"), secret(NS, "kube-on-kube-operator-state-passphrase")]) {
      const result = create(object);
      expect([object.metadata.namespace, object.metadata.name, result.ok, POLICY_MESSAGE.test(result.output)], result.output).toEqual([object.metadata.namespace, object.metadata.name, false, true]);
    }
    const configMap = create({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", namespace: "tenant-a" } });
    expect([configMap.ok, POLICY_MESSAGE.test(configMap.output)]).toEqual([false, true]);
  });

  it("writes the admin kubeconfig copy in a tenant's namespace: Opaque only, never in a system namespace", () => {
    const copy = create(secret("tenant-a", "prod-a-admin-kubeconfig"));
    expect(copy.ok, copy.output).toBe(true);
    expect(asOperator(["delete", "secret", "-n", "tenant-a", "prod-a-admin-kubeconfig"]).ok).toBe(true);
    const token = create({ ...secret("tenant-a", "mint-admin-kubeconfig", "kubernetes.io/service-account-token"), metadata: { name: "mint-admin-kubeconfig", namespace: "tenant-a", annotations: { "kubernetes.io/service-account.name": "default" } } });
    expect([token.ok, POLICY_MESSAGE.test(token.output)], token.output).toEqual([false, true]);
    const system = create(secret("kube-system", "prod-a-admin-kubeconfig"));
    expect([system.ok, POLICY_MESSAGE.test(system.output)], system.output).toEqual([false, true]);
  });

  it("writes the user kubeconfig copies (<cluster>.kubeconfig.<entry>) there too, and no other dotted name", () => {
    const copy = create(secret("tenant-a", "prod-a.kubeconfig.ops-viewer"));
    expect(copy.ok, copy.output).toBe(true);
    expect(asOperator(["delete", "secret", "-n", "tenant-a", "prod-a.kubeconfig.ops-viewer"]).ok).toBe(true);
    for (const name of ["prod-a.kubeconfig.ops.viewer", "registry.kubeconfig", "a.b.kubeconfig.c"]) {
      const refused = create(secret("tenant-a", name));
      expect([name, refused.ok, POLICY_MESSAGE.test(refused.output)], refused.output).toEqual([name, false, true]);
    }
    const system = create(secret("kube-system", "prod-a.kubeconfig.ops-viewer"));
    expect([system.ok, POLICY_MESSAGE.test(system.output)], system.output).toEqual([false, true]);
  });

  it("binds to the operator only: the platform's admin is not affected", () => {
    expect(kubectl(["create", "-f", "-"], { input: JSON.stringify(secret("tenant-a", "worker-ssh")) }).ok).toBe(true);
    expect(kubectl(["label", "namespace", "tenant-a", "team=a"]).ok).toBe(true);
  });
});

describe("the operator's Pod", () => {
  it("passes Pod Security restricted in its namespace (and restricted is enforced there)", () => {
    const deploymentObject = installManifests().find((o) => o.kind === "Deployment") as { spec: { template: { spec: Record<string, unknown> } } };
    const podSpec = deploymentObject.spec.template.spec;
    const pod = (spec: Record<string, unknown>) => JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name: "operator-pss", namespace: NS }, spec });
    const accepted = kubectl(["create", "--dry-run=server", "-f", "-"], { input: pod(podSpec) });
    expect(accepted.ok, accepted.output).toBe(true);
    // The same Pod without its seccomp profile: proof that restricted is enforced, not just labelled.
    const withoutSeccomp = (context: unknown) => Object.fromEntries(Object.entries(context as Record<string, unknown>).filter(([k]) => k !== "seccompProfile"));
    const containers = (podSpec.containers as Array<{ securityContext: Record<string, unknown> }>).map((c) => ({ ...c, securityContext: withoutSeccomp(c.securityContext) }));
    const refused = kubectl(["create", "--dry-run=server", "-f", "-"], { input: pod({ ...podSpec, securityContext: withoutSeccomp(podSpec.securityContext), containers }) });
    expect([refused.ok, /violates PodSecurity "restricted/.test(refused.output)], refused.output).toEqual([false, true]);
  });
});
