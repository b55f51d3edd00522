#!/usr/bin/env node
/** `kok`: the kube-on-kube command. Each subcommand lives in its own module. */
import { runManifests } from "./manifests";
import { runMirror } from "./mirror";
import { runOperator } from "./operator";
import { runDev } from "./dev";
import { runValidate } from "./validate";

interface Command {
  readonly summary: string;
  readonly run: (argv: string[]) => Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  validate: { summary: "check kube-on-kube manifests offline, listing every problem", run: runValidate },
  mirror: {
    summary: "serve a directory of artifacts over HTTP, printing each URL and sha256",
    run: async (argv) => {
      await runMirror(argv);
      return 0;
    },
  },
  operator: { summary: "reconcile Cluster resources into Pulumi stacks (see docs/operator.md)", run: runOperator },
  manifests: { summary: "print the CRDs, RBAC and operator Deployment for a meta-cluster", run: runManifests },
  dev: { summary: "local meta-cluster and node for development: up, down, env, status, logs", run: runDev },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    "usage: kok <command> [args]",
    "",
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    "",
    "Docs: README.md, docs/operations.md, docs/api.md",
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`kok: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`kok: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
