/**
 * A small workload for a business cluster: `hello`, two busybox httpd Pods spread over two nodes,
 * each answering with its own name and node, behind a ClusterIP Service `hello` and a headless
 * Service `hello-headless`. `npm start` runs it at the end to show the cluster doing real work
 * (pod network, kube-proxy, CoreDNS), and the workloads e2e test checks the same objects. The
 * image is the small busybox that `kok images build` makes and the dev registry serves.
 */
export const HELLO_IMAGE = "docker.io/library/busybox:1.35.0";
export const HELLO_PORT = 8080;

type Obj = Record<string, unknown>;

export interface HelloOptions {
  readonly namespace?: string;
  readonly replicas?: number;
  readonly image?: string;
}

/**
 * The page names the Pod and its node, so a client sees which replica answered. httpd serves
 * an emptyDir: the image's root file system stays untouched and the Pod needs no root.
 */
const SERVE = [
  "mkdir -p /www",
  'printf "hello from %s on %s\\n" "$POD_NAME" "$NODE_NAME" > /www/index.html',
  `exec httpd -f -v -p ${HELLO_PORT} -h /www`,
].join(" && ");

export function helloWorkload(options: HelloOptions = {}): Obj[] {
  const namespace = options.namespace ?? "default";
  const labels = { app: "hello" };
  const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });
  const deployment: Obj = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { namespace, name: "hello", labels },
    spec: {
      replicas: options.replicas ?? 2,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          // One replica per node while there are enough nodes, so the Service spans hosts.
          topologySpreadConstraints: [{ maxSkew: 1, topologyKey: "kubernetes.io/hostname", whenUnsatisfiable: "DoNotSchedule", labelSelector: { matchLabels: labels } }],
          securityContext: { runAsUser: 65534, runAsGroup: 65534, runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
          containers: [
            {
              name: "httpd",
              image: options.image ?? HELLO_IMAGE,
              command: ["sh", "-c", SERVE],
              env: [fieldEnv("POD_NAME", "metadata.name"), fieldEnv("NODE_NAME", "spec.nodeName")],
              ports: [{ name: "http", containerPort: HELLO_PORT }],
              readinessProbe: { httpGet: { path: "/", port: HELLO_PORT }, periodSeconds: 2 },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
              volumeMounts: [{ name: "www", mountPath: "/www" }],
              resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { memory: "32Mi" } },
            },
          ],
          volumes: [{ name: "www", emptyDir: { medium: "Memory", sizeLimit: "1Mi" } }],
        },
      },
    },
  };
  const service = (name: string, headless: boolean): Obj => ({
    apiVersion: "v1",
    kind: "Service",
    metadata: { namespace, name, labels },
    spec: {
      selector: labels,
      ...(headless ? { clusterIP: "None" } : {}),
      ports: [{ name: "http", port: headless ? HELLO_PORT : 80, targetPort: HELLO_PORT }],
    },
  });
  return [deployment, service("hello", false), service("hello-headless", true)];
}
