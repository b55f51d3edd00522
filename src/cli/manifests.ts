/**
 * `kok manifests`: install YAML on stdout (program.ts declares the flags). With
 * `--policy`, also that admin policy as a ConfigMap the operator reads (`kok operator --policy`)
 * and as ValidatingAdmissionPolicies (admission-policy.ts), so the apiserver refuses what the
 * operator would. With `--worker-defaults`, that file as a ConfigMap the operator reads.
 */
import { readFileSync } from "node:fs";
import { parse, stringify } from "yaml";
import { loadAdminPolicy } from "../api/v1alpha1";
import { admissionPolicies } from "../operator/admission-policy";
import { installManifests } from "../operator/install-manifests";

/** The flags as commander hands them over (program.ts declares them and their defaults). */
export interface ManifestsFlags {
  readonly namespace: string;
  readonly image?: string;
  readonly backendUrl?: string;
  readonly passphraseSecret: string;
  readonly crdsOnly?: boolean;
  readonly operatorHeapMb: string;
  readonly terminationGraceSeconds: string;
  readonly policy?: string;
  /** `kok operator --worker-defaults`'s file, shipped as a ConfigMap (the chart's workerDefaults). */
  readonly workerDefaults?: string;
  /** The chart's values that are flags too (docs/helm.md). */
  readonly replicas?: string;
  readonly concurrency?: string;
  readonly clusterWorkers?: string;
  readonly machineWorkers?: string;
  readonly secretsProvider?: string;
  readonly objectStoreSecret?: string;
}

/** An optional count flag: undefined when not given, else an integer of at least 1 (or the error). */
function count(name: string, value: string | undefined): number | undefined | string {
  if (value === undefined) return undefined;
  const n = Number(value);
  return Number.isInteger(n) && n >= 1 ? n : `kok manifests: --${name} "${value}" must be an integer of at least 1`;
}

/** Exit codes: 0, or 2 for a bad flag or policy file (nothing is printed on stdout then). */
export async function runManifests(flags: ManifestsFlags): Promise<number> {
  let admission: Record<string, unknown>[] = [];
  let policyText: string | undefined;
  if (flags.policy) {
    try {
      policyText = readFileSync(flags.policy, "utf8");
      admission = admissionPolicies(loadAdminPolicy(policyText, flags.policy));
    } catch (error) {
      console.error(`kok manifests: --policy: ${(error as Error).message}`);
      return 2;
    }
  }
  let workerDefaultsText: string | undefined;
  if (flags.workerDefaults) {
    try {
      workerDefaultsText = readFileSync(flags.workerDefaults, "utf8");
      const parsed: unknown = parse(workerDefaultsText);
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not a YAML mapping of worker settings");
    } catch (error) {
      console.error(`kok manifests: --worker-defaults ${flags.workerDefaults}: ${(error as Error).message}`);
      return 2;
    }
  }
  const heap = Number(flags.operatorHeapMb);
  if (!Number.isInteger(heap) || heap < 64) {
    console.error(`kok manifests: --operator-heap-mb "${flags.operatorHeapMb}" must be an integer of at least 64 (MB)`);
    return 2;
  }
  const grace = Number(flags.terminationGraceSeconds);
  if (!Number.isInteger(grace) || grace < 30) {
    console.error(`kok manifests: --termination-grace-seconds "${flags.terminationGraceSeconds}" must be an integer of at least 30`);
    return 2;
  }
  const counts: Record<string, number | undefined> = {};
  for (const [name, value] of [["replicas", flags.replicas], ["concurrency", flags.concurrency], ["cluster-workers", flags.clusterWorkers], ["machine-workers", flags.machineWorkers]] as const) {
    const n = count(name, value);
    if (typeof n === "string") {
      console.error(n);
      return 2;
    }
    counts[name] = n;
  }
  let objects: Record<string, unknown>[];
  try {
    objects = installManifests({
      namespace: flags.namespace,
      image: flags.image,
      backendUrl: flags.backendUrl,
      passphraseSecret: flags.passphraseSecret,
      operatorHeapMb: heap,
      terminationGracePeriodSeconds: grace,
      policyText,
      workerDefaultsText,
      replicas: counts.replicas,
      concurrency: counts.concurrency,
      clusterWorkers: counts["cluster-workers"],
      machineWorkers: counts["machine-workers"],
      secretsProvider: flags.secretsProvider,
      objectStoreCredentialsSecret: flags.objectStoreSecret,
    })
      .concat(admission)
      .filter((o) => !flags.crdsOnly || o.kind === "CustomResourceDefinition");
  } catch (error) {
    // Two replicas on the file backend (FILE_BACKEND_ONE_REPLICA).
    console.error(`kok manifests: ${(error as Error).message}`);
    return 2;
  }
  process.stdout.write(objects.map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join("---\n"));
  if (!flags.crdsOnly && flags.secretsProvider === undefined) {
    const ns = flags.namespace;
    console.error(
      `# Before applying: create the state passphrase Secret, e.g.\n` +
        `#   kubectl create namespace ${ns}\n` +
        `#   kubectl -n ${ns} create secret generic ${flags.passphraseSecret} --from-literal=passphrase="$(openssl rand -base64 32)"`,
    );
  }
  return 0;
}
