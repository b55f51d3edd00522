/**
 * `RolloutGate`: a step that is done only when a Deployment's or StatefulSet's rollout has really
 * finished (see rollout-status.ts for what that means), for masters that must not start before
 * their predecessor's old Pods are gone.
 *
 * pulumi-kubernetes 4.25 can report an update of either kind done too early: a Deployment before
 * its old Pod is gone (pulumi-kubernetes#2941), a StatefulSet on the status its controller had
 * before it saw the new spec (#3329). Depending on the workload alone would then let the next
 * master start beside an old predecessor; depending on its gate does not.
 *
 * The gate waits when it is created and whenever `revision` (a digest of the workload's spec)
 * changes; nothing else makes it wait or show a diff, so an `up` with no change stays one. It
 * reads the meta-cluster itself, with the kubeconfig it is given (a secret input, never an
 * output) or else the engine's ambient one (KUBECONFIG, ~/.kube/config, in-cluster), so give
 * it the kubeconfig the Kubernetes provider uses.
 */
import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { deploymentRollout, labelSelectorQuery, statefulSetRollout, type RolloutVerdict } from "./rollout-status";

/* eslint-disable @typescript-eslint/no-require-imports -- the provider below is serialized into
   the state and run by the dynamic-provider plugin: it must load its modules when it runs. */

export const RolloutKind = { Deployment: "Deployment", StatefulSet: "StatefulSet" } as const;
export type RolloutKind = (typeof RolloutKind)[keyof typeof RolloutKind];

/** How long a gate waits by default: as long as pulumi-kubernetes waits for a Deployment. */
// Module-local for the provider's functions (see waitForRollout); exported under its public name.
const ROLLOUT_TIMEOUT_SECONDS = 600;
export const DEFAULT_ROLLOUT_TIMEOUT_SECONDS = ROLLOUT_TIMEOUT_SECONDS;

export interface RolloutGateArgs {
  /** The workload whose rollout to wait for (RollingUpdate strategy, no StatefulSet partition). */
  readonly workload: { readonly kind: RolloutKind; readonly namespace: pulumi.Input<string>; readonly name: pulumi.Input<string> };
  /**
   * What makes the gate wait again when it changes: a digest of the workload's spec
   * (`specRevision`), so a rollout of a new template or replica count is waited for.
   */
  readonly revision: pulumi.Input<string>;
  /** Kubeconfig of the meta-cluster; made a secret. Default: the engine's ambient kubeconfig. */
  readonly kubeconfig?: pulumi.Input<string>;
  /** Fail after this many seconds of waiting. Default: 600. */
  readonly timeoutSeconds?: pulumi.Input<number>;
}

interface GateInputs {
  kind: RolloutKind;
  namespace: string;
  name: string;
  revision: string;
  kubeconfig?: string;
  timeoutSeconds?: number;
}

type GateOutputs = Omit<GateInputs, "kubeconfig">;

/** A digest of a workload spec (template, replicas, strategy): changes exactly when it does. */
export function specRevision(spec: pulumi.Input<object>): pulumi.Output<string> {
  const canonical = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(canonical);
    if (typeof value !== "object" || value === null) return value;
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  };
  // The spec holds no secret (Secrets are mounted by name); unwrapped so the diff is readable.
  return pulumi.unsecret(pulumi.output(spec).apply((s) => createHash("sha256").update(JSON.stringify(canonical(s))).digest("hex")));
}

interface GateProvider extends pulumi.dynamic.ResourceProvider {
  waitForRollout(inputs: GateInputs): Promise<void>;
  observe(inputs: GateInputs, apis: { apps: unknown; core: unknown }): Promise<RolloutVerdict>;
}

/** Everything but the kubeconfig; no undefined value (the provider protocol's Struct refuses one). */
const outputsOf = (inputs: GateInputs): GateOutputs => ({
  kind: inputs.kind,
  namespace: inputs.namespace,
  name: inputs.name,
  revision: inputs.revision,
  ...(inputs.timeoutSeconds === undefined ? {} : { timeoutSeconds: inputs.timeoutSeconds }),
});

/** The first line a user needs from whatever @kubernetes/client-node threw. */
function apiErrorSummary(error: unknown): string {
  const { code, body, message } = (error ?? {}) as { code?: unknown; body?: unknown; message?: unknown };
  if (typeof code === "number") {
    let reason = "";
    try {
      reason = String((JSON.parse(String(body)) as { message?: string }).message ?? "");
    } catch {
      reason = "";
    }
    return `HTTP ${code}${reason ? `: ${reason}` : ""}`;
  }
  return String(message ?? error).split("\n")[0];
}

