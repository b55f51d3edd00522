/** The operator tests' worker hosts live in src/dev (the demo starts them too); see src/dev/sandbox-fleet.ts. */
export * from "../../src/dev/sandbox-fleet";
