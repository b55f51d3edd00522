import { parse } from "yaml";
import { beforeEach, describe, expect, it } from "vitest";
import { installMocks, isSecretInput, isSecretOutput, plain, settle, valueOf, type RecordedResource } from "../support/pulumi-mocks";
import { minimalSpec, standardSpec } from "../support/specs";

import { ControlPlane, etcdVersionChangeProblems } from "../../src/components/control-plane";
import { SpecValidationError } from "../../src/api/v1alpha1";
import { deployControlPlane as deploy } from "../support/control-plane-deploy";

// Installed before any resource is constructed (importing the components registers nothing).
const recorder = installMocks();

const K = {
  ns: "kubernetes:core/v1:Namespace",
  sts: "kubernetes:apps/v1:StatefulSet",
  deploy: "kubernetes:apps/v1:Deployment",
  svc: "kubernetes:core/v1:Service",
  secret: "kubernetes:core/v1:Secret",
  pdb: "kubernetes:policy/v1:PodDisruptionBudget",
  cm: "kubernetes:core/v1:ConfigMap",
  netpol: "kubernetes:networking.k8s.io/v1:NetworkPolicy",
  key: "tls:index/privateKey:PrivateKey",
  ca: "tls:index/selfSignedCert:SelfSignedCert",
  csr: "tls:index/certRequest:CertRequest",
  leaf: "tls:index/locallySignedCert:LocallySignedCert",
  gate: "pulumi-nodejs:dynamic/kube-on-kube:RolloutGate",
};

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const inputs = (r: RecordedResource) => r.inputs as Obj;
const count = (type: string) => recorder.ofType(type).length;
const workloads = () => [...recorder.ofType(K.sts), ...recorder.ofType(K.deploy)].map(inputs);
const byObjectName = (type: string, name: string) => {
  const found = recorder.ofType(type).filter((r) => inputs(r).metadata?.name === name);
  expect(found, `${type} ${name}`).toHaveLength(1);
  return inputs(found[0]);
};
const command = (w: Obj): string[] => w.spec.template.spec.containers[0].command;
const flag = (w: Obj, name: string) => command(w).find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

beforeEach(() => recorder.reset());

