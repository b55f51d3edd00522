/**
 * `kok manifests [--namespace NS] [--image IMG] [--backend-url URL] [--operator-heap-mb 512]
 *                [--termination-grace-seconds 1800] [--policy FILE]`: install YAML on stdout. With
 * `--policy`, also that admin policy as a ConfigMap the operator reads (`kok operator --policy`)
 * and as ValidatingAdmissionPolicies (admission-policy.ts), so the apiserver refuses what the
 * operator would.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { loadAdminPolicy } from "../api/v1alpha1";
import { admissionPolicies } from "../operator/admission-policy";
import { installManifests } from "../operator/install-manifests";

export async function runManifests(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      namespace: { type: "string" },
      image: { type: "string" },
      "backend-url": { type: "string" },
      "passphrase-secret": { type: "string" },
      "crds-only": { type: "boolean" },
      "operator-heap-mb": { type: "string" },
      "termination-grace-seconds": { type: "string" },
      policy: { type: "string" },
    },
  });
  let admission: Record<string, unknown>[] = [];
  let policyText: string | undefined;
  if (values.policy) {
    try {
      policyText = readFileSync(values.policy, "utf8");
      admission = admissionPolicies(loadAdminPolicy(policyText, values.policy));
    } catch (error) {
      console.error(`kok manifests: --policy: ${(error as Error).message}`);
      return 2;
    }
  }
  const heap = values["operator-heap-mb"] === undefined ? undefined : Number(values["operator-heap-mb"]);
  if (heap !== undefined && (!Number.isInteger(heap) || heap < 64)) {
    console.error(`kok manifests: --operator-heap-mb "${values["operator-heap-mb"]}" must be an integer of at least 64 (MB)`);
    return 2;
  }
  const grace = values["termination-grace-seconds"] === undefined ? undefined : Number(values["termination-grace-seconds"]);
  if (grace !== undefined && (!Number.isInteger(grace) || grace < 30)) {
    console.error(`kok manifests: --termination-grace-seconds "${values["termination-grace-seconds"]}" must be an integer of at least 30`);
    return 2;
  }
  const objects = installManifests({
    namespace: values.namespace,
    image: values.image,
    backendUrl: values["backend-url"],
    passphraseSecret: values["passphrase-secret"],
    operatorHeapMb: heap,
    terminationGracePeriodSeconds: grace,
    policyText,
  })
    .concat(admission)
    .filter((o) => !values["crds-only"] || o.kind === "CustomResourceDefinition");
  process.stdout.write(objects.map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join("---\n"));
  const ns = values.namespace ?? "kube-on-kube-system";
  if (!values["crds-only"]) {
    console.error(
      `# Before applying: create the state passphrase Secret, e.g.\n` +
        `#   kubectl create namespace ${ns}\n` +
        `#   kubectl -n ${ns} create secret generic ${values["passphrase-secret"] ?? "kube-on-kube-operator-state-passphrase"} --from-literal=passphrase="$(openssl rand -base64 32)"`,
    );
  }
  return 0;
}
