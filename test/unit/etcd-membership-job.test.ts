/**
 * The membership Jobs and what comes back from them: the Job the operator creates (one step, the
 * membership client certificate, no ServiceAccount token, restricted), its deterministic name, the
 * strict parse of its Pod's termination message (a hostile Pod's included), `kok etcd member`'s
 * own parsing of etcdctl's output (IDs past 2^53 kept exact) and its flags, and the members' data
 * volume uids.
 */
import type * as k8s from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { memberOptions, parseEndpointStatus, parseMemberList, quoteIds } from "../../src/backup/member";
import { UsageError, type RestoreOptions } from "../../src/backup/options";
import { runRestore } from "../../src/backup/restore";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { volumesOf } from "../../src/controllers/cluster/etcd-membership-check";
import { memberJob, memberJobName, parseMemberResult } from "../../src/controllers/cluster/etcd-membership-job";

const spec = { masterNodeSelector: {}, masterTolerations: [] };
const good = { action: "add", member: "ops-etcd-1", done: true, message: "added ops-etcd-1 as a learner", members: [{ name: "ops-etcd-0", id: "8e9e05c52164694d", learner: false, started: true, healthy: true }, { name: "ops-etcd-1", id: "1", learner: true, started: false, healthy: false }] };

describe("the membership Job", () => {
  it("runs one kok etcd member step with the membership client certificate, and nothing of the meta-cluster", () => {
    const job = memberJob({ cluster: "ops", mastersNamespace: "kok-fleet-ops", spec, image: "reg/kube-on-kube/operator:1", action: "add", member: "ops-etcd-2", name: "ops-etcd-member-abc" });
    const pod = job.spec!.template.spec!;
    expect(pod.containers[0].args).toEqual([
      "etcd",
      "member",
      "add",
      "--endpoints=https://ops-etcd-client.kok-fleet-ops.svc:2379",
      "--cacert=/etc/kube-on-kube/etcd-membership/ca.crt",
      "--cert=/etc/kube-on-kube/etcd-membership/tls.crt",
      "--key=/etc/kube-on-kube/etcd-membership/tls.key",
      "--result-file=/dev/termination-log",
      "--member=ops-etcd-2",
      "--peer-url=https://ops-etcd-2.ops-etcd.kok-fleet-ops.svc:2380",
    ]);
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.restartPolicy).toBe("Never");
    expect(pod.volumes).toEqual([{ name: "client", secret: { secretName: "ops-etcd-member-client", defaultMode: 0o400 } }]);
    // The labels the stack's NetworkPolicy selects (src/components/etcd-membership.ts).
    expect(job.spec!.template.metadata!.labels).toMatchObject({ "kubeonkube.io/cluster": "ops", "app.kubernetes.io/component": "etcd-membership" });
    expect(job.spec!.backoffLimit).toBe(0);
  });

  it("refuses to add a member that is not one of the cluster's", () => {
    expect(() => memberJob({ cluster: "ops", mastersNamespace: "ns", spec, image: "i", action: "add", member: "evil-etcd-1", name: "n" })).toThrow(/not a member name/);
  });

  it("names the same step from the same status the same, the next step differently, within 63 characters", () => {
    const a = memberJobName("a".repeat(40), "prev", "promote", "x");
    expect(a).toBe(memberJobName("a".repeat(40), "prev", "promote", "x"));
    expect(a.length).toBeLessThanOrEqual(63);
    expect(memberJobName("ops", a, "promote", "x")).not.toBe(memberJobName("ops", "prev", "promote", "x"));
  });
});

describe("parseMemberResult", () => {
  it("reads a well-formed result", () => {
    expect(parseMemberResult(JSON.stringify(good), "ops")).toEqual({ ok: true, result: good });
  });

  it.each([
    ["no message", undefined, /no termination message/],
    ["two lines", `${JSON.stringify(good)}\n{}`, /not one line/],
    ["not JSON", "added", /not JSON/],
    ["an array", "[]", /not a JSON object/],
    ["an extra field", JSON.stringify({ ...good, extra: 1 }), /exactly the fields/],
    ["another cluster's member", JSON.stringify({ ...good, members: [{ ...good.members[0], name: "other-etcd-0" }] }), /members\[0\]: name/],
    ["a non-hex ID", JSON.stringify({ ...good, members: [{ ...good.members[0], id: "12345678901234567890" }] }), /id/],
    ["a member listed twice", JSON.stringify({ ...good, members: [good.members[0], good.members[0]] }), /twice/],
    ["too many members", JSON.stringify({ ...good, members: Array.from({ length: 9 }, () => good.members[0]) }), /at most 8/],
    ["a string for a boolean", JSON.stringify({ ...good, done: "true" }), /done/],
    ["an unknown action", JSON.stringify({ ...good, action: "destroy" }), /action/],
    ["too long", JSON.stringify({ ...good, message: "x".repeat(5000) }), /4096/],
  ])("refuses %s", (_what, message, why) => {
    const parsed = parseMemberResult(message, "ops");
    expect(parsed.ok).toBe(false);
    expect(parsed.ok ? "" : parsed.why).toMatch(why);
  });

  it("keeps no control character of the Pod's message", () => {
    const parsed = parseMemberResult(JSON.stringify({ ...good, message: "a\u001b[31mb\u2028c" }), "ops");
    expect(parsed.ok && parsed.result.message).toBe("a [31mb c");
  });
});

