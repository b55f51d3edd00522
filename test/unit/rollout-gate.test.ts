/**
 * The RolloutGate's provider against a fake meta-cluster API (plain HTTP, the three reads it makes),
 * so its polling, selectors, timeout and error text are checked without a cluster. The real one
 * is exercised by the upgrade e2e (test/e2e/control-plane.test.ts).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { rolloutGateProvider } from "../../src/components/rollout-gate";

type Json = Record<string, unknown>;

/** One moment of the meta-cluster: the Deployment and what its selector finds. */
interface Moment {
  deployment: Json | "not found";
  replicaSets: Json[];
  pods: Json[];
}

const SELECTOR = { "kubeonkube.io/cluster": "e2e", "kubeonkube.io/component": "kube-apiserver" };

function deployment(observedGeneration: number, counts: { replicas: number; updated: number; available: number }): Json {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "e2e-apiserver", namespace: "e2e", uid: "uid-1", generation: 2, annotations: { "deployment.kubernetes.io/revision": "2" } },
    spec: { replicas: 1, selector: { matchLabels: SELECTOR }, template: { metadata: { labels: SELECTOR }, spec: { containers: [] } } },
    status: { observedGeneration, replicas: counts.replicas, updatedReplicas: counts.updated, availableReplicas: counts.available },
  };
}
const replicaSet = (hash: string, revision: string): Json => ({
  metadata: {
    name: `e2e-apiserver-${hash}`,
    labels: { "pod-template-hash": hash },
    annotations: { "deployment.kubernetes.io/revision": revision },
    ownerReferences: [{ apiVersion: "apps/v1", kind: "Deployment", name: "e2e-apiserver", uid: "uid-1", controller: true }],
  },
  spec: { selector: { matchLabels: SELECTOR } },
});
const pod = (hash: string, terminating = false): Json => ({
  metadata: { name: `e2e-apiserver-${hash}-x`, labels: { ...SELECTOR, "pod-template-hash": hash }, ...(terminating ? { deletionTimestamp: "2025-01-01T00:00:00Z" } : {}) },
});

const stale: Moment = { deployment: deployment(1, { replicas: 1, updated: 1, available: 1 }), replicaSets: [replicaSet("old", "1")], pods: [pod("old")] };
const oldTerminating: Moment = {
  deployment: deployment(2, { replicas: 1, updated: 1, available: 1 }),
  replicaSets: [replicaSet("old", "1"), replicaSet("new", "2")],
  pods: [pod("old", true), pod("new")],
};
const done: Moment = { ...oldTerminating, pods: [pod("new")] };

let server: Server;
let dir: string;
let kubeconfig: string;
/** What the fake API answers: one moment per observation, the last one repeating. */
let script: Moment[] = [];
let observation = 0;
const requests: string[] = [];

function answer(req: IncomingMessage): { status: number; body: Json } {
  const url = new URL(req.url ?? "/", "http://fake");
  requests.push(`${url.pathname}${url.search}`);
  const moment = script[Math.min(observation, script.length - 1)];
  switch (url.pathname) {
    case "/apis/apps/v1/namespaces/e2e/deployments/e2e-apiserver":
      if (moment.deployment === "not found") {
        return { status: 404, body: { kind: "Status", apiVersion: "v1", status: "Failure", message: 'deployments.apps "e2e-apiserver" not found', reason: "NotFound", code: 404 } };
      }
      return { status: 200, body: moment.deployment };
    case "/api/v1/namespaces/e2e/pods":
      return { status: 200, body: { apiVersion: "v1", kind: "PodList", metadata: {}, items: moment.pods } };
    case "/apis/apps/v1/namespaces/e2e/replicasets":
      // The last read of an observation of a Deployment: the next one sees the next moment.
      observation++;
      return { status: 200, body: { apiVersion: "apps/v1", kind: "ReplicaSetList", metadata: {}, items: moment.replicaSets } };
    default:
      return { status: 500, body: { message: `unexpected ${url.pathname}` } };
  }
}

