/**
 * The masters' hardening as rendered by ControlPlane (issue 13, "Hardened masters"): restricted
 * securityContext and Pod Security labels, NetworkPolicies, loopback-only etcd metrics, minimum
 * TLS versions, audit logging and Secret encryption at rest.
 */
import { parse } from "yaml";
import { beforeEach, describe, expect, it } from "vitest";
import { installMocks, isSecretInput, plain, type RecordedResource } from "../support/pulumi-mocks";
import { minimalSpec, standardSpec } from "../support/specs";

import { ControlPlane } from "../../src/components/control-plane";
import { SpecValidationError } from "../../src/api/v1alpha1";
import { deployControlPlane as deploy } from "../support/control-plane-deploy";

const recorder = installMocks();

const K = {
  ns: "kubernetes:core/v1:Namespace",
  sts: "kubernetes:apps/v1:StatefulSet",
  deploy: "kubernetes:apps/v1:Deployment",
  secret: "kubernetes:core/v1:Secret",
  cm: "kubernetes:core/v1:ConfigMap",
  netpol: "kubernetes:networking.k8s.io/v1:NetworkPolicy",
};

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const inputs = (r: RecordedResource) => r.inputs as Obj;
const workloads = () => [...recorder.ofType(K.sts), ...recorder.ofType(K.deploy)].map(inputs);
const byObjectName = (type: string, name: string) => {
  const found = recorder.ofType(type).filter((r) => inputs(r).metadata?.name === name);
  expect(found, `${type} ${name}`).toHaveLength(1);
  return inputs(found[0]);
};
const container = (w: Obj): Obj => w.spec.template.spec.containers[0];
const flag = (w: Obj, name: string) => (container(w).command as string[]).find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const allPolicies = () => recorder.ofType(K.netpol).map(inputs);
/** The masters' policies: not the etcd membership Jobs' own (egress-only, selecting those Jobs' Pods alone). */
const policies = () => allPolicies().filter((p) => p.spec.podSelector.matchLabels?.["app.kubernetes.io/component"] !== "etcd-membership");

/** The files a volume of the Pod template mounts at `mountPath`, read from the object it names. */
function mountedFile(w: Obj, path: string): string {
  const mount = (container(w).volumeMounts as Obj[]).find((m) => path.startsWith(`${m.mountPath}/`));
  expect(mount, `a volume mounted above ${path}`).toBeDefined();
  const volume = (w.spec.template.spec.volumes as Obj[]).find((v) => v.name === mount?.name) as Obj;
  const file = path.slice(String(mount?.mountPath).length + 1);
  if (volume.configMap) return byObjectName(K.cm, volume.configMap.name).data[file];
  const secret = byObjectName(K.secret, volume.secret.secretName);
  expect(isSecretInput(secret.stringData), `${volume.secret.secretName} is a Pulumi secret`).toBe(true);
  return plain<Obj>(secret.stringData)[file];
}

beforeEach(() => recorder.reset());

describe("master Pods", () => {
  it("run every container non-root, without privilege escalation or capabilities, seccomp RuntimeDefault, read-only root", async () => {
    await deploy("prod-a", { spec: standardSpec() });
    expect(workloads()).toHaveLength(4);
    for (const w of workloads()) {
      const pod = w.spec.template.spec;
      const what = w.metadata.name;
      expect(pod.automountServiceAccountToken, what).toBe(false);
      expect(pod.securityContext, what).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532, seccompProfile: { type: "RuntimeDefault" } });
      for (const c of pod.containers) {
        expect(c.securityContext, `${what}/${c.name}`).toEqual({
          runAsNonRoot: true,
          runAsUser: 65532,
          runAsGroup: 65532,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ["ALL"] },
          seccompProfile: { type: "RuntimeDefault" },
        });
      }
    }
  });

  it("label the masters' namespace restricted, or privileged (audit and warn still restricted) for a hostPath etcd", async () => {
    await deploy("prod-a", { spec: standardSpec(), namespace: "kok-prod-a" });
    expect(byObjectName(K.ns, "kok-prod-a").metadata.labels).toMatchObject({
      "pod-security.kubernetes.io/enforce": "restricted",
      "pod-security.kubernetes.io/audit": "restricted",
      "pod-security.kubernetes.io/warn": "restricted",
    });
    recorder.reset();
    await deploy("dev", { spec: minimalSpec() });
    expect(byObjectName(K.ns, "dev").metadata.labels["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    recorder.reset();
    await deploy("disk", { spec: minimalSpec({ etcd: { version: "3.6.16", storage: { volumeSource: { hostPath: { path: "/srv/etcd" } } } } }) });
    expect(byObjectName(K.ns, "disk").metadata.labels).toMatchObject({
      "pod-security.kubernetes.io/enforce": "privileged",
      "pod-security.kubernetes.io/warn": "restricted",
    });
  });
});

