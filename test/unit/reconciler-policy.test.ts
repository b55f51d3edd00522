/**
 * The reconcilers enforce validation and the admin policy (issue 13) before any stack is touched:
 * a hostile spec ends in Failed / InvalidSpec, a Warning Event naming every field and policy rule,
 * a TerminalError (no retry), and no engine call.
 */
import { describe, expect, it } from "vitest";
import {
  resolveAdminPolicy,
  type ClusterObject,
  type ClusterSpec,
  type ClusterStatus,
  type MachineObject,
  type MachineSpec,
  type MachineStatus,
  type PackageVersionObject,
} from "../../src/api/v1alpha1";
import { ClusterReconciler } from "../../src/controllers/cluster/reconciler";
import { TerminalError } from "../../src/runtime/controller";
import { MachineReconciler } from "../../src/controllers/machine/reconciler";
import { devAdminPolicy } from "../../src/dev/dev-policy";
import { HOST_KEY, machine, packages, sha } from "../support/worker-fixtures";
import { minimalSpec } from "../support/specs";

interface Outcome {
  readonly error: unknown;
  readonly engineCalls: string[];
  readonly events: { type: string; reason: string; message: string }[];
  readonly status: { phase?: string; conditions?: { type: string; reason: string; message: string }[] } | undefined;
}

async function reconcileCluster(spec: ClusterSpec, policy = resolveAdminPolicy()): Promise<Outcome> {
  let stored: ClusterObject = { apiVersion: "kubeonkube.io/v1alpha1", kind: "Cluster", metadata: { name: "dev", namespace: "fleet", generation: 1 }, spec };
  const engineCalls: string[] = [];
  const events: Outcome["events"] = [];
  const refuse = (op: string) => async () => {
    engineCalls.push(op);
    throw new Error(`${op} must not run`);
  };
  const reconciler = new ClusterReconciler({
    resyncMs: 300_000,
    policy,
    namespaceLabels: async () => {
      throw new Error("the masters' namespace must not be looked at for a refused spec");
    },
    stacks: { up: refuse("up"), preview: refuse("preview"), destroyAndRemove: refuse("destroy"), resources: refuse("resources"), rename: refuse("rename") },
    events: { record: async (_c, type, reason, message) => void events.push({ type, reason, message }) },
    store: {
      getLive: async () => structuredClone(stored),
      setFinalizers: async (c, finalizers) => (stored = { ...stored, metadata: { ...c.metadata, finalizers } }),
      writeStatus: async (_c, compute: (fresh: ClusterStatus | undefined) => ClusterStatus) => void (stored = { ...stored, status: compute(stored.status) }),
    },
  });
  const error = await reconciler.reconcile("fleet/dev").then(() => undefined, (e: unknown) => e);
  return { error, engineCalls, events, status: stored.status };
}

