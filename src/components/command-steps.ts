/**
 * @pulumi/command, loaded only when a WorkerNode runs its steps with it (`stepProvider`
 * "command", the default). It is an optional peer dependency: a program that only uses the
 * control-plane components, or runs its worker steps with the OpenSSH client, never loads it and
 * need not install it (its install script fetches a provider plugin). Only its types are
 * imported at compile time; `import type` leaves no `require` in the compiled module.
 */
import type * as commandModule from "@pulumi/command";

export type PulumiCommand = typeof commandModule;
export type RemoteConnectionArgs = commandModule.types.input.remote.ConnectionArgs;

const PACKAGE = "@pulumi/command";

/** Whether `error` says that `PACKAGE` itself cannot be found (not one of its own dependencies). */
function isMissing(error: unknown): boolean {
  const e = error as NodeJS.ErrnoException;
  return e?.code === "MODULE_NOT_FOUND" && typeof e.message === "string" && e.message.includes(`'${PACKAGE}'`);
}

/**
 * Loads @pulumi/command for the WorkerNode `owner`, or throws an error that names the package to
 * install and the alternative step provider. `load` is the loader (Node's `require` by default).
 */
export function loadPulumiCommand(owner: string, load: (id: string) => unknown = require): PulumiCommand {
  try {
    return load(PACKAGE) as PulumiCommand;
  } catch (error) {
    if (!isMissing(error)) throw error;
    throw new Error(
      `${owner}: stepProvider "command" (the default) runs the steps with ${PACKAGE}, an optional peer dependency that is not installed: ` +
        `run \`npm install ${PACKAGE}\` (its provider plugin comes with it), or set stepProvider: "openssh" to run them with the OpenSSH client`,
    );
  }
}
