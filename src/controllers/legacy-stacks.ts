/**
 * Migration of stacks created under the legacy names (`<namespace>-<name>`, which let Cluster
 * `team/prod-a` and Cluster `team-prod/a` share one stack) to `<namespace>.<name>`
 * (src/api/v1alpha1/names.ts; docs/architecture.md, "Names").
 *
 * A legacy stack is renamed only when it provably is this object's: its state holds the object's
 * component (ControlPlane or WorkerNode) under the object's own name, and, for a Cluster, the copy
 * of the admin kubeconfig in the object's own namespace. With the legacy name `<ns>-<name>` fixed,
 * the component's name fixes `<ns>`, so the other object of a colliding pair never matches. The
 * state is what the operator wrote itself; nothing a tenant writes (status included) is read.
 */
import { legacyStackNameOf, stackNameOf, type ObjectKey } from "../api/v1alpha1";
import type { StateResource, StackRunner } from "../runtime/stack-runner";

export type LegacyStacks = Pick<StackRunner, "resources" | "rename">;

/** The component a stack of each kind holds, named like the object. */
export type StackComponent = "ControlPlane" | "WorkerNode";

export type LegacyDecision =
  | { readonly action: "none" }
  | { readonly action: "migrate"; readonly from: string }
  | { readonly action: "leave"; readonly from: string; readonly reason: string };

const isComponent = (r: StateResource, component: StackComponent) => r.type.startsWith("kube-on-kube:") && r.type.endsWith(`:${component}`);

/**
 * What to do with the legacy stack of an object whose new stack does not exist yet (`current`
 * undefined). `legacy` is the legacy stack's state, undefined when there is none.
 */
export function decideLegacyStack(
  o: { readonly metadata: ObjectKey },
  component: StackComponent,
  current: readonly StateResource[] | undefined,
  legacy: readonly StateResource[] | undefined,
): LegacyDecision {
  if (current !== undefined || legacy === undefined) return { action: "none" };
  const from = legacyStackNameOf(o);
  const { namespace, name } = o.metadata;
  const components = legacy.filter((r) => isComponent(r, component));
  if (components.length === 0) return { action: "leave", from, reason: `it holds no ${component} (nothing to keep)` };
  if (!components.some((r) => r.name === name)) {
    return { action: "leave", from, reason: `its ${component} is ${components.map((r) => `"${r.name}"`).join(", ")}, not "${name}": it belongs to another object` };
  }
  // The admin kubeconfig copy (cluster-program.ts) is `<tenant namespace>/<name>-admin-kubeconfig`.
  const copy = legacy.find((r) => r.type === "kubernetes:core/v1:Secret" && r.name === `${name}-admin-kubeconfig-copy`);
  const copyNamespace = copy?.id?.split("/")[0];
  if (copyNamespace !== undefined && copyNamespace !== namespace) {
    return { action: "leave", from, reason: `its admin kubeconfig copy is in namespace "${copyNamespace}", not "${namespace}": it belongs to another object` };
  }
  return { action: "migrate", from };
}

export interface AdoptedStack {
  /** The object's stack (`<namespace>.<name>`). */
  readonly stack: string;
  /** Its state, undefined while it does not exist. */
  readonly resources: readonly StateResource[] | undefined;
  /** The legacy stack renamed into it just now. */
  readonly migratedFrom?: string;
  /** A legacy stack left alone, and why. */
  readonly left?: { readonly from: string; readonly reason: string };
}

/** Finds the object's stack, renaming its legacy stack to the new name first when there is one. */
export async function adoptLegacyStack(stacks: LegacyStacks, o: { readonly metadata: ObjectKey }, component: StackComponent): Promise<AdoptedStack> {
  const stack = stackNameOf(o);
  const current = await stacks.resources(stack);
  if (current !== undefined) return { stack, resources: current };
  const legacy = await stacks.resources(legacyStackNameOf(o));
  const decision = decideLegacyStack(o, component, current, legacy);
  if (decision.action === "leave") return { stack, resources: undefined, left: decision };
  if (decision.action === "none") return { stack, resources: undefined };
  await stacks.rename(decision.from, stack);
  return { stack, resources: legacy, migratedFrom: decision.from };
}
