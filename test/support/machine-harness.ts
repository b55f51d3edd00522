/**
 * The Machine reconciler with in-memory stand-ins for the API, the engine, the Node watch and the
 * SSH probe (the real ones run in the e2e suite), shared by its unit tests: a Ready Cluster, its
 * CA and admin kubeconfig in the masters' namespace, a tenant's hostile copy, and a fake engine
 * whose operations can be made to fail.
 */
import { parse } from "yaml";
import { mastersNamespaceOf, type ClusterObject, type MachineObject, type MachineStatus, type PackageVersionObject } from "../../src/api/v1alpha1";
import type { ProbeResult } from "../../src/host/host-probe";
import { MachineReconciler, type MachineStacks } from "../../src/controllers/machine/reconciler";
import type { NodeView } from "../../src/controllers/machine/node-health";
import { packagesRevision } from "../../src/controllers/packageversion/revision";
import { mastersNamespaceFor } from "../../src/controllers/cluster/masters-namespace";
import { DEFAULT_REMEDIATION_POLICY } from "../../src/controllers/machine/remediation";
import type { StateResource } from "../../src/runtime/stack-runner";
import { cleanKubeconfig, execEntry, TEST_CA, withFields } from "./kubeconfigs";
import { machine as machineSpec, packages } from "./worker-fixtures";

export const MASTERS = mastersNamespaceOf({ metadata: { name: "prod-a", namespace: "fleet" } });
export const ADMIN = cleanKubeconfig("https://127.0.0.1:30443");
export const ADMIN_KEY_DATA = (parse(ADMIN) as { users: { user: Record<string, string> }[] }).users[0]!.user["client-key-data"]!;
export const EXEC_MARKER = "/nonexistent/kok-unit-exec-marker";
export const HOSTILE = withFields(ADMIN, "user", { exec: execEntry(EXEC_MARKER) });
const PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nunit-test-secret-key\n-----END OPENSSH PRIVATE KEY-----";
export const CA_KEY = "-----BEGIN EC PRIVATE KEY-----\nunit-test-ca-key\n-----END EC PRIVATE KEY-----";
const CA_REF = { namespace: MASTERS, name: "prod-a-cluster-ca", certificateKey: "tls.crt", privateKeyKey: "tls.key" };

