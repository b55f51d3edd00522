/**
 * The etcd membership as the stack renders it (src/components/etcd.ts, etcd-membership.ts): the
 * StatefulSet runs the members the operator observed, not the spec's count; etcd reads the
 * membership from a ConfigMap, so a membership step changes no Pod template and rolls no member;
 * the rollout gate does not wait for a learner; and the membership Jobs get their own client leaf
 * of the etcd CA and a NetworkPolicy that lets them reach etcd's client port only.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { installMocks, plain, type RecordedResource } from "../support/pulumi-mocks";
import { minimalSpec } from "../support/specs";
import { deployControlPlane as deploy } from "../support/control-plane-deploy";

const recorder = installMocks();
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const inputs = (r: RecordedResource) => r.inputs as Obj;
const one = (type: string, name: string) => {
  const found = recorder.ofType(type).filter((r) => inputs(r).metadata?.name === name);
  expect(found, `${type} ${name}`).toHaveLength(1);
  return inputs(found[0]);
};
const sts = () => one("kubernetes:apps/v1:StatefulSet", "ops-etcd");
const config = () => one("kubernetes:core/v1:ConfigMap", "ops-etcd-membership").data as Record<string, string>;
const gateRevision = () => inputs(recorder.named("ops-etcd-rollout")).revision as string;

beforeEach(() => recorder.reset());

describe("etcd membership in the stack", () => {
  it("forms a new cluster of the spec's members when nothing was observed", async () => {
    await deploy("ops", { spec: minimalSpec({ etcd: { ...minimalSpec().etcd, replicas: 3 } }), namespace: "kok-ops" });
    expect(sts().spec.replicas).toBe(3);
    expect(config()).toEqual({
      ETCD_INITIAL_CLUSTER: [0, 1, 2].map((i) => `ops-etcd-${i}=https://ops-etcd-${i}.ops-etcd.kok-ops.svc:2380`).join(","),
      ETCD_INITIAL_CLUSTER_STATE: "new",
    });
    // Not as flags: a flag on the command line would shadow the ConfigMap's values.
    const command: string[] = sts().spec.template.spec.containers[0].command;
    expect(command.filter((a) => a.startsWith("--initial-cluster=") || a.startsWith("--initial-cluster-state="))).toEqual([]);
  });

  it("runs the observed members, joining the existing cluster, whatever the spec says; the Pod template and the gate stay the same", async () => {
    const spec = minimalSpec({ etcd: { ...minimalSpec().etcd, replicas: 3 } });
    await deploy("ops", { spec, namespace: "kok-ops", etcdMembership: { members: 1, state: "existing" } });
    const template = JSON.stringify(sts().spec.template);
    const revision = gateRevision();
    expect(sts().spec.replicas).toBe(1);
    expect(config()).toEqual({ ETCD_INITIAL_CLUSTER: "ops-etcd-0=https://ops-etcd-0.ops-etcd.kok-ops.svc:2380", ETCD_INITIAL_CLUSTER_STATE: "existing" });
    recorder.reset();
    await deploy("ops", { spec, namespace: "kok-ops", etcdMembership: { members: 2, state: "existing" } });
    expect(sts().spec.replicas).toBe(2);
    expect(config().ETCD_INITIAL_CLUSTER.split(",")).toHaveLength(2);
    expect(JSON.stringify(sts().spec.template)).toBe(template);
    expect(gateRevision()).toBe(revision);
  });

  it("does not await the StatefulSet (a learner is not Ready before its promotion) and drops a scaled-away member's volume", async () => {
    await deploy("ops", { spec: minimalSpec(), namespace: "kok-ops" });
    expect(sts().metadata.annotations["pulumi.com/skipAwait"]).toBe("true");
    expect(sts().spec.persistentVolumeClaimRetentionPolicy).toEqual({ whenScaled: "Delete", whenDeleted: "Retain" });
  });

  it("gives the membership Jobs their own client leaf of the etcd CA, and a NetworkPolicy to etcd's client port and DNS only", async () => {
    await deploy("ops", { spec: minimalSpec(), namespace: "kok-ops" });
    const csr = inputs(recorder.named("ops-etcd-membership-client-csr"));
    expect(csr.subject.commonName).toBe("kube-on-kube-etcd-membership");
    const leaf = inputs(recorder.named("ops-etcd-membership-client"));
    expect(leaf.allowedUses).toEqual(["digital_signature", "key_encipherment", "client_auth"]);
    const secret = one("kubernetes:core/v1:Secret", "ops-etcd-member-client");
    expect(Object.keys(plain<Obj>(secret.stringData)).sort()).toEqual(["ca.crt", "tls.crt", "tls.key"]);
    const policy = one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "ops-etcd-membership").spec;
    expect(policy.podSelector.matchLabels).toEqual({ "kubeonkube.io/cluster": "ops", "app.kubernetes.io/component": "etcd-membership" });
    expect(policy.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(policy.ingress).toBeUndefined();
    expect(policy.egress).toEqual([
      { to: [{ podSelector: { matchLabels: { "kubeonkube.io/cluster": "ops", "kubeonkube.io/component": "etcd" } } }], ports: [{ protocol: "TCP", port: 2379 }] },
      { ports: [{ protocol: "UDP", port: 53 }, { protocol: "TCP", port: 53 }] },
    ]);
  });

  it("issues the etcd server and peer certificates for every member the spec may ever ask for", async () => {
    await deploy("ops", { spec: minimalSpec(), namespace: "kok-ops" });
    const names: string[] = inputs(recorder.named("ops-pki-etcd-server-csr")).dnsNames;
    expect(names).toContain("ops-etcd-6.ops-etcd.kok-ops.svc");
    expect(names).not.toContain("ops-etcd-7.ops-etcd.kok-ops.svc");
  });
});
