/** The worker artifacts live in src/dev (the demo serves them too); see src/dev/worker-artifacts.ts. */
export * from "../../src/dev/worker-artifacts";
