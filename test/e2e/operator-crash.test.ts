/**
 * Crash safety, for real: the operator runs as its own process (`kok operator`), is killed with
 * SIGKILL — its Pulumi CLI children included — in the middle of a Cluster's first `pulumi up`,
 * and a new operator process takes over. It must clear the dead process's stack lock and pending
 * operations before updating, and converge: the Cluster Ready, each master object exactly once.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mastersNamespaceOf } from "../../src/api/v1alpha1";
import { eventually } from "../support/dev-cluster";
import { startMetaCluster, startOperatorProcess, type MetaCluster, type OperatorProcess } from "../support/operator-e2e";
import { minimalSpec } from "../support/specs";

/** The masters' namespace of Cluster fleet/crash (src/api/v1alpha1/names.ts). */
const MASTERS = mastersNamespaceOf({ metadata: { namespace: "fleet", name: "crash" } });

let meta: MetaCluster;
let operator: OperatorProcess | undefined;
const locks = () => execFileSync("find", [join(meta.work, "state", ".pulumi", "locks"), "-name", "*.json"], { encoding: "utf8" }).trim();

beforeAll(async () => {
  meta = await startMetaCluster("kok-crash-e2e");
});

afterAll(async () => {
  await operator?.kill();
  await meta?.down();
});

describe("an operator killed in the middle of an update", () => {
  it("is replaced by one that clears the stale lock and pending operations, then converges", async () => {
    operator = startOperatorProcess(meta, "operator");
    meta.applyCluster("crash", minimalSpec({ apiServer: { service: { type: "NodePort", externalHost: "127.0.0.1", nodePort: 31645, port: 6443 } } }));

    // Mid-update: the etcd StatefulSet exists (the update is running), the apiserver does not yet.
    await eventually("the first update half way", async () => (meta.kubectl("-n", MASTERS, "get", "statefulsets", "-o", "name").includes("crash-etcd") ? true : undefined), 600_000);
    await operator.kill();
    expect(locks(), "the killed update left its lock").not.toBe("");

    // The same work directory, as a restarted Pod with its volume would have.
    operator = startOperatorProcess(meta, "operator");
    // No fail-fast on a failed update here: a retry after the recovery is allowed to converge.
    const ready = await eventually(
      "Cluster fleet/crash Ready after the restart",
      async () => {
        const c = meta.getCluster("crash");
        return c.status?.phase === "Ready" && c.status.lastOperation?.result === "succeeded" ? c : undefined;
      },
      1_200_000,
    );
    expect(ready.status?.phase).toBe("Ready");
    // Nothing duplicated or orphaned: each master object once, in the cluster's namespace.
    expect(meta.kubectl("-n", MASTERS, "get", "statefulsets,deployments", "-o", "name").trim().split("\n").sort()).toEqual([
      "deployment.apps/crash-apiserver",
      "deployment.apps/crash-controller-manager",
      "deployment.apps/crash-scheduler",
      "statefulset.apps/crash-etcd",
    ]);
    expect(locks()).toBe("");
  });
});
