/**
 * What a ControlPlane deploys at each step of a CA rotation (src/components/ca-rotation.ts): which
 * CA issues each certificate, what each trust bundle lists, which service-account key signs and
 * which verify, and that a step adds or removes whole generations under stable names. The mocks'
 * PEMs name the resource that made them, so a bundle's content tells which CAs it holds.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { SpecValidationError } from "../../src/api/v1alpha1";
import type { CaRotationInput } from "../../src/components/ca-rotation";
import { deployControlPlane as deploy } from "../support/control-plane-deploy";
import { installMocks, plain, valueOf, type RecordedResource } from "../support/pulumi-mocks";
import { minimalSpec } from "../support/specs";

const recorder = installMocks();
beforeEach(() => recorder.reset());

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const SECRET = "kubernetes:core/v1:Secret";
const CA = "tls:index/selfSignedCert:SelfSignedCert";
const KEY = "tls:index/privateKey:PrivateKey";

/** The mock names in a PEM text: which resources' certificates or keys it holds. */
const mockNames = (pem: string) => [...pem.matchAll(/mock-([\w-]+)/g)].map((m) => m[1]).sort();
const secretData = (name: string): Obj => {
  const found = recorder.ofType(SECRET).filter((r) => plain<Obj>(r.inputs.metadata).name === name);
  expect(found, name).toHaveLength(1);
  return plain<Obj>(found[0].inputs.stringData ?? found[0].inputs.data);
};
const kubeconfigCa = (kubeconfig: string) => Buffer.from(/certificate-authority-data: (\S+)/.exec(kubeconfig)![1], "base64").toString("utf8");
/** The CA that issued a leaf (the mocks' PEM of its caCertPem input). */
const issuerOf = (leaf: string) => mockNames(plain<Obj>(recorder.named(`p-pki-${leaf}`).inputs).caCertPem as string);
const names = (type: string) => recorder.ofType(type).map((r: RecordedResource) => r.name).sort();

const spec = () => ({ ...minimalSpec(), kubeconfigs: [{ name: "viewer", user: "jane", groups: ["viewers"] }] });
const at = (caRotation?: CaRotationInput) => deploy("p", { spec: spec(), caRotation });

