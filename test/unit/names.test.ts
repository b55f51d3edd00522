/**
 * The derived names (src/api/v1alpha1/names.ts): two objects never share a stack or a masters'
 * namespace, and a masters' namespace is always a valid DNS label the tenant cannot choose.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { legacyStackNameOf, stackNameProblems, mastersNamespaceLabels, mastersNamespaceOf, stackNameOf } from "../../src/api/v1alpha1";

const key = (namespace: string, name: string) => ({ metadata: { namespace, name } });
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Kubernetes namespaces (DNS-1123 labels) and Cluster names (DNS-1035 labels), up to 63 characters. */
const label = (first: string) =>
  fc
    .tuple(fc.constantFrom(...first), fc.stringMatching(/^[a-z0-9-]{0,61}$/), fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789"))
    .map(([a, middle, z]) => `${a}${middle}${z}`.slice(0, 63))
    .filter((s) => DNS_LABEL.test(s));
const namespaceArb = fc.oneof(label("abcdefghijklmnopqrstuvwxyz0123456789"), fc.constantFrom("kube", "kube-system", "default", "team", "team-prod", "a"));
const nameArb = fc.oneof(label("abcdefghijklmnopqrstuvwxyz"), fc.constantFrom("system", "prod-a", "a", "public", "node-lease"));

describe("stackNameOf", () => {
  it("keeps team/prod-a and team-prod/a apart (they shared team-prod-a)", () => {
    expect(legacyStackNameOf(key("team", "prod-a"))).toBe(legacyStackNameOf(key("team-prod", "a")));
    expect(stackNameOf(key("team", "prod-a"))).toBe("team.prod-a");
    expect(stackNameOf(key("team-prod", "a"))).toBe("team-prod.a");
  });

  it("is injective: the first dot splits the pair back", () => {
    fc.assert(
      fc.property(namespaceArb, fc.oneof(nameArb, fc.constant("worker.0001")), (namespace, name) => {
        const stack = stackNameOf(key(namespace, name));
        const dot = stack.indexOf(".");
        expect([stack.slice(0, dot), stack.slice(dot + 1)]).toEqual([namespace, name]);
      }),
    );
  });

  it("names a stack over Pulumi's 100 characters as a problem of metadata.name", () => {
    expect(stackNameProblems("Machine", "team", "a".repeat(95))).toEqual([]);
    const [problem, ...rest] = stackNameProblems("Machine", "team", "a".repeat(96));
    expect(rest).toEqual([]);
    expect(problem.path).toBe("metadata.name");
    expect(problem.message).toContain("would be 101 characters; Pulumi allows 100");
  });
});

describe("mastersNamespaceOf", () => {
  it("gives team/prod-a and team-prod/a different namespaces", () => {
    expect(mastersNamespaceOf(key("team", "prod-a"))).not.toBe(mastersNamespaceOf(key("team-prod", "a")));
  });

  it("never maps kube/system to kube-system, nor any pair to a kube-* namespace or the tenant's own", () => {
    expect(mastersNamespaceOf(key("kube", "system"))).toMatch(/^kok-kube-system-[0-9a-f]{10}$/);
    fc.assert(
      fc.property(namespaceArb, nameArb, (namespace, name) => {
        const ns = mastersNamespaceOf(key(namespace, name));
        expect(ns.startsWith("kube-")).toBe(false);
        expect(["default", "kube-system", "kube-public", "kube-node-lease", namespace, legacyStackNameOf(key(namespace, name))]).not.toContain(ns);
      }),
      { numRuns: 2000 },
    );
  });

  it("is always a DNS label of at most 63 characters, readable when the names are short", () => {
    expect(mastersNamespaceOf(key("fleet", "prod-a"))).toMatch(/^kok-fleet-prod-a-[0-9a-f]{10}$/);
    fc.assert(
      fc.property(namespaceArb, nameArb, (namespace, name) => {
        const ns = mastersNamespaceOf(key(namespace, name));
        expect(ns.length).toBeLessThanOrEqual(63);
        expect(ns).toMatch(DNS_LABEL);
      }),
      { numRuns: 5000 },
    );
  });

  it("keeps a readable prefix of both parts when both are long", () => {
    const ns = mastersNamespaceOf(key("n".repeat(63), "c".repeat(63)));
    expect(ns).toMatch(/^kok-n{23}-c{24}-[0-9a-f]{10}$/);
  });

  it("is injective over many random namespace/name pairs, including ones that differ only past the readable prefix", () => {
    const pairs = fc.uniqueArray(fc.tuple(namespaceArb, nameArb), { minLength: 200, maxLength: 400, selector: ([n, c]) => `${n}/${c}` });
    fc.assert(
      fc.property(pairs, (list) => {
        const names = new Set(list.map(([n, c]) => mastersNamespaceOf(key(n, c))));
        expect(names.size).toBe(list.length);
      }),
      { numRuns: 50 },
    );
    const long = "p".repeat(40);
    expect(mastersNamespaceOf(key("team", `${long}-1`))).not.toBe(mastersNamespaceOf(key("team", `${long}-2`)));
  });

  it("is stable: the same pair always derives the same namespace (it is where the masters live)", () => {
    expect(mastersNamespaceOf(key("fleet", "prod-a"))).toBe(mastersNamespaceOf(key("fleet", "prod-a")));
  });
});

describe("mastersNamespaceLabels", () => {
  it("carries the Cluster's UID, its namespace and the manager", () => {
    expect(mastersNamespaceLabels({ metadata: { namespace: "team", name: "prod-a", uid: "0b5c-uid" } })).toEqual({
      "app.kubernetes.io/managed-by": "kube-on-kube",
      "kubeonkube.io/cluster-namespace": "team",
      "kubeonkube.io/cluster-uid": "0b5c-uid",
    });
  });
});