describe("ControlPlane in standard mode", () => {
  it("marks every object it owns for forced apply, so hand edits can be reverted", async () => {
    await deploy("prod-a", { spec: standardSpec(), namespace: "kok-prod-a" });
    const kinds = [K.ns, K.sts, K.deploy, K.svc, K.secret, K.pdb, K.cm, K.netpol];
    const objects = kinds.flatMap((kind) => recorder.ofType(kind).map(inputs));
    expect(objects.length).toBeGreaterThan(15);
    for (const o of objects) expect(o.metadata.annotations?.["pulumi.com/patchForce"], `${o.kind ?? ""} ${o.metadata.name}`).toBe("true");
  });

  it("renders the HA layout: 3 etcd members, HA masters, PDBs and anti-affinity for each", async () => {
    await deploy("prod-a", { spec: standardSpec(), namespace: "kok-prod-a" });
    expect(count(K.ns)).toBe(1);
    expect(count(K.sts)).toBe(1);
    expect(count(K.deploy)).toBe(3);
    expect(count(K.svc)).toBe(4);
    expect(count(K.pdb)).toBe(4);
    // etcd, apiserver, controller-manager, scheduler, admin kubeconfig, one user kubeconfig, the etcd membership client
    expect(count(K.secret)).toBe(7);
    expect(byObjectName(K.sts, "prod-a-etcd").spec.replicas).toBe(3);
    expect(byObjectName(K.deploy, "prod-a-apiserver").spec.replicas).toBe(3);
    expect(byObjectName(K.deploy, "prod-a-controller-manager").spec.replicas).toBe(2);
    expect(byObjectName(K.deploy, "prod-a-scheduler").spec.replicas).toBe(2);
    for (const w of workloads()) {
      const term = w.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
      expect(term.topologyKey).toBe("kubernetes.io/hostname");
      expect(term.labelSelector.matchLabels).toEqual(w.spec.selector.matchLabels);
    }
    for (const pdb of recorder.ofType(K.pdb).map(inputs)) expect(pdb.spec.maxUnavailable).toBe(1);
  });

  it("issues three CAs and one per user kubeconfig, a service-account key and every leaf certificate", async () => {
    await deploy("prod-a", { spec: standardSpec() });
    // Cluster, etcd and front-proxy, and the one of standardSpec's user entry.
    expect(count(K.ca)).toBe(4);
    const leaves = recorder.ofType(K.csr).map((r) => inputs(r).subject.commonName).sort();
    expect(leaves).toEqual(
      [
        "kube-apiserver",
        "kube-apiserver-etcd-client",
        "kube-apiserver-kubelet-client",
        "prod-a-etcd",
        "prod-a-etcd-peer",
        "front-proxy-client",
        "system:kube-controller-manager",
        "system:kube-scheduler",
        "kubernetes-admin",
        "ops",
        // The etcd membership Jobs' client (src/components/etcd-membership.ts).
        "kube-on-kube-etcd-membership",
      ].sort(),
    );
    expect(count(K.leaf)).toBe(leaves.length);
    // + 4 CAs, the service-account key, and the seeds of the Secret encryption keys 1 and 2 (announced).
    expect(count(K.key)).toBe(leaves.length + 4 + 1 + 2);
    const user = recorder.named("prod-a-pki-user-ops-viewer");
    // Signed by its entry's own CA, which the apiserver trusts for clients only while the entry exists.
    expect(String(inputs(user).caCertPem)).toContain("mock-prod-a-pki-users-ca-ops-viewer");
    expect(inputs(recorder.named("prod-a-pki-users-ca-ops-viewer")).subject.commonName).toBe("prod-a-user-ops-viewer");
    for (const leaf of recorder.ofType(K.leaf).filter((r) => r !== user)) {
      expect(inputs(leaf).validityPeriodHours).toBe(365 * 24);
      expect(inputs(leaf).earlyRenewalHours).toBe(30 * 24);
    }
    // 60-day user certificate: renewed at a third of its life left, not inside a 30-day window.
    expect(inputs(user).validityPeriodHours).toBe(60 * 24);
    expect(inputs(user).earlyRenewalHours).toBe(20 * 24);
    expect(inputs(recorder.named("prod-a-pki-user-ops-viewer-csr")).subject.organization).toBe("view-only");
  });

  it("puts every name clients use into the apiserver serving certificate", async () => {
    await deploy("prod-a", { spec: standardSpec(), namespace: "kok-prod-a" });
    const csr = inputs(recorder.named("prod-a-pki-apiserver-csr"));
    expect(csr.dnsNames).toEqual(
      expect.arrayContaining(["kubernetes.default.svc.cluster.local", "prod-a-apiserver.kok-prod-a.svc", "prod-a.k8s.example.com"]),
    );
    expect(csr.ipAddresses).toEqual(expect.arrayContaining(["10.96.0.1", "203.0.113.10"]));
    const etcdCsr = inputs(recorder.named("prod-a-pki-etcd-server-csr"));
    expect(etcdCsr.dnsNames).toContain("prod-a-etcd-1.prod-a-etcd.kok-prod-a.svc");
  });

  it("points the apiserver at the etcd client Service and the spec's service CIDR", async () => {
    await deploy("prod-a", { spec: standardSpec(), namespace: "kok-prod-a" });
    const api = byObjectName(K.deploy, "prod-a-apiserver");
    const etcdClient = byObjectName(K.svc, "prod-a-etcd-client");
    expect(flag(api, "etcd-servers")).toBe(`https://${etcdClient.metadata.name}.${etcdClient.metadata.namespace}.svc:${etcdClient.spec.ports[0].port}`);
    expect(flag(api, "service-cluster-ip-range")).toBe("10.96.0.0/12");
    expect(flag(api, "audit-log-maxage")).toBe("30");
    const cm = byObjectName(K.deploy, "prod-a-controller-manager");
    expect(flag(cm, "cluster-cidr")).toBe("10.244.0.0/16");
    expect(flag(cm, "service-cluster-ip-range")).toBe("10.96.0.0/12");
    const etcd = byObjectName(K.sts, "prod-a-etcd");
    expect(etcd.spec.serviceName).toBe(byObjectName(K.svc, "prod-a-etcd").metadata.name);
    // The first members, from the membership ConfigMap the container reads (src/components/etcd.ts).
    expect(etcd.spec.template.spec.containers[0].envFrom).toEqual([{ configMapRef: { name: "prod-a-etcd-membership" } }]);
    expect(byObjectName(K.cm, "prod-a-etcd-membership").data.ETCD_INITIAL_CLUSTER.split(",")).toHaveLength(3);
  });

  it("verifies kubelets against the cluster CA it mounts, calling them by InternalIP first, with its own client certificate", async () => {
    await deploy("prod-a", { spec: standardSpec(), namespace: "kok-prod-a" });
    const api = byObjectName(K.deploy, "prod-a-apiserver");
    expect(flag(api, "kubelet-certificate-authority")).toBe("/etc/kubernetes/pki/ca.crt");
    // Client certificates: the cluster CA and each user kubeconfig's own CA (pki.ts).
    expect(flag(api, "client-ca-file")).toBe("/etc/kubernetes/pki/client-ca.crt");
    expect(flag(api, "kubelet-preferred-address-types")?.split(",")[0]).toBe("InternalIP");
    expect(flag(api, "kubelet-client-certificate")).toBe("/etc/kubernetes/pki/apiserver-kubelet-client.crt");
    const secretName = api.spec.template.spec.volumes.find((v: Obj) => v.secret)?.secret.secretName;
    expect(Object.keys(plain<Obj>(byObjectName(K.secret, secretName).stringData))).toEqual(
      expect.arrayContaining(["ca.crt", "client-ca.crt", "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key"]),
    );
  });

  it("exposes the apiserver through a headless Service and one of the requested type", async () => {
    await deploy("prod-a", { spec: standardSpec() });
    expect(byObjectName(K.svc, "prod-a-apiserver-headless").spec.clusterIP).toBe("None");
    expect(byObjectName(K.svc, "prod-a-apiserver").spec.type).toBe("LoadBalancer");
    expect(byObjectName(K.svc, "prod-a-etcd").spec.publishNotReadyAddresses).toBe(true);
  });

  it("uses a claim template for etcd storage", async () => {
    await deploy("prod-a", { spec: standardSpec() });
    const etcd = byObjectName(K.sts, "prod-a-etcd");
    expect(etcd.spec.volumeClaimTemplates[0].spec).toMatchObject({ storageClassName: "local-ssd", resources: { requests: { storage: "20Gi" } } });
    expect(etcd.spec.template.spec.volumes.map((v: Obj) => v.name)).toEqual(["pki"]);
  });

  it("places every master workload on the master nodes with the tolerations", async () => {
    await deploy("prod-a", { spec: standardSpec() });
    expect(workloads()).toHaveLength(4);
    for (const w of workloads()) {
      expect(w.spec.template.spec.nodeSelector).toEqual({ "node-role.kubeonkube.io/master": "true" });
      expect(w.spec.template.spec.tolerations).toEqual(standardSpec().masterTolerations);
      expect(w.spec.template.metadata.annotations["kubeonkube.io/secret-checksum"]).toMatch(/^[0-9a-f]{64}$/);
    }
  });

  it("orders the masters etcd → apiserver → controller-manager/scheduler through rollout gates", async () => {
    await deploy("prod-a", { spec: standardSpec() });
    const dependsOn = (name: string) => recorder.named(name).dependsOn;
    // Each gate waits for its workload (and the certificates its revision digests); the next step
    // waits for the gate, not the bare workload.
    expect(dependsOn("prod-a-etcd-rollout")).toEqual(expect.arrayContaining(["prod-a-etcd-statefulset"]));
    expect(dependsOn("prod-a-apiserver")).toEqual(["prod-a-etcd-rollout"]);
    expect(dependsOn("prod-a-apiserver-rollout")).toEqual(expect.arrayContaining(["prod-a-apiserver-deployment"]));
    expect(dependsOn("prod-a-controller-manager")).toEqual(["prod-a-apiserver-rollout"]);
    expect(dependsOn("prod-a-scheduler")).toEqual(["prod-a-apiserver-rollout"]);
    expect(dependsOn("prod-a-etcd")).toEqual(["prod-a-namespace"]);
    expect(recorder.named("prod-a-etcd-rollout").parent).toBe("prod-a-etcd");
    expect(recorder.named("prod-a-apiserver-rollout").parent).toBe("prod-a-apiserver");
  });

  it("points each gate at its workload, with a digest of the workload's spec as its revision", async () => {
    await deploy("prod-a", { spec: standardSpec(), namespace: "kok-prod-a" });
    expect(count(K.gate)).toBe(2);
    const gate = (name: string) => inputs(recorder.named(name));
    expect(gate("prod-a-etcd-rollout")).toMatchObject({ kind: "StatefulSet", namespace: "kok-prod-a", name: "prod-a-etcd" });
    expect(gate("prod-a-apiserver-rollout")).toMatchObject({ kind: "Deployment", namespace: "kok-prod-a", name: "prod-a-apiserver" });
    for (const name of ["prod-a-etcd-rollout", "prod-a-apiserver-rollout"]) expect(gate(name).revision).toMatch(/^[0-9a-f]{64}$/);
  });

  it("keeps the gates' revisions while the spec stays, and moves only the apiserver's on an upgrade", async () => {
    const revisions = async (spec: ReturnType<typeof standardSpec>) => {
      recorder.reset();
      await deploy("prod-a", { spec });
      return ["prod-a-etcd-rollout", "prod-a-apiserver-rollout"].map((name) => inputs(recorder.named(name)).revision as string);
    };
    const [etcd, apiServer] = await revisions(standardSpec());
    // Deterministic: an unchanged spec gives the gate no diff, so a no-change `up` stays one.
    expect(await revisions(standardSpec())).toEqual([etcd, apiServer]);
    const [etcdAfter, apiServerAfter] = await revisions(standardSpec({ kubernetesVersion: "v1.37.0" }));
    expect(etcdAfter).toBe(etcd);
    expect(apiServerAfter).not.toBe(apiServer);
    const [, scaled] = await revisions(standardSpec({ apiServer: { ...standardSpec().apiServer, replicas: 5 } }));
    expect(scaled).not.toBe(apiServer);
  });
});

