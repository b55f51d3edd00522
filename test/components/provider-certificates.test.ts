/**
 * The component provider's certificate inputs and outputs (src/provider/provider.ts,
 * src/provider/worker-node.ts), under Pulumi mocks: a ControlPlane's and a ClusterPki's
 * `caRotation` reaches the PKI (the CA generations it holds, the bundles it reports), a WorkerNode's
 * `cluster.trustBundle` and `renewal` reach its steps and keys and its `certificates` come back,
 * and a bad value of any of them is refused naming its path before anything is registered.
 */
import * as pulumi from "@pulumi/pulumi";
import { beforeEach, describe, expect, it } from "vitest";
import { installMocks, settle, valueOf } from "../support/pulumi-mocks";
import { minimalSpec } from "../support/specs";
import { machine, packages } from "../support/worker-fixtures";
import { KubeOnKubeProvider } from "../../src/provider/provider";

const recorder = installMocks();
beforeEach(() => recorder.reset());

const CA = "tls:index/selfSignedCert:SelfSignedCert";
const PHASE_1 = { generation: 1, trusting: true, previousServiceAccountKey: false };
const PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nTEST-ONLY-ssh-key-material\n-----END OPENSSH PRIVATE KEY-----\n";
const CA_PEM = "-----BEGIN CERTIFICATE-----\nOLD-CA\n-----END CERTIFICATE-----\n";
const BUNDLE = `${CA_PEM}-----BEGIN CERTIFICATE-----\nNEW-CA\n-----END CERTIFICATE-----\n`;
const cluster = { endpoint: "https://prod-a.k8s.example.com:6443", caCertificate: CA_PEM, caPrivateKey: "-----BEGIN EC PRIVATE KEY-----\nTEST-ONLY-ca-key\n-----END EC PRIVATE KEY-----\n" };

const provider = () => new KubeOnKubeProvider("0.1.0");
/** The mock names in a PEM text: which resources' certificates it holds. */
const mockNames = (pem: string) => [...pem.matchAll(/mock-([\w-]+)/g)].map((m) => m[1]).sort();
const caNames = () => recorder.ofType(CA).map((r) => r.name).sort();
/** The paths an InputPropertiesError names, as the engine prints them. */
const refusedPaths = async (construct: Promise<unknown>): Promise<string[]> => {
  const error = await construct.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(pulumi.InputPropertiesError.isInstance(error), String(error)).toBe(true);
  return (error as pulumi.InputPropertiesError).errors.map((e) => e.propertyPath);
};

describe("the component provider's ControlPlane and ClusterPki with caRotation", () => {
  it("builds a ControlPlane at phase 1 of a rotation and reports both cluster CAs in certificateAuthorities.clusterBundle", async () => {
    const result = await provider().construct("p", "kube-on-kube:index:ControlPlane", { spec: minimalSpec(), caRotation: PHASE_1 }, {});
    await settle();
    expect(caNames()).toEqual(["p-pki-ca", "p-pki-ca-g1", "p-pki-etcd-ca", "p-pki-front-proxy-ca", "p-pki-front-proxy-ca-g1"]);
    const authorities = await valueOf(result.state.certificateAuthorities as pulumi.Output<Record<string, string>>);
    expect(mockNames(authorities.clusterBundle)).toEqual(["p-pki-ca", "p-pki-ca-g1"]);
    expect(mockNames(authorities.cluster)).toEqual(["p-pki-ca-g1"]);
    expect(Object.keys(authorities).sort()).toEqual(["cluster", "clusterBundle", "etcd", "frontProxy", "serviceAccount"]);
  });

  it("without caRotation holds generation 0 alone, as before", async () => {
    const result = await provider().construct("p", "kube-on-kube:index:ControlPlane", { spec: minimalSpec() }, {});
    await settle();
    expect(caNames()).toEqual(["p-pki-ca", "p-pki-etcd-ca", "p-pki-front-proxy-ca"]);
    expect(mockNames((await valueOf(result.state.certificateAuthorities as pulumi.Output<Record<string, string>>)).clusterBundle)).toEqual(["p-pki-ca"]);
  });

  it("refuses a bad caRotation naming each field, before registering anything", async () => {
    const paths = await refusedPaths(provider().construct("p", "kube-on-kube:index:ControlPlane", { spec: minimalSpec(), caRotation: { generation: 1.5, trusting: "yes" } }, {}));
    expect(paths).toEqual(expect.arrayContaining(["caRotation.generation", "caRotation.trusting", "caRotation.previousServiceAccountKey"]));
    expect(await refusedPaths(provider().construct("p", "kube-on-kube:index:ControlPlane", { spec: minimalSpec(), caRotation: { ...PHASE_1, generation: 0 } }, {}))).toEqual(["caRotation.generation"]);
    expect(recorder.resources).toEqual([]);
  });

  it("builds a ClusterPki at a rotation step and reports its trust bundle; refuses a bad step with the spec's problems", async () => {
    const result = await provider().construct("k", "kube-on-kube:index:ClusterPki", { spec: minimalSpec(), caRotation: PHASE_1 }, {});
    await settle();
    expect(caNames()).toEqual(["k-ca", "k-ca-g1", "k-etcd-ca", "k-front-proxy-ca", "k-front-proxy-ca-g1"]);
    expect(mockNames(await valueOf(result.state.clusterTrustBundle as pulumi.Output<string>))).toEqual(["k-ca", "k-ca-g1"]);
    expect(mockNames(await valueOf(result.state.clusterCaCertificate as pulumi.Output<string>))).toEqual(["k-ca-g1"]);

    recorder.reset();
    const paths = await refusedPaths(
      provider().construct("k", "kube-on-kube:index:ClusterPki", { spec: { ...minimalSpec(), mode: "tiny" }, caRotation: { generation: 1, trusting: true, previousServiceAccountKey: true } }, {}),
    );
    expect(paths).toEqual(["spec.mode", "caRotation.previousServiceAccountKey"]);
    expect(recorder.resources).toEqual([]);
  });
});

