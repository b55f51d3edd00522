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

const BACKUP = {
  schedule: "15 */6 * * *",
  retention: { count: 10, maxAge: "72h" },
  store: { s3: { bucket: "kok-backups", prefix: "p", endpoint: "https://s3.eu-west-1.amazonaws.com", region: "eu-west-1", credentialsSecretRef: { name: "store" } } },
};
/** etcd on claims: its members may roll, so its CA may rotate (an emptyDir's may not, below). */
const spec = () => {
  const base = minimalSpec();
  return { ...base, etcd: { ...base.etcd, storage: { claimTemplate: { size: "1Gi" } }, backup: BACKUP }, kubeconfigs: [{ name: "viewer", user: "jane", groups: ["viewers"] }] };
};
const at = (caRotation?: CaRotationInput) => deploy("p", { spec: spec(), caRotation, etcdBackup: { credentials: { accessKeyId: "TEST-ONLY-AKID", secretAccessKey: "TEST-ONLY-secret" } } });
/** Every etcd leaf: the members' serving and peer, the apiserver's client, the backup Job's client. */
const ETCD_LEAVES = ["etcd-server", "etcd-peer", "apiserver-etcd-client", "etcd-backup-client"];
/** What each holder of an etcd trust bundle trusts: members, apiserver, membership and backup Jobs. */
const etcdBundles = () => ({
  members: mockNames(secretData("p-etcd-certs")["ca.crt"]),
  apiserver: mockNames(secretData("p-apiserver-certs")["etcd-ca.crt"]),
  membership: mockNames(secretData("p-etcd-member-client")["ca.crt"]),
  backup: mockNames(secretData("p-etcd-backup-client")["ca.crt"]),
});
const everyEtcdBundle = (cas: string[]) => ({ members: cas, apiserver: cas, membership: cas, backup: cas });
/** The CA that issued the membership Jobs' client leaf (issued in its own component). */
const membershipIssuer = () => mockNames(plain<Obj>(recorder.named("p-etcd-membership-client").inputs).caCertPem as string);

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

  it("rotates the etcd CA in three steps: trusted beside the old one, then signing, then alone", async () => {
    const step = (generation: number, etcdStep: "trusting" | "switching" | "stable"): CaRotationInput => ({
      generation: 1,
      trusting: etcdStep === "trusting",
      previousServiceAccountKey: etcdStep !== "trusting",
      etcd: { generation, step: etcdStep },
    });
    const both = ["p-pki-etcd-ca", "p-pki-etcd-ca-g1"];
    // Trusting: every holder of an etcd bundle trusts both; the old CA still signs every leaf.
    let cp = await at(step(1, "trusting"));
    expect(names(CA).filter((n) => n.includes("etcd"))).toEqual(both);
    expect(etcdBundles()).toEqual(everyEtcdBundle(both));
    for (const leaf of ETCD_LEAVES) expect(issuerOf(leaf), leaf).toEqual(["p-pki-etcd-ca"]);
    expect(membershipIssuer()).toEqual(["p-pki-etcd-ca"]);
    expect(mockNames((await valueOf(cp.certificateAuthorities)).etcd)).toEqual(["p-pki-etcd-ca"]);
    // Switching: the new CA signs every leaf; both are still trusted (members not yet rolled present the old one's).
    recorder.reset();
    cp = await at(step(1, "switching"));
    expect(etcdBundles()).toEqual(everyEtcdBundle(both));
    for (const leaf of ETCD_LEAVES) expect(issuerOf(leaf), leaf).toEqual(["p-pki-etcd-ca-g1"]);
    expect(membershipIssuer()).toEqual(["p-pki-etcd-ca-g1"]);
    expect(mockNames((await valueOf(cp.certificateAuthorities)).etcd)).toEqual(["p-pki-etcd-ca-g1"]);
    // Stable: the new CA alone, the old one gone from the stack.
    recorder.reset();
    await at(step(1, "stable"));
    expect(names(CA).filter((n) => n.includes("etcd"))).toEqual(["p-pki-etcd-ca-g1"]);
    expect(etcdBundles()).toEqual(everyEtcdBundle(["p-pki-etcd-ca-g1"]));
    for (const leaf of ETCD_LEAVES) expect(issuerOf(leaf), leaf).toEqual(["p-pki-etcd-ca-g1"]);
  });

  // Switching changes the leaves themselves: the engine replaces a certificate whose CA input
  // changed, and its new PEM changes the Secret. The mocks' PEMs name the resource, not its issuer,
  // so that step is seen above (issuerOf), and the checksum here only for the bundle's steps.
  it("each change of the etcd bundle changes the members' certificate Secret, so the StatefulSet's Pods roll", async () => {
    const checksums: string[] = [];
    for (const etcd of [undefined, { generation: 1, step: "trusting" as const }, { generation: 1, step: "stable" as const }]) {
      recorder.reset();
      await at(etcd ? { generation: 1, trusting: etcd.step === "trusting", previousServiceAccountKey: etcd.step !== "trusting", etcd } : undefined);
      const sts = recorder.ofType("kubernetes:apps/v1:StatefulSet").find((r) => plain<Obj>(r.inputs.metadata).name === "p-etcd")!;
      checksums.push(JSON.stringify(plain<Obj>(sts.inputs.spec).template.metadata.annotations));
    }
    expect(new Set(checksums).size).toBe(3);
  });

  it("a cluster rotated before etcd's CA rotated keeps its etcd CA (no etcd step: generation 0 alone)", async () => {
    await at({ generation: 2, trusting: true, previousServiceAccountKey: false });
    expect(names(CA).filter((n) => n.includes("etcd"))).toEqual(["p-pki-etcd-ca"]);
    expect(etcdBundles()).toEqual(everyEtcdBundle(["p-pki-etcd-ca"]));
  });

  it("refuses an etcd step without a previous generation, or of an unknown name, naming the field", async () => {
    const refused = (caRotation: CaRotationInput) => deploy("p", { spec: spec(), caRotation }).then(() => undefined, (e: unknown) => e);
    const noPrevious = await refused({ generation: 1, trusting: true, previousServiceAccountKey: false, etcd: { generation: 0, step: "trusting" } });
    expect(noPrevious).toBeInstanceOf(SpecValidationError);
    expect(String(noPrevious)).toContain("caRotation.etcd.generation");
    const unknown = await refused({ generation: 1, trusting: true, previousServiceAccountKey: false, etcd: { generation: 1, step: "dropping" as "stable" } });
    expect(String(unknown)).toContain("caRotation.etcd.step: must be one of trusting, switching, stable (got dropping)");
    expect(recorder.ofType(CA)).toEqual([]);
  });

  it("refuses an etcd step that would roll an emptyDir etcd's members, and takes the kept CA", async () => {
    const onEmptyDir = { ...minimalSpec(), kubeconfigs: [] };
    const refused = await deploy("p", { spec: onEmptyDir, caRotation: { generation: 1, trusting: true, previousServiceAccountKey: false, etcd: { generation: 1, step: "trusting" } } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(SpecValidationError);
    expect(String(refused)).toContain('caRotation.etcd.step: "trusting" needs a roll of etcd\'s members, whose data is in an emptyDir');
    expect(recorder.ofType(CA)).toEqual([]);
    await deploy("p", { spec: onEmptyDir, caRotation: { generation: 1, trusting: true, previousServiceAccountKey: false, etcd: { generation: 0, step: "stable" } } });
    expect(names(CA).filter((n) => n.includes("etcd"))).toEqual(["p-pki-etcd-ca"]);
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