describe("CA rotation steps of a ControlPlane", () => {
  it("never rotated: one CA of each kind under the names every stack has, the bundle is that CA", async () => {
    await at();
    expect(names(CA)).toEqual(["p-pki-ca", "p-pki-etcd-ca", "p-pki-front-proxy-ca", "p-pki-users-ca-viewer"]);
    expect(names(KEY)).toContain("p-pki-service-account-key");
    const cm = secretData("p-controller-manager-certs");
    expect(mockNames(cm["ca-bundle.crt"])).toEqual(["p-pki-ca"]);
    expect(mockNames(cm["ca.crt"])).toEqual(["p-pki-ca"]);
    // The explicit step "generation 0, stable" is the same graph.
    const before = recorder.resources.map((r) => `${r.type}/${r.name}`).sort();
    recorder.reset();
    await at({ generation: 0, trusting: false, previousServiceAccountKey: false });
    expect(recorder.resources.map((r) => `${r.type}/${r.name}`).sort()).toEqual(before);
  });

  it("phase 1 trusts both CAs everywhere, issues what the apiserver checks from the new one and keeps the old one for what others check", async () => {
    const cp = await at({ generation: 1, trusting: true, previousServiceAccountKey: false });
    expect(names(CA)).toEqual(["p-pki-ca", "p-pki-ca-g1", "p-pki-etcd-ca", "p-pki-front-proxy-ca", "p-pki-front-proxy-ca-g1", "p-pki-users-ca-viewer"]);
    const both = ["p-pki-ca", "p-pki-ca-g1"];
    const apiserver = secretData("p-apiserver-certs");
    expect(mockNames(apiserver["ca.crt"])).toEqual(both);
    // Client certificates: both cluster CAs and the user entry's own CA, which no rotation touches.
    expect(mockNames(apiserver["client-ca.crt"])).toEqual([...both, "p-pki-users-ca-viewer"]);
    expect(issuerOf("user-viewer")).toEqual(["p-pki-users-ca-viewer"]);
    expect(mockNames(apiserver["front-proxy-ca.crt"])).toEqual(["p-pki-front-proxy-ca", "p-pki-front-proxy-ca-g1"]);
    // Clients of the apiserver: the new CA.
    for (const leaf of ["admin", "controller-manager", "scheduler"]) expect(issuerOf(leaf), leaf).toEqual(["p-pki-ca-g1"]);
    // Checked by every client's old kubeconfig, by kubelets and aggregated apiservers: the old CA.
    expect(issuerOf("apiserver")).toEqual(["p-pki-ca"]);
    expect(issuerOf("apiserver-kubelet-client")).toEqual(["p-pki-ca"]);
    expect(issuerOf("front-proxy-client")).toEqual(["p-pki-front-proxy-ca"]);
    // Every kubeconfig trusts both.
    expect(mockNames(kubeconfigCa(secretData("p-admin-kubeconfig").kubeconfig))).toEqual(both);
    expect(mockNames(kubeconfigCa(secretData("p-kubeconfig-viewer").kubeconfig))).toEqual(both);
    expect(mockNames(kubeconfigCa(secretData("p-controller-manager-certs").kubeconfig))).toEqual(both);
    expect(mockNames(kubeconfigCa(secretData("p-scheduler-kubeconfig").kubeconfig))).toEqual(both);
    // The CA Secret: the new CA signs kubelets' certificates, the bundle lists both.
    const cm = secretData("p-controller-manager-certs");
    expect(mockNames(cm["ca.crt"])).toEqual(["p-pki-ca-g1"]);
    expect(mockNames(cm["ca.key"])).toEqual(["p-pki-ca-g1-key"]);
    expect(mockNames(cm["ca-bundle.crt"])).toEqual(both);
    // Both service-account keys verify; the old one still signs.
    expect(mockNames(apiserver["sa.pub"])).toEqual(["p-pki-service-account-g1-key", "p-pki-service-account-key"]);
    expect(mockNames(apiserver["sa.key"])).toEqual(["p-pki-service-account-key"]);
    expect(mockNames(cm["sa.key"])).toEqual(["p-pki-service-account-key"]);
    const authorities = await valueOf(cp.certificateAuthorities);
    expect(mockNames(authorities.cluster)).toEqual(["p-pki-ca-g1"]);
    expect(mockNames(authorities.clusterBundle)).toEqual(both);
    expect(mockNames(authorities.serviceAccount)).toEqual(["p-pki-service-account-key"]);
  });

  it("writes the kubeconfigs only after the apiserver's rollout, which trusts their new CA", async () => {
    await at({ generation: 1, trusting: true, previousServiceAccountKey: false });
    for (const resource of ["p-admin-kubeconfig", "p-kubeconfig-viewer"]) {
      expect(recorder.named(resource).dependsOn, resource).toContain("p-apiserver-rollout");
    }
  });

  it("phase 2 drops the old CA, issues every certificate from the new one, and the new service-account key signs while the old one verifies", async () => {
    const cp = await at({ generation: 1, trusting: false, previousServiceAccountKey: true });
    expect(names(CA)).toEqual(["p-pki-ca-g1", "p-pki-etcd-ca", "p-pki-front-proxy-ca-g1", "p-pki-users-ca-viewer"]);
    for (const leaf of ["admin", "controller-manager", "scheduler", "apiserver", "apiserver-kubelet-client"]) expect(issuerOf(leaf), leaf).toEqual(["p-pki-ca-g1"]);
    expect(issuerOf("user-viewer")).toEqual(["p-pki-users-ca-viewer"]);
    expect(issuerOf("front-proxy-client")).toEqual(["p-pki-front-proxy-ca-g1"]);
    const apiserver = secretData("p-apiserver-certs");
    expect(mockNames(apiserver["ca.crt"])).toEqual(["p-pki-ca-g1"]);
    expect(mockNames(apiserver["client-ca.crt"])).toEqual(["p-pki-ca-g1", "p-pki-users-ca-viewer"]);
    expect(mockNames(kubeconfigCa(secretData("p-admin-kubeconfig").kubeconfig))).toEqual(["p-pki-ca-g1"]);
    expect(mockNames(secretData("p-controller-manager-certs")["ca-bundle.crt"])).toEqual(["p-pki-ca-g1"]);
    expect(mockNames(apiserver["sa.pub"])).toEqual(["p-pki-service-account-g1-key", "p-pki-service-account-key"]);
    expect(mockNames(apiserver["sa.key"])).toEqual(["p-pki-service-account-g1-key"]);
    expect(mockNames((await valueOf(cp.certificateAuthorities)).serviceAccount)).toEqual(["p-pki-service-account-g1-key"]);
  });

  it("once the old service-account key is dropped, generation 1 stands alone; the next rotation adds generation 2", async () => {
    await at({ generation: 1, trusting: false, previousServiceAccountKey: false });
    expect(names(KEY).filter((n) => n.includes("service-account"))).toEqual(["p-pki-service-account-g1-key"]);
    expect(mockNames(secretData("p-apiserver-certs")["sa.pub"])).toEqual(["p-pki-service-account-g1-key"]);
    recorder.reset();
    await at({ generation: 2, trusting: true, previousServiceAccountKey: false });
    expect(names(CA)).toEqual(["p-pki-ca-g1", "p-pki-ca-g2", "p-pki-etcd-ca", "p-pki-front-proxy-ca-g1", "p-pki-front-proxy-ca-g2", "p-pki-users-ca-viewer"]);
    expect(issuerOf("apiserver")).toEqual(["p-pki-ca-g1"]);
    expect(issuerOf("admin")).toEqual(["p-pki-ca-g2"]);
  });

  it("refuses a step that names no previous generation, or keeps the old key signing after phase 2", async () => {
    const refused = (caRotation: CaRotationInput) => deploy("p", { spec: spec(), caRotation }).then(() => undefined, (e: unknown) => e);
    const noPrevious = await refused({ generation: 0, trusting: true, previousServiceAccountKey: false });
    expect(noPrevious).toBeInstanceOf(SpecValidationError);
    expect(String(noPrevious)).toContain("caRotation.generation");
    const both = await refused({ generation: 2, trusting: true, previousServiceAccountKey: true });
    expect(String(both)).toContain("caRotation.previousServiceAccountKey");
    const fractional = await refused({ generation: 1.5, trusting: false, previousServiceAccountKey: false });
    expect(String(fractional)).toContain("caRotation.generation");
    expect(recorder.ofType(CA)).toEqual([]);
  });
});
