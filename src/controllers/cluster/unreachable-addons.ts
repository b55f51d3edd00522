/**
 * Destroying a Cluster whose business apiserver cannot be reached (docs/architecture.md,
 * "Destroying with the business apiserver down"): the add-ons live in that cluster, so their
 * deletes cannot succeed, and without help the destroy fails forever and the masters' namespace
 * is never cleaned. pulumi-kubernetes can drop the resources of an unreachable cluster from the
 * state instead of deleting them (`deleteUnreachable`, or PULUMI_K8S_DELETE_UNREACHABLE when the
 * provider has no such input). The destroy sets that variable only when the state proves it can
 * reach nothing but the business cluster's provider: every other Kubernetes provider in the state
 * has `deleteUnreachable: false` pinned (an input overrides the variable), so an unreachable
 * meta-cluster still fails the destroy instead of losing the masters' objects from the state.
 */
import { BUSINESS_CLUSTER_PROVIDER } from "../../program/cluster-program";
import type { DestroyOptions, ResourceDiagnostic, StateResource } from "../../runtime/stack-runner";

export const KUBERNETES_PROVIDER_TYPE = "pulumi:providers:kubernetes";
export const DELETE_UNREACHABLE_ENV = "PULUMI_K8S_DELETE_UNREACHABLE";
/** The provider input read from the state before a destroy. */
export const DELETE_UNREACHABLE_INPUT = "deleteUnreachable";

export type AbandonDecision =
  /** Set the variable: only the business cluster's provider follows it. */
  | { readonly allow: true; readonly env: Readonly<Record<string, string>> }
  /**
   * A plain destroy: nothing to abandon (`addons` false), or setting it could drop other objects
   * (`addons` true: an unreachable business cluster fails this destroy; `reason` says why).
   */
  | { readonly allow: false; readonly addons: boolean; readonly reason: string };

const pinnedOff = (r: StateResource) => {
  const v = r.inputs?.[DELETE_UNREACHABLE_INPUT];
  return v === false || v === "false";
};

/**
 * Whether a destroy of this state may let the business cluster's resources be abandoned when its
 * apiserver is unreachable. `state` is `StackRunner.resources(stack, { inputs: [DELETE_UNREACHABLE_INPUT] })`.
 */
export function abandonDecision(state: readonly StateResource[] | undefined): AbandonDecision {
  const providers = (state ?? []).filter((r) => r.type === KUBERNETES_PROVIDER_TYPE);
  if (!providers.some((p) => p.name === BUSINESS_CLUSTER_PROVIDER)) return { allow: false, addons: false, reason: "the stack has no add-ons in the business cluster" };
  const unpinned = providers.filter((p) => p.name !== BUSINESS_CLUSTER_PROVIDER && !pinnedOff(p)).map((p) => p.name);
  if (unpinned.length) {
    return {
      allow: false,
      addons: true,
      reason: `provider(s) ${unpinned.join(", ")} in the stack's state have no deleteUnreachable: false (state written before it was pinned); an update of the Cluster writes it`,
    };
  }
  return { allow: true, env: { [DELETE_UNREACHABLE_ENV]: "true" } };
}

/** pulumi-kubernetes' words when it drops a resource of an unreachable cluster from the state. */
const ABANDONED = /cluster is unreachable and the `deleteUnreachable` option is enabled/;

/** Collects what a destroy abandoned, from the providers' diagnostics (DestroyOptions.onDiagnostic). */
export class AbandonedResources {
  private readonly seen = new Set<string>();

  readonly onDiagnostic: NonNullable<DestroyOptions["onDiagnostic"]> = (d: ResourceDiagnostic) => {
    if (ABANDONED.test(d.message)) this.seen.add(`${shortType(d.type)} ${d.name}`);
  };

  /** `Kind name` of each abandoned resource, sorted. */
  get list(): string[] {
    return [...this.seen].sort();
  }
}

/** `kubernetes:apps/v1:DaemonSet` → `DaemonSet`. */
function shortType(type: string): string {
  return type.slice(type.lastIndexOf(":") + 1) || type;
}

/** The Event's message for abandoned add-ons: how many, the first few, and why. */
export function abandonedMessage(abandoned: readonly string[]): string {
  const shown = abandoned.slice(0, 5).join(", ") + (abandoned.length > 5 ? `, and ${abandoned.length - 5} more` : "");
  return (
    `${abandoned.length} add-on object(s) abandoned, not deleted, because the business cluster's apiserver was unreachable (${shown}); ` +
    "they lived only in that cluster, whose masters this destroy removed"
  );
}
