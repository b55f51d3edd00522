import { describe, expect, it } from "vitest";
import { podSecurityLabels, podSecurityLevel } from "../../src/components/pod-security";

const withStorage = (storage: Record<string, unknown>) => ({ etcd: { storage } }) as unknown as Parameters<typeof podSecurityLevel>[0];

describe("the Pod Security level of a masters' namespace", () => {
  it("is restricted for a claim template and the volume types restricted admits", () => {
    expect(podSecurityLevel(withStorage({ claimTemplate: { size: "20Gi" } }))).toBe("restricted");
    expect(podSecurityLevel(withStorage({ volumeSource: { emptyDir: {} } }))).toBe("restricted");
    expect(podSecurityLevel(withStorage({ volumeSource: { persistentVolumeClaim: { claimName: "etcd" } } }))).toBe("restricted");
  });

  it("is baseline for another volume type an admin may allow, and privileged for hostPath, which baseline forbids", () => {
    expect(podSecurityLevel(withStorage({ volumeSource: { nfs: { server: "nfs.example.com", path: "/etcd" } } }))).toBe("baseline");
    expect(podSecurityLevel(withStorage({ volumeSource: { hostPath: { path: "/srv/etcd" } } }))).toBe("privileged");
  });

  it("audits and warns at restricted whatever it enforces", () => {
    expect(podSecurityLabels(withStorage({ volumeSource: { hostPath: { path: "/srv/etcd" } } }))).toEqual({
      "pod-security.kubernetes.io/enforce": "privileged",
      "pod-security.kubernetes.io/audit": "restricted",
      "pod-security.kubernetes.io/warn": "restricted",
    });
  });
});
