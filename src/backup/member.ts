/**
 * `kok etcd member <list|add|promote|remove>`: one step of a Cluster's etcd membership, run by a
 * membership Job in the masters' namespace (src/controllers/cluster/etcd-membership-job.ts), with
 * etcdctl over TLS and the membership client certificate. Each action *ensures* its outcome (add
 * of a member already there, remove of one already gone, promote of a voter: nothing to do), so an
 * operator that repeats a step after a crash changes nothing twice.
 *
 * Whatever the action, the command then lists the members and asks each started one for its
 * status, and prints ONE JSON line (and writes it to --result-file, the termination message):
 *   {"action","member","done","message","members":[{"name","id","learner","started","healthy"}]}
 * `done: false` with a message when etcd refused the step (a learner not caught up yet, a voter
 * removed within seconds of its connection to the member asked); exit 1 only when the membership
 * could not be read at all.
 *
 * Names come from the peer URLs (`https://<name>.<peer-service>...`): a learner added but not yet
 * started has no name of its own in etcd's list.
 */
import type { ObservedMember } from "../api/v1alpha1";
import { runTool, toolFailure, type TlsFiles } from "./etcd-tools";
import { memberHealth } from "./member-health";
import { Checker, findBinary, readableFile, UsageError, type RawFlags } from "./options";

export const MEMBER_ACTIONS = ["list", "add", "promote", "remove"] as const;
export type MemberAction = (typeof MEMBER_ACTIONS)[number];

export interface MemberOptions {
  readonly action: MemberAction;
  /** The member the action is about (not for list). */
  readonly member?: string;
  /** Its peer URL (add). */
  readonly peerUrl?: string;
  readonly endpoints: readonly string[];
  readonly tls: TlsFiles;
  readonly resultFile?: string;
  readonly etcdctl: string;
  readonly timeoutMs: number;
}

export type { ObservedMember };

export interface MemberResult {
  readonly action: MemberAction;
  readonly member: string;
  readonly done: boolean;
  readonly message: string;
  readonly members: readonly ObservedMember[];
}

const MEMBER_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function httpsUrl(text: string, port: boolean): boolean {
  try {
    const url = new URL(text);
    return url.protocol === "https:" && (!port || url.port !== "") && (url.pathname === "/" || url.pathname === "") && !url.username && !url.search;
  } catch {
    return false;
  }
}

/** Every problem of the flags at once, or the options. */
export function memberOptions(action: string | undefined, flags: RawFlags, env: NodeJS.ProcessEnv): MemberOptions {
  const c = new Checker(flags);
  if (!MEMBER_ACTIONS.includes(action as MemberAction)) c.problems.push(`the action must be one of ${MEMBER_ACTIONS.join(", ")} (got ${JSON.stringify(action ?? "")})`);
  const member = action === "list" ? undefined : c.required("member", "member");
  if (member !== undefined) c.check("member", member, MEMBER_NAME.test(member) ? undefined : "want a member name (a DNS label)");
  const peerUrl = action === "add" ? c.required("peer-url", "peerUrl") : undefined;
  if (peerUrl !== undefined) {
    const host = httpsUrl(peerUrl, true) ? new URL(peerUrl).hostname : "";
    c.check("peer-url", peerUrl, host.split(".")[0] === member ? undefined : "want https://<member>.<peer service>...:2380 (the member's own name first)");
  }
  const endpoints = c.required("endpoints", "endpoints").split(",").map((e) => e.trim()).filter(Boolean);
  for (const endpoint of endpoints) c.check("endpoints", endpoint, httpsUrl(endpoint, true) ? undefined : "want https://host:port (etcd's client port)");
  const tls = { cacert: c.required("cacert", "cacert"), cert: c.required("cert", "cert"), key: c.required("key", "key") };
  for (const [flag, path] of Object.entries(tls)) c.check(flag, path, readableFile(path));
  const etcdctl = findBinary("etcdctl", flags.etcdctl, "KOK_ETCDCTL", env);
  if (etcdctl.problem) c.problems.push(`etcdctl: ${etcdctl.problem}`);
  if (c.problems.length) throw new UsageError(c.problems);
  return { action: action as MemberAction, member, peerUrl, endpoints, tls, resultFile: flags.resultFile, etcdctl: etcdctl.path!, timeoutMs: 20_000 };
}

