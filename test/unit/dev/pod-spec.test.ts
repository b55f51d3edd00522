import type * as k8s from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { containerArgv, containerEnv, containerPrelude, expand } from "../../../src/dev/node-agent/pod-spec";
import { parseImage } from "../../../src/dev/node-agent/images";

const pod: k8s.V1Pod = { metadata: { name: "e2e-etcd-0", namespace: "e2e", uid: "u-1" }, spec: { containers: [] } };
const facts = { pod, podIP: "10.88.0.7", hostIP: "10.88.0.1" };
const noKeys = async () => undefined;

describe("kubelet-style container resolution", () => {
  it("expands $(VAR) like Kubernetes: defined names, $$ escapes, unknown names kept", () => {
    expect(expand("--name=$(POD_NAME) $(MISSING) $$(POD_NAME)", { POD_NAME: "a" })).toBe("--name=a $(MISSING) $(POD_NAME)");
  });

  it("builds env from the downward API and earlier variables, then argv", async () => {
    const container: k8s.V1Container = {
      name: "etcd",
      command: ["etcd", "--name=$(POD_NAME)", "--advertise=$(URL)"],
      env: [
        { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
        { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
        { name: "URL", value: "https://$(POD_IP):2379" },
      ],
    };
    const env = await containerEnv(container, facts, noKeys);
    expect(env).toEqual({ POD_NAME: "e2e-etcd-0", POD_IP: "10.88.0.7", URL: "https://10.88.0.7:2379" });
    expect(containerArgv(container, "etcd", env)).toEqual(["etcd", "--name=e2e-etcd-0", "--advertise=https://10.88.0.7:2379"]);
    expect(containerArgv({ name: "x", args: ["--v=2"] }, "etcd", env)).toEqual(["etcd", "--v=2"]);
  });

  it("reads secretKeyRef from the Pod's namespace and fails on a missing required key", async () => {
    const seen: string[] = [];
    const lookup = async (kind: string, namespace: string, name: string, key: string) => {
      seen.push(`${kind} ${namespace}/${name}:${key}`);
      return key === "token" ? "s3cr3t" : undefined;
    };
    const container: k8s.V1Container = { name: "c", env: [{ name: "T", valueFrom: { secretKeyRef: { name: "creds", key: "token" } } }] };
    expect(await containerEnv(container, facts, lookup)).toEqual({ T: "s3cr3t" });
    expect(seen).toEqual(["Secret e2e/creds:token"]);
  });

  it("bind-mounts each volume, read-only when asked, then execs with the Pod's hostname", () => {
    const script = containerPrelude("e2e-etcd-0", [
      { source: "/state/pods/u/volumes/pki", target: "/etc/kubernetes/pki/etcd", readOnly: true, isFile: false },
      { source: "/state/it's", target: "/var/lib/etcd", readOnly: false, isFile: false },
    ]);
    expect(script.split("\n")).toEqual([
      "set -e",
      "hostname 'e2e-etcd-0'",
      "mkdir -p '/etc/kubernetes/pki/etcd'",
      "mount --bind '/state/pods/u/volumes/pki' '/etc/kubernetes/pki/etcd'",
      "mount -o remount,bind,ro '/etc/kubernetes/pki/etcd'",
      "mkdir -p '/var/lib/etcd'",
      "mount --bind '/state/it'\\''s' '/var/lib/etcd'",
      'exec "$0" "$@"',
    ]);
  });

  it("maps image names and tags, registry and digest aside", () => {
    expect(parseImage("registry.k8s.io/kube-apiserver:v1.36.3")).toEqual({ name: "kube-apiserver", tag: "v1.36.3" });
    expect(parseImage("mirror.local:5000/k8s/etcd:3.6.16-0@sha256:abc")).toEqual({ name: "etcd", tag: "3.6.16-0" });
    expect(parseImage("mirror.local:5000/etcd")).toEqual({ name: "etcd", tag: "latest" });
  });
});
