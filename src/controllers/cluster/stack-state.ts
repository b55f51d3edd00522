/**
 * A Cluster whose stack's state cannot be read (a corrupt or truncated checkpoint in the backend):
 * only that Cluster fails, with a condition that names the stack and what the engine said, and
 * is retried with backoff (a person may restore the state meanwhile); every other Cluster is
 * reconciled as usual. The engine's error is classified in runtime/engine-errors.ts.
 */
import type { ConditionInput } from "../../runtime/conditions";
import { StackOperationError } from "../../runtime/stack-runner";

export const STACK_STATE_UNREADABLE = "StackStateUnreadable";

/** The conditions of a Cluster whose stack's state cannot be read, or undefined for any other error. */
export function unreadableStateConditions(error: unknown): ConditionInput[] | undefined {
  if (!(error instanceof StackOperationError) || error.kind !== "state-unreadable") return undefined;
  const message =
    `the state of stack ${error.stackName} in the state backend cannot be read, so nothing is applied until it is restored ` +
    `(docs/operator.md, "A corrupt stack"): ${error.message}`;
  return [
    { type: "Ready", status: "False", reason: STACK_STATE_UNREADABLE, message },
    { type: "Degraded", status: "True", reason: STACK_STATE_UNREADABLE, message },
    { type: "Progressing", status: "False", reason: STACK_STATE_UNREADABLE, message: "retrying with backoff" },
  ];
}
