/**
 * The parts every master workload shares: placement on the meta-cluster's master nodes, spreading
 * and disruption budgets in standard mode, the restricted securityContext (pod-security.ts), the
 * Secret that carries its certificates, and the checksum annotation that rolls its pods when that
 * Secret's (or its ConfigMap's) content changes.
 */
import { createHash } from "node:crypto";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { componentLabels, selectorLabels, type ClusterContext, type MasterComponent } from "./cluster-context";
import { MASTER_CONTAINER_SECURITY_CONTEXT, MASTER_POD_SECURITY_CONTEXT } from "./pod-security";

/** Pod template annotation whose change rolls the pods (certificates renewed, kubeconfig changed). */
export const CHECKSUM_ANNOTATION = "kubeonkube.io/secret-checksum";

type PodSpec = k8s.types.input.core.v1.PodSpec;

/** nodeSelector, tolerations and (standard mode) anti-affinity for one master component. */
export function podPlacement(ctx: ClusterContext, component: MasterComponent): Pick<PodSpec, "nodeSelector" | "tolerations" | "affinity"> {
  const { spec } = ctx;
  const placement: Pick<PodSpec, "nodeSelector" | "tolerations" | "affinity"> = {
    nodeSelector: Object.keys(spec.masterNodeSelector).length ? spec.masterNodeSelector : undefined,
    tolerations: spec.masterTolerations.length ? spec.masterTolerations : undefined,
  };
  if (!spec.highAvailability) return placement;
  const term = {
    labelSelector: { matchLabels: selectorLabels(ctx.name, component) },
    topologyKey: "kubernetes.io/hostname",
  };
  placement.affinity = {
    podAntiAffinity:
      spec.masterAntiAffinity === "required"
        ? { requiredDuringSchedulingIgnoredDuringExecution: [term] }
        : { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: term }] },
  };
  return placement;
}

/**
 * A stable digest of Secret content. Unwrapped from secret: a SHA-256 over key material reveals
 * nothing of it, and a readable annotation diff tells the operator *why* pods roll.
 */
export function secretChecksum(data: Record<string, pulumi.Input<string>>): pulumi.Output<string> {
  const keys = Object.keys(data).sort();
  return pulumi.unsecret(
    pulumi.all(keys.map((k) => data[k])).apply((values) => {
      const hash = createHash("sha256");
      keys.forEach((k, i) => hash.update(k).update("\0").update(values[i]).update("\0"));
      return hash.digest("hex");
    }),
  );
}

/** An Opaque Secret in the masters' namespace; its whole content is a Pulumi secret. */
export function masterSecret(
  resourceName: string,
  ctx: ClusterContext,
  objectName: string,
  component: MasterComponent,
  data: Record<string, pulumi.Input<string>>,
  opts: pulumi.CustomResourceOptions,
): k8s.core.v1.Secret {
  return new k8s.core.v1.Secret(
    resourceName,
    {
      metadata: { name: objectName, namespace: ctx.namespace, labels: componentLabels(ctx.name, component) },
      type: "Opaque",
      stringData: pulumi.secret(pulumi.output(data)) as pulumi.Output<Record<string, string>>,
    },
    opts,
  );
}

/** In standard mode: at most one pod of the component voluntarily disrupted at a time. */
export function disruptionBudget(
  resourceName: string,
  ctx: ClusterContext,
  objectName: string,
  component: MasterComponent,
  opts: pulumi.CustomResourceOptions,
): k8s.policy.v1.PodDisruptionBudget | undefined {
  if (!ctx.spec.highAvailability) return undefined;
  return new k8s.policy.v1.PodDisruptionBudget(
    resourceName,
    {
      metadata: { name: objectName, namespace: ctx.namespace, labels: componentLabels(ctx.name, component) },
      spec: { maxUnavailable: 1, selector: { matchLabels: selectorLabels(ctx.name, component) } },
    },
    opts,
  );
}