describe("master NetworkPolicies", () => {
  it("deny ingress to this cluster's Pods by default and admit the same namespace", async () => {
    await deploy("prod-a", { spec: standardSpec(), namespace: "kok-prod-a" });
    expect(policies()).toHaveLength(3);
    for (const p of policies()) expect(p.metadata.namespace).toBe("kok-prod-a");
    const deny = byObjectName(K.netpol, "prod-a-default-deny-ingress").spec;
    expect(deny).toEqual({ podSelector: { matchLabels: { "kubeonkube.io/cluster": "prod-a" } }, policyTypes: ["Ingress"] });
    expect(byObjectName(K.netpol, "prod-a-same-namespace").spec.ingress).toEqual([{ from: [{ podSelector: {} }] }]);
  });

  it("open the apiserver port, and only it, to every source", async () => {
    await deploy("prod-a", { spec: standardSpec() });
    const entry = byObjectName(K.netpol, "prod-a-apiserver-entry").spec;
    expect(entry.podSelector).toEqual(byObjectName(K.deploy, "prod-a-apiserver").spec.selector);
    expect(entry.ingress).toEqual([{ ports: [{ protocol: "TCP", port: container(byObjectName(K.deploy, "prod-a-apiserver")).ports[0].containerPort }] }]);
  });

  it("leave the masters' egress open, so the apiserver reaches the workers' kubelets (10250) for logs, exec and port-forward", async () => {
    await deploy("prod-a", { spec: standardSpec(), operatorNamespace: "kok-system" });
    const apiServerLabels: Record<string, string> = byObjectName(K.deploy, "prod-a-apiserver").spec.template.metadata.labels;
    const selecting = policies().filter((p) => Object.entries(p.spec.podSelector.matchLabels ?? {}).every(([k, v]) => apiServerLabels[k] === v));
    expect(selecting.length).toBeGreaterThan(0);
    // Any policy of type Egress selecting the apiserver would deny every destination it does not list.
    for (const p of policies()) {
      expect(p.spec.policyTypes, p.metadata.name).toEqual(["Ingress"]);
      expect(p.spec.egress, p.metadata.name).toBeUndefined();
    }
    // The one Egress policy selects the membership Jobs by a label no master carries.
    const jobs = allPolicies().filter((p) => !policies().includes(p));
    expect(jobs.map((p) => p.metadata.name)).toEqual(["prod-a-etcd-membership"]);
    for (const w of [...recorder.ofType(K.deploy), ...recorder.ofType(K.sts)].map(inputs)) {
      expect(w.spec.template.metadata.labels["app.kubernetes.io/component"], w.metadata.name).not.toBe("etcd-membership");
    }
  });

  it("admit workers to the apiserver port from outside the meta-cluster: the kubelets, and flannel, kube-proxy and CoreDNS through the kubernetes Service's endpoints (Pod IP:6443)", async () => {
    await deploy("prod-a", { spec: standardSpec() });
    const api = byObjectName(K.deploy, "prod-a-apiserver");
    // The endpoints the business cluster publishes are the Pods' own addresses and port.
    expect(container(api).command).toContain("--advertise-address=$(POD_IP)");
    expect(container(api).command).toContain("--secure-port=6443");
    const entry = byObjectName(K.netpol, "prod-a-apiserver-entry").spec;
    for (const rule of entry.ingress) expect(rule.from).toBeUndefined();
    expect(entry.ingress.flatMap((r: { ports: { port: number }[] }) => r.ports.map((p) => p.port))).toEqual([6443]);
  });

  it("admit etcd, controller-manager and scheduler from their own namespace only", async () => {
    await deploy("prod-a", { spec: standardSpec(), operatorNamespace: "kok-system" });
    for (const w of workloads().filter((w) => w.metadata.name !== "prod-a-apiserver")) {
      const podLabels: Record<string, string> = w.spec.template.metadata.labels;
      const selecting = policies().filter((p) => Object.entries(p.spec.podSelector.matchLabels ?? {}).every(([k, v]) => podLabels[k] === v));
      expect(selecting.length, w.metadata.name).toBeGreaterThan(0);
      for (const p of selecting) {
        for (const rule of p.spec.ingress ?? []) {
          expect(rule.from, `${p.metadata.name} admits ${w.metadata.name} from everywhere`).toBeDefined();
          for (const peer of rule.from) expect(Object.keys(peer), `${p.metadata.name} peer`).toEqual(["podSelector"]);
        }
      }
    }
  });

  it("admit the operator's namespace to the apiserver when one is given, by its name label", async () => {
    await deploy("prod-a", { spec: standardSpec(), operatorNamespace: "kok-system" });
    expect(policies()).toHaveLength(4);
    expect(byObjectName(K.netpol, "prod-a-operator").spec).toEqual({
      podSelector: { matchLabels: { "kubeonkube.io/cluster": "prod-a", "kubeonkube.io/component": "kube-apiserver" } },
      policyTypes: ["Ingress"],
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kok-system" } } }], ports: [{ protocol: "TCP", port: 6443 }] }],
    });
  });
});