describe("the component provider's WorkerNode certificate inputs", () => {
  const worker = (extra: Record<string, unknown>, clusterExtra: Record<string, unknown> = {}) => ({
    machine: machine(),
    packages: packages(),
    credentials: { privateKey: PRIVATE_KEY },
    cluster: { ...cluster, ...clusterExtra },
    ...extra,
  });

  it("installs cluster.trustBundle, gives renewal to both kubelet keys, and returns the certificates", async () => {
    const triggers = new Map<string, unknown>();
    const capture: pulumi.ResourceTransformation = (a) => {
      triggers.set(a.name, a.opts.replacementTrigger);
      return undefined;
    };
    const result = await provider().construct("tb", "kube-on-kube:index:WorkerNode", worker({ renewal: 3 }, { trustBundle: BUNDLE }), { transformations: [capture] });
    await settle();
    expect(String(recorder.named("tb-join").inputs.create)).toContain(`${BUNDLE}KUBE_ON_KUBE_EOF`);
    expect(triggers.get("tb-kubelet-key")).toEqual({ renewal: 3 });
    expect(triggers.get("tb-kubelet-serving-key")).toEqual({ renewal: 3 });
    const certificates = await valueOf(result.state.certificates as pulumi.Output<Record<string, unknown>>);
    expect(certificates).toEqual({
      kubeletClient: { certPem: "-----BEGIN CERTIFICATE-----\nmock-tb-kubelet-cert\n-----END CERTIFICATE-----\n", caCertPem: CA_PEM },
      kubeletServing: { certPem: "-----BEGIN CERTIFICATE-----\nmock-tb-kubelet-serving-cert\n-----END CERTIFICATE-----\n", caCertPem: CA_PEM },
      trustBundle: BUNDLE,
    });
    expect(JSON.stringify(certificates)).not.toContain("PRIVATE KEY");
  });

  it("takes the trust bundle as another resource's output (a ControlPlane's clusterBundle)", async () => {
    await provider().construct("out", "kube-on-kube:index:WorkerNode", worker({}, { trustBundle: pulumi.output(BUNDLE) }), {});
    await settle();
    expect(String(recorder.named("out-join").inputs.create)).toContain(`${BUNDLE}KUBE_ON_KUBE_EOF`);
  });

  it("refuses a trust bundle without a certificate and a bad renewal token, naming both, before registering anything", async () => {
    const paths = await refusedPaths(provider().construct("bad", "kube-on-kube:index:WorkerNode", worker({ renewal: -1 }, { trustBundle: "not a certificate" }), {}));
    expect(paths).toEqual(["cluster.trustBundle", "renewal"]);
    expect(await refusedPaths(provider().construct("bad", "kube-on-kube:index:WorkerNode", worker({ renewal: "2" }, { trustBundle: 7 }), {}))).toEqual(["cluster.trustBundle", "renewal"]);
    expect(recorder.resources).toEqual([]);
  });

  it("gives a NodePool's cluster.trustBundle to every node", async () => {
    await provider().construct(
      "pool",
      "kube-on-kube:index:NodePool",
      {
        machines: [
          { name: "a", spec: machine({ hostname: "worker-a", ip: "192.0.2.21" }) },
          { name: "b", spec: machine({ hostname: "worker-b", ip: "192.0.2.22" }) },
        ],
        packageVersion: { clusterRef: { name: "prod-a" }, packages: packages() },
        credentials: { privateKey: PRIVATE_KEY },
        cluster: { ...cluster, trustBundle: BUNDLE },
      },
      {},
    );
    await settle();
    for (const node of ["pool-a", "pool-b"]) expect(String(recorder.named(`${node}-join`).inputs.create), node).toContain(`${BUNDLE}KUBE_ON_KUBE_EOF`);
  });
});
