/**
 * The test harnesses that also run outside vitest: real apiservers, the local meta-cluster, and
 * sandbox worker hosts. This is the one route by which bench/ reaches test code (the benchmarks
 * measure the same worlds the tests build); nothing here imports vitest.
 */
export { startTestApiserver } from "./apiserver";
export { devUp, freeNodePort, installCrds, kok, newDevCluster, type DevCluster } from "./dev-cluster";
export { SANDBOX_WORKER_DEFAULTS, startFleetHosts, type FleetHosts } from "./fleet-hosts";
export type { SshHost } from "./sshd-hosts";
