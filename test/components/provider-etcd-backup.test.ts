/**
 * The component provider's ControlPlane with backups (src/provider/provider.ts), under Pulumi
 * mocks: the `etcdBackup` input's keys reach the store Secret as secrets, given as values or as one
 * Output, and a spec with backups but no keys is refused naming the property.
 */
import * as pulumi from "@pulumi/pulumi";
import { beforeEach, describe, expect, it } from "vitest";
import { installMocks, isSecretInput, plain, settle } from "../support/pulumi-mocks";
import { minimalSpec } from "../support/specs";
import { KubeOnKubeProvider } from "../../src/provider/provider";

const recorder = installMocks();
beforeEach(() => recorder.reset());

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const spec = () => {
  const base = minimalSpec();
  return { ...base, etcd: { ...base.etcd, backup: { store: { s3: { bucket: "kok-backups", prefix: "p", endpoint: "https://s3.example.com", credentialsSecretRef: { name: "store" } } } } } };
};
const storeSecret = () => recorder.resources.find((r) => r.type === "kubernetes:core/v1:Secret" && plain<Obj>(r.inputs.metadata).name === "remote-etcd-backup-store");

describe("the component provider's ControlPlane with etcd backups", () => {
  for (const [how, etcdBackup] of [
    ["values", { accessKeyId: "TEST-ONLY-id", secretAccessKey: "TEST-ONLY-secret", image: "registry.example.com/kok/operator:1.0.0" }],
    ["one Output", pulumi.output({ accessKeyId: "TEST-ONLY-id", secretAccessKey: "TEST-ONLY-secret", image: "registry.example.com/kok/operator:1.0.0" })],
  ] as const) {
    it(`takes the store's keys given as ${how}, as secrets`, async () => {
      await new KubeOnKubeProvider("0.1.0").construct("remote", "kube-on-kube:index:ControlPlane", { spec: spec(), etcdBackup }, {});
      await settle();
      const secret = storeSecret();
      expect(secret).toBeDefined();
      expect(isSecretInput(secret!.inputs.stringData)).toBe(true);
      expect(plain(secret!.inputs.stringData)).toEqual({ accessKeyId: "TEST-ONLY-id", secretAccessKey: "TEST-ONLY-secret" });
      const cron = plain<Obj>(recorder.ofType("kubernetes:batch/v1:CronJob")[0].inputs);
      expect(cron.spec.jobTemplate.spec.template.spec.containers[0].image).toBe("registry.example.com/kok/operator:1.0.0");
    });
  }

  it("refuses backups without the keys, naming the property", async () => {
    const error = await new KubeOnKubeProvider("0.1.0").construct("remote", "kube-on-kube:index:ControlPlane", { spec: spec() }, {}).catch((e: unknown) => e);
    expect(String((error as Error).message)).toContain("etcdBackup.credentials");
    expect(recorder.resources).toEqual([]);
  });
});
