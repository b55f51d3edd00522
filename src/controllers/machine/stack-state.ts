/**
 * A Machine whose stack's state cannot be read (controllers/stack-state.ts, as a Cluster's): Ready
 * and Progressing say so with reason StackStateUnreadable, naming the stack and what the engine
 * said, and one Warning Event of that reason replaces the path's usual one (InstallFailed,
 * RenewalFailed). The caller throws the error on, so the controller retries this Machine with
 * backoff; every other Machine has a stack of its own and is reconciled as usual.
 */
import type { MachineObject, MachineStatus } from "../../api/v1alpha1";
import { STACK_STATE_UNREADABLE, unreadableStateConditions } from "../stack-state";
import type { ConditionInput, MachineSteps } from "./options";

/**
 * Reports `error` on the Machine when it says its stack's state cannot be read, and returns true;
 * returns false, writing nothing, for any other error. `fields` are the status fields of the path
 * that failed (an install's phase and lastOperation, which rollouts read); `more` adds the path's
 * own conditions (a renewal's CertificatesCurrent), given the message.
 */
export async function reportUnreadableState(
  s: Pick<MachineSteps, "o" | "status">,
  machine: MachineObject,
  error: unknown,
  fields: Partial<MachineStatus>,
  more: (message: string) => ConditionInput[] = () => [],
): Promise<boolean> {
  // A Machine has no Degraded condition: Ready=False is its word for "not taken care of".
  const conditions = unreadableStateConditions(error, { degraded: false });
  if (!conditions) return false;
  const message = conditions[0]!.message;
  await s.status(machine, fields, [...conditions, ...more(message)]);
  await s.o.events.record(machine, "Warning", STACK_STATE_UNREADABLE, message);
  return true;
}
