/**
 * The add-on half of the live fingerprint (live-fingerprint.ts) without an apiserver: which lists
 * it asks the business cluster for (a loopback HTTP server records them; never a Secret), how the
 * fingerprint follows an add-on object that changes or disappears, and the bound on a business
 * apiserver that accepts a connection and never answers.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { Socket } from "node:net";
import { KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import {
  abortedBy,
  ADDON_LABEL,
  ADDON_OBJECT_TYPES,
  addonListers,
  fingerprintOf,
  readAddonObjects,
  type AddonLister,
} from "../../src/controllers/cluster/live-fingerprint";

type Obj = { kind: string; namespace?: string; name: string; uid: string; resourceVersion: string };

/** Listers over an in-memory business cluster; records the selectors asked for. */
function fakeBusiness(objects: Obj[]) {
  const selectors: string[] = [];
  const listers = ADDON_OBJECT_TYPES.map((type) => {
    const kind = type.slice(type.lastIndexOf(":") + 1);
    const list: AddonLister = async (labelSelector) => {
      selectors.push(labelSelector);
      const items: KubernetesObject[] = objects.filter((o) => o.kind === kind).map((o) => ({ metadata: { name: o.name, namespace: o.namespace, uid: o.uid, resourceVersion: o.resourceVersion } }));
      return { items };
    };
    return [kind, list] as const;
  });
  return { listers, selectors };
}

const ADDONS: Obj[] = [
  { kind: "DaemonSet", namespace: "kube-system", name: "kube-proxy", uid: "u1", resourceVersion: "10" },
  { kind: "DaemonSet", namespace: "kube-system", name: "flannel", uid: "u2", resourceVersion: "11" },
  { kind: "ConfigMap", namespace: "kube-system", name: "coredns", uid: "u3", resourceVersion: "12" },
  { kind: "ClusterRole", name: "system:coredns", uid: "u4", resourceVersion: "13" },
];

describe("the add-on objects' fingerprint", () => {
  const fingerprint = async (objects: Obj[]) => fingerprintOf(await readAddonObjects(fakeBusiness(objects).listers));

  it("reads every add-on kind once, by the add-ons' label, and tags the objects as the business cluster's", async () => {
    const { listers, selectors } = fakeBusiness(ADDONS);
    const objects = await readAddonObjects(listers);
    expect(selectors).toEqual(ADDON_OBJECT_TYPES.map(() => ADDON_LABEL));
    expect(objects.map((o) => `${o.cluster} ${o.kind} ${o.namespace ?? ""}/${o.name} ${o.uid} ${o.resourceVersion}`).sort()).toEqual([
      "business ClusterRole /system:coredns u4 13",
      "business ConfigMap kube-system/coredns u3 12",
      "business DaemonSet kube-system/flannel u2 11",
      "business DaemonSet kube-system/kube-proxy u1 10",
    ]);
  });

  it("stays put while nothing changes and moves when an add-on object is written, deleted or re-created", async () => {
    const steady = await fingerprint(ADDONS);
    expect(await fingerprint([...ADDONS].reverse())).toBe(steady);
    const variants = {
      "ConfigMap edited": ADDONS.map((o) => (o.name === "coredns" ? { ...o, resourceVersion: "99" } : o)),
      "DaemonSet deleted": ADDONS.filter((o) => o.name !== "kube-proxy"),
      "DaemonSet re-created": ADDONS.map((o) => (o.name === "kube-proxy" ? { ...o, uid: "u9" } : o)),
      "ClusterRole deleted": ADDONS.filter((o) => o.kind !== "ClusterRole"),
    };
    const seen = new Set([steady]);
    for (const [what, objects] of Object.entries(variants)) {
      const next = await fingerprint(objects);
      expect(seen.has(next), what).toBe(false);
      seen.add(next);
    }
  });

  it("tells a business object from a meta-cluster object of the same kind and name", async () => {
    const business = await readAddonObjects(fakeBusiness([ADDONS[2]!]).listers);
    const meta = business.map(({ cluster: _, ...rest }) => rest);
    expect(fingerprintOf(business)).not.toBe(fingerprintOf(meta));
  });
});

describe("the business cluster's lists", () => {
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  afterEach(async () => {
    for (const s of sockets) s.destroy();
    sockets.clear();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    server = undefined;
  });

  async function serve(handle: (req: IncomingMessage, reply: (body: unknown) => void) => void): Promise<KubeConfig> {
    server = createServer((req, res) => handle(req, (body) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body))));
    server.on("connection", (s) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    });
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    // Plain HTTP on loopback (client-node allows it only with skipTLSVerify): the requests are what is looked at.
    const kc = new KubeConfig();
    const port = (server.address() as { port: number }).port;
    kc.loadFromClusterAndUser({ name: "business", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }, { name: "admin", token: "test-only" });
    return kc;
  }

  it("are exactly the add-on kinds in kube-system and the cluster-scoped RBAC, label-selected, and never Secrets", async () => {
    const paths: string[] = [];
    const kc = await serve((req, reply) => {
      paths.push(decodeURIComponent(req.url ?? ""));
      reply({ metadata: {}, items: [] });
    });
    expect(await readAddonObjects(addonListers(kc))).toEqual([]);
    const selector = `labelSelector=${ADDON_LABEL}`;
    expect(paths.sort()).toEqual(
      [
        `/apis/apps/v1/namespaces/kube-system/daemonsets?${selector}`,
        `/apis/apps/v1/namespaces/kube-system/deployments?${selector}`,
        `/api/v1/namespaces/kube-system/services?${selector}`,
        `/api/v1/namespaces/kube-system/configmaps?${selector}`,
        `/api/v1/namespaces/kube-system/serviceaccounts?${selector}`,
        `/apis/policy/v1/namespaces/kube-system/poddisruptionbudgets?${selector}`,
        `/apis/rbac.authorization.k8s.io/v1/clusterroles?${selector}`,
        `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?${selector}`,
      ].sort(),
    );
    expect(paths.filter((p) => p.includes("secrets"))).toEqual([]);
  });

  it("are all aborted at the bound when the apiserver accepts and never answers", async () => {
    const kc = await serve(() => undefined);
    const started = Date.now();
    await expect(readAddonObjects(addonListers(abortedBy(kc, AbortSignal.timeout(300))))).rejects.toThrow();
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(3000);
  });
});