/**
 * etcd's uint64 IDs as 16 hex digits. JSON numbers past 2^53 lose digits in JSON.parse, so the
 * numbers are turned into strings in the text first, whether etcdctl wrote them as numbers or (with
 * --hex) as hex strings.
 */
export function quoteIds(json: string, fields: readonly string[]): string {
  let text = json;
  for (const field of fields) {
    text = text.replace(new RegExp(`"${field}":(\\d+)`, "g"), (_, digits: string) => `"${field}":"${BigInt(digits).toString(16)}"`);
  }
  return text;
}

interface ListedMember {
  readonly id: string;
  readonly name: string;
  readonly learner: boolean;
  readonly started: boolean;
  readonly clientUrls: readonly string[];
}

/** `etcdctl member list -w json` as members named by their peer URL's first label. */
export function parseMemberList(text: string): ListedMember[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(quoteIds(text, ["ID", "cluster_id", "member_id"]));
  } catch {
    throw new Error("etcdctl member list: not JSON");
  }
  const members = (parsed as { members?: unknown }).members;
  if (!Array.isArray(members)) throw new Error("etcdctl member list: no members array");
  return members.map((m: Record<string, unknown>) => {
    const peer = Array.isArray(m.peerURLs) && typeof m.peerURLs[0] === "string" ? m.peerURLs[0] : "";
    const name = peer ? new URL(peer).hostname.split(".")[0] : "";
    if (typeof m.ID !== "string" || !/^[0-9a-f]{1,16}$/.test(m.ID) || !name) throw new Error("etcdctl member list: a member without ID or peer URL");
    const clientUrls = Array.isArray(m.clientURLs) ? m.clientURLs.filter((u): u is string => typeof u === "string") : [];
    // An added member that never started has no name and no client URLs yet.
    return { id: m.ID, name, learner: m.isLearner === true, started: typeof m.name === "string" && m.name !== "", clientUrls };
  });
}

/** `etcdctl endpoint status -w json` of one member: healthy when it answered and knows a leader. */
export function parseEndpointStatus(text: string): { healthy: boolean; leader?: string } {
  try {
    const parsed = JSON.parse(quoteIds(text, ["leader", "cluster_id", "member_id"])) as { Status?: { leader?: unknown; errors?: unknown } }[];
    const status = parsed[0]?.Status;
    const leader = typeof status?.leader === "string" && status.leader !== "0" ? status.leader : undefined;
    const errors = Array.isArray(status?.errors) ? status.errors.length : 0;
    return { healthy: leader !== undefined && errors === 0, leader };
  } catch {
    return { healthy: false };
  }
}

const clientFlags = (endpoints: readonly string[], tls: TlsFiles) => [`--endpoints=${endpoints.join(",")}`, `--cacert=${tls.cacert}`, `--cert=${tls.cert}`, `--key=${tls.key}`, "--dial-timeout=5s", "--command-timeout=10s"];

async function etcdctl(o: MemberOptions, endpoints: readonly string[], args: string[]): Promise<{ ok: boolean; stdout: string; why: string }> {
  const result = await runTool(o.etcdctl, [...clientFlags(endpoints, o.tls), ...args], o.timeoutMs);
  return { ok: result.code === 0, stdout: result.stdout, why: result.code === 0 ? "" : toolFailure(result.stderr || result.stdout, `exit ${result.code}`) };
}