/** `stacks`: a real StackRunner in place of the fake engine (integration tests); `ups` and `engine` then see nothing. */
export function harness(o: { stacks?: MachineStacks } = {}) {
  let time = Date.parse("2026-11-25T12:00:00Z");
  const machines = new Map<string, MachineObject>();
  const clusters = new Map<string, ClusterObject>();
  const cpvs = new Map<string, PackageVersionObject>();
  const secrets = new Map<string, Record<string, string>>([
    ["fleet/worker-ssh", { privateKey: PRIVATE_KEY }],
    // The CA where the Cluster's status says it is (CA_REF), not under a name the operator derives.
    [`${MASTERS}/prod-a-cluster-ca`, { "tls.crt": TEST_CA, "tls.key": CA_KEY }],
    // The stack's Secret in the masters' namespace, and the tenant's copy (never read back).
    [`${MASTERS}/prod-a-admin-kubeconfig`, { kubeconfig: ADMIN }],
    ["fleet/prod-a-admin-kubeconfig", { kubeconfig: HOSTILE }],
  ]);
  const secretReads: string[] = [];
  const watched: string[] = [];
  const events: { type: string; reason: string; message: string }[] = [];
  const ups: { stack: string; program: unknown }[] = [];
  /**
   * `failWith`: every `up` fails; `readFailWith`: reading a stack's state; `destroyFailWith`: the
   * destroy; each of every stack, or of `failOnly` alone when set.
   */
  const engine = {
    failWith: undefined as Error | undefined,
    readFailWith: undefined as Error | undefined,
    destroyFailWith: undefined as Error | undefined,
    failOnly: undefined as string | undefined,
    destroyed: [] as string[],
    renamed: [] as string[],
  };
  const failure = (error: Error | undefined, stack: string) => (engine.failOnly === undefined || engine.failOnly === stack ? error : undefined);
  /** The meta-cluster's namespaces and their labels (only the masters' namespaces matter here). */
  const namespaceLabels = new Map<string, Record<string, string>>();
  /** The stacks' states: what a stack under its legacy name holds decides its migration. */
  const states = new Map<string, StateResource[]>();
  const nodes = new Map<string, NodeView>();
  const probes: { versions: ProbeResult["observedVersions"]; services: ProbeResult["services"] } = { versions: {}, services: { containerd: true, kubelet: true } };
  const hostCalls: string[] = [];
  const stacks: MachineStacks = {
    async up(stack, program) {
      ups.push({ stack, program });
      const failed = failure(engine.failWith, stack);
      if (failed) throw failed;
      const kubelet = current().status?.targetRevision === packagesRevision(packages()) ? "v1.36.3" : "v1.35.4";
      // The stack reports its kubelet certificates (public PEMs); the test CA stands in for both.
      const certificates = { kubeletClient: { certPem: TEST_CA, caCertPem: TEST_CA }, kubeletServing: { certPem: TEST_CA, caCertPem: TEST_CA }, trustBundle: TEST_CA };
      return {
        changes: { create: 12 },
        outputs: { observedVersions: { value: { containerd: "1.7.22", kubelet, cni: "v1.5.1" }, secret: false }, nodeName: { value: "worker-0001", secret: false }, certificates: { value: certificates, secret: false } },
      };
    },
    async destroyAndRemove(stack) {
      const failed = failure(engine.destroyFailWith, stack);
      if (failed) throw failed;
      engine.destroyed.push(stack);
    },
    async resources(stack) {
      const failed = failure(engine.readFailWith, stack);
      if (failed) throw failed;
      return states.get(stack);
    },
    async rename(from, to) {
      engine.renamed.push(`${from} → ${to}`);
      states.set(to, states.get(from)!);
      states.delete(from);
    },
  };
  const current = () => machines.get("fleet/worker-0001")!;
  let version = 1;
  const bump = () => String(++version);
  const reconciler = new MachineReconciler({
    now: () => new Date(time),
    stacks: o.stacks ?? stacks,
    events: { record: async (_m, type, reason, message) => void events.push({ type, reason, message }) },
    nodes: {
      ensure: (clusterKey, kubeconfig) => {
        hostCalls.push(`watch ${clusterKey}`);
        watched.push(kubeconfig);
      },
      synced: () => true,
      node: (_c, name) => nodes.get(name),
    },
    hosts: {
      probe: async () => (hostCalls.push("probe"), { observedVersions: probes.versions, services: probes.services, durationMs: 40 }),
      restartServices: async () => void hostCalls.push("restart"),
    },
    remediation: { ...DEFAULT_REMEDIATION_POLICY, notReadyTimeoutMs: 60_000, minHealthyPeriodMs: 120_000, maxRemediations: 3, maxUnhealthyShare: 0.5 },
    store: {
      get: async (ns, name) => structuredClone(machines.get(`${ns}/${name}`)),
      getLive: async (ns, name) => structuredClone(machines.get(`${ns}/${name}`)),
      setFinalizers: async (m, finalizers) => {
        const key = `${m.metadata.namespace}/${m.metadata.name}`;
        // Optimistic concurrency as the API server does it: a stale resourceVersion conflicts.
        if (m.metadata.resourceVersion !== machines.get(key)!.metadata.resourceVersion) throw new Error(`409 Conflict on ${key}`);
        const stored = { ...machines.get(key)!, metadata: { ...machines.get(key)!.metadata, finalizers, resourceVersion: bump() } };
        machines.set(key, stored);
        return structuredClone(stored);
      },
      writeStatus: async (m, update: (current: MachineStatus | undefined) => MachineStatus) => {
        const key = `${m.metadata.namespace}/${m.metadata.name}`;
        const stored = machines.get(key)!;
        machines.set(key, { ...stored, metadata: { ...stored.metadata, resourceVersion: bump() }, status: structuredClone(update(stored.status)) });
      },
      machinesOfCluster: () => [...machines.values()],
      cluster: (ns, name) => clusters.get(`${ns}/${name}`),
      packageVersion: (ns, name) => cpvs.get(`${ns}/${name}`),
      secret: async (ns, name) => (secretReads.push(`${ns}/${name}`), secrets.get(`${ns}/${name}`)),
      mastersNamespace: (c) => mastersNamespaceFor(c, async (name) => namespaceLabels.get(name)),
    },
  });
  const put = (spec = machineSpec(), generation = 1, name = "worker-0001") => {
    const key = `fleet/${name}`;
    const prev = machines.get(key);
    machines.set(key, { apiVersion: "kubeonkube.io/v1alpha1", kind: "Machine", metadata: { ...(prev?.metadata ?? { name, namespace: "fleet" }), generation, resourceVersion: bump() }, spec, status: prev?.status });
  };
  const readyCluster = () =>
    clusters.set("fleet/prod-a", {
      apiVersion: "kubeonkube.io/v1alpha1",
      kind: "Cluster",
      metadata: { name: "prod-a", namespace: "fleet", uid: "uid-of-prod-a" },
      spec: {} as ClusterObject["spec"],
      status: { phase: "Ready", endpoint: "https://127.0.0.1:30443", adminKubeconfigSecret: "prod-a-admin-kubeconfig", caSecretRef: CA_REF },
    });
  return { reconciler, machines, clusters, cpvs, secrets, secretReads, watched, events, ups, engine, states, namespaceLabels, nodes, probes, hostCalls, put, readyCluster, current, advance: (ms: number) => (time += ms), now: () => new Date(time) };
}