describe("master flags", () => {
  it("serve etcd's plain-HTTP metrics on loopback only and probe etcd through its TLS client port", async () => {
    await deploy("prod-a", { spec: standardSpec() });
    const etcd = byObjectName(K.sts, "prod-a-etcd");
    expect(flag(etcd, "listen-metrics-urls")).toBe("http://127.0.0.1:2381");
    expect(container(etcd).ports.map((p: Obj) => p.containerPort)).toEqual([2379, 2380]);
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      const command: string[] = container(etcd)[probe].exec.command;
      expect(command[0], probe).toBe("etcdctl");
      expect(command, probe).toContain("--endpoints=https://127.0.0.1:2379");
      expect(command.filter((a) => /^--(cacert|cert|key)=\/etc\/kubernetes\/pki\/etcd\//.test(a)), probe).toHaveLength(3);
    }
    expect(container(etcd).livenessProbe.exec.command).toContain("--consistency=s");
    expect(container(etcd).readinessProbe.exec.command).toContain("--consistency=l");
  });

  it("require TLS 1.2 on every master and turn profiling off on the Kubernetes ones", async () => {
    await deploy("prod-a", { spec: standardSpec() });
    expect(flag(byObjectName(K.sts, "prod-a-etcd"), "tls-min-version")).toBe("TLS1.2");
    for (const name of ["prod-a-apiserver", "prod-a-controller-manager", "prod-a-scheduler"]) {
      expect(flag(byObjectName(K.deploy, name), "tls-min-version"), name).toBe("VersionTLS12");
      expect(flag(byObjectName(K.deploy, name), "profiling"), name).toBe("false");
    }
  });

  it("audit the apiserver to stdout with a policy that never records Secret content or health checks", async () => {
    await deploy("prod-a", { spec: standardSpec() });
    const api = byObjectName(K.deploy, "prod-a-apiserver");
    expect(flag(api, "audit-log-path")).toBe("-");
    const policy = parse(mountedFile(api, flag(api, "audit-policy-file") ?? ""));
    expect(policy).toMatchObject({ apiVersion: "audit.k8s.io/v1", kind: "Policy" });
    const firstMatch = (group: string, resource: string) =>
      policy.rules.find((r: Obj) => !r.nonResourceURLs && (!r.resources || r.resources.some((g: Obj) => g.group === group && (!g.resources || g.resources.includes(resource)))));
    expect(firstMatch("", "secrets").level).toBe("Metadata");
    expect(firstMatch("", "configmaps").level).toBe("Metadata");
    expect(firstMatch("authentication.k8s.io", "tokenreviews").level).toBe("Metadata");
    expect(policy.rules.find((r: Obj) => r.nonResourceURLs?.includes("/readyz*")).level).toBe("None");
    expect(policy.rules.some((r: Obj) => r.level === "RequestResponse")).toBe(false);
  });

  it("encrypt Secrets at rest with secretbox, the current key first and identity last", async () => {
    await deploy("prod-a", { spec: standardSpec() });
    const api = byObjectName(K.deploy, "prod-a-apiserver");
    const config = parse(mountedFile(api, flag(api, "encryption-provider-config") ?? ""));
    expect(config).toMatchObject({ apiVersion: "apiserver.config.k8s.io/v1", kind: "EncryptionConfiguration" });
    expect(config.resources).toHaveLength(1);
    expect(config.resources[0].resources).toEqual(["secrets"]);
    const [secretbox, identity] = config.resources[0].providers;
    expect(identity).toEqual({ identity: {} });
    expect(secretbox.secretbox.keys.map((k: Obj) => k.name)).toEqual(["key-1", "key-2"]);
    for (const key of secretbox.secretbox.keys) expect(Buffer.from(key.secret, "base64")).toHaveLength(32);
    expect(new Set(secretbox.secretbox.keys.map((k: Obj) => k.secret)).size).toBe(2);
  });
});

describe("Secret encryption key rotation", () => {
  const rendered = async (encryptionKeyGeneration?: number) => {
    recorder.reset();
    await deploy("prod-a", { spec: standardSpec(), encryptionKeyGeneration });
    const api = byObjectName(K.deploy, "prod-a-apiserver");
    const keys: Obj[] = parse(mountedFile(api, flag(api, "encryption-provider-config") ?? "")).resources[0].providers[0].secretbox.keys;
    return {
      keys: Object.fromEntries(keys.map((k) => [k.name, k.secret])),
      order: keys.map((k) => k.name),
      apiChecksum: api.spec.template.metadata.annotations["kubeonkube.io/secret-checksum"],
      etcdChecksum: byObjectName(K.sts, "prod-a-etcd").spec.template.metadata.annotations["kubeonkube.io/secret-checksum"],
    };
  };

  it("keeps the keys across ups, and on a rotation encrypts with the announced key, keeping the old one to decrypt", async () => {
    const first = await rendered();
    expect(await rendered(1)).toEqual(first);
    const next = await rendered(2);
    expect(next.order).toEqual(["key-2", "key-3", "key-1"]);
    expect(next.keys["key-2"]).toBe(first.keys["key-2"]);
    expect(next.keys["key-1"]).toBe(first.keys["key-1"]);
    // The new configuration rolls the apiservers and nothing else.
    expect(next.apiChecksum).not.toBe(first.apiChecksum);
    expect(next.etcdChecksum).toBe(first.etcdChecksum);
  });

  it("refuses a generation below 1 and a bad operator namespace, naming both", () => {
    let error: unknown;
    try {
      new ControlPlane("prod-a", { spec: standardSpec(), encryptionKeyGeneration: 0, operatorNamespace: "Kok System" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SpecValidationError);
    expect((error as Error).message).toMatch(/encryptionKeyGeneration: must be a positive whole number \(got 0\)/);
    expect((error as Error).message).toMatch(/operatorNamespace: "Kok System" is not a valid namespace name/);
  });
});
