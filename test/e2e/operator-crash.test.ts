/**
 * Crash safety, for real: the operator runs as its own process (`kok operator`), is killed with
 * SIGKILL — its Pulumi CLI children included — in the middle of a Cluster's first `pulumi up`,
 * and a new operator process takes over. It must clear the dead process's stack lock and pending
 * operations before updating, and converge: the Cluster Ready, each master object exactly once.
 *
 * Then the masters' namespace is deleted under the running Cluster (etcd's volumes go with it):
 * the operator must not put the masters back empty on its own (MastersLost, no `up`), and does so
 * only once the recreate-masters annotation names that namespace, then removes the annotation.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mastersNamespaceOf, RECREATE_MASTERS_ANNOTATION } from "../../src/api/v1alpha1";
import { eventually, freeNodePort } from "../support/dev-cluster";
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
    meta.applyCluster("crash", minimalSpec({ apiServer: { service: { type: "NodePort", externalHost: "127.0.0.1", nodePort: await freeNodePort(), port: 6443 } } }));

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

describe("a Cluster whose masters' namespace was deleted", () => {
  it("is not re-created empty until the annotation names the namespace; then it is, and the annotation goes", async () => {
    let since = Date.now();
    const deletedAt = new Date(since).toISOString();
    meta.kubectl("delete", "namespace", MASTERS, "--wait=true", "--timeout=5m");
    const deleted = (Date.now() - since) / 1000;
    const lost = await eventually(
      "Cluster fleet/crash reports MastersLost",
      async () => {
        const c = meta.getCluster("crash");
        return c.status?.conditions?.find((x) => x.type === "Ready" && x.reason === "MastersLost") ? c : undefined;
      },
      300_000,
    );
    expect(lost.status?.phase).toBe("Failed");
    expect(lost.status?.lastOperation?.startedAt).toBeDefined();
    expect(lost.status!.lastOperation!.startedAt! < deletedAt, "no update started against the lost masters").toBe(true);
    expect(meta.kubectl("get", "namespace", MASTERS, "--ignore-not-found", "-o", "name").trim()).toBe("");
    const events = meta.kubectl("-n", "fleet", "get", "events", "--field-selector", "involvedObject.name=crash,reason=MastersLost", "-o", "jsonpath={.items[*].message}");
    expect(events).toContain(`${RECREATE_MASTERS_ANNOTATION}=${MASTERS}`);

    since = Date.now();
    meta.kubectl("-n", "fleet", "annotate", "cluster", "crash", `${RECREATE_MASTERS_ANNOTATION}=${MASTERS}`);
    await eventually(
      "Cluster fleet/crash Ready again with new masters, the annotation removed",
      async () => {
        // The annotation goes after the up that wrote Ready: wait for both.
        const c = meta.getCluster("crash");
        const ready = c.status?.phase === "Ready" && (c.status.lastOperation?.startedAt ?? "") > deletedAt && c.status.lastOperation?.result === "succeeded";
        return ready && c.metadata.annotations?.[RECREATE_MASTERS_ANNOTATION] === undefined ? c : undefined;
      },
      900_000,
    );
    const recreated = (Date.now() - since) / 1000;
    expect(meta.kubectl("-n", MASTERS, "get", "statefulsets", "-o", "name").trim()).toBe("statefulset.apps/crash-etcd");
    console.log(`masters' namespace deleted in ${deleted.toFixed(0)} s; re-created and Ready ${recreated.toFixed(0)} s after the annotation`);
  });
});
