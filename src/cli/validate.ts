/**
 * `kok validate [--policy FILE] FILE...` (`-` reads standard input): the checks the components and the operator run, offline,
 * on YAML manifests of kube-on-kube resources, the admin policy included (the built-in one unless
 * `--policy` names the operator's). Exit code 1 when any document has a problem.
 */
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import {
  API_GROUP_VERSION,
  clusterNameProblems,
  clusterPolicyProblems,
  formatProblem,
  loadAdminPolicy,
  machineNameProblems,
  machinePolicyProblems,
  resolveAdminPolicy,
  validateClusterPackageVersionSpec,
  validateClusterSpec,
  validateMachineSpec,
  type ClusterSpec,
  type MachineSpec,
  type PolicyProblem,
  type Problem,
  type ResolvedAdminPolicy,
} from "../api/v1alpha1";

/** Validators per kind; the workers' and operator's kinds register theirs here too. */
export const KIND_VALIDATORS: Record<string, (spec: unknown) => Problem[]> = {
  Cluster: (spec) => validateClusterSpec(spec, "spec"),
  Machine: (spec) => validateMachineSpec(spec, "spec", { credentials: "secretRef" }),
  ClusterPackageVersion: (spec) => validateClusterPackageVersionSpec(spec, "spec"),
};

const NAME_RULES: Record<string, (name: string, namespace?: string) => Problem[]> = {
  Cluster: (name, namespace) => clusterNameProblems(name, "metadata.name", namespace),
  Machine: (name, namespace) => machineNameProblems(name, namespace),
};

/** The admin policy's checks, run on a spec the kind's validator accepted. */
const POLICY_RULES: Record<string, (spec: unknown, policy: ResolvedAdminPolicy) => PolicyProblem[]> = {
  Cluster: (spec, policy) => clusterPolicyProblems(spec as ClusterSpec, policy),
  Machine: (spec, policy) => machinePolicyProblems(spec as MachineSpec, policy),
};

/** A policy problem as a Problem whose message names the rule. */
const withRule = (p: PolicyProblem): Problem => ({ path: p.path, message: `${p.message} (admin policy: ${p.rule})` });

export interface DocumentReport {
  readonly file: string;
  readonly index: number;
  readonly subject: string;
  readonly problems: Problem[];
}

/** Every problem of every kube-on-kube document in a YAML text; other documents are ignored. */
export function validateManifests(file: string, text: string, policy: ResolvedAdminPolicy = resolveAdminPolicy()): DocumentReport[] {
  const reports: DocumentReport[] = [];
  parseAllDocuments(text).forEach((doc, index) => {
    if (doc.errors.length) {
      reports.push({ file, index, subject: `document ${index + 1}`, problems: doc.errors.map((e) => ({ path: "(yaml)", message: e.message })) });
      return;
    }
    const object = doc.toJS() as { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string }; spec?: unknown } | null;
    if (!object || object.apiVersion !== API_GROUP_VERSION) return;
    const kind = object.kind ?? "";
    const validate = KIND_VALIDATORS[kind];
    const name = object.metadata?.name ?? "";
    const subject = `${kind} ${object.metadata?.namespace ? `${object.metadata.namespace}/` : ""}${name || "(unnamed)"}`;
    if (!validate) {
      reports.push({ file, index, subject, problems: [{ path: "kind", message: `"${kind}" is not a kind of ${API_GROUP_VERSION} (${Object.keys(KIND_VALIDATORS).join(", ")})` }] });
      return;
    }
    const problems = [
      ...(NAME_RULES[kind]?.(name, object.metadata?.namespace) ?? (name ? [] : [{ path: "metadata.name", message: "is required" }])),
      ...validate(object.spec),
    ];
    if (problems.length === 0) problems.push(...(POLICY_RULES[kind]?.(object.spec, policy) ?? []).map(withRule));
    reports.push({ file, index, subject, problems });
  });
  return reports;
}

/** Exit codes: 0 all valid, 1 a document has a problem, 2 a bad policy file. */
export async function runValidate(files: readonly string[], flags: { readonly policy?: string } = {}): Promise<number> {
  let policy: ResolvedAdminPolicy;
  try {
    policy = flags.policy ? loadAdminPolicy(readFileSync(flags.policy, "utf8"), flags.policy) : resolveAdminPolicy();
  } catch (error) {
    console.error(`kok validate: ${(error as Error).message}`);
    return 2;
  }
  let failed = 0;
  let checked = 0;
  for (const file of files) {
    const text = readFileSync(file === "-" ? 0 : file, "utf8");
    for (const report of validateManifests(file, text, policy)) {
      checked++;
      if (report.problems.length === 0) {
        console.log(`ok    ${file}: ${report.subject}`);
        continue;
      }
      failed++;
      console.log(`error ${file}: ${report.subject}: ${report.problems.length} problem(s)`);
      for (const p of report.problems) console.log(`        - ${formatProblem(p)}`);
    }
  }
  if (checked === 0) console.log(`no ${API_GROUP_VERSION} resources found in ${files.join(", ")}`);
  return failed ? 1 : 0;
}
