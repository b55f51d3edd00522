/**
 * Image names (src/images/layout.ts, push.ts, build.ts, debs.ts): upstream references parse into
 * host, repository and tag; the mirror's name drops the host and keeps the rest, so containerd's
 * mirror for registry.k8s.io and docker.io finds them; pushes go only to loopback; `--only` names
 * what it does not know; Depends fields give the first alternative of each clause.
 */
import { describe, expect, it } from "vitest";
import { checkOnly } from "../../src/images/build";
import { parseDepends } from "../../src/images/debs";
import { IMAGE_NAMES } from "../../src/images/definitions";
import { layoutDirOf, parseReference } from "../../src/images/layout";
import { checkRegistry, mirrorReference } from "../../src/images/push";

describe("image references", () => {
  it.each([
    ["registry.k8s.io/kube-apiserver:v1.36.3", "127.0.0.1:5000/kube-apiserver:v1.36.3"],
    ["registry.k8s.io/etcd:3.6.16-0", "127.0.0.1:5000/etcd:3.6.16-0"],
    ["registry.k8s.io/coredns/coredns:v1.15.0", "127.0.0.1:5000/coredns/coredns:v1.15.0"],
    ["docker.io/library/busybox:1.35.0", "127.0.0.1:5000/library/busybox:1.35.0"],
    ["docker.io/rancher/local-path-provisioner:v0.0.30", "127.0.0.1:5000/rancher/local-path-provisioner:v0.0.30"],
  ])("%s is mirrored as %s", (ref, mirrored) => {
    expect(mirrorReference(parseReference(ref), "127.0.0.1:5000")).toBe(mirrored);
  });

  it("a layout directory is <host>/<repository>/<tag>", () => {
    expect(layoutDirOf("/cache", parseReference("registry.k8s.io/coredns/coredns:v1.15.0"))).toBe("/cache/registry.k8s.io/coredns/coredns/v1.15.0");
  });

  it.each(["busybox", "busybox:latest", "registry.k8s.io/pause", "registry.k8s.io/Pause:3.10", "registry.k8s.io/pause:", "registry.k8s.io/../pause:1"])("refuses %s, saying what it wants", (ref) => {
    expect(() => parseReference(ref)).toThrow(`image reference "${ref}": want HOST/REPOSITORY:TAG`);
  });
});

describe("the registry to push to", () => {
  it.each(["127.0.0.1:5000", "localhost:35000", "[::1]:5000", "127.0.0.2:1"])("accepts loopback %s", (r) => expect(checkRegistry(r)).toBe(r));

  it.each(["10.0.0.1:5000", "registry.example.com:443", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "http://127.0.0.1:5000"])("refuses %s: plain HTTP goes to loopback only", (r) => {
    expect(() => checkRegistry(r)).toThrow(`registry "${r}": pushes go over plain HTTP, so only to HOST:PORT on loopback`);
  });

  it("without one, says how to give one", () => {
    expect(() => checkRegistry(undefined)).toThrow("pass --registry HOST:PORT or set KOK_REGISTRY");
  });
});

describe("--only", () => {
  it("takes the image names and names every unknown one with the choices", () => {
    expect(checkOnly(["busybox", "etcd"])).toEqual(["busybox", "etcd"]);
    expect(() => checkOnly(["etcd", "kube-apiservr", "nginx"])).toThrow(`unknown image "kube-apiservr", "nginx": choose from ${IMAGE_NAMES.join(", ")}`);
  });
});

describe("Debian dependencies", () => {
  it("are the first alternative of each clause, without versions or architecture qualifiers", () => {
    expect(parseDepends("libc6 (>= 2.34), libmnl0 (>= 1.0.3-4~), netbase | base-files, python3:any")).toEqual(["libc6", "libmnl0", "netbase", "python3"]);
    expect(parseDepends("")).toEqual([]);
  });
});
