/**
 * The schema of NodePool for the component package (see schema.ts); it reuses WorkerNode's types
 * (worker-schema.ts registers them first). `rollout.maxUnavailable`, an integer or a percentage
 * in the API, is a string here (IntOrPercent in schema-types.ts).
 */
import * as api from "../api/v1alpha1";
import { ref, str, typeToken, type TypeCollector } from "./schema-types";
import { nodeOptions } from "./worker-schema";

export function nodePoolResource(collector: TypeCollector): Record<string, unknown> {
  const packageVersion = collector.property(api.ClusterPackageVersionSpec, "packageVersion", "ClusterPackageVersionSpec");
  collector.types[typeToken("NodePoolMachine")] = {
    type: "object",
    properties: {
      name: str("Unique in the pool; the WorkerNode is named <pool>-<name>."),
      spec: ref("MachineSpec"),
      credentials: { ...ref("WorkerCredentials"), description: "Overrides the pool's credentials for this machine." },
      installRoot: str("Overrides the pool's installRoot for this machine."),
    },
    required: ["name", "spec"],
  };
  // WorkerNode's types (KubeletSettings, Preflight...) are registered by worker-schema.ts first.
  collector.types[typeToken("NodePoolNodeOptions")] = {
    type: "object",
    description: "Options passed to every WorkerNode (see WorkerNode's inputs of the same names).",
    properties: nodeOptions(),
  };
  return {
    isComponent: true,
    description: "Many WorkerNodes under one package catalog, rolled out as a gray release: the canary first, then maxUnavailable at a time.",
    inputProperties: {
      machines: { type: "array", items: ref("NodePoolMachine") },
      packageVersion: { ...packageVersion, description: "The catalog and its rollout (a ClusterPackageVersion's spec)." },
      previousPackages: { ...ref("WorkerPackages"), description: "What machines outside the canary keep while rollout.pauseAfterCanary holds the rollout." },
      resume: { type: "boolean", description: "Lifts pauseAfterCanary. Default: false." },
      credentials: ref("WorkerCredentials"),
      cluster: ref("WorkerCluster"),
      node: ref("NodePoolNodeOptions"),
    },
    requiredInputs: ["machines", "packageVersion", "credentials", "cluster"],
    properties: {
      observedVersions: {
        type: "object",
        additionalProperties: { type: "object", additionalProperties: { type: "string" } },
        description: "Versions read back from each host, by machine name.",
      },
    },
    required: ["observedVersions"],
  };
}