const kubeconfigFor = (port: number) => `apiVersion: v1
kind: Config
clusters: [{ name: fake, cluster: { server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true } }]
users: [{ name: fake, user: { token: not-a-secret } }]
contexts: [{ name: fake, context: { cluster: fake, user: fake } }]
current-context: fake
`;

const inputs = (extra: Json = {}) => ({ kind: "Deployment" as const, namespace: "e2e", name: "e2e-apiserver", revision: "r2", kubeconfig, ...extra });

beforeAll(async () => {
  server = createServer((req, res) => {
    const { status, body } = answer(req);
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  dir = mkdtempSync(join(tmpdir(), "kok-gate-"));
  kubeconfig = kubeconfigFor((server.address() as AddressInfo).port);
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

afterEach(() => {
  requests.splice(0);
  observation = 0;
  delete process.env.KUBECONFIG;
});

describe("RolloutGate provider", { timeout: 20_000 }, () => {
  it("waits through a stale status and a terminating old Pod, then completes", async () => {
    script = [stale, oldTerminating, done];
    const started = Date.now();
    const created = await rolloutGateProvider.create!(inputs());
    // Exactly these keys: no kubeconfig, and no undefined value (the engine's Struct refuses one).
    expect(Object.keys(created.outs)).toEqual(["kind", "namespace", "name", "revision"]);
    expect(created.outs).toEqual({ kind: "Deployment", namespace: "e2e", name: "e2e-apiserver", revision: "r2" });
    expect(requests.filter((r) => r.startsWith("/apis/apps/v1/namespaces/e2e/deployments/"))).toHaveLength(3);
    const selector = encodeURIComponent("kubeonkube.io/cluster=e2e,kubeonkube.io/component=kube-apiserver");
    expect(requests).toContain(`/api/v1/namespaces/e2e/pods?labelSelector=${selector}`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(3_000);
  });

  it("fails after its timeout with one line naming the Deployment and what it still waits for", async () => {
    script = [oldTerminating];
    const error = await rolloutGateProvider.update!("id", {}, inputs({ timeoutSeconds: 1 })).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error?.message.split("\n")).toHaveLength(1);
    expect(error?.message).toBe(
      "Deployment e2e/e2e-apiserver did not finish rolling out within 1s; still waiting for 1 Pod of an older revision to go (e2e-apiserver-old-x Terminating)",
    );
  });

  it("reports an API error in the same line, as the reason it could not tell", async () => {
    script = [{ deployment: "not found", replicaSets: [], pods: [] }];
    await expect(rolloutGateProvider.create!(inputs({ timeoutSeconds: 1 }))).rejects.toThrow(
      /^Deployment e2e\/e2e-apiserver did not finish rolling out within 1s; still waiting for a readable Deployment \(HTTP 404: deployments\.apps "e2e-apiserver" not found\)$/,
    );
  });

  it("reads the ambient kubeconfig when it is given none", async () => {
    script = [done];
    const file = join(dir, "ambient.kubeconfig");
    writeFileSync(file, kubeconfig);
    process.env.KUBECONFIG = file;
    await rolloutGateProvider.create!(inputs({ kubeconfig: undefined }));
    expect(requests.length).toBeGreaterThanOrEqual(3);
  });

  it("diffs on a new revision or workload only, never on the kubeconfig or the timeout", async () => {
    const olds = { kind: "Deployment", namespace: "e2e", name: "e2e-apiserver", revision: "r2" };
    const diff = (news: Json) => rolloutGateProvider.diff!("id", olds, { ...olds, ...news });
    expect((await diff({ kubeconfig: "another", timeoutSeconds: 5 })).changes).toBe(false);
    expect((await diff({ revision: "r3" })).changes).toBe(true);
    expect((await diff({ name: "other" })).changes).toBe(true);
    expect((await diff({ revision: "r3" })).replaces).toEqual([]);
  });
});