describe("kok etcd member", () => {
  it("keeps etcd's 64-bit IDs exact and names members by their peer URL", () => {
    const text = '{"header":{"cluster_id":14841639068965178418,"member_id":10276657743932975437},"members":[{"ID":10276657743932975437,"name":"ops-etcd-0","peerURLs":["https://ops-etcd-0.ops-etcd.ns.svc:2380"],"clientURLs":["https://ops-etcd-0.ops-etcd.ns.svc:2379"]},{"ID":3,"peerURLs":["https://ops-etcd-1.ops-etcd.ns.svc:2380"],"isLearner":true}]}';
    expect(quoteIds('{"ID":18446744073709551615}', ["ID"])).toBe('{"ID":"ffffffffffffffff"}');
    expect(parseMemberList(text)).toEqual([
      { id: "8e9e05c52164694d", name: "ops-etcd-0", learner: false, started: true, clientUrls: ["https://ops-etcd-0.ops-etcd.ns.svc:2379"] },
      { id: "3", name: "ops-etcd-1", learner: true, started: false, clientUrls: [] },
    ]);
    expect(() => parseMemberList('{"members":[{"ID":1}]}')).toThrow(/without ID or peer URL/);
  });

  it("calls a member healthy only when it answered with a leader and no error", () => {
    expect(parseEndpointStatus('[{"Endpoint":"e","Status":{"leader":10276657743932975437,"errors":[]}}]')).toEqual({ healthy: true, leader: "8e9e05c52164694d" });
    expect(parseEndpointStatus('[{"Status":{"leader":0}}]').healthy).toBe(false);
    expect(parseEndpointStatus('[{"Status":{"leader":5,"errors":["alarm"]}}]').healthy).toBe(false);
    expect(parseEndpointStatus("garbage").healthy).toBe(false);
  });

  it("names every bad flag at once", () => {
    let error: unknown;
    try {
      memberOptions("add", { member: "Bad_Name", peerUrl: "http://x:2380", endpoints: "http://e", cacert: "/nope", cert: "/nope", key: "/nope", etcdctl: "/nope/etcdctl" }, {});
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UsageError);
    const problems = (error as UsageError).problems.join("\n");
    for (const flag of ["--member", "--peer-url", "--endpoints", "--cacert", "--cert", "--key", "etcdctl"]) expect(problems).toContain(flag);
    expect(() => memberOptions("destroy", {}, {})).toThrow(/one of list, add, promote, remove/);
  });
});

describe("volumesOf", () => {
  const pod = (name: string, uid: string, volume: k8s.V1Volume, deleting = false): k8s.V1Pod => ({ metadata: { name, uid, ...(deleting ? { deletionTimestamp: new Date() } : {}) }, spec: { containers: [], volumes: [volume] } });
  it("is the PVC's uid with claimTemplate storage, the Pod's with an emptyDir, unknown for a Pod going away", () => {
    const pods = [
      pod("ops-etcd-0", "p0", { name: "data", persistentVolumeClaim: { claimName: "data-ops-etcd-0" } }),
      pod("ops-etcd-1", "p1", { name: "data", emptyDir: {} }),
      pod("ops-etcd-2", "p2", { name: "data", emptyDir: {} }, true),
      pod("ops-apiserver-x", "p3", { name: "data", emptyDir: {} }),
    ];
    const claims: k8s.V1PersistentVolumeClaim[] = [{ metadata: { name: "data-ops-etcd-0", uid: "c0" } }];
    expect(volumesOf("ops", pods, claims)).toEqual({ "ops-etcd-0": "c0", "ops-etcd-1": "p1" });
  });
});

describe("a restored cluster's member that joins later", () => {
  it("restores nothing from the snapshot when the membership ConfigMap says existing: its data comes from the members", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "kok-join-"));
    const options: RestoreOptions = {
      joining: true,
      bucket: "b",
      key: "k.db",
      // Never dialled: a joining member must not read the snapshot at all.
      store: { endpoint: "https://127.0.0.1:1", region: "r", credentials: { accessKeyId: "a", secretAccessKey: "s" } },
      dataDir,
      name: "ops-etcd-1",
      initialCluster: "ops-etcd-0=https://a:2380,ops-etcd-1=https://b:2380",
      initialClusterToken: "t",
      initialAdvertisePeerUrls: "https://b:2380",
      etcdutl: "/nonexistent/etcdutl",
      timeoutMs: 1000,
    };
    const lines: string[] = [];
    expect(await runRestore(options, (l) => lines.push(l))).toEqual({ restored: false, snapshot: "s3://b/k.db", dataDir });
    expect(readdirSync(dataDir)).toEqual([]);
    expect(lines.join("\n")).toMatch(/joins the running cluster/);
  });
});
