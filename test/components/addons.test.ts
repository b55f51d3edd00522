import * as k8s from "@pulumi/kubernetes";
import { parse } from "yaml";
import { beforeEach, describe, expect, it } from "vitest";
import { installMocks, isSecretInput, managedBy, plain, settle, valueOf, type RecordedResource } from "../support/pulumi-mocks";
import { minimalSpec, standardSpec } from "../support/specs";

import { SpecValidationError, resolveClusterSpec, type ClusterSpec } from "../../src/api/v1alpha1";
import { ClusterAddons } from "../../src/components/addons/cluster-addons";
import { TRUST_BUNDLE_ANNOTATION } from "../../src/components/addons/common";
import { createHash } from "node:crypto";
import { clusterProgram } from "../../src/program/cluster-program";

// Installed before any resource is constructed (importing the components registers nothing).
const recorder = installMocks();

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const inputs = (r: RecordedResource) => plain<Obj>(r.inputs);
const addonObjects = () => recorder.resources.filter((r) => r.custom && r.type.startsWith("kubernetes:") && managedBy(r, "business-cluster"));
const byKind = (type: string, name: string): Obj => {
  const found = addonObjects().filter((r) => r.type === `kubernetes:${type}` && inputs(r).metadata.name === name);
  expect(found, `${type} ${name}`).toHaveLength(1);
  return inputs(found[0]);
};
const container = (workload: Obj, name: string): Obj => workload.spec.template.spec.containers.find((c: Obj) => c.name === name);

/** A spec with an external endpoint (add-ons are deployed only then), as workers reach it. */
const reachable = (spec: ClusterSpec): ClusterSpec =>
  spec.apiServer?.service?.externalHost ? spec : { ...spec, apiServer: { ...spec.apiServer, service: { type: "NodePort", externalHost: "192.0.2.10", nodePort: 30443 } } };

async function program(spec: ClusterSpec) {
  const out = clusterProgram({ name: "dev", spec: reachable(spec), namespace: "kok-dev" });
  await valueOf(out.endpoint);
  await settle();
  return out;
}

/** The cluster trust bundle the program's ControlPlane made, as the add-ons should embed it. */
const trustBundleOf = async (out: Awaited<ReturnType<typeof program>>) => (await valueOf(out.certificateAuthorities)).clusterBundle;
const bundleAnnotation = (bundle: string) => `sha256:${createHash("sha256").update(bundle).digest("hex")}`;
const caDataOf = (kubeconfigText: string) => Buffer.from(parse(kubeconfigText).clusters[0].cluster["certificate-authority-data"], "base64").toString("utf8");

beforeEach(() => recorder.reset());

describe("PULUMI_K8S_DELETE_UNREACHABLE (meant for a destroy's engine, which runs no program)", () => {
  it("stops the program before anything registers, rather than recording it in the business provider's inputs", () => {
    process.env.PULUMI_K8S_DELETE_UNREACHABLE = "true";
    try {
      expect(() => clusterProgram({ name: "dev", spec: reachable(standardSpec()) })).toThrow(/PULUMI_K8S_DELETE_UNREACHABLE is set: it is meant for `pulumi destroy` only/);
    } finally {
      delete process.env.PULUMI_K8S_DELETE_UNREACHABLE;
    }
    expect(recorder.resources).toEqual([]);
  });
});

