/**
 * `kok etcd member list|add|promote|remove` against a real etcd (the toolchain's), members as the
 * product runs them: TLS on the client port with client certificates required, TLS between peers,
 * peer URLs `https://<member>.<peer service>.<namespace>.svc:2380` (etcdMemberHost) resolved to
 * loopback addresses for etcd alone (test/support/etcd.ts), and a joining member started from
 * ETCD_INITIAL_CLUSTER(_STATE) as the membership ConfigMap renders them (etcdMembershipEnv).
 * Each step is called with the flags of the Job the operator creates (memberJob), only the
 * endpoint and the client certificate's paths changed to this test's, and its one JSON line must
 * be one the operator's strict parser (parseMemberResult) accepts.
 *
 * The scale-up and scale-down runbook (docs/operations.md): list → add a learner (twice: nothing
 * twice) → start it → promote it while it is stopped and behind (refused: done false) → promote it
 * (asked again while etcd refuses, as the operator does) → add again changes nothing → remove it
 * while it leads (leadership moved away first; asked again while etcd refuses) → the cluster still
 * takes writes → remove again changes nothing. Bad paths: an endpoint nobody listens on and a
 * client certificate of another CA fail with one line naming the endpoint and no key material.
 *
 * Needs the toolchain's etcd and etcdctl, and `unshare` (util-linux); fails, never skips, without them.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Agent } from "node:https";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveClusterSpec } from "../../src/api/v1alpha1";
import type { RawFlags } from "../../src/backup/options";
import { etcdMemberCommand } from "../../src/cli/etcd";
import { etcdMemberHost, objectNames, type ClusterContext } from "../../src/components/cluster-context";
import { etcdMembershipEnv, ETCD_CLIENT_PORT, ETCD_PEER_PORT } from "../../src/components/etcd";
import { memberName } from "../../src/controllers/cluster/etcd-membership";
import { memberJob, parseMemberResult, type MemberJobAction, type MemberJobResult } from "../../src/controllers/cluster/etcd-membership-job";
import { ensurePki } from "../../src/dev/pki";
import { isPortFree } from "../../src/dev/ports";
import { toolchainBinary, toolchainDir } from "../../src/dev/toolchain";
import { kok } from "../support/dev-cluster";
import { agentFor, b64, capture, freePorts, gateway, logTail, serving, spawnEtcd, stopEtcd, type Etcd } from "../support/etcd";
import { eventually } from "../support/poll";
import { minimalSpec } from "../support/specs";

const CLUSTER = "mem";
const ctx: ClusterContext = { name: CLUSTER, namespace: "kok-mem", spec: resolveClusterSpec(minimalSpec()), metaClusterDomain: "cluster.local" };
const names = objectNames(CLUSTER);
const CLIENT = "member-client";

/** Two loopback addresses 127.0.0.x with etcd's own ports free on both (the product's peer URL has port 2380). */
async function memberAddresses(): Promise<string[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const x = 20 + Math.floor(Math.random() * 200);
    const ips = [`127.0.0.${x}`, `127.0.0.${x + 1}`];
    const free = await Promise.all(ips.flatMap((ip) => [isPortFree(ETCD_CLIENT_PORT, ip), isPortFree(ETCD_PEER_PORT, ip)]));
    if (free.every(Boolean)) return ips;
  }
  throw new Error(`no two loopback addresses 127.0.0.x with ports ${ETCD_CLIENT_PORT} and ${ETCD_PEER_PORT} free`);
}

/** `--flag=value` arguments as the command's raw flags (camelCase, as commander gives them). */
function rawFlags(args: readonly string[]): RawFlags {
  const flags: Record<string, string> = {};
  for (const arg of args) {
    const match = /^--([a-z-]+)=(.*)$/.exec(arg);
    if (match) flags[match[1].replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] = match[2];
  }
  return flags as RawFlags;
}

