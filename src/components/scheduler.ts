/** Scheduler: kube-scheduler of a business cluster, leader-elected in the business cluster. */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { objectNames, renderFlags, type ClusterContext } from "./cluster-context";
import { disruptionBudget, httpProbe, masterDeployment, masterSecret } from "./master-workload";
import { componentType, withLegacyAlias } from "./type-tokens";

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
      "tls-min-version": "VersionTLS12",
      profiling: "false",
    },
    ctx.spec.scheduler.extraArgs,
  );
}

export class Scheduler extends pulumi.ComponentResource {
  readonly deployment: k8s.apps.v1.Deployment;

  constructor(name: string, args: SchedulerArgs, opts?: pulumi.ComponentResourceOptions) {
    super(componentType("Scheduler"), name, {}, withLegacyAlias("Scheduler", opts));
    const ctx = args.cluster;
    const spec = ctx.spec.scheduler;
    const names = objectNames(ctx.name);
    const child = { parent: this };

    const files = { kubeconfig: args.kubeconfig };
    const secret = masterSecret(`${name}-kubeconfig`, ctx, names.schedulerKubeconfig, "kube-scheduler", files, child);
    this.deployment = masterDeployment(
      `${name}-deployment`,
      ctx,
      {
        objectName: names.scheduler,
        component: "kube-scheduler",
        replicas: spec.replicas,
        files,
        secretName: names.schedulerKubeconfig,
        mountPath: CONFIG_DIR,
        container: {
          image: spec.image,
          command: ["kube-scheduler", ...schedulerFlags(ctx)],
          ports: [{ name: "https", containerPort: SCHEDULER_PORT }],
          resources: spec.resources,
          startupProbe: httpProbe("/livez", SCHEDULER_PORT, "HTTPS", 24),
          readinessProbe: httpProbe("/readyz", SCHEDULER_PORT, "HTTPS", 3),
          livenessProbe: httpProbe("/livez", SCHEDULER_PORT, "HTTPS", 8),
        },
      },
      { parent: this, dependsOn: [secret] },
    );
    disruptionBudget(`${name}-pdb`, ctx, names.scheduler, "kube-scheduler", child);
    this.registerOutputs({});
  }
}