async function reconcileMachine(spec: MachineSpec, options: { name?: string; policy?: ReturnType<typeof resolveAdminPolicy>; catalog?: PackageVersionObject } = {}): Promise<Outcome> {
  const name = options.name ?? "worker-0001";
  let stored: MachineObject = { apiVersion: "kubeonkube.io/v1alpha1", kind: "Machine", metadata: { name, namespace: "fleet", generation: 1, resourceVersion: "1" }, spec };
  const engineCalls: string[] = [];
  const events: Outcome["events"] = [];
  const cluster: ClusterObject = {
    apiVersion: "kubeonkube.io/v1alpha1",
    kind: "Cluster",
    metadata: { name: "prod-a", namespace: "fleet" },
    spec: minimalSpec(),
    status: { phase: "Ready", endpoint: "https://192.0.2.1:6443", adminKubeconfigSecret: "prod-a-admin-kubeconfig" },
  };
  const reconciler = new MachineReconciler({
    policy: options.policy,
    stacks: {
      up: async () => {
        engineCalls.push("up");
        throw new Error("up must not run");
      },
      destroyAndRemove: async () => void engineCalls.push("destroy"),
      resources: async () => void engineCalls.push("resources"),
      rename: async () => void engineCalls.push("rename"),
    },
    events: { record: async (_m, type, reason, message) => void events.push({ type, reason, message }) },
    nodes: { ensure: () => undefined, synced: () => true, node: () => undefined },
    hosts: {
      probe: async () => {
        engineCalls.push("probe");
        throw new Error("no SSH");
      },
      restartServices: async () => void engineCalls.push("restart"),
    },
    store: {
      get: async () => structuredClone(stored),
      getLive: async () => structuredClone(stored),
      setFinalizers: async (m, finalizers) => (stored = { ...stored, metadata: { ...m.metadata, finalizers } }),
      writeStatus: async (_m, update: (current: MachineStatus | undefined) => MachineStatus) => void (stored = { ...stored, status: update(stored.status) }),
      machinesOfCluster: () => [stored],
      cluster: () => cluster,
      packageVersion: () => options.catalog,
      secret: async () => undefined,
      mastersNamespace: async () => "kok-fleet-prod-a-0000000000",
    },
  });
  const error = await reconciler.reconcile(`fleet/${name}`).then(() => undefined, (e: unknown) => e);
  return { error, engineCalls, events, status: stored.status };
}

/** Refused for good, with every expected text in the InvalidSpec condition and Event. */
function expectRefused(outcome: Outcome, ...texts: string[]): void {
  expect(outcome.error).toBeInstanceOf(TerminalError);
  expect(outcome.engineCalls).toEqual([]);
  expect(outcome.status?.phase).toBe("Failed");
  const condition = outcome.status?.conditions?.find((c) => c.type === "Ready");
  expect(condition?.reason).toBe("InvalidSpec");
  const event = outcome.events.find((e) => e.reason === "InvalidSpec");
  expect(event?.type).toBe("Warning");
  for (const text of texts) {
    expect(condition?.message).toContain(text);
    expect(event?.message).toContain(text);
  }
}

describe("ClusterReconciler refuses a hostile Cluster", () => {
  it("etcd on hostPath / (the meta-cluster node's root)", async () => {
    expectRefused(
      await reconcileCluster(minimalSpec({ etcd: { version: "3.6.16", storage: { volumeSource: { hostPath: { path: "/" } } } } })),
      "spec.etcd.storage.volumeSource.hostPath",
      "(admin policy: etcdVolumeTypes)",
    );
  });

  it("images from a foreign registry", async () => {
    expectRefused(
      await reconcileCluster(minimalSpec({ imageRepository: "evil.example.com/k8s", etcd: { ...minimalSpec().etcd, image: "evil.example.com/etcd:3.6.16-0" } })),
      'spec.imageRepository: "evil.example.com/k8s" is not an allowed registry (registry.k8s.io) (admin policy: allowedRegistries)',
      "spec.etcd.image",
    );
  });

  it("authorization-mode AlwaysAllow", async () => {
    expectRefused(
      await reconcileCluster(minimalSpec({ apiServer: { extraArgs: { "authorization-mode": "AlwaysAllow" } } })),
      'spec.apiServer.extraArgs["authorization-mode"]',
      "(admin policy: extraArgs.denied)",
    );
  });

  it("100000 apiserver replicas, and replicas over the policy's cap", async () => {
    expectRefused(await reconcileCluster(minimalSpec({ apiServer: { replicas: 100000 } })), "spec.apiServer.replicas");
    expectRefused(await reconcileCluster(minimalSpec({ apiServer: { replicas: 9 } })), "spec.apiServer.replicas", "(admin policy: caps.maxReplicas)");
  });

  it("a kubeconfig in system:masters", async () => {
    expectRefused(
      await reconcileCluster(minimalSpec({ kubeconfigs: [{ name: "root", user: "me", groups: ["system:masters"] }] })),
      "spec.kubeconfigs[0].groups[0]",
    );
  });

  it("tolerating the control-plane taint", async () => {
    expectRefused(
      await reconcileCluster(minimalSpec({ masterTolerations: [{ key: "node-role.kubernetes.io/control-plane", operator: "Exists" }] })),
      "spec.masterTolerations[0].key",
      "(admin policy: masters.allowedTolerationKeys)",
    );
  });
});

