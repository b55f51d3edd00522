/**
 * Entry point of the root `Pulumi.yaml`: one business cluster from stack config.
 *
 *   kube-on-kube:cluster          the ClusterSpec (an object; required)
 *   kube-on-kube:name             the cluster's name (default: the stack name)
 *   kube-on-kube:namespace        meta-cluster namespace (default: the name)
 *   kube-on-kube:kubeconfig       meta-cluster kubeconfig, set with --secret (default: $KUBECONFIG)
 *   kube-on-kube:runningVersion   the version that runs now, to guard upgrades (optional)
 *   kube-on-kube:runningEtcdVersion  etcd's version that runs now, to guard its changes (optional)
 *   kube-on-kube:etcdBackupCredentials  with spec.etcd.backup: { accessKeyId, secretAccessKey }
 *                                 of the store, set with --secret --path
 *   kube-on-kube:backupImage      the image of `kok etcd backup|restore` (default: the operator's)
 *   kube-on-kube:caRotation       the step of a CA rotation: { generation, trusting,
 *                                 previousServiceAccountKey, etcd?: { generation, step } }
 *                                 (src/components/ca-rotation.ts; default: never rotated)
 */
import * as pulumi from "@pulumi/pulumi";
import { SpecValidationError, validateClusterSpec, type ClusterSpec } from "../api/v1alpha1";
import type { CaRotationInput } from "../components/ca-rotation";
import { clusterProgram } from "./cluster-program";

const config = new pulumi.Config("kube-on-kube");
const spec = config.getObject<ClusterSpec>("cluster");
const problems = validateClusterSpec(spec, "kube-on-kube:cluster");
if (problems.length) {
  throw new SpecValidationError(`stack ${pulumi.getStack()} config`, problems);
}

const outputs = clusterProgram({
  name: config.get("name") ?? pulumi.getStack(),
  spec: spec as ClusterSpec,
  namespace: config.get("namespace"),
  metaKubeconfig: config.getSecret("kubeconfig"),
  running: { kubernetesVersion: config.get("runningVersion"), etcdVersion: config.get("runningEtcdVersion") },
  etcdBackup: backupArgs(),
  caRotation: config.getObject<CaRotationInput>("caRotation"),
});

/** The store's credentials as secrets, when configured; ControlPlane names what is missing. */
function backupArgs() {
  const credentials = config.getSecretObject<{ accessKeyId: string; secretAccessKey: string }>("etcdBackupCredentials");
  return {
    credentials: credentials && { accessKeyId: credentials.apply((c) => c.accessKeyId), secretAccessKey: credentials.apply((c) => c.secretAccessKey) },
    image: config.get("backupImage"),
  };
}

export const namespace = outputs.namespace;
export const endpoint = outputs.endpoint;
export const caCertificate = outputs.caCertificate;
export const adminKubeconfig = outputs.adminKubeconfig;
export const adminKubeconfigSecret = outputs.adminKubeconfigSecret;
export const version = outputs.version;
export const certificatesExpireAt = outputs.certificatesExpireAt;
