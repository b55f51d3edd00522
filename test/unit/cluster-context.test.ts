import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { resolveClusterSpec } from "../../src/api/v1alpha1";
import {
  apiServerSANs,
  etcdInitialCluster,
  etcdSANs,
  externalApiServerUrl,
  internalApiServerUrl,
  renderFlags,
  type ClusterContext,
} from "../../src/components/cluster-context";
import { renderKubeconfig } from "../../src/components/kubeconfig";
import { minimalSpec, standardSpec } from "../support/specs";

const context = (spec = standardSpec()): ClusterContext => ({
  name: "prod-a",
  namespace: "kok-prod-a",
  spec: resolveClusterSpec(spec),
  metaClusterDomain: "meta.local",
});

describe("derived names", () => {
  it("lists every etcd member in the initial cluster, through the headless Service", () => {
    expect(etcdInitialCluster(context()).split(",")).toEqual([
      "prod-a-etcd-0=https://prod-a-etcd-0.prod-a-etcd.kok-prod-a.svc:2380",
      "prod-a-etcd-1=https://prod-a-etcd-1.prod-a-etcd.kok-prod-a.svc:2380",
      "prod-a-etcd-2=https://prod-a-etcd-2.prod-a-etcd.kok-prod-a.svc:2380",
    ]);
  });

  it("uses the external host for the endpoint, the Service name inside the meta-cluster", () => {
    expect(externalApiServerUrl(context())).toBe("https://prod-a.k8s.example.com:6443");
    expect(internalApiServerUrl(context())).toBe("https://prod-a-apiserver.kok-prod-a.svc:6443");
    expect(externalApiServerUrl(context(minimalSpec()))).toBe("https://prod-a-apiserver.kok-prod-a.svc:6443");
    const v6 = standardSpec({ apiServer: { service: { externalHost: "2001:db8::10", port: 443 } } });
    expect(externalApiServerUrl(context(v6))).toBe("https://[2001:db8::10]:443");
  });

  it("reaches a NodePort apiserver Service on its nodePort", () => {
    const nodePort = minimalSpec({ apiServer: { service: { type: "NodePort", externalHost: "127.0.0.1", nodePort: 31643 } } });
    expect(externalApiServerUrl(context(nodePort))).toBe("https://127.0.0.1:31643");
    expect(internalApiServerUrl(context(nodePort))).toBe("https://prod-a-apiserver.kok-prod-a.svc:6443");
  });
});

describe("certificate SANs", () => {
  it("covers the business cluster's names, the meta-cluster names, the external host and extra SANs", () => {
    const sans = apiServerSANs(context());
    expect(sans.dnsNames).toEqual(
      expect.arrayContaining([
        "kubernetes",
        "kubernetes.default.svc.cluster.local",
        "prod-a-apiserver.kok-prod-a.svc",
        "prod-a-apiserver.kok-prod-a.svc.meta.local",
        "prod-a-apiserver-headless.kok-prod-a.svc",
        "prod-a.k8s.example.com",
        "localhost",
      ]),
    );
    expect([...sans.ipAddresses].sort()).toEqual(["10.96.0.1", "127.0.0.1", "203.0.113.10"]);
  });

  it("follows the service CIDR and the business cluster's domain", () => {
    const sans = apiServerSANs(context(standardSpec({ network: { serviceCIDR: "172.20.0.0/16", clusterDomain: "corp.internal" } })));
    expect(sans.ipAddresses).toContain("172.20.0.1");
    expect(sans.dnsNames).toContain("kubernetes.default.svc.corp.internal");
  });

  it("names every etcd member and the client Service", () => {
    const sans = etcdSANs(context());
    expect(sans.dnsNames).toEqual(
      expect.arrayContaining([
        "prod-a-etcd-2.prod-a-etcd.kok-prod-a.svc",
        "prod-a-etcd-2.prod-a-etcd.kok-prod-a.svc.meta.local",
        "prod-a-etcd-client.kok-prod-a.svc",
      ]),
    );
    expect(sans.ipAddresses).toEqual(["127.0.0.1"]);
  });
});

describe("renderFlags", () => {
  it("lets extraArgs override generated flags and sorts the result", () => {
    expect(renderFlags({ b: "1", a: "2" }, { b: "3", c: "4" })).toEqual(["--a=2", "--b=3", "--c=4"]);
  });
});

describe("renderKubeconfig", () => {
  it("yields a kubeconfig whose context points at the server with inline credentials", () => {
    const doc = parse(
      renderKubeconfig({ clusterName: "prod-a", server: "https://x:6443", caCertPem: "CA", userName: "admin", clientCertPem: "CERT", clientKeyPem: "KEY" }),
    );
    const context = doc.contexts.find((c: { name: string }) => c.name === doc["current-context"]).context;
    const cluster = doc.clusters.find((c: { name: string }) => c.name === context.cluster).cluster;
    const user = doc.users.find((u: { name: string }) => u.name === context.user).user;
    expect(cluster.server).toBe("https://x:6443");
    expect(Buffer.from(cluster["certificate-authority-data"], "base64").toString()).toBe("CA");
    expect(Buffer.from(user["client-key-data"], "base64").toString()).toBe("KEY");
  });
});
