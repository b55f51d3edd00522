import { describe, expect, it } from "vitest";
import { HELLO_IMAGE, HELLO_PORT, helloWorkload } from "../../../src/dev/hello-workload";

interface PodSpec {
  topologySpreadConstraints: Record<string, unknown>[];
  securityContext: Record<string, unknown>;
  containers: { image: string; securityContext: Record<string, unknown> }[];
}
interface Obj {
  kind: string;
  metadata: { name: string; namespace: string };
  spec: { replicas?: number; clusterIP?: string; ports: Record<string, unknown>[]; template: { spec: PodSpec } };
}

describe("the hello workload", () => {
  const objects = helloWorkload() as unknown as Obj[];
  const byName = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name)!;

  it("is a Deployment spread over nodes with a ClusterIP and a headless Service", () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(["Deployment/hello", "Service/hello", "Service/hello-headless"]);
    const pod = byName("Deployment", "hello").spec.template.spec;
    expect(pod.topologySpreadConstraints[0]).toMatchObject({ topologyKey: "kubernetes.io/hostname", whenUnsatisfiable: "DoNotSchedule" });
    expect(pod.containers[0].image).toBe(HELLO_IMAGE);
    expect(byName("Service", "hello").spec.clusterIP).toBeUndefined();
    expect(byName("Service", "hello-headless").spec.clusterIP).toBe("None");
    expect(byName("Service", "hello").spec.ports[0]).toMatchObject({ port: 80, targetPort: HELLO_PORT });
  });

  it("takes a namespace, a replica count and an image", () => {
    const [deployment] = helloWorkload({ namespace: "apps", replicas: 3, image: "mirror.example/busybox:1" }) as unknown as Obj[];
    expect(deployment.metadata.namespace).toBe("apps");
    expect(deployment.spec.replicas).toBe(3);
    expect(deployment.spec.template.spec.containers[0].image).toBe("mirror.example/busybox:1");
  });

  it("runs without root and with a read-only root file system", () => {
    const pod = byName("Deployment", "hello").spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65534 });
    expect(pod.containers[0].securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
  });
});