async function list(o: MemberOptions): Promise<ListedMember[]> {
  const r = await etcdctl(o, o.endpoints, ["member", "list", "-w", "json"]);
  if (r.ok) return parseMemberList(r.stdout);
  // etcdctl says `context deadline exceeded` for any failure to connect, the cause (a refused client
  // certificate) not always in its logs: the endpoints say where, and Node's TLS client says why.
  const causes = await Promise.all(o.endpoints.map((endpoint) => memberHealth(endpoint, o.tls).then(() => "", (error: Error) => error.message)));
  throw new Error([`etcdctl member list at ${o.endpoints.join(", ")}: ${r.why}`, ...causes.filter(Boolean)].join("; "));
}

/** Each started member's status, asked at its own client URL (a learner answers too). */
async function observe(o: MemberOptions, members: readonly ListedMember[]): Promise<{ members: ObservedMember[]; leader?: string }> {
  let leader: string | undefined;
  const observed = await Promise.all(
    members.map(async (m) => {
      if (!m.started || m.clientUrls.length === 0) return { name: m.name, id: m.id, learner: m.learner, started: m.started, healthy: false };
      const r = await etcdctl(o, [m.clientUrls[0]], ["endpoint", "status", "-w", "json"]);
      const status = r.ok ? parseEndpointStatus(r.stdout) : { healthy: false, leader: undefined };
      leader ??= status.leader;
      return { name: m.name, id: m.id, learner: m.learner, started: m.started, healthy: status.healthy };
    }),
  );
  return { members: observed.sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true })), leader };
}

/** One step, then the membership as observed after it. */
export async function runMemberStep(o: MemberOptions, log: (line: string) => void): Promise<MemberResult> {
  const before = await list(o);
  const target = o.member === undefined ? undefined : before.find((m) => m.name === o.member);
  let done = true;
  let message = "";
  if (o.action === "add") {
    if (target) message = `${o.member} is already a member (${target.learner ? "learner" : "voter"})`;
    else if (before.some((m) => m.learner)) [done, message] = [false, `another learner is not promoted yet: one at a time`];
    else {
      const r = await etcdctl(o, o.endpoints, ["member", "add", o.member!, `--peer-urls=${o.peerUrl}`, "--learner"]);
      [done, message] = r.ok ? [true, `added ${o.member} as a learner`] : [false, `etcdctl member add: ${r.why}`];
    }
  } else if (o.action === "promote") {
    if (!target) [done, message] = [false, `${o.member} is not a member`];
    else if (!target.learner) message = `${o.member} is already a voting member`;
    else {
      const r = await etcdctl(o, o.endpoints, ["member", "promote", target.id]);
      // etcd refuses a learner that has not caught up with the leader: the operator asks again.
      [done, message] = r.ok ? [true, `promoted ${o.member}`] : [false, `etcdctl member promote: ${r.why}`];
    }
  } else if (o.action === "remove") {
    if (!target) message = `${o.member} is not a member`;
    else {
      const { leader } = await observe(o, before);
      const next = before.find((m) => m.id !== target.id && !m.learner && m.started);
      if (leader === target.id && next) {
        // Leadership first, so no write waits for an election after the leader leaves.
        const voters = before.filter((m) => !m.learner && m.clientUrls.length).map((m) => m.clientUrls[0]);
        const moved = await etcdctl(o, voters, ["move-leader", next.id]);
        log(moved.ok ? `moved leadership from ${target.name} to ${next.name}` : `move-leader: ${moved.why} (removing anyway)`);
      }
      const r = await etcdctl(o, o.endpoints, ["member", "remove", target.id]);
      [done, message] = r.ok ? [true, `removed ${o.member}`] : [false, `etcdctl member remove: ${r.why}`];
    }
  }
  if (message) log(message);
  const after = await observe(o, o.action === "list" ? before : await list(o));
  return { action: o.action, member: o.member ?? "", done, message: message || `${after.members.length} member(s)`, members: after.members };
}
