/**
 * What new etcd certificates do to the members (src/components/etcd.ts,
 * `certificatesReloadInPlace`): with data on volumes that outlive the Pods, a new certificate rolls
 * the members and the rollout gate waits for it; with an emptyDir, the members keep running (etcd
 * reads its certificate per connection, a restart would start them empty), so the gate's revision
 * leaves the checksum out. The engine side (the annotation's `ignoreChanges`) is shown by
 * test/e2e/control-plane-renewal.test.ts: the member runs on and serves its renewed certificate.
 */
import * as pulumi from "@pulumi/pulumi";
import { beforeEach, describe, expect, it } from "vitest";
import { installMocks, plain, settle } from "../support/pulumi-mocks";
import { minimalSpec } from "../support/specs";
import { resolveClusterSpec, type ClusterSpec } from "../../src/api/v1alpha1";
import { certificatesReloadInPlace, Etcd } from "../../src/components/etcd";

const recorder = installMocks();
beforeEach(() => recorder.reset());

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const ON_CLAIMS: ClusterSpec["etcd"]["storage"] = { claimTemplate: { size: "1Gi" } };
const ON_EMPTY_DIR: ClusterSpec["etcd"]["storage"] = { volumeSource: { emptyDir: {} } };
const pair = (pem: string) => ({ certPem: pulumi.output(pem), keyPem: pulumi.secret(`${pem}-key`) });

/** The members' template checksum and the rollout gate's revision for one set of leaves. */
async function render(storage: ClusterSpec["etcd"]["storage"], serverPem: string): Promise<{ checksum: string; revision: string }> {
  recorder.reset();
  const spec = minimalSpec({ etcd: { version: "3.6.16", storage } });
  new Etcd("e", { cluster: { name: "e", namespace: "kok-e", spec: resolveClusterSpec(spec), metaClusterDomain: "cluster.local" }, certificates: { ca: pair("CA"), server: pair(serverPem), peer: pair("PEER") } });
  await settle();
  const sts = plain<Obj>(recorder.named("e-statefulset").inputs);
  return { checksum: sts.spec.template.metadata.annotations["kubeonkube.io/secret-checksum"], revision: plain<Obj>(recorder.named("e-rollout").inputs).revision };
}

describe("new etcd certificates and the members", () => {
  it("roll the members of an etcd on claims, and the gate waits for it", async () => {
    const before = await render(ON_CLAIMS, "SERVER-1");
    const after = await render(ON_CLAIMS, "SERVER-2");
    expect(after.checksum).not.toBe(before.checksum);
    expect(after.revision).not.toBe(before.revision);
  });

  it("leave the members of an emptyDir etcd running: the gate has no roll to wait for", async () => {
    const before = await render(ON_EMPTY_DIR, "SERVER-1");
    const after = await render(ON_EMPTY_DIR, "SERVER-2");
    expect(after.revision).toBe(before.revision);
    expect(certificatesReloadInPlace(ON_EMPTY_DIR)).toBe(true);
    expect(certificatesReloadInPlace(ON_CLAIMS)).toBe(false);
    expect(certificatesReloadInPlace({ volumeSource: { hostPath: { path: "/var/lib/kok-etcd" } } })).toBe(false);
  });
});
