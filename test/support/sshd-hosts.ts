/** The tests' SSH hosts live in src/dev (the demo starts them too); see src/dev/test-hosts.ts. */
export * from "../../src/dev/test-hosts";
