/**
 * The operator's read of a Cluster's backup store Secret (src/controllers/cluster/backup-credentials.ts):
 * only in the Cluster's own namespace, both keys required, the values handed over as Pulumi secrets,
 * and no value in any error.
 */
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { etcdBackupProgramArgs, type SecretReader } from "../../src/controllers/cluster/backup-credentials";
import type { ClusterObject, ClusterSpec } from "../../src/api/v1alpha1";
import { minimalSpec } from "../support/specs";

const spec = (name = "store"): ClusterSpec => {
  const base = minimalSpec();
  return {
    ...base,
    etcd: {
      ...base.etcd,
      backup: { store: { s3: { bucket: "kok-backups", prefix: "a", endpoint: "https://s3.example.com", credentialsSecretRef: { name } } } },
    },
  };
};
const cluster = (s: ClusterSpec): Pick<ClusterObject, "metadata" | "spec"> => ({ metadata: { namespace: "team-a", name: "prod" }, spec: s });
const unwrap = (o: pulumi.Input<string> | undefined) => new Promise<string>((resolve) => pulumi.output(o).apply((v) => resolve(v as string)));

/** Secrets of two tenants; the reader records what it was asked for. */
function reader(): SecretReader & { asked: string[] } {
  const secrets: Record<string, Record<string, string>> = {
    "team-a/store": { accessKeyId: "TEST-ONLY-AKID-A", secretAccessKey: "TEST-ONLY-SECRET-A" },
    "team-a/half": { accessKeyId: "TEST-ONLY-AKID-H" },
    "team-b/store": { accessKeyId: "TEST-ONLY-AKID-B", secretAccessKey: "TEST-ONLY-SECRET-B" },
  };
  const asked: string[] = [];
  const read = async (namespace: string, name: string) => {
    asked.push(`${namespace}/${name}`);
    return secrets[`${namespace}/${name}`];
  };
  return Object.assign(read, { asked });
}

describe("etcdBackupProgramArgs", () => {
  it("reads nothing for a Cluster without backups", async () => {
    const read = reader();
    expect(await etcdBackupProgramArgs(cluster(minimalSpec()), read, undefined)).toBeUndefined();
    expect(read.asked).toEqual([]);
  });

  it("reads the Secret in the Cluster's namespace and passes both keys as secrets", async () => {
    const read = reader();
    const args = await etcdBackupProgramArgs(cluster(spec()), read, "registry.example.com/kok/operator:1.2.3");
    expect(read.asked).toEqual(["team-a/store"]);
    expect(args?.image).toBe("registry.example.com/kok/operator:1.2.3");
    expect(args?.clusterRef).toBe("team-a/prod");
    const credentials = args?.credentials;
    expect(await pulumi.isSecret(pulumi.output(credentials?.accessKeyId))).toBe(true);
    expect(await pulumi.isSecret(pulumi.output(credentials?.secretAccessKey))).toBe(true);
    expect(await unwrap(credentials?.accessKeyId)).toBe("TEST-ONLY-AKID-A");
    expect(await unwrap(credentials?.secretAccessKey)).toBe("TEST-ONLY-SECRET-A");
  });

  it("never reads another namespace, whatever the reference's name looks like", async () => {
    for (const name of ["team-b/store", "../team-b/store", "team-b.store"]) {
      const read = reader();
      await expect(etcdBackupProgramArgs(cluster(spec(name)), read, undefined)).rejects.toThrow(/not found/);
      expect(read.asked).toEqual([`team-a/${name}`]);
    }
  });

  it("names the Secret and the missing key, and no value", async () => {
    const missing = etcdBackupProgramArgs(cluster(spec("nope")), reader(), undefined);
    await expect(missing).rejects.toThrow("spec.etcd.backup.store.s3.credentialsSecretRef: Secret team-a/nope not found; create it with the keys accessKeyId and secretAccessKey");
    const half = await etcdBackupProgramArgs(cluster(spec("half")), reader(), undefined).catch((e: Error) => e.message);
    expect(half).toBe("spec.etcd.backup.store.s3.credentialsSecretRef: Secret team-a/half has no secretAccessKey");
    expect(half).not.toContain("TEST-ONLY");
    await expect(etcdBackupProgramArgs(cluster(spec()), undefined, undefined)).rejects.toThrow(/cannot read Secrets/);
  });
});