describe("MachineReconciler refuses a hostile Machine", () => {
  it("the cloud metadata address", async () => {
    expectRefused(await reconcileMachine(machine({ ip: "169.254.169.254" })), "spec.ip", "link-local");
  });

  it("the operator's own host, unless the policy allows loopback (the dev environment)", async () => {
    expectRefused(await reconcileMachine(machine({ ip: "127.0.0.1" })), "spec.ip", "(admin policy: sshTargets.denied)");
    const dev = await reconcileMachine(machine({ ip: "127.0.0.12" }), { policy: devAdminPolicy() });
    expect(dev.error).toBeUndefined();
    expect(dev.status?.conditions?.find((c) => c.reason === "InvalidSpec")).toBeUndefined();
  });

  it("a traversing package version, in its spec and in a stored catalog", async () => {
    const traversing = { ...packages(), kubelet: { version: "../../../../tmp/x", url: "http://mirror.local/kubelet", sha256: sha("b") } };
    expectRefused(await reconcileMachine(machine({ packages: traversing })), "spec.packages.kubelet.version");
    const catalog: PackageVersionObject = {
      apiVersion: "kubeonkube.io/v1alpha1",
      kind: "ClusterPackageVersion",
      metadata: { name: "prod-a-v1.36", namespace: "fleet", generation: 1 },
      spec: { clusterRef: { name: "prod-a" }, packages: traversing },
    };
    const viaCatalog = machine({ packageVersionRef: { name: "prod-a-v1.36" } });
    delete (viaCatalog as Partial<MachineSpec>).packages;
    expectRefused(await reconcileMachine(viaCatalog, { catalog }), "ClusterPackageVersion prod-a-v1.36: spec.packages.kubelet.version");
  });

  it("a catalog whose registry mirrors lie outside allowedRegistries, or would break out of hosts.toml", async () => {
    const catalog = (registryMirrors: Record<string, string[]>): PackageVersionObject => ({
      apiVersion: "kubeonkube.io/v1alpha1",
      kind: "ClusterPackageVersion",
      metadata: { name: "prod-a-v1.36", namespace: "fleet", generation: 1 },
      spec: { clusterRef: { name: "prod-a" }, packages: packages(), registryMirrors },
    });
    const viaCatalog = machine({ packageVersionRef: { name: "prod-a-v1.36" } });
    delete (viaCatalog as Partial<MachineSpec>).packages;
    expectRefused(
      await reconcileMachine(viaCatalog, { catalog: catalog({ "registry.k8s.io": ["https://evil.example.com"] }) }),
      'ClusterPackageVersion prod-a-v1.36: spec.registryMirrors["registry.k8s.io"][0]: "https://evil.example.com" is not under an allowed registry (registry.k8s.io) (admin policy: allowedRegistries)',
    );
    expectRefused(
      await reconcileMachine(viaCatalog, { catalog: catalog({ "docker.io": ['https://registry.k8s.io"]\n[host."http://evil"]'] }) }),
      'ClusterPackageVersion prod-a-v1.36: spec.registryMirrors["docker.io"][0]',
      "is not a mirror URL",
    );
  });

  it("a host key with an extra @cert-authority line, and an option as the SSH user", async () => {
    expectRefused(
      await reconcileMachine(machine({ ssh: { ...machine().ssh, user: "-oProxyCommand=id", hostKey: `${HOST_KEY}\n@cert-authority * ${HOST_KEY}` } })),
      "spec.ssh.hostKey",
      "spec.ssh.user",
    );
  });

  it("a 120-character name (its stack name would pass Pulumi's limit)", async () => {
    expectRefused(await reconcileMachine(machine(), { name: "w".repeat(120) }), "metadata.name");
  });
});