describe("the add-ons in the cluster program", () => {
  it("renders the pod network, kube-proxy and CoreDNS under stable names", async () => {
    await program(standardSpec());
    const components = recorder.resources.filter((r) => r.type.startsWith("kube-on-kube:index:") && r.name.startsWith("dev-addons"));
    expect(components.map((r) => [r.type, r.name, r.parent ?? ""])).toEqual([
      ["kube-on-kube:index:ClusterAddons", "dev-addons", ""],
      ["kube-on-kube:index:FlannelNetwork", "dev-addons-flannel", "dev-addons"],
      ["kube-on-kube:index:KubeProxy", "dev-addons-kube-proxy", "dev-addons"],
      ["kube-on-kube:index:CoreDns", "dev-addons-coredns", "dev-addons"],
    ]);
    expect(
      addonObjects()
        .map((r) => `${r.type.split(":")[1]}:${r.type.split(":")[2]} ${r.name}`)
        .sort(),
    ).toEqual(
      [
        "apps/v1:DaemonSet dev-addons-flannel-daemonset",
        "apps/v1:DaemonSet dev-addons-kube-proxy-daemonset",
        "apps/v1:Deployment dev-addons-coredns-deployment",
        "core/v1:ConfigMap dev-addons-coredns-config",
        "core/v1:ConfigMap dev-addons-flannel-config",
        "core/v1:ConfigMap dev-addons-kube-proxy-config",
        "core/v1:Service dev-addons-coredns-service",
        "core/v1:ServiceAccount dev-addons-coredns-service-account",
        "core/v1:ServiceAccount dev-addons-flannel-service-account",
        "core/v1:ServiceAccount dev-addons-kube-proxy-service-account",
        "policy/v1:PodDisruptionBudget dev-addons-coredns-pdb",
        "rbac.authorization.k8s.io/v1:ClusterRole dev-addons-coredns-cluster-role",
        "rbac.authorization.k8s.io/v1:ClusterRole dev-addons-flannel-cluster-role",
        "rbac.authorization.k8s.io/v1:ClusterRoleBinding dev-addons-coredns-cluster-role-binding",
        "rbac.authorization.k8s.io/v1:ClusterRoleBinding dev-addons-flannel-cluster-role-binding",
        "rbac.authorization.k8s.io/v1:ClusterRoleBinding dev-addons-kube-proxy-cluster-role-binding",
      ].sort(),
    );
    for (const r of addonObjects()) {
      const metadata = inputs(r).metadata;
      if (!r.type.includes(":ClusterRole")) expect(metadata.namespace, r.name).toBe("kube-system");
      expect(metadata.labels["app.kubernetes.io/part-of"], r.name).toBe("kube-on-kube");
      expect(metadata.annotations["pulumi.com/patchForce"], r.name).toBe("true");
    }
    expect(byKind("apps/v1:DaemonSet", "flannel").spec.selector.matchLabels).toEqual({ "k8s-app": "flannel" });
    expect(byKind("apps/v1:DaemonSet", "kube-proxy").spec.selector.matchLabels).toEqual({ "k8s-app": "kube-proxy" });
    expect(byKind("apps/v1:Deployment", "coredns").spec.selector.matchLabels).toEqual({ "k8s-app": "kube-dns" });
  });

  it("goes through the business cluster's provider: a secret admin kubeconfig, a stable identity, configured after the masters", async () => {
    await program(standardSpec());
    // No add-on object reaches the meta-cluster; no master object the business cluster.
    expect(addonObjects().length).toBe(16);
    const meta = recorder.resources.filter((r) => r.custom && r.type.startsWith("kubernetes:") && managedBy(r, "meta-cluster"));
    expect(meta.some((r) => r.name.startsWith("dev-addons"))).toBe(false);
    const provider = recorder.named("business-cluster");
    expect(provider.type).toBe("pulumi:providers:kubernetes");
    expect(isSecretInput(provider.inputs.kubeconfig)).toBe(true);
    const kubeconfig = parse(plain<string>(provider.inputs.kubeconfig));
    // The endpoint kubeconfig (externalHost), as kubernetes-admin.
    expect(kubeconfig.clusters[0].cluster.server).toBe("https://prod-a.k8s.example.com:6443");
    expect(kubeconfig.users[0].name).toBe("kubernetes-admin");
    expect(provider.inputs.clusterIdentifier).toBe("business-cluster");
    expect(provider.inputs.skipUpdateUnreachable).toBe("true");
    // No input: it follows PULUMI_K8S_DELETE_UNREACHABLE, which only a destroy sets; the
    // meta-cluster's provider pins it off, so that variable never drops a master's object.
    expect(provider.inputs).not.toHaveProperty("deleteUnreachable");
    expect(recorder.named("meta-cluster").inputs.deleteUnreachable).toBe("false");
    // pulumi-kubernetes contacts the apiserver once, when configured: after every master is done.
    for (const dependency of ["dev-apiserver-rollout", "dev-etcd-rollout", "dev-controller-manager-deployment", "dev-scheduler-deployment"]) {
      expect(provider.dependsOn, dependency).toContain(dependency);
      expect(recorder.named("dev-addons").dependsOn, dependency).toContain(dependency);
    }
  });

  it("puts CoreDNS's Service at the tenth address of serviceCIDR, with its replicas, spread, PDB and the cluster domain", async () => {
    await program(minimalSpec({ network: { serviceCIDR: "10.100.0.0/16", podCIDR: "10.244.0.0/16", clusterDomain: "corp.internal" }, addons: { coreDNS: { replicas: 3 } } }));
    const service = byKind("core/v1:Service", "kube-dns");
    expect(service.spec.clusterIP).toBe("10.100.0.10");
    expect(service.spec.ports.map((p: Obj) => `${p.port}/${p.protocol}`)).toEqual(["53/UDP", "53/TCP", "9153/TCP"]);
    const deployment = byKind("apps/v1:Deployment", "coredns");
    expect(deployment.spec.replicas).toBe(3);
    const term = deployment.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
    expect(term).toEqual({ labelSelector: { matchLabels: { "k8s-app": "kube-dns" } }, topologyKey: "kubernetes.io/hostname" });
    const coredns = container(deployment, "coredns");
    expect(coredns.image).toBe("registry.k8s.io/coredns/coredns:v1.15.0");
    expect(coredns.securityContext).toMatchObject({ runAsUser: 65532, runAsNonRoot: true, readOnlyRootFilesystem: true, capabilities: { add: ["NET_BIND_SERVICE"], drop: ["ALL"] } });
    expect(coredns.livenessProbe.httpGet).toEqual({ path: "/health", port: 8080 });
    expect(coredns.readinessProbe.httpGet).toEqual({ path: "/ready", port: 8181 });
    expect(byKind("policy/v1:PodDisruptionBudget", "coredns").spec.maxUnavailable).toBe(1);
    const corefile: string = byKind("core/v1:ConfigMap", "coredns").data.Corefile;
    expect(corefile).toContain("kubernetes corp.internal in-addr.arpa ip6.arpa {");
    for (const plugin of ["forward . /etc/resolv.conf", "cache 30", "loop", "reload", "health", "ready"]) expect(corefile).toContain(plugin);
    const role = byKind("rbac.authorization.k8s.io/v1:ClusterRole", "system:coredns");
    expect(role.rules.flatMap((r: Obj) => r.resources).sort()).toEqual(["endpoints", "endpointslices", "namespaces", "pods", "services"]);
  });

  it("runs kube-proxy of the masters' version from imageRepository, in the asked mode, against the endpoint", async () => {
    const out = await program(standardSpec({ addons: { kubeProxy: { mode: "nftables" } } }));
    const bundle = await trustBundleOf(out);
    expect(bundle).toContain("BEGIN CERTIFICATE");
    const ds = byKind("apps/v1:DaemonSet", "kube-proxy");
    const proxy = container(ds, "kube-proxy");
    expect(proxy.image).toBe("registry.example.com/k8s/kube-proxy:v1.36.3");
    expect(ds.spec.template.spec).toMatchObject({ hostNetwork: true, priorityClassName: "system-node-critical", tolerations: [{ operator: "Exists" }] });
    expect(proxy.securityContext.privileged).toBe(true);
    const data = byKind("core/v1:ConfigMap", "kube-proxy").data;
    const config = parse(data["config.conf"]);
    expect(config).toMatchObject({ kind: "KubeProxyConfiguration", mode: "nftables", clusterCIDR: "10.244.0.0/16", conntrack: { maxPerCore: 0 } });
    const kubeconfig = parse(data["kubeconfig.conf"]);
    // The trust bundle embedded, not the ServiceAccount's ca.crt (which trails a CA rotation).
    expect(kubeconfig.clusters[0].cluster.server).toBe("https://prod-a.k8s.example.com:6443");
    expect(kubeconfig.clusters[0].cluster["certificate-authority"]).toBeUndefined();
    expect(caDataOf(data["kubeconfig.conf"])).toBe(bundle);
    expect(kubeconfig.users[0].user).toEqual({ tokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token" });
    expect(ds.spec.template.metadata.annotations).toEqual({ [TRUST_BUNDLE_ANNOTATION]: bundleAnnotation(bundle) });
    expect(byKind("rbac.authorization.k8s.io/v1:ClusterRoleBinding", "kube-on-kube:node-proxier").roleRef.name).toBe("system:node-proxier");
  });

  it("defaults kube-proxy to iptables and a version override to its own tag", async () => {
    await program(minimalSpec({ addons: { kubeProxy: { version: "v1.35.4" } } }));
    const ds = byKind("apps/v1:DaemonSet", "kube-proxy");
    expect(container(ds, "kube-proxy").image).toBe("registry.k8s.io/kube-proxy:v1.35.4");
    expect(parse(byKind("core/v1:ConfigMap", "kube-proxy").data["config.conf"]).mode).toBe("iptables");
  });

  it("configures flannel with the Pod range and backend, and its install-cni container with the script", async () => {
    const out = await program(standardSpec({ network: { serviceCIDR: "10.96.0.0/12", podCIDR: "10.200.0.0/16", clusterDomain: "cluster.local" }, addons: { network: { backend: "vxlan" } } }));
    const data = byKind("core/v1:ConfigMap", "kube-flannel-cfg").data;
    expect(JSON.parse(data["net-conf.json"])).toEqual({ Network: "10.200.0.0/16", Backend: { Type: "vxlan" } });
    // flanneld's kubeconfig: the endpoint (not the kubernetes Service kube-proxy routes), the trust bundle embedded.
    expect(parse(data.kubeconfig).clusters[0].cluster.server).toBe("https://prod-a.k8s.example.com:6443");
    expect(caDataOf(data.kubeconfig)).toBe(await trustBundleOf(out));
    const ds = byKind("apps/v1:DaemonSet", "flannel");
    const pod = ds.spec.template.spec;
    expect(pod).toMatchObject({ hostNetwork: true, priorityClassName: "system-node-critical", tolerations: [{ operator: "Exists" }] });
    const flanneld = container(ds, "kube-flannel");
    expect(flanneld.image).toBe("docker.io/flannel/flannel:v0.28.10");
    expect(flanneld.args).toEqual(["--ip-masq", "--kube-subnet-mgr", "--kubeconfig-file=/etc/kube-flannel/kubeconfig"]);
    expect(ds.spec.template.metadata.annotations).toEqual({ [TRUST_BUNDLE_ANNOTATION]: bundleAnnotation(await trustBundleOf(out)) });
    expect(flanneld.securityContext.capabilities.add).toEqual(["NET_ADMIN", "NET_RAW"]);
    const env = Object.fromEntries(flanneld.env.map((e: Obj) => [e.name, e.value ?? e.valueFrom.fieldRef.fieldPath]));
    expect(env).toEqual({ POD_NAME: "metadata.name", POD_NAMESPACE: "metadata.namespace", NODE_NAME: "spec.nodeName" });
    const installCni = container(ds, "install-cni");
    expect(installCni.image).toBe(flanneld.image);
    expect(installCni.command.slice(0, 2)).toEqual(["/bin/sh", "-c"]);
    expect(installCni.command[2]).toContain("10-flannel.conflist");
    const hostPaths = Object.fromEntries(pod.volumes.filter((v: Obj) => v.hostPath).map((v: Obj) => [v.name, v.hostPath.path]));
    expect(hostPaths).toEqual({ "run-flannel": "/run/flannel", "cni-conf": "/etc/cni/net.d", "xtables-lock": "/run/xtables.lock" });
    const role = byKind("rbac.authorization.k8s.io/v1:ClusterRole", "flannel");
    expect(role.rules).toContainEqual({ apiGroups: [""], resources: ["nodes/status"], verbs: ["patch"] });
    expect(role.rules).toContainEqual({ apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] });
  });

  it("does not wait for Pods: every workload and the DNS Service skip pulumi-kubernetes' await", async () => {
    await program(standardSpec());
    const awaited = addonObjects().filter((r) => /:(DaemonSet|Deployment|Service)$/.test(r.type));
    expect(awaited).toHaveLength(4);
    for (const r of awaited) expect(inputs(r).metadata.annotations["pulumi.com/skipAwait"], r.name).toBe("true");
  });

  it("renders nothing of a disabled add-on, and nothing at all with all three disabled", async () => {
    await program(minimalSpec({ addons: { coreDNS: { enabled: false } } }));
    expect(addonObjects().filter((r) => r.name.startsWith("dev-addons-coredns"))).toEqual([]);
    expect(addonObjects().filter((r) => r.type === "kubernetes:apps/v1:DaemonSet")).toHaveLength(2);
    recorder.reset();
    await program(minimalSpec({ addons: { network: { enabled: false }, kubeProxy: { enabled: false }, coreDNS: { enabled: false } } }));
    expect(addonObjects()).toEqual([]);
    // The provider stays: what an earlier `up` deployed is deleted through it.
    expect(recorder.named("business-cluster").custom).toBe(true);
    expect(recorder.resources.filter((r) => r.type.startsWith("kube-on-kube:index:") && r.name.startsWith("dev-addons-"))).toEqual([]);
  });
});

describe("a cluster without an external endpoint", () => {
  it("gets no add-ons and no business-cluster provider: neither nodes nor an engine outside the meta-cluster could reach it", async () => {
    const out = clusterProgram({ name: "dev", spec: minimalSpec(), namespace: "kok-dev" });
    await valueOf(out.endpoint);
    await settle();
    expect(recorder.resources.filter((r) => r.name === "business-cluster" || r.name.startsWith("dev-addons"))).toEqual([]);
    expect(recorder.ofType("kubernetes:apps/v1:Deployment")).toHaveLength(3);
  });
});

describe("a spec the add-ons cannot serve", () => {
  it("is refused by the program before anything registers", async () => {
    const spec = minimalSpec({ network: { serviceCIDR: "fd00:96::/108", podCIDR: "fd00:244::/56", clusterDomain: "cluster.local" } });
    expect(() => clusterProgram({ name: "dev", spec: reachable(spec) })).toThrow(/spec\.addons\.network\.enabled: the flannel add-on needs an IPv4 network\.podCIDR/);
    await settle();
    expect(recorder.resources).toEqual([]);
  });
});

describe("ClusterAddons on its own", () => {
  const resolved = (spec: ClusterSpec) => {
    const r = resolveClusterSpec(spec);
    return { addons: r.addons, network: r.network, apiServerEndpoint: "https://[fd00::1]:30443" };
  };
  const provider = () => new k8s.Provider("business", { kubeconfig: "apiVersion: v1\nkind: Config\n" });

  it("refuses to run without a provider for the business cluster (the ambient one is the meta-cluster)", () => {
    expect(() => new ClusterAddons("a", resolved(minimalSpec()))).toThrow(/opts\.providers/);
  });

  it("refuses flannel on an IPv6 Pod range, naming the field, and accepts it with flannel disabled", async () => {
    const spec = minimalSpec({ network: { serviceCIDR: "fd00:96::/108", podCIDR: "fd00:244::/56", clusterDomain: "cluster.local" } });
    expect(() => new ClusterAddons("b", resolved(spec), { providers: [provider()] })).toThrow(SpecValidationError);
    expect(() => new ClusterAddons("b", resolved(spec), { providers: [provider()] })).toThrow(/spec\.addons\.network\.enabled/);
    const addons = new ClusterAddons("c", resolved(minimalSpec({ ...spec, addons: { network: { enabled: false } } })), { providers: [provider()] });
    expect(addons.clusterDnsAddress).toBe("fd00:96::a");
    await settle();
    // An IPv6 endpoint reaches kube-proxy's kubeconfig with its brackets.
    const config = recorder.resources.filter((r) => r.name === "c-kube-proxy-config").map(inputs)[0];
    expect(parse(config.data["kubeconfig.conf"]).clusters[0].cluster.server).toBe("https://[fd00::1]:30443");
  });

  it("without a trust bundle reads the ServiceAccount's ca.crt; a new bundle changes every add-on's kubeconfig and Pod template", async () => {
    const render = async (name: string, trustBundle: string | undefined) => {
      new ClusterAddons(name, { ...resolved(minimalSpec()), apiServerEndpoint: "https://10.0.0.2:30443", ...(trustBundle ? { trustBundle } : {}) }, { providers: [provider()] });
      await settle();
      const of = (suffix: string) => recorder.resources.filter((r) => r.name === `${name}-${suffix}`).map(inputs)[0];
      return {
        proxy: of("kube-proxy-config").data["kubeconfig.conf"] as string,
        flannel: of("flannel-config").data.kubeconfig as string,
        coreDnsConfig: of("coredns-config").data as Record<string, string>,
        templates: [of("kube-proxy-daemonset"), of("flannel-daemonset"), of("coredns-deployment")].map((w) => w.spec.template.metadata.annotations ?? {}),
        coreDnsItems: of("coredns-deployment").spec.template.spec.volumes[0].configMap.items.map((i: Obj) => i.key),
      };
    };
    const none = await render("n", undefined);
    for (const kubeconfig of [none.proxy, none.flannel]) {
      expect(parse(kubeconfig).clusters[0].cluster).toEqual({ server: "https://10.0.0.2:30443", "certificate-authority": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt" });
    }
    expect(none.coreDnsConfig.kubeconfig).toBeUndefined();
    expect(none.coreDnsConfig.Corefile).not.toContain("kubeconfig");
    expect(none.templates).toEqual([{}, {}, {}]);
    const first = await render("a", "-----BEGIN CERTIFICATE-----\nold\n-----END CERTIFICATE-----\n");
    const second = await render("b", "-----BEGIN CERTIFICATE-----\nold\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nnew\n-----END CERTIFICATE-----\n");
    expect(caDataOf(second.proxy)).toContain("new");
    expect(caDataOf(second.flannel)).toContain("new");
    // CoreDNS goes through the kubernetes Service (the first address of serviceCIDR), as in-cluster clients do.
    expect(parse(second.coreDnsConfig.kubeconfig).clusters[0].cluster.server).toBe("https://10.96.0.1:443");
    expect(caDataOf(second.coreDnsConfig.kubeconfig)).toContain("new");
    expect(second.coreDnsConfig.Corefile).toContain("kubeconfig /etc/coredns/kubeconfig");
    expect(second.coreDnsItems).toEqual(["Corefile", "kubeconfig"]);
    for (let i = 0; i < 3; i++) {
      expect(first.templates[i][TRUST_BUNDLE_ANNOTATION]).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(second.templates[i][TRUST_BUNDLE_ANNOTATION]).not.toBe(first.templates[i][TRUST_BUNDLE_ANNOTATION]);
    }
  });
});
