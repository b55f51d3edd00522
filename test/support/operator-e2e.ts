/**
 * The set-up the operator e2e tests share: a dev meta-cluster of their own with the CRDs and a
 * `fleet` namespace, kubectl on it, Cluster resources applied and waited for, and `kok operator`
 * as a real process (its own process group, so a kill takes its engine processes down with it).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import type { ClusterSpec } from "../../src/api/v1alpha1";
import { toolchainBinary, toolchainEngineEnv } from "../../src/dev/toolchain";
import { writeDevAdminPolicy } from "../../src/dev/dev-policy";
import { buildImages, pushImages } from "../../src/images";
import { devUp, eventually, installCrds, kok, newDevCluster, type DevCluster } from "./dev-cluster";

const REPO = resolve(__dirname, "..", "..");

/** What the tests read of a Cluster resource (`kubectl get cluster -o json`). */
export interface ClusterJson {
  metadata: { generation: number; finalizers?: string[]; annotations?: Record<string, string> };
  spec: ClusterSpec;
  status?: {
    phase?: string;
    observedGeneration?: number;
    endpoint?: string;
    version?: string;
    adminKubeconfigSecret?: string;
    certificatesExpireAt?: string;
    conditions?: { type: string; status: string; reason: string; message?: string; observedGeneration?: number }[];
    lastOperation?: { kind: string; result: string; startedAt?: string; changes?: Record<string, number> };
    etcd?: { version?: string; members?: number };
  };
}

export interface EventJson {
  reason: string;
  message: string;
  involvedObject: { name: string };
}

export interface MetaCluster {
  readonly dev: DevCluster;
  /** Scratch space of the test: manifests, kubeconfigs, operator state. */
  readonly work: string;
  /** The `file://` state backend every operator of the test shares. */
  readonly backendUrl: string;
  kubectl(...args: string[]): string;
  json<T>(...args: string[]): T;
  /** Writes the Cluster `fleet/<name>` as a manifest and applies it with kubectl, as users do. */
  applyCluster(name: string, spec: ClusterSpec): void;
  getCluster(name: string): ClusterJson;
  /** Polls `fleet/<name>` until `done` holds; a failed update ends the wait at once, with the status. */
  waitForCluster(name: string, what: string, done: (c: ClusterJson) => boolean, deadlineMs?: number): Promise<ClusterJson>;
  /** The Events of `fleet/<name>`. */
  events(name: string): EventJson[];
  /** Writes the Cluster's admin kubeconfig Secret to a file and returns its path. */
  adminKubeconfig(name: string): string;
  down(): Promise<void>;
}

/** `kok dev up` on free ports, CRDs installed, namespace `fleet` created. */
export async function startMetaCluster(prefix: string): Promise<MetaCluster> {
  const work = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const dev = await newDevCluster();
  const kubectl = (...args: string[]) => execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", dev.kubeconfig, ...args], { encoding: "utf8" });
  const json = <T>(...args: string[]) => JSON.parse(kubectl(...args, "-o", "json")) as T;
  const getCluster = (name: string) => json<ClusterJson>("-n", "fleet", "get", "cluster", name);
  const meta: MetaCluster = {
    dev,
    work,
    backendUrl: `file://${join(work, "state")}`,
    kubectl,
    json,
    applyCluster(name, spec) {
      const manifest = join(work, `${name}.yaml`);
      writeFileSync(manifest, stringify({ apiVersion: "kubeonkube.io/v1alpha1", kind: "Cluster", metadata: { name, namespace: "fleet" }, spec }));
      kubectl("apply", "-f", manifest);
    },
    getCluster,
    waitForCluster: (name, what, done, deadlineMs = 1_200_000) =>
      eventually(
        `Cluster fleet/${name} ${what}`,
        async () => {
          const c = getCluster(name);
          if (c.status?.lastOperation?.result === "failed") throw new Error(`the operator reported a failure: ${JSON.stringify(c.status)}`);
          return done(c) ? c : undefined;
        },
        deadlineMs,
      ),
    events: (name) => json<{ items: EventJson[] }>("-n", "fleet", "get", "events").items.filter((e) => e.involvedObject.name === name),
    adminKubeconfig(name) {
      const secret = json<{ data: { kubeconfig: string } }>("-n", "fleet", "get", "secret", `${name}-admin-kubeconfig`);
      const file = join(work, `${name}.kubeconfig`);
      writeFileSync(file, Buffer.from(secret.data.kubeconfig, "base64"), { mode: 0o600 });
      return file;
    },
    async down() {
      await kok(["dev", "down", ...dev.args, "--purge"]);
      rmSync(work, { recursive: true, force: true });
    },
  };
  try {
    await devUp(dev);
  } catch (error) {
    // A failed start leaves no half-started meta-cluster (processes, the node's namespace) behind.
    await meta.down();
    throw error;
  }
  installCrds(dev, work);
  kubectl("create", "namespace", "fleet");
  mkdirSync(join(work, "state"), { recursive: true });
  return meta;
}

