/**
 * An object whose stack's state cannot be read (a corrupt or truncated checkpoint in the backend):
 * only that object fails, with conditions that name the stack and what the engine said, a Warning
 * Event, and a retry with backoff (a person may restore the state meanwhile); every other object
 * is reconciled as usual. Shared by the Cluster and the Machine controllers: the engine's error is
 * classified in runtime/engine-errors.ts, and the message, like every condition and Event, is
 * redacted by the status writer and the event recorder on its way out.
 */
import type { ConditionInput } from "../runtime/conditions";
import { StackOperationError } from "../runtime/stack-runner";

export const STACK_STATE_UNREADABLE = "StackStateUnreadable";

/**
 * The conditions of an object whose stack's state cannot be read, or undefined for any other
 * error: Ready=False and Progressing=False, and Degraded=True for a kind that has that condition
 * (a Cluster; a Machine tells its trouble in Ready alone). Ready comes first: its message is the
 * Event's.
 */
export function unreadableStateConditions(error: unknown, kind: { readonly degraded: boolean }): ConditionInput[] | undefined {
  if (!(error instanceof StackOperationError) || error.kind !== "state-unreadable") return undefined;
  const message =
    `the state of stack ${error.stackName} in the state backend cannot be read, so nothing is applied until it is restored ` +
    `(docs/operator.md, "A corrupt stack"): ${error.message}`;
  return [
    { type: "Ready", status: "False", reason: STACK_STATE_UNREADABLE, message },
    ...(kind.degraded ? [{ type: "Degraded", status: "True", reason: STACK_STATE_UNREADABLE, message } as const] : []),
    { type: "Progressing", status: "False", reason: STACK_STATE_UNREADABLE, message: "retrying with backoff" },
  ];
}
