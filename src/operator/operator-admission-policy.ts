/**
 * The write boundary of the operator's ServiceAccount, as a ValidatingAdmissionPolicy
 * (admissionregistration.k8s.io/v1, GA in Kubernetes 1.30). RBAC grants the operator writes on
 * Namespaces and on the masters' kinds in every namespace, because masters' namespaces are created
 * at run time and RBAC cannot select by label (operator-rbac.ts). This policy, bound to the
 * operator's user only, narrows those writes to what the operator owns:
 *
 * - a Namespace may be created only with the label `app.kubernetes.io/managed-by: kube-on-kube`,
 *   updated only when it carries the label before and after (no adopting `kube-system` by adding
 *   it, no dropping it), deleted only when it carries it; never the system namespaces nor the
 *   operator's own, label or not;
 * - a namespaced object of the masters' kinds may be written only in such a namespace
 *   (`namespaceObject`, the namespace as stored, not as the request claims);
 * - except the kubeconfig copies: Opaque Secrets named `*-admin-kubeconfig` (the admin's) or
 *   `<cluster>.kubeconfig.<entry>` (each spec.kubeconfigs entry's), which the Cluster stack writes
 *   next to the Cluster in the tenant's namespace. Opaque, so the operator cannot mint a
 *   ServiceAccount token Secret in a tenant's namespace under such a name.
 *
 * Events, Leases and the kube-on-kube kinds are not matched: RBAC alone bounds them.
 */
// The label every masters' namespace carries, and the names the operator may write an admin
// kubeconfig copy under outside masters' namespaces: derived in the api, nowhere else.
import { ADMIN_KUBECONFIG_SUFFIX, MANAGED_BY as MANAGED_BY_VALUE, MANAGED_BY_LABEL, USER_KUBECONFIG_COPY_PATTERN } from "../api/v1alpha1";

type Json = Record<string, unknown>;

/** Namespaced kinds whose writes the policy confines. Wider than what RBAC grants, on purpose. */
export const CONFINED_RESOURCES: ReadonlyArray<{ readonly group: string; readonly resources: readonly string[] }> = [
  { group: "", resources: ["secrets", "configmaps", "services", "pods", "persistentvolumeclaims", "serviceaccounts"] },
  { group: "apps", resources: ["deployments", "statefulsets", "daemonsets", "replicasets"] },
  { group: "batch", resources: ["jobs", "cronjobs"] },
  { group: "policy", resources: ["poddisruptionbudgets"] },
  { group: "networking.k8s.io", resources: ["networkpolicies"] },
  { group: "rbac.authorization.k8s.io", resources: ["roles", "rolebindings"] },
];

const cel = (s: string) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
const labelled = (o: string) => `has(${o}.metadata.labels) && ${cel(MANAGED_BY_LABEL)} in ${o}.metadata.labels && ${o}.metadata.labels[${cel(MANAGED_BY_LABEL)}] == ${cel(MANAGED_BY_VALUE)}`;

/** Namespaces that are never the operator's to change, whatever their labels say. */
export function protectedNamespaces(operatorNamespace: string): string[] {
  return [...new Set(["kube-system", "kube-public", "kube-node-lease", operatorNamespace])];
}

export function operatorAdmissionPolicy(options: { namespace: string; serviceAccount: string; labels: Record<string, string> }): Json[] {
  const name = `${options.serviceAccount}-boundary`;
  const user = `system:serviceaccount:${options.namespace}:${options.serviceAccount}`;
  const protectedList = `[${protectedNamespaces(options.namespace).map(cel).join(", ")}]`;
  const ops = ["CREATE", "UPDATE", "DELETE"];
  const isNamespace = "request.resource.group == '' && request.resource.resource == 'namespaces'";
  return [
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicy",
      metadata: { name, labels: options.labels },
      spec: {
        // Fail closed: if the policy cannot be evaluated, the operator's write is refused.
        failurePolicy: "Fail",
        matchConstraints: {
          resourceRules: [
            { apiGroups: [""], apiVersions: ["*"], operations: [...ops], resources: ["namespaces"] },
            ...CONFINED_RESOURCES.map((r) => ({ apiGroups: [r.group], apiVersions: ["*"], operations: [...ops], resources: [...r.resources] })),
          ],
        },
        matchConditions: [{ name: "is-the-operator", expression: `request.userInfo.username == ${cel(user)}` }],
        variables: [
          { name: "protectedNamespace", expression: `request.name in ${protectedList}` },
          { name: "inProtectedNamespace", expression: `request.namespace in ${protectedList}` },
          // The namespace as stored: a masters' namespace carries the label.
          { name: "inMastersNamespace", expression: `namespaceObject != null && ${labelled("namespaceObject")}` },
          {
            name: "isKubeconfigCopy",
            expression:
              `request.resource.group == '' && request.resource.resource == 'secrets' && (request.name.endsWith(${cel(ADMIN_KUBECONFIG_SUFFIX)}) || request.name.matches(${cel(USER_KUBECONFIG_COPY_PATTERN)})) && ` +
              `(request.operation == 'DELETE' || (has(object.type) && object.type == 'Opaque'))`,
          },
        ],
        validations: [
          {
            expression: `!(${isNamespace}) || (!variables.protectedNamespace && (request.operation == 'CREATE' || (${labelled("oldObject")})) && (request.operation == 'DELETE' || (${labelled("object")})))`,
            messageExpression: `'kube-on-kube operator: Namespace ' + request.name + ' is not one it manages (only namespaces labelled ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}, never a system namespace or its own): ' + request.operation + ' refused'`,
            reason: "Forbidden",
          },
          {
            expression: `(${isNamespace}) || (!variables.inProtectedNamespace && (variables.inMastersNamespace || variables.isKubeconfigCopy))`,
            messageExpression:
              `'kube-on-kube operator: ' + request.operation + ' of ' + request.resource.resource + ' ' + request.namespace + '/' + request.name + ` +
              `' refused: it writes only in the namespaces of hosted masters (labelled ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}) and Opaque Secrets named *${ADMIN_KUBECONFIG_SUFFIX} or <cluster>.kubeconfig.<entry> next to a Cluster'`,
            reason: "Forbidden",
          },
        ],
      },
    },
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicyBinding",
      metadata: { name, labels: options.labels },
      spec: { policyName: name, validationActions: ["Deny"] },
    },
  ];
}