/**
 * The provider's functions are module-level functions, not methods reached through the exported
 * object: compiled to CommonJS, a reference to the exported `rolloutGateProvider` from inside its
 * own methods becomes `exports.rolloutGateProvider`, which Pulumi's closure serializer does not
 * carry into the provider process (the compiled operator failed with "Cannot read properties of
 * undefined (reading 'waitForRollout')"; the tsx-run tests did not).
 */
async function waitForRollout(inputs: GateInputs): Promise<void> {
  const k8s = require("@kubernetes/client-node") as typeof import("@kubernetes/client-node");
  const kc = new k8s.KubeConfig();
  if (inputs.kubeconfig) kc.loadFromString(inputs.kubeconfig);
  else kc.loadFromDefault();
  const apis = { apps: kc.makeApiClient(k8s.AppsV1Api), core: kc.makeApiClient(k8s.CoreV1Api) };
  const timeoutSeconds = inputs.timeoutSeconds ?? ROLLOUT_TIMEOUT_SECONDS;
  const deadline = Date.now() + timeoutSeconds * 1000;
  const pollMs = 2000;
  let waitingFor = "a first answer from the meta-cluster";
  for (;;) {
    const left = deadline - Date.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      // A request that hangs must not outlive the deadline.
      const timedOut = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("no answer from the meta-cluster")), Math.max(left, 1000))));
      const verdict = await Promise.race([observeRollout(inputs, apis), timedOut]);
      if (verdict.done) return;
      waitingFor = verdict.waitingFor;
    } catch (error) {
      waitingFor = `a readable ${inputs.kind} (${apiErrorSummary(error)})`;
    } finally {
      clearTimeout(timer);
    }
    if (Date.now() + pollMs > deadline) {
      // One line: the engine shows only the first line of a resource's error.
      throw new Error(`${inputs.kind} ${inputs.namespace}/${inputs.name} did not finish rolling out within ${timeoutSeconds}s; still waiting for ${waitingFor}`);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

async function observeRollout(inputs: GateInputs, apis: { apps: unknown; core: unknown }): Promise<RolloutVerdict> {
  type Api = typeof import("@kubernetes/client-node");
  const apps = apis.apps as InstanceType<Api["AppsV1Api"]>;
  const core = apis.core as InstanceType<Api["CoreV1Api"]>;
  const { namespace, name } = inputs;
  const workload =
    inputs.kind === "Deployment" ? await apps.readNamespacedDeployment({ name, namespace }) : await apps.readNamespacedStatefulSet({ name, namespace });
  const labelSelector = labelSelectorQuery(workload.spec?.selector);
  const pods = (await core.listNamespacedPod({ namespace, labelSelector })).items;
  if (inputs.kind === "StatefulSet") return statefulSetRollout(workload, pods);
  const replicaSets = (await apps.listNamespacedReplicaSet({ namespace, labelSelector })).items;
  return deploymentRollout(workload, replicaSets, pods);
}

/**
 * The provider. Serialized into the state by Pulumi's closure serializer, so it only uses what
 * it requires inside its functions and captures nothing else (in particular no kubeconfig).
 * Exported for its tests; the gate is used through `RolloutGate`.
 */
export const rolloutGateProvider: GateProvider = {
  async create(inputs: GateInputs) {
    await waitForRollout(inputs);
    return { id: `${inputs.kind}/${inputs.namespace}/${inputs.name}`, outs: outputsOf(inputs) };
  },
  async diff(_id: string, olds: GateOutputs, news: GateInputs) {
    // Only a new revision (or another workload) is a reason to wait again. A new kubeconfig or
    // timeout is taken as it is, without a diff, when there is next something to wait for.
    const keys = ["kind", "namespace", "name", "revision"] as const;
    return { changes: keys.some((k) => olds[k] !== news[k]), replaces: [], deleteBeforeReplace: false };
  },
  async update(_id: string, _olds: GateOutputs, news: GateInputs) {
    await waitForRollout(news);
    return { outs: outputsOf(news) };
  },
  waitForRollout,
  observe: observeRollout,
  async delete() {
    // Nothing to undo: the gate only ever read.
  },
};

export class RolloutGate extends pulumi.dynamic.Resource {
  declare readonly kind: pulumi.Output<RolloutKind>;
  declare readonly namespace: pulumi.Output<string>;
  declare readonly name: pulumi.Output<string>;
  declare readonly revision: pulumi.Output<string>;

  constructor(name: string, args: RolloutGateArgs, opts?: pulumi.CustomResourceOptions) {
    const inputs = {
      kind: args.workload.kind,
      namespace: args.workload.namespace,
      name: args.workload.name,
      revision: args.revision,
      // Inputs are stored in the state too: secret on the way in (never an output).
      kubeconfig: args.kubeconfig === undefined ? undefined : pulumi.secret(args.kubeconfig),
      timeoutSeconds: args.timeoutSeconds,
    };
    super(rolloutGateProvider, name, inputs, opts, "kube-on-kube", "RolloutGate");
  }
}
