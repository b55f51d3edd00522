/** The ValidatingAdmissionPolicies generated from an admin policy (the apiserver runs them in test/integration). */
import { describe, expect, it } from "vitest";
import { resolveAdminPolicy } from "../../src/api/v1alpha1";
import { admissionPolicies } from "../../src/operator/admission-policy";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const validations = (policy = resolveAdminPolicy(), kind = "clusters") =>
  ((admissionPolicies(policy) as Json[]).find((o) => o.kind === "ValidatingAdmissionPolicy" && o.metadata.name.endsWith(kind))?.spec.validations ?? []) as {
    expression: string;
    message: string;
  }[];

describe("admissionPolicies", () => {
  it("binds one policy per kind, matching only creates and spec changes (finalizers stay removable)", () => {
    const objects = admissionPolicies(resolveAdminPolicy()) as Json[];
    expect(objects.map((o) => `${o.kind} ${o.metadata.name}`)).toEqual([
      "ValidatingAdmissionPolicy kube-on-kube-admin-policy-clusters",
      "ValidatingAdmissionPolicyBinding kube-on-kube-admin-policy-clusters",
      "ValidatingAdmissionPolicy kube-on-kube-admin-policy-machines",
      "ValidatingAdmissionPolicyBinding kube-on-kube-admin-policy-machines",
    ]);
    expect(objects[0].spec.matchConditions[0].expression).toBe("oldObject == null || object.spec != oldObject.spec");
    expect(objects[1].spec.validationActions).toEqual(["Deny"]);
  });

  it("carries the policy's values and names each rule", () => {
    const policy = resolveAdminPolicy({ allowedRegistries: ["mirror.corp/k8s"], etcdVolumeTypes: ["hostPath"], hostPathPrefixes: ["/srv/etcd"] });
    const cluster = validations(policy);
    // registry.k8s.io is not allowed: an absent imageRepository (its default) is refused too.
    expect(cluster[0].expression).toBe("has(object.spec.imageRepository) && ['mirror.corp/k8s'].exists(r, object.spec.imageRepository == r || object.spec.imageRepository.startsWith(r + '/'))");
    expect(cluster.map((v) => v.message)).toEqual(
      expect.arrayContaining([
        "spec.etcd.storage.claimTemplate is not an allowed etcd volume type (admin policy: etcdVolumeTypes)",
        "spec.etcd.storage.volumeSource.emptyDir is not an allowed etcd volume type (admin policy: etcdVolumeTypes)",
        "spec.etcd.storage.volumeSource.hostPath.path must be under /srv/etcd (admin policy: hostPathPrefixes)",
      ]),
    );
    const flannel = cluster.find((v) => v.message.startsWith("spec.addons.network.image"));
    expect(flannel?.expression).toBe(
      "!(has(object.spec.addons) && has(object.spec.addons.network) && has(object.spec.addons.network.image)) || object.spec.addons.network.image == 'docker.io/flannel/flannel:v0.28.10' || ['mirror.corp/k8s'].exists(r, object.spec.addons.network.image == r || object.spec.addons.network.image.startsWith(r + '/'))",
    );
    expect(validations(resolveAdminPolicy(), "machines").map((v) => v.expression)).toEqual([
      "!isIP(object.spec.ip) || ['0.0.0.0/0', '::/0'].exists(c, cidr(c).containsIP(object.spec.ip))",
      "!isIP(object.spec.ip) || !['127.0.0.0/8', '::1/128'].exists(c, cidr(c).containsIP(object.spec.ip))",
    ]);
  });

  it("gates the backup endpoint with the policy's entries: special addresses, listed hosts, http only where allowed", () => {
    const rules = validations(resolveAdminPolicy({ allowedBackupEndpoints: [{ host: "s3.example.com" }, { host: "*.r2.example.net" }, { cidr: "10.20.0.0/16", plainHttp: true }, { host: "192.0.2.9" }] }));
    const backup = rules.filter((r) => r.message.includes("allowedBackupEndpoints"));
    expect(backup).toHaveLength(3);
    const host = "url(object.spec.etcd.backup.store.s3.endpoint).getHostname()";
    expect(backup[0].expression).toContain(`ip(${host}).isGlobalUnicast()`);
    expect(backup[0].expression).toContain("'metadata.google.internal'");
    expect(backup[1].expression).toBe(
      `!(has(object.spec.etcd) && has(object.spec.etcd.backup)) || ${host} == 's3.example.com' || (!isIP(${host}) && ${host}.endsWith('.r2.example.net')) || (isIP(${host}) && cidr('10.20.0.0/16').containsIP(${host})) || (isIP(${host}) && ip(${host}) == ip('192.0.2.9'))`,
    );
    expect(backup[2].expression).toBe(`!(has(object.spec.etcd) && has(object.spec.etcd.backup)) || url(object.spec.etcd.backup.store.s3.endpoint).getScheme() == 'https' || (isIP(${host}) && cidr('10.20.0.0/16').containsIP(${host}))`);
    // Nothing listed (the default): every backup endpoint is refused.
    expect(validations().find((r) => r.message.includes("endpoint must be one of"))?.expression).toBe("!(has(object.spec.etcd) && has(object.spec.etcd.backup)) || false");
  });
});