describe("kok etcd member with a real etcd", () => {
  let root: string;
  let pki: string;
  let otherPki: string;
  let ips: string[];
  let hostsFile: string;
  let agent: Agent;
  const members: (Etcd | undefined)[] = [];
  const started = Date.now();

  const clientUrl = (i: number) => `https://${ips[i]}:${ETCD_CLIENT_PORT}`;

  /** Member i as the StatefulSet runs it (etcdFlags), listening on its own loopback address. */
  function startMember(i: number, membership: { members: number; state: "new" | "existing" }): Etcd {
    const tls = { ca: `${pki}/ca.crt`, cert: `${pki}/etcd-server.crt`, key: `${pki}/etcd-server.key` };
    return spawnEtcd({
      dir: root,
      name: memberName(CLUSTER, i),
      url: clientUrl(i),
      hostsFile,
      env: etcdMembershipEnv(ctx, membership),
      flags: {
        name: memberName(CLUSTER, i),
        "data-dir": path.join(root, memberName(CLUSTER, i)),
        "listen-client-urls": clientUrl(i),
        // An address the command (outside etcd's hosts file) reaches; the product's is the member's name.
        "advertise-client-urls": clientUrl(i),
        "listen-peer-urls": `https://${ips[i]}:${ETCD_PEER_PORT}`,
        "initial-advertise-peer-urls": `https://${etcdMemberHost(ctx, i)}:${ETCD_PEER_PORT}`,
        "initial-cluster-token": `${ctx.namespace}-${names.etcd}`,
        "client-cert-auth": "true",
        "trusted-ca-file": tls.ca,
        "cert-file": tls.cert,
        "key-file": tls.key,
        "peer-client-cert-auth": "true",
        "peer-trusted-ca-file": tls.ca,
        "peer-cert-file": tls.cert,
        "peer-key-file": tls.key,
        "listen-metrics-urls": "",
      },
    });
  }

  /** The Job's flags for one step, this test's endpoint and certificate paths in place of the Pod's. */
  function jobFlags(action: MemberJobAction, member?: string, overrides: RawFlags = {}): RawFlags {
    const job = memberJob({ cluster: CLUSTER, mastersNamespace: ctx.namespace, spec: { masterNodeSelector: {}, masterTolerations: [] }, image: "unused", action, member, name: "unused" });
    const args = job.spec!.template.spec!.containers[0].args!;
    expect(args.slice(0, 3)).toEqual(["etcd", "member", action]);
    return {
      ...rawFlags(args.slice(3)),
      endpoints: clientUrl(0),
      cacert: `${pki}/ca.crt`,
      cert: `${pki}/${CLIENT}.crt`,
      key: `${pki}/${CLIENT}.key`,
      resultFile: path.join(root, `result-${action}-${Date.now()}`),
      etcdctl: toolchainBinary("etcdctl"),
      ...overrides,
    };
  }

  /** One step in-process; its result line, checked as the operator reads it. */
  async function step(action: MemberJobAction, member?: string): Promise<{ result: MemberJobResult; log: string }> {
    const flags = jobFlags(action, member);
    const run = capture({ PATH: process.env.PATH });
    const t = Date.now();
    const code = await etcdMemberCommand(action, flags, run.io);
    const log = run.err.join("");
    console.log(`member ${action} ${member ?? ""} (${Date.now() - t} ms): ${run.out.join("").trim()}${log ? `\n  ${log.trim()}` : ""}`);
    expect(code, log).toBe(0);
    const line = run.out.join("").trim();
    expect(line.split("\n")).toHaveLength(1);
    expect(readFileSync(flags.resultFile!, "utf8")).toBe(line);
    const parsed = parseMemberResult(line, CLUSTER);
    if (!parsed.ok) throw new Error(`the operator refuses the result: ${parsed.why}: ${line}`);
    return { result: parsed.result, log };
  }

  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), "kok-etcd-member-"));
    pki = path.join(root, "pki");
    otherPki = path.join(root, "other-pki");
    ips = await memberAddresses();
    const hosts = [0, 1].map((i) => etcdMemberHost(ctx, i));
    hostsFile = path.join(root, "hosts");
    writeFileSync(hostsFile, `127.0.0.1 localhost\n${hosts.map((h, i) => `${ips[i]} ${h}`).join("\n")}\n`);
    const leaves = [
      // One certificate for both ports of both members: clients dial the addresses, peers the names;
      // and etcd checks a peer's client certificate against the address it connects from, on
      // loopback 127.0.0.1 whichever 127.0.0.x it dials.
      { file: "etcd-server", commonName: "etcd", usage: "both" as const, dnsNames: hosts, ipAddresses: [...ips, "127.0.0.1"] },
      { file: CLIENT, commonName: "kube-on-kube-etcd-membership", usage: "client" as const },
    ];
    await ensurePki(pki, leaves);
    // A client certificate from another CA: etcd must refuse it.
    await ensurePki(otherPki, leaves);
    agent = agentFor(pki, CLIENT);
    members[0] = startMember(0, { members: 1, state: "new" });
    await serving(members[0], agent);
    await gateway(members[0], "kv/put", { key: b64("before"), value: b64("scaling") }, agent);
    console.log(`1-member etcd on ${ips[0]} serving in ${Date.now() - started} ms`);
  }, 60_000);

  afterAll(async () => {
    const t = Date.now();
    agent?.destroy();
    await Promise.all(members.map((member) => stopEtcd(member, "SIGKILL")));
    if (root) rmSync(root, { recursive: true, force: true });
    console.log(`teardown in ${Date.now() - t} ms; whole file ${Date.now() - started} ms`);
  });

  it("lists the one member through the real kok process: healthy, started, a voter", async () => {
    const flags = jobFlags("list");
    const args = Object.entries(flags)
      .filter(([k]) => k !== "etcdctl")
      .map(([k, v]) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}=${v}`);
    const t = Date.now();
    // etcdctl from PATH, as in the operator image.
    const run = await kok(["etcd", "member", "list", ...args], { PATH: `${path.join(toolchainDir(), "bin")}:${process.env.PATH}` });
    console.log(`kok etcd member list (a process, tsx start included) in ${Date.now() - t} ms: ${run.stdout.trim()}`);
    expect(run.code, run.stderr).toBe(0);
    const line = run.stdout.trim().split("\n").pop()!;
    expect(readFileSync(flags.resultFile!, "utf8")).toBe(line);
    const parsed = parseMemberResult(line, CLUSTER);
    expect(parsed.ok, line).toBe(true);
    expect(JSON.parse(line)).toEqual({
      action: "list",
      member: "",
      done: true,
      message: "1 member(s)",
      members: [{ name: memberName(CLUSTER, 0), id: expect.stringMatching(/^[0-9a-f]{1,16}$/), learner: false, started: true, healthy: true }],
    });
  }, 30_000);

  it("adds a learner, which joins from the ConfigMap's initial cluster, catches up and is promoted; adding it again changes nothing", async () => {
    const joining = memberName(CLUSTER, 1);
    const added = await step("add", joining);
    expect(added.result).toMatchObject({ action: "add", member: joining, done: true, message: `added ${joining} as a learner` });
    const id = added.result.members.find((m) => m.name === joining)?.id;
    expect(added.result.members).toEqual([
      { name: memberName(CLUSTER, 0), id: expect.any(String), learner: false, started: true, healthy: true },
      { name: joining, id: expect.stringMatching(/^[0-9a-f]{1,16}$/), learner: true, started: false, healthy: false },
    ]);
    // Asked again before the Pod starts (an operator that crashed after creating the Job): nothing twice.
    const again = await step("add", joining);
    expect(again.result).toMatchObject({ done: true, message: `${joining} is already a member (learner)` });
    expect(again.result.members.map((m) => m.id)).toEqual(added.result.members.map((m) => m.id));

    // The StatefulSet's new Pod: the ConfigMap now says 2 members, existing.
    expect(etcdMembershipEnv(ctx, { members: 2, state: "existing" }).ETCD_INITIAL_CLUSTER.split(",")).toHaveLength(2);
    const t = Date.now();
    members[1] = startMember(1, { members: 2, state: "existing" });
    // A learner serves serializable reads only: the key written before it joined, from its own store.
    await eventually(
      `${joining} has the cluster's data`,
      async () => {
        if (members[1]!.process.exitCode !== null) throw new Error(`${joining} exited: ${logTail(members[1]!, 60)}`);
        const read = await gateway(members[1]!, "kv/range", { key: b64("before"), serializable: true }, agent).catch(() => undefined);
        return (read?.kvs as unknown[] | undefined)?.length === 1 ? true : undefined;
      },
      { timeoutMs: 30_000 },
    );
    console.log(`${joining} started and synced in ${Date.now() - t} ms`);
    const listed = await step("list");
    expect(listed.result.members.find((m) => m.name === joining)).toEqual({ name: joining, id, learner: true, started: true, healthy: true });

    // A learner fallen behind (its process stopped while writes go on): etcd refuses to promote it,
    // and the step says so as an answer (done: false, exit 0), not as a failure.
    members[1]!.process.kill("SIGSTOP");
    try {
      for (let i = 0; i < 50; i++) await gateway(members[0]!, "kv/put", { key: b64(`while-stopped/${i}`), value: b64("x") }, agent);
      const behind = await step("promote", joining);
      expect(behind.result).toMatchObject({ action: "promote", member: joining, done: false, message: expect.stringMatching(/^etcdctl member promote: .*in sync with leader/) });
      // It does not answer its status either.
      expect(behind.result.members.find((m) => m.name === joining)).toEqual({ name: joining, id, learner: true, started: true, healthy: false });
    } finally {
      members[1]!.process.kill("SIGCONT");
    }

    // As the operator does: promote until etcd says it is done; "not caught up" is an answer, not a failure.
    const refusals: string[] = [];
    const promoted = await eventually(
      `${joining} promoted`,
      async () => {
        const r = await step("promote", joining);
        if (r.result.done) return r.result;
        refusals.push(r.result.message);
        return undefined;
      },
      { timeoutMs: 30_000, everyMs: 200 },
    );
    console.log(`promoted after ${refusals.length} refusal(s): ${refusals.join(" | ")}`);
    for (const message of refusals) expect(message).toMatch(/^etcdctl member promote: .*in sync with leader/);
    expect(promoted).toMatchObject({ action: "promote", member: joining, done: true, message: `promoted ${joining}` });
    expect(promoted.members.map((m) => [m.name, m.learner, m.started])).toEqual([
      [memberName(CLUSTER, 0), false, true],
      [joining, false, true],
    ]);
    // A voter now: it answers linearizable reads.
    const read = await gateway(members[1]!, "kv/range", { key: b64("before") }, agent);
    expect((read.kvs as unknown[]).length).toBe(1);

    const promotedAgain = await step("promote", joining);
    expect(promotedAgain.result).toMatchObject({ done: true, message: `${joining} is already a voting member` });
    const addedAgain = await step("add", joining);
    expect(addedAgain.result).toMatchObject({ done: true, message: `${joining} is already a member (voter)` });
    expect(addedAgain.result.members).toHaveLength(2);
    expect(addedAgain.result.members.every((m) => m.healthy && !m.learner)).toBe(true);
  }, 60_000);

  it("removes the member while it leads (leadership moved away first); the cluster keeps taking writes; removing again changes nothing", async () => {
    const leaving = memberName(CLUSTER, 1);
    expect(members[1], "the previous test started it").toBeDefined();
    const ids = (await step("list")).result.members;
    const leavingId = BigInt(`0x${ids.find((m) => m.name === leaving)!.id}`).toString();
    // Make the leaving member the leader, so the step has to move leadership away.
    const status = await gateway(members[0]!, "maintenance/status", {}, agent);
    // Asked of the leader, which is the other member when it is not the leaving one.
    if (String(status.leader) !== leavingId) await gateway(members[0]!, "maintenance/transfer-leadership", { targetID: leavingId }, agent);
    await eventually("the leaving member leads", async () => (String((await gateway(members[0]!, "maintenance/status", {}, agent)).leader) === leavingId ? true : undefined), { timeoutMs: 10_000 });

    // As the operator does: remove until etcd says it is done. etcd refuses to remove a voter until
    // the member asked has been connected to it for 5 s (its quorum check): an answer, not a failure.
    const attempts: { result: MemberJobResult; log: string }[] = [];
    const removed = await eventually(
      `${leaving} removed`,
      async () => {
        const r = await step("remove", leaving);
        attempts.push(r);
        return r.result.done ? r : undefined;
      },
      { timeoutMs: 30_000, everyMs: 500 },
    );
    const refusals = attempts.filter((a) => !a.result.done).map((a) => a.result.message);
    console.log(`removed after ${refusals.length} refusal(s): ${[...new Set(refusals)].join(" | ")}`);
    for (const message of refusals) expect(message).toMatch(/^etcdctl member remove: etcdserver: unhealthy cluster/);
    // The first attempt found the leaving member leading: leadership moved before anything else.
    expect(attempts[0].log).toContain(`moved leadership from ${leaving} to ${memberName(CLUSTER, 0)}`);
    expect(removed.result).toMatchObject({ action: "remove", member: leaving, done: true, message: `removed ${leaving}` });
    expect(removed.result.members).toEqual([{ name: memberName(CLUSTER, 0), id: ids[0].id, learner: false, started: true, healthy: true }]);
    // One member is its own quorum now: writes go through, linearizable reads see them.
    await gateway(members[0]!, "kv/put", { key: b64("after"), value: b64("removal") }, agent);
    const read = await gateway(members[0]!, "kv/range", { key: b64("after") }, agent);
    expect((read.kvs as unknown[]).length).toBe(1);

    const again = await step("remove", leaving);
    expect(again.result).toMatchObject({ done: true, message: `${leaving} is not a member` });
    expect(again.result.members.map((m) => m.name)).toEqual([memberName(CLUSTER, 0)]);
  }, 60_000);

  it("fails with one line naming the endpoint, and no key material, for an endpoint nobody listens on and a client certificate of another CA", async () => {
    const [unused] = await freePorts(1);
    const down = `https://127.0.0.1:${unused}`;
    const foreign = { cert: `${otherPki}/${CLIENT}.crt`, key: `${otherPki}/${CLIENT}.key` };
    const keyMaterial = [readFileSync(`${pki}/${CLIENT}.key`, "utf8"), readFileSync(foreign.key, "utf8")].flatMap((pem) => pem.split("\n").filter((l) => l.length > 20));
    const cases = [
      { name: "unreachable endpoint", flags: jobFlags("list", undefined, { endpoints: down }), endpoint: down, cause: /connection refused/ },
      { name: "client certificate of another CA", flags: jobFlags("list", undefined, foreign), endpoint: clientUrl(0), cause: /TLS refused \(ERR_SSL_[A-Z0-9_]+: .*(alert|certificate)/ },
    ];
    for (const c of cases) {
      const run = capture({ PATH: process.env.PATH });
      const t = Date.now();
      const code = await etcdMemberCommand("list", c.flags, run.io);
      const message = readFileSync(c.flags.resultFile!, "utf8");
      console.log(`${c.name} (${Date.now() - t} ms): ${message}`);
      expect(code, c.name).toBe(1);
      expect(run.out, c.name).toEqual([]);
      expect(message.split("\n"), c.name).toHaveLength(1);
      expect(message, c.name).toMatch(/^etcd member failed: /);
      expect(message, c.name).toContain(c.endpoint);
      expect(message, c.name).toMatch(c.cause);
      for (const text of [message, run.err.join("")]) {
        expect(text, c.name).not.toMatch(/PRIVATE KEY/);
        for (const line of keyMaterial) expect(text, c.name).not.toContain(line);
      }
    }
  }, 60_000);
});
