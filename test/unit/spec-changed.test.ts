import { describe, expect, it } from "vitest";
import type { ClusterObject } from "../../src/api/v1alpha1";
import { specChanged } from "../../src/operator/operator";

const cluster = (generation: number, extra: Partial<ClusterObject["metadata"]> = {}) =>
  ({ metadata: { name: "a", namespace: "fleet", generation, ...extra } }) as ClusterObject;

describe("specChanged (which informer changes wake the Cluster reconciler)", () => {
  it("ignores the operator's own status writes but not spec, deletion or finalizer changes", () => {
    let current: ClusterObject | undefined = cluster(1);
    const wake = specChanged(() => current);
    expect(wake("fleet/a", "add")).toBe(true);
    expect(wake("fleet/a", "update")).toBe(false); // a status write: same generation
    current = cluster(2);
    expect(wake("fleet/a", "update")).toBe(true);
    current = cluster(2, { finalizers: ["kubeonkube.io/cluster-stack"] });
    expect(wake("fleet/a", "update")).toBe(true);
    current = cluster(2, { finalizers: ["kubeonkube.io/cluster-stack"], deletionTimestamp: new Date() });
    expect(wake("fleet/a", "update")).toBe(true);
    expect(wake("fleet/a", "resync")).toBe(true);
    current = undefined;
    expect(wake("fleet/a", "delete")).toBe(true);
  });
});
