/** Scheduler: kube-scheduler of a business cluster, leader-elected in the business cluster. */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { componentLabels, objectNames, renderFlags, selectorLabels, type ClusterContext } from "./cluster-context";
import { CHECKSUM_ANNOTATION, disruptionBudget, FORCE_APPLY_ANNOTATIONS, httpProbe, masterSecret, podPlacement, secretChecksum, secretVolume } from "./master-workload";

export interface SchedulerArgs {
  readonly cluster: ClusterContext;
  /** Kubeconfig of `system:kube-scheduler` (a Pulumi secret). */
  readonly kubeconfig: pulumi.Input<string>;
}

const CONFIG_DIR = "/etc/kubernetes/scheduler";
export const SCHEDULER_PORT = 10259;

export function schedulerFlags(ctx: ClusterContext): string[] {
  const kubeconfig = `${CONFIG_DIR}/kubeconfig`;
  return renderFlags(
    {
      kubeconfig,
      "authentication-kubeconfig": kubeconfig,
      "authorization-kubeconfig": kubeconfig,
      "bind-address": "0.0.0.0",
      "secure-port": String(SCHEDULER_PORT),
      "leader-elect": "true",
    },
    ctx.spec.scheduler.extraArgs,
  );
}

export class Scheduler extends pulumi.ComponentResource {
  readonly deployment: k8s.apps.v1.Deployment;

  constructor(name: string, args: SchedulerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("kube-on-kube:masters:Scheduler", name, {}, opts);
    const ctx = args.cluster;
    const spec = ctx.spec.scheduler;
    const names = objectNames(ctx.name);
    const labels = componentLabels(ctx.name, "kube-scheduler");
    const child = { parent: this };

    const files = { kubeconfig: args.kubeconfig };
    const secret = masterSecret(`${name}-kubeconfig`, ctx, names.schedulerKubeconfig, "kube-scheduler", files, child);
    const config = secretVolume(names.schedulerKubeconfig, CONFIG_DIR);

    this.deployment = new k8s.apps.v1.Deployment(
      `${name}-deployment`,
      {
        metadata: { name: names.scheduler, namespace: ctx.namespace, labels, annotations: FORCE_APPLY_ANNOTATIONS },
        spec: {
          replicas: spec.replicas,
          selector: { matchLabels: selectorLabels(ctx.name, "kube-scheduler") },
          template: {
            metadata: { labels, annotations: { [CHECKSUM_ANNOTATION]: secretChecksum(files) } },
            spec: {
              ...podPlacement(ctx, "kube-scheduler"),
              enableServiceLinks: false,
              automountServiceAccountToken: false,
              containers: [
                {
                  name: "kube-scheduler",
                  image: spec.image,
                  command: ["kube-scheduler", ...schedulerFlags(ctx)],
                  ports: [{ name: "https", containerPort: SCHEDULER_PORT }],
                  resources: spec.resources,
                  volumeMounts: [config.mount],
                  startupProbe: httpProbe("/livez", SCHEDULER_PORT, "HTTPS", 24),
                  readinessProbe: httpProbe("/readyz", SCHEDULER_PORT, "HTTPS", 3),
                  livenessProbe: httpProbe("/livez", SCHEDULER_PORT, "HTTPS", 8),
                },
              ],
              volumes: [config.volume],
            },
          },
        },
      },
      { parent: this, dependsOn: [secret] },
    );
    disruptionBudget(`${name}-pdb`, ctx, names.scheduler, "kube-scheduler", child);
    this.registerOutputs({});
  }
}
