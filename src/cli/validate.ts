/**
 * `kok validate FILE...`: the checks the components and the operator run, offline, on YAML
 * manifests of kube-on-kube resources. Exit code 1 when any document has a problem.
 */
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import {
  API_GROUP_VERSION,
  clusterNameProblems,
  formatProblem,
  validateClusterPackageVersionSpec,
  validateClusterSpec,
  validateMachineSpec,
  type Problem,
} from "../api/v1alpha1";

/** Validators per kind; the workers' and operator's kinds register theirs here too. */
export const KIND_VALIDATORS: Record<string, (spec: unknown) => Problem[]> = {
  Cluster: (spec) => validateClusterSpec(spec, "spec"),
  Machine: (spec) => validateMachineSpec(spec, "spec", { credentials: "secretRef" }),
  ClusterPackageVersion: (spec) => validateClusterPackageVersionSpec(spec, "spec"),
};

const NAME_RULES: Record<string, (name: string) => Problem[]> = {
  Cluster: (name) => clusterNameProblems(name),
};

export interface DocumentReport {
  readonly file: string;
  readonly index: number;
  readonly subject: string;
  readonly problems: Problem[];
}

/** Every problem of every kube-on-kube document in a YAML text; other documents are ignored. */
export function validateManifests(file: string, text: string): DocumentReport[] {
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
    const problems = [...(NAME_RULES[kind]?.(name) ?? (name ? [] : [{ path: "metadata.name", message: "is required" }])), ...validate(object.spec)];
    reports.push({ file, index, subject, problems });
  });
  return reports;
}

export async function runValidate(argv: string[]): Promise<number> {
  if (argv.length === 0) {
    console.error("usage: kok validate FILE [FILE...]   (YAML manifests; '-' reads standard input)");
    return 2;
  }
  let failed = 0;
  let checked = 0;
  for (const file of argv) {
    const text = readFileSync(file === "-" ? 0 : file, "utf8");
    for (const report of validateManifests(file, text)) {
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
  if (checked === 0) console.log(`no ${API_GROUP_VERSION} resources found in ${argv.join(", ")}`);
  return failed ? 1 : 0;
}
