import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { cleanKubeconfig } from "../support/kubeconfigs";
import { installMocks, settle, valueOf } from "../support/pulumi-mocks";

const recorder = installMocks({
  stackOutputs: {
    endpoint: "https://prod-a.k8s.example.com:6443",
    caCertificate: "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
    caPrivateKey: "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n",
    adminKubeconfig: cleanKubeconfig("https://prod-a.k8s.example.com:6443"),
  },
});

describe("examples/workers", () => {
  it("adds ten machines with two canaries first, then batches of 30%", async () => {
    const hostKeys = Object.fromEntries(
      Array.from({ length: 10 }, (_, i) => [`worker-${String(i + 1).padStart(4, "0")}`, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0c3rT8b6y0d3kZ0u1mQ4fC9xV2p7bN5wA1sE8hJkL"]),
    );
    // The mock runtime names the project kube-on-kube, so the example's config lives under that key.
    pulumi.runtime.setAllConfig(
      {
        "kube-on-kube:controlPlaneStack": "acme/kok-control-plane-example/prod",
        "kube-on-kube:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n",
        "kube-on-kube:hostKeys": JSON.stringify(hostKeys),
        "kube-on-kube:containerdSha256": "a".repeat(64),
        "kube-on-kube:kubeletSha256": "b".repeat(64),
        "kube-on-kube:cniSha256": "c".repeat(64),
      },
      ["kube-on-kube:sshPrivateKey"],
    );
    const program = await import("../../examples/workers/index");
    const rollout = await valueOf(program.rollout as unknown as string[][]);
    expect(rollout[0]).toEqual(["worker-0001", "worker-0002"]);
    expect(rollout.flat()).toHaveLength(10);
    expect(rollout.slice(1).every((batch) => batch.length <= 3)).toBe(true);
    await settle();
    expect(recorder.ofType("kube-on-kube:index:WorkerNode")).toHaveLength(10);
  });
});