describe("ControlPlane in minimal mode", () => {
  it("renders one of each, no PDB, no anti-affinity, and the volumeSource for etcd", async () => {
    await deploy("dev", { spec: minimalSpec() });
    for (const w of workloads()) {
      expect(w.spec.replicas).toBe(1);
      expect(w.spec.template.spec.affinity).toBeUndefined();
      expect(w.spec.template.spec.nodeSelector).toBeUndefined();
    }
    expect(count(K.pdb)).toBe(0);
    const etcd = byObjectName(K.sts, "dev-etcd");
    expect(etcd.spec.volumeClaimTemplates).toBeUndefined();
    expect(etcd.spec.template.spec.volumes).toContainEqual({ name: "data", emptyDir: {} });
    expect(etcd.metadata.namespace).toBe("dev");
    expect(byObjectName(K.deploy, "dev-apiserver").spec.template.spec.containers[0].image).toBe("registry.k8s.io/kube-apiserver:v1.36.3");
  });

  it("labels the namespace it creates with the ownership labels it is given, its own labels winning", async () => {
    const namespaceLabels = {
      "kubeonkube.io/cluster-uid": "0b5c8f0e-uid",
      "app.kubernetes.io/managed-by": "kube-on-kube",
      "kubeonkube.io/cluster": "forged",
      "pod-security.kubernetes.io/enforce": "privileged",
    };
    await deploy("dev", { spec: minimalSpec(), namespace: "kok-fleet-dev-0123456789", namespaceLabels });
    expect(byObjectName(K.ns, "kok-fleet-dev-0123456789").metadata.labels).toEqual({
      "kubeonkube.io/cluster-uid": "0b5c8f0e-uid",
      "app.kubernetes.io/managed-by": "kube-on-kube",
      "kubeonkube.io/cluster": "dev",
      "app.kubernetes.io/part-of": "kube-on-kube",
      "pod-security.kubernetes.io/enforce": "restricted",
      "pod-security.kubernetes.io/audit": "restricted",
      "pod-security.kubernetes.io/warn": "restricted",
    });
  });

  it("refuses a namespace label value Kubernetes would refuse, before registering anything", async () => {
    expect(() => new ControlPlane("dev", { spec: minimalSpec(), namespaceLabels: { "kubeonkube.io/cluster-uid": "not a value/" } })).toThrow(/namespaceLabels\["kubeonkube\.io\/cluster-uid"\]: value "not a value\/" is not a valid label value/);
    await settle();
    expect(recorder.resources).toHaveLength(0);
  });

  it("uses an existing namespace when asked not to create one", async () => {
    await deploy("dev", { spec: minimalSpec(), namespace: "shared", createNamespace: false });
    expect(count(K.ns)).toBe(0);
    expect(byObjectName(K.sts, "dev-etcd").metadata.namespace).toBe("shared");
  });
});