export const LEASE = { namespace: "kube-system", name: "kube-on-kube-operator" } as const;

/** The identity in the operator Lease, if anyone holds it. */
export function leaseHolder(meta: MetaCluster): string | undefined {
  const lease = meta.json<{ spec?: { holderIdentity?: string } }>("-n", LEASE.namespace, "get", "lease", LEASE.name);
  return lease.spec?.holderIdentity || undefined;
}

export interface OperatorProcess {
  readonly child: ChildProcess;
  /** Its JSON log lines so far (stdout). */
  logs(): Record<string, unknown>[];
  /** Its Lease identity and metrics address, once it has logged "operator started". */
  started(): Promise<{ identity: string; metrics: string }>;
  /** Fetches its /metrics text. */
  metrics(): Promise<string>;
  /** SIGKILL to its process group: no lease release, no cleanup, as in a node crash. */
  kill(): Promise<void>;
}

/** `kok operator` via tsx with leader election on, its work directory `<work>/<name>`, the shared backend. */
export function startOperatorProcess(meta: MetaCluster, name: string, resyncInterval = "30s"): OperatorProcess {
  const child = spawn(
    join(REPO, "node_modules", ".bin", "tsx"),
    [
      join(REPO, "src", "cli", "main.ts"), "operator",
      "--kubeconfig", meta.dev.kubeconfig,
      "--state-dir", join(meta.work, name),
      "--backend-url", meta.backendUrl,
      "--metrics-addr", "127.0.0.1:0",
      "--resync-interval", resyncInterval,
      "--leader-election-namespace", LEASE.namespace,
      "--policy", writeDevAdminPolicy(meta.work),
    ],
    { detached: true, stdio: ["ignore", "pipe", "inherit"], env: toolchainEngineEnv("kok-operator-e2e") },
  );
  let text = "";
  child.stdout?.on("data", (chunk: Buffer) => (text += chunk.toString()));
  const logs = () =>
    text
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  const started = () =>
    eventually(`operator ${name} started`, async () => {
      if (child.exitCode !== null) throw new Error(`operator ${name} exited with ${child.exitCode}`);
      const line = logs().find((l) => l.msg === "operator started");
      return line ? { identity: String(line.identity), metrics: String(line.metrics) } : undefined;
    });
  return {
    child,
    logs,
    started,
    async metrics() {
      const { metrics } = await started();
      return (await fetch(`http://${metrics}/metrics`)).text();
    },
    kill: () =>
      new Promise((done) => {
        if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return done();
        child.once("exit", () => done());
        process.kill(-child.pid, "SIGKILL");
      }),
  };
}

/**
 * The operator image (docker.io/kube-on-kube/operator:<package version>) into the meta-cluster's
 * registry, where its node pulls it through the docker.io mirror: the operator's Pod and the etcd
 * backup Jobs run it. `kok dev up` does not build it (50–100 s after each source change); CI builds
 * it before the tests, so here it is only hashed (a few seconds), unless the checkout changed since.
 */
export async function pushOperatorImage(meta: MetaCluster): Promise<{ cached: boolean }> {
  const images = await buildImages({ only: ["operator"] });
  await pushImages({ registry: `127.0.0.1:${meta.dev.portBase + 5000}`, images });
  return { cached: images[0]!.cached };
}
