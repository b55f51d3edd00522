/**
 * The steps that talk to the business cluster rather than to the host: they run `kubectl` on the
 * machine that runs Pulumi, with the admin kubeconfig on stdin (never on the command line or in a
 * file that outlives the step). Used for cordon/drain before a kubelet or runtime upgrade, the
 * Ready gate and uncordon after it, and drain + Node removal on delete. kubectl would run an `exec`
 * entry of that kubeconfig, so WorkerNode first rebuilds it from its server, CA and client
 * certificate (trusted-kubeconfig.ts).
 */
import YAML from "yaml";

const kubeconfigFromStdin = (step: string) => `set -euo pipefail
fail() { echo "kube-on-kube ${step}: $*" >&2; exit 1; }
command -v kubectl >/dev/null 2>&1 || fail "kubectl is not on the PATH of the machine running Pulumi"
kc=$(mktemp)
trap 'rm -f "$kc"' EXIT
chmod 600 "$kc"
cat > "$kc"
k() { kubectl --kubeconfig "$kc" --request-timeout=20s "$@"; }
`;

/** Drains the node if it is registered; a node that does not exist yet (fresh install) is fine. */
export function drainScript(node: string, timeoutSeconds: number): string {
  return `${kubeconfigFromStdin("drain")}if ! out=$(k get node ${node} -o name 2>&1); then
  case "$out" in *NotFound*|*"not found"*) echo "node ${node} is not registered; nothing to drain"; exit 0 ;; esac
  fail "cannot reach the business cluster to drain ${node}: $out"
fi
k drain ${node} --ignore-daemonsets --delete-emptydir-data --timeout=${timeoutSeconds}s
`;
}

/** On delete: drain, then remove the Node object. */
export function removeNodeScript(node: string, timeoutSeconds: number): string {
  return `${kubeconfigFromStdin("remove-node")}if k get node ${node} -o name >/dev/null 2>&1; then
  k drain ${node} --ignore-daemonsets --delete-emptydir-data --timeout=${timeoutSeconds}s || echo "drain of ${node} did not finish; removing the Node anyway" >&2
fi
k delete node ${node} --ignore-not-found
`;
}

/** The health gate: waits until the Node reports Ready, then uncordons it. */
export function readyScript(node: string, timeoutSeconds: number): string {
  return `${kubeconfigFromStdin("ready")}for _ in $(seq 1 ${timeoutSeconds}); do
  k get node ${node} -o name >/dev/null 2>&1 && break
  sleep 1
done
k wait --for=condition=Ready node/${node} --timeout=${timeoutSeconds}s || fail "node ${node} did not become Ready within ${timeoutSeconds}s"
k uncordon ${node}
`;
}

/** A kubeconfig for the kubelet: a client certificate (system:node:<name>) or a bootstrap token. */
export function kubeletKubeconfig(args: {
  endpoint: string;
  caCertificate: string;
  user: string;
  clientCertificate?: string;
  clientKey?: string;
  token?: string;
}): string {
  const b64 = (text: string) => Buffer.from(text).toString("base64");
  const user: Record<string, string> = args.token
    ? { token: args.token }
    : { "client-certificate-data": b64(args.clientCertificate ?? ""), "client-key-data": b64(args.clientKey ?? "") };
  return YAML.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "default", cluster: { server: args.endpoint, "certificate-authority-data": b64(args.caCertificate) } }],
    users: [{ name: args.user, user }],
    contexts: [{ name: "default", context: { cluster: "default", user: args.user } }],
    "current-context": "default",
  });
}
