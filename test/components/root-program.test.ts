import * as pulumi from "@pulumi/pulumi";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { installMocks, isSecretInput, managedBy, settle, valueOf } from "../support/pulumi-mocks";
import { minimalSpec } from "../support/specs";

const recorder = installMocks();

function setStackConfig(values: Record<string, unknown>, secretKeys: string[] = []) {
  pulumi.runtime.setAllConfig(
    Object.fromEntries(Object.entries(values).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])),
    secretKeys,
  );
}

beforeEach(() => {
  recorder.reset();
  vi.resetModules();
});

describe("the root Pulumi.yaml program", () => {
  it("deploys the ClusterSpec of stack config through a meta-cluster provider with a secret kubeconfig", async () => {
    setStackConfig(
      { "kube-on-kube:cluster": minimalSpec(), "kube-on-kube:name": "dev", "kube-on-kube:kubeconfig": "apiVersion: v1\nkind: Config\n" },
      ["kube-on-kube:kubeconfig"],
    );
    const program = await import("../../src/program/main");
    expect(await valueOf(program.endpoint)).toBe("https://dev-apiserver.dev.svc:6443");
    expect(await valueOf(program.version)).toBe("v1.36.3");
    await valueOf(program.adminKubeconfig);
    await settle();
    expect(isSecretInput(recorder.named("meta-cluster").inputs.kubeconfig)).toBe(true);
    const deployments = recorder.ofType("kubernetes:apps/v1:Deployment");
    expect(deployments.filter((d) => managedBy(d, "meta-cluster")).map((d) => d.name).sort()).toEqual(["dev-apiserver-deployment", "dev-controller-manager-deployment", "dev-scheduler-deployment"]);
    // No external endpoint in this config: no add-ons, whose provider and nodes could not reach
    // the apiserver (test/components/addons.test.ts covers the program with one).
    expect(recorder.resources.filter((r) => r.name === "business-cluster" || r.name.startsWith("dev-addons"))).toEqual([]);
    // The rollout gates read the meta-cluster through the same kubeconfig, as a secret.
    const gates = recorder.ofType("pulumi-nodejs:dynamic/kube-on-kube:RolloutGate");
    expect(gates.map((g) => g.name).sort()).toEqual(["dev-apiserver-rollout", "dev-etcd-rollout"]);
    for (const gate of gates) expect(isSecretInput(gate.inputs.kubeconfig), gate.name).toBe(true);
  });

  it("takes the backup store's keys from secret config, and the backup image", async () => {
    const base = minimalSpec();
    const spec = { ...base, etcd: { ...base.etcd, backup: { store: { s3: { bucket: "kok-backups", prefix: "dev", endpoint: "https://s3.example.com", credentialsSecretRef: { name: "store" } } } } } };
    setStackConfig(
      {
        "kube-on-kube:cluster": spec,
        "kube-on-kube:name": "dev",
        "kube-on-kube:etcdBackupCredentials": { accessKeyId: "TEST-ONLY-id", secretAccessKey: "TEST-ONLY-secret" },
        "kube-on-kube:backupImage": "registry.example.com/kok/operator:2.0.0",
      },
      ["kube-on-kube:etcdBackupCredentials"],
    );
    const program = await import("../../src/program/main");
    await valueOf(program.adminKubeconfig);
    await settle();
    const store = recorder.resources.find((r) => r.type === "kubernetes:core/v1:Secret" && (r.inputs.metadata as { name?: string }).name === "dev-etcd-backup-store");
    expect(isSecretInput(store?.inputs.stringData)).toBe(true);
    const cron = recorder.ofType("kubernetes:batch/v1:CronJob")[0].inputs as { spec: { jobTemplate: { spec: { template: { spec: { containers: { image: string; args: string[] }[] } } } } } };
    const [container] = cron.spec.jobTemplate.spec.template.spec.containers;
    expect(container.image).toBe("registry.example.com/kok/operator:2.0.0");
    expect(container.args).toContain("--cluster=dev/dev");
  });

  it("refuses backups without the store's keys in config, naming what is missing", async () => {
    const base = minimalSpec();
    const spec = { ...base, etcd: { ...base.etcd, backup: { store: { s3: { bucket: "kok-backups", prefix: "dev", endpoint: "https://s3.example.com", credentialsSecretRef: { name: "store" } } } } } };
    setStackConfig({ "kube-on-kube:cluster": spec, "kube-on-kube:name": "dev" });
    await expect(import("../../src/program/main")).rejects.toThrow(/etcdBackup\.credentials/);
    await settle();
    expect(recorder.resources.filter((r) => r.custom)).toHaveLength(0);
  });

  it("rejects bad stack config naming every config path, and registers nothing", async () => {
    setStackConfig({ "kube-on-kube:cluster": { ...minimalSpec(), mode: "huge", kubernetesVersion: "1.36" } });
    await expect(import("../../src/program/main")).rejects.toThrow(
      /config is invalid \(2 problems\)[\s\S]*kube-on-kube:cluster\.mode[\s\S]*kube-on-kube:cluster\.kubernetesVersion/,
    );
    await settle();
    expect(recorder.resources).toHaveLength(0);
  });

  it("says what to set when the cluster config is missing", async () => {
    setStackConfig({});
    await expect(import("../../src/program/main")).rejects.toThrow(/kube-on-kube:cluster: must be an object/);
  });
});
