/**
 * Process entry of the node agent's two processes, `entry supervisor --state-dir DIR` and
 * `entry worker --state-dir DIR`. Started directly rather than through the `kok` CLI, so each
 * process loads only what it runs (the CLI pulls in the operator, Pulumi's SDK and more).
 */
async function run(argv: string[]): Promise<number> {
  const [role, flag, stateDir] = argv;
  if (flag !== "--state-dir" || !stateDir) {
    console.error("usage: entry supervisor|worker --state-dir DIR");
    return 2;
  }
  if (role === "supervisor") return (await import("./supervisor")).runNodeAgentSupervisor(stateDir);
  if (role === "worker") return (await import("./main")).runNodeAgent(stateDir);
  console.error(`unknown node agent role "${role}"`);
  return 2;
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`node agent: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
