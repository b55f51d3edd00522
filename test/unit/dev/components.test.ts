import { describe, expect, it } from "vitest";
import { componentPlans, pkiLeaves } from "../../../src/dev/components";
import { defaultConfig, stateTag } from "../../../src/dev/config";

describe("local meta-cluster plan", () => {
  const config = defaultConfig("/tmp/kok-state", 20000);

  it("puts every process on loopback ports derived from the base", () => {
    const plans = componentPlans(config);
    expect(plans.map((p) => [p.name, p.port])).toEqual([
      ["etcd", 22379],
      ["kube-apiserver", 26443],
      ["kube-controller-manager", 30257],
      ["kube-scheduler", 30259],
    ]);
    const apiserver = plans[1].args;
    expect(apiserver).toContain("--bind-address=127.0.0.1");
    expect(apiserver).toContain("--authorization-mode=Node,RBAC");
    expect(apiserver).toContain("--kubelet-certificate-authority=/tmp/kok-state/pki/ca.crt");
    expect(apiserver).toContain("--service-account-issuer=https://kubernetes.default.svc.cluster.local");
    expect(apiserver).toContain("--etcd-servers=https://127.0.0.1:22379");
  });

  it("signs the apiserver for loopback and its own Service IP, admin as system:masters", () => {
    const leaves = pkiLeaves(config);
    expect(leaves.find((l) => l.file === "apiserver")?.ipAddresses).toEqual(["127.0.0.1", "10.0.0.1"]);
    expect(leaves.find((l) => l.file === "admin")?.organization).toBe("system:masters");
  });

  it("tags network objects by state directory, within IFNAMSIZ", () => {
    expect(stateTag("/tmp/a")).not.toBe(stateTag("/tmp/b"));
    expect(`kok${stateTag("/tmp/a")}h`.length).toBeLessThanOrEqual(15);
  });
});