describe("ControlPlane outputs and secrets", () => {
  it("returns endpoint, namespace, CA and an admin kubeconfig for that endpoint", async () => {
    const cp = await deploy("prod-a", { spec: standardSpec(), namespace: "kok-prod-a" });
    expect(await valueOf(cp.endpoint)).toBe("https://prod-a.k8s.example.com:6443");
    expect(await valueOf(cp.namespace)).toBe("kok-prod-a");
    expect(await valueOf(cp.caCertificate)).toContain("mock-prod-a-pki-ca");
    const kubeconfig = parse(await valueOf(cp.adminKubeconfig));
    expect(kubeconfig.clusters[0].cluster.server).toBe("https://prod-a.k8s.example.com:6443");
    expect(Buffer.from(kubeconfig.clusters[0].cluster["certificate-authority-data"], "base64").toString()).toContain("mock-prod-a-pki-ca");
    expect(await valueOf(cp.certificatesExpireAt)).toBe("2027-11-25T00:00:00Z");
  });

  it("marks every key and kubeconfig output as a Pulumi secret", async () => {
    const cp = await deploy("prod-a", { spec: standardSpec() });
    expect(await isSecretOutput(cp.adminKubeconfig)).toBe(true);
    expect(await isSecretOutput(cp.caPrivateKey)).toBe(true);
    const pairs = [cp.pki.clusterCa, cp.pki.etcdCa, cp.pki.frontProxyCa, cp.pki.apiServer, cp.pki.admin, cp.pki.users["ops-viewer"]];
    for (const pair of pairs) expect(await isSecretOutput(pair.keyPem)).toBe(true);
    expect(await isSecretOutput(cp.pki.serviceAccount.privateKeyPem)).toBe(true);
    expect(await isSecretOutput(cp.caCertificate)).toBe(false);
  });

  it("gives the gates the meta-cluster kubeconfig as a secret input only", async () => {
    const metaKubeconfig = "apiVersion: v1\nkind: Config\nusers: [{ name: meta, user: { token: TEST-ONLY-meta-token } }]\n";
    await deploy("prod-a", { spec: standardSpec(), metaKubeconfig });
    for (const gate of recorder.ofType(K.gate)) {
      const { kubeconfig, ...rest } = inputs(gate);
      expect(isSecretInput(kubeconfig), `${gate.name} kubeconfig is secret`).toBe(true);
      expect(plain(kubeconfig)).toBe(metaKubeconfig);
      // Nothing else holds it, the serialized provider included (it captures no secret).
      expect(JSON.stringify(rest)).not.toContain("TEST-ONLY");
      expect(isSecretInput(rest.__provider)).toBe(false);
      expect(String(rest.__provider)).toContain("did not finish rolling out within");
    }
  });

  it("leaves the gates on the engine's ambient kubeconfig when given none", async () => {
    await deploy("prod-a", { spec: standardSpec() });
    for (const gate of recorder.ofType(K.gate)) expect(inputs(gate).kubeconfig).toBeUndefined();
  });

  it("writes kubeconfig Secrets that parse and point at the right server", async () => {
    await deploy("prod-a", { spec: standardSpec(), namespace: "kok-prod-a" });
    const server = (secretName: string, key = "kubeconfig") => {
      const stringData = byObjectName(K.secret, secretName).stringData;
      expect(isSecretInput(stringData), `${secretName} stringData is secret`).toBe(true);
      return parse(plain<Obj>(stringData)[key]).clusters[0].cluster.server;
    };
    expect(server("prod-a-admin-kubeconfig")).toBe("https://prod-a.k8s.example.com:6443");
    expect(server("prod-a-admin-kubeconfig", "kubeconfig-internal")).toBe("https://prod-a-apiserver.kok-prod-a.svc:6443");
    expect(server("prod-a-kubeconfig-ops-viewer")).toBe("https://prod-a.k8s.example.com:6443");
    expect(server("prod-a-controller-manager-certs")).toBe("https://prod-a-apiserver.kok-prod-a.svc:6443");
    expect(server("prod-a-scheduler-kubeconfig")).toBe("https://prod-a-apiserver.kok-prod-a.svc:6443");
  });

  it("names where the CA pair is (the operator's only way to find it) and that Secret holds it under those keys", async () => {
    const cp = await deploy("prod-a", { spec: standardSpec(), namespace: "kok-prod-a" });
    const ref = await valueOf(cp.caSecret);
    expect(ref).toEqual({ namespace: "kok-prod-a", name: "prod-a-controller-manager-certs", certificateKey: "ca.crt", privateKeyKey: "ca.key" });
    expect(await isSecretOutput(cp.caSecret)).toBe(false);
    const secret = byObjectName(K.secret, ref.name);
    expect(secret.metadata.namespace).toBe(ref.namespace);
    const data = plain<Obj>(secret.stringData);
    expect(data[ref.certificateKey]).toBe(await valueOf(cp.caCertificate));
    expect(data[ref.privateKeyKey]).toBe(await valueOf(cp.caPrivateKey));
  });
});

