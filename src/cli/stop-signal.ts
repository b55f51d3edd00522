/**
 * Waiting for the signal that stops a long-running command (`kok operator`) while its work drains.
 *
 * Found by running the operator in a Pod: `helm upgrade` sent SIGTERM and the container died at
 * once with 143 instead of letting the `pulumi up` in flight finish, leaving its stack locked for
 * the next leader. @pulumi/pulumi's Automation API runs the CLI through execa, which registers
 * signal-exit for as long as each engine command runs; its handler re-raises the signal when it
 * finds no other listener. A `process.once` listener registered before it is removed before
 * signal-exit's runs, so signal-exit found itself alone and killed the process (only while an
 * update ran: exactly the case the grace period is for). These listeners stay for the process's life.
 */

export type StopSignal = "SIGINT" | "SIGTERM";

export interface StopSignalOptions {
  /** Told of every signal after the first (ignored: the drain goes on; a Pod's grace period ends with SIGKILL). */
  readonly onRepeat?: (signal: StopSignal) => void;
}

/** Resolves with the first SIGINT or SIGTERM; the handlers are never removed (see above). */
export function untilStopSignal(options: StopSignalOptions = {}): Promise<StopSignal> {
  return new Promise((resolve) => {
    let received = false;
    const handler = (signal: StopSignal) => {
      if (received) return options.onRepeat?.(signal);
      received = true;
      resolve(signal);
    };
    process.on("SIGINT", handler);
    process.on("SIGTERM", handler);
  });
}