/** The volume and mount of a master's Secret, read-only, at `/etc/kubernetes/pki`. */
export function secretVolume(secretName: string, mountPath = "/etc/kubernetes/pki") {
  return {
    volume: { name: "pki", secret: { secretName, defaultMode: 0o400 } },
    mount: { name: "pki", mountPath, readOnly: true },
  };
}

/** The pod-level fields every master Pod shares: no meta-cluster credentials, restricted security. */
export function masterPodBasics(): Pick<PodSpec, "enableServiceLinks" | "automountServiceAccountToken" | "securityContext"> {
  return {
    enableServiceLinks: false,
    // The masters talk to their own business cluster only: no token of the meta-cluster.
    automountServiceAccountToken: false,
    securityContext: MASTER_POD_SECURITY_CONTEXT,
  };
}

/** An HTTPS or HTTP GET probe on localhost-independent pod port. */
export function httpProbe(path: string, port: number, scheme: "HTTP" | "HTTPS", failureThreshold: number) {
  return { httpGet: { path, port, scheme }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold };
}

type Container = k8s.types.input.core.v1.Container;

export interface MasterDeploymentParams {
  readonly objectName: string;
  readonly component: MasterComponent;
  readonly replicas: number;
  /** The Secret's files: mounted at `mountPath`, and their checksum rolls the pods. */
  readonly files: Record<string, pulumi.Input<string>>;
  readonly secretName: string;
  readonly mountPath: string;
  /** A ConfigMap's files, mounted read-only at its `mountPath`; their checksum rolls the pods too. */
  readonly configMap?: { readonly name: string; readonly mountPath: string; readonly files: Record<string, pulumi.Input<string>> };
  readonly container: Omit<Container, "name" | "volumeMounts" | "securityContext">;
  readonly strategy?: k8s.types.input.apps.v1.DeploymentStrategy;
}

/**
 * The Deployment spec kube-apiserver, kube-controller-manager and kube-scheduler share: one
 * container named after the component, its Secret mounted read-only, placed on the master nodes,
 * no ServiceAccount token of the meta-cluster (the masters talk to their own cluster only).
 */
export function masterDeploymentSpec(ctx: ClusterContext, p: MasterDeploymentParams): k8s.types.input.apps.v1.DeploymentSpec {
  const labels = componentLabels(ctx.name, p.component);
  const secret = secretVolume(p.secretName, p.mountPath);
  const config = p.configMap;
  const configFiles = Object.fromEntries(Object.entries(config?.files ?? {}).map(([file, text]) => [`configmap/${file}`, text]));
  const volumes = [secret.volume, ...(config ? [{ name: "config", configMap: { name: config.name } }] : [])];
  const mounts = [secret.mount, ...(config ? [{ name: "config", mountPath: config.mountPath, readOnly: true }] : [])];
  return {
    replicas: p.replicas,
    selector: { matchLabels: selectorLabels(ctx.name, p.component) },
    strategy: p.strategy,
    template: {
      metadata: { labels, annotations: { [CHECKSUM_ANNOTATION]: secretChecksum({ ...p.files, ...configFiles }) } },
      spec: {
        ...podPlacement(ctx, p.component),
        ...masterPodBasics(),
        containers: [{ ...p.container, name: p.component, securityContext: MASTER_CONTAINER_SECURITY_CONTEXT, volumeMounts: mounts }],
        volumes,
      },
    },
  };
}

/** A master's Deployment with the spec of `masterDeploymentSpec` (or the one given). */
export function masterDeployment(
  resourceName: string,
  ctx: ClusterContext,
  p: MasterDeploymentParams,
  opts: pulumi.CustomResourceOptions,
  spec: k8s.types.input.apps.v1.DeploymentSpec = masterDeploymentSpec(ctx, p),
): k8s.apps.v1.Deployment {
  return new k8s.apps.v1.Deployment(
    resourceName,
    { metadata: { name: p.objectName, namespace: ctx.namespace, labels: componentLabels(ctx.name, p.component) }, spec },
    opts,
  );
}