describe("ControlPlane on bad input", () => {
  it("throws one error listing every problem and registers nothing", async () => {
    const spec = { ...standardSpec(), mode: "huge", etcd: { version: "3.6.16", replicas: 2, storage: {} } };
    let error: unknown;
    try {
      new ControlPlane("Prod_A", { spec: spec as never, namespace: "Bad NS" });
    } catch (e) {
      error = e;
    }
    await settle();
    expect(error).toBeInstanceOf(SpecValidationError);
    const message = (error as Error).message;
    for (const path of ["name:", "spec.mode:", "spec.etcd.replicas:", "spec.etcd.storage:", "namespace:"]) expect(message).toContain(path);
    expect(recorder.resources).toHaveLength(0);
  });

  it("refuses a minor-version skip and a downgrade before anything is registered", async () => {
    expect(() => new ControlPlane("prod-a", { spec: standardSpec(), running: { kubernetesVersion: "v1.34.4" } })).toThrow(/skips 1 minor/);
    expect(() => new ControlPlane("prod-a", { spec: standardSpec(), running: { kubernetesVersion: "v1.37.0", etcdVersion: "3.7.0" } })).toThrow(
      /downgrade[\s\S]*spec\.etcd\.version/,
    );
    await settle();
    expect(recorder.resources).toHaveLength(0);
  });

  it("issues hour-long leaves for a rotation drill, and rejects a drill of zero hours", async () => {
    await deploy("prod-a", { spec: standardSpec(), rotationDrill: { validityHours: 2, renewBeforeHours: 3 } });
    for (const leaf of recorder.ofType(K.leaf).map(inputs)) expect([leaf.validityPeriodHours, leaf.earlyRenewalHours]).toEqual([2, 3]);
    expect(inputs(recorder.named("prod-a-pki-ca")).validityPeriodHours).toBe(3650 * 24);
    recorder.reset();
    expect(() => new ControlPlane("prod-a", { spec: standardSpec(), rotationDrill: { validityHours: 0, renewBeforeHours: 1 } })).toThrow(/rotationDrill\.validityHours: must be a positive whole number/);
  });

  it("refuses an etcd version change that would restart a single emptyDir member empty; with a volume or three members it goes on", async () => {
    const single = minimalSpec({ etcd: { version: "3.6.17", storage: { volumeSource: { emptyDir: {} } } } });
    expect(() => new ControlPlane("dev", { spec: single, running: { kubernetesVersion: "v1.36.3", etcdVersion: "3.6.16" } })).toThrow(
      /spec\.etcd\.version: etcd 3\.6\.16 → 3\.6\.17 restarts the only etcd member, whose data is in an emptyDir[\s\S]*claimTemplate/,
    );
    await settle();
    expect(recorder.resources).toHaveLength(0);
    // A cluster scaled up to three observed members re-adds each restarted one from the others.
    expect(etcdVersionChangeProblems(single, "3.6.16", 3)).toEqual([]);
    expect(etcdVersionChangeProblems({ ...single, etcd: { ...single.etcd, replicas: 3 } }, "3.6.16")).toEqual([]);
    // The same version (any other change): nothing to refuse here.
    expect(etcdVersionChangeProblems(single, "3.6.17")).toEqual([]);
    expect(etcdVersionChangeProblems(minimalSpec({ etcd: { version: "3.6.17", storage: { claimTemplate: { size: "1Gi" } } } }), "3.6.16")).toEqual([]);
    expect(etcdVersionChangeProblems(minimalSpec({ etcd: { version: "3.6.17", storage: { volumeSource: { hostPath: { path: "/var/lib/kok/dev" } } } } }), "3.6.16")).toEqual([]);
    // Both reasons at once: a downgrade of the only emptyDir member.
    expect(etcdVersionChangeProblems(minimalSpec({ etcd: { version: "3.5.21", storage: { volumeSource: { emptyDir: {} } } } }), "3.6.16")).toHaveLength(2);
  });

  it("accepts a one-minor upgrade", async () => {
    await deploy("prod-a", { spec: standardSpec(), running: { kubernetesVersion: "v1.35.4", etcdVersion: "3.6.16" } });
    expect(count(K.deploy)).toBe(3);
  });
});
