/**
 * `kok etcd backup` and `kok etcd restore` against a real etcd (the toolchain's, TLS on the client
 * port with client certificates required, certificates from our own PKI code) and the real
 * versitygw object store (started by the dev services' own code in a throwaway state directory).
 *
 * Happy path: keys written → a backup (the real `kok` process, etcdctl and etcdutl found on PATH,
 * credentials from the environment) → the snapshot and its sidecar in the bucket, matching →
 * retention pruned exactly what the rules say and nothing else → three members restored in
 * parallel into fresh data dirs → the etcd they form serves every key under one new cluster ID,
 * at a revision past the old one's → a second restore does nothing.
 * Bad paths: wrong credentials, a missing bucket, an unreachable etcd, a client certificate of
 * another CA, a snapshot altered in the bucket (refused against its sidecar) and a corrupted
 * snapshot whose sidecar was made to match (refused by etcd's own checks). None leaves an object
 * or a member directory behind, and no message carries a credential.
 *
 * Needs the toolchain (etcd, etcdctl, etcdutl, versitygw, registry); fails, never skips, without it.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Agent } from "node:https";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { etcdBackupCommand, etcdRestoreCommand } from "../../src/cli/etcd";
import { defaultConfig, type DevConfig } from "../../src/dev/config";
import { OBJECT_STORE_BUCKET, OBJECT_STORE_REGION, objectStoreEndpoint, readObjectStoreCredentials } from "../../src/dev/object-store";
import { ensurePki } from "../../src/dev/pki";
import { startServices, stopServices } from "../../src/dev/services";
import { toolchainBinary, toolchainDir } from "../../src/dev/toolchain";
import { backupStamp, parseBackupStamp } from "../../src/backup/keys";
import { S3Client } from "../../src/runtime/s3/client";
import { freePortBase, kok } from "../support/dev-cluster";
import { agentFor, b64, capture, countKeys, freePorts, gateway, serving, startEtcd, stopEtcd, type Etcd } from "../support/etcd";

const KEYS = 2000;
const VALUE = "v".repeat(1024);
const HOUR = 3_600_000;

describe("kok etcd backup / restore with a real etcd and object store", () => {
  let root: string;
  let pki: string;
  let otherPki: string;
  let config: DevConfig;
  let etcd: Etcd | undefined;
  let restored: Etcd[] = [];
  let agent: Agent;
  let s3: S3Client;
  let env: NodeJS.ProcessEnv;
  let ports: { client: number; peer: number; unused: number; restored: { client: number; peer: number }[] };
  const prefix = `etcd-backups/run-${process.pid}`;
  let flags: Record<string, string>;
  let location = "";

  const s3Options = () => ({ endpoint: objectStoreEndpoint(config), region: OBJECT_STORE_REGION, credentials: readObjectStoreCredentials(config) });
  const keysUnder = async (p: string) => (await s3.list(OBJECT_STORE_BUCKET, p)).map((o) => o.key).sort();

  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), "kok-etcd-backup-"));
    pki = path.join(root, "pki");
    otherPki = path.join(root, "other-pki");
    const leaves = [
      // "both": etcd's JSON gateway dials etcd's own gRPC port with the serving certificate as its client certificate.
      { file: "etcd-server", commonName: "etcd", usage: "both" as const, dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] },
      { file: "backup-client", commonName: "kube-on-kube-etcd-backup", usage: "client" as const },
    ];
    await ensurePki(pki, leaves);
    // A client certificate from another CA: etcd must refuse it.
    await ensurePki(otherPki, leaves);

    const base = await freePortBase();
    config = defaultConfig(path.join(root, "dev"), base);
    // The dev config's etcd ports (this test starts no dev etcd), then free ones below the ephemeral range.
    const free = await freePorts(7);
    ports = { client: base + 2379, peer: base + 2380, unused: free[6], restored: [0, 1, 2].map((i) => ({ client: free[2 * i], peer: free[2 * i + 1] })) };
    let started = Date.now();
    await startServices(config, () => undefined, () => "");
    console.log(`object store up in ${Date.now() - started} ms`);
    const credentials = readObjectStoreCredentials(config);
    env = { PATH: process.env.PATH, AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey };
    s3 = new S3Client(s3Options());

    etcd = startEtcd(root, "source", path.join(root, "source.etcd"), ports.client, ports.peer, pki);
    agent = agentFor(pki);
    await serving(etcd, agent);
    started = Date.now();
    for (let i = 0; i < KEYS; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => gateway(etcd!, "kv/put", { key: b64(`k/${String(i + j).padStart(5, "0")}`), value: b64(VALUE) }, agent)));
    }
    console.log(`wrote ${KEYS} keys of ${VALUE.length} bytes in ${Date.now() - started} ms`);

    flags = {
      cluster: "team-a/prod",
      endpoints: etcd.url,
      cacert: `${pki}/ca.crt`,
      cert: `${pki}/backup-client.crt`,
      key: `${pki}/backup-client.key`,
      s3Endpoint: objectStoreEndpoint(config),
      region: OBJECT_STORE_REGION,
      bucket: OBJECT_STORE_BUCKET,
      prefix,
      keep: "3",
      maxAge: "168h",
      workDir: path.join(root, "work"),
      etcdctl: toolchainBinary("etcdctl"),
      etcdutl: toolchainBinary("etcdutl"),
    };
    mkdirSync(flags.workDir);
  }, 120_000);

  afterAll(async () => {
    const started = Date.now();
    agent?.destroy();
    // Throwaway members: a graceful stop of a 3-member cluster waits seconds for leadership moves.
    await Promise.all(restored.map((member) => stopEtcd(member, "SIGKILL")));
    await stopEtcd(etcd);
    if (config) await stopServices(config, () => undefined);
    if (root) rmSync(root, { recursive: true, force: true });
    console.log(`teardown in ${Date.now() - started} ms`);
  });

  it("backs up: snapshot and sidecar in the bucket, the result line, retention pruning exactly what its rules say", async () => {
    // Earlier runs' objects, by the key times retention reads: keep 3, max age 168h.
    const now = Date.now();
    const at = (hoursAgo: number, suffix: string) => `${prefix}/${backupStamp(new Date(now - hoursAgo * HOUR))}${suffix}`;
    const seeded = {
      tooOld: [at(200, ".db"), at(200, ".json")],
      kept: [at(1, ".db"), at(1, ".json"), at(2, ".db"), at(2, ".json")],
      beyondCount: [at(3, ".db"), at(3, ".json")],
      halfWritten: [at(30, ".db")],
      oldHalf: [at(300, ".json")],
      notABackup: [`${prefix}/README.txt`, `${prefix}/nested/${backupStamp(new Date(now - 500 * HOUR))}.db`],
    };
    for (const key of Object.values(seeded).flat()) await s3.putBytes(OBJECT_STORE_BUCKET, key, Buffer.from("not a snapshot"), "application/octet-stream");

    // The real command: etcdctl and etcdutl from PATH, credentials from the environment.
    const resultFile = path.join(root, "termination-log");
    const args = Object.entries(flags)
      .filter(([k]) => k !== "etcdctl" && k !== "etcdutl")
      .flatMap(([k, v]) => [`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, v]);
    const started = Date.now();
    const run = await kok(["etcd", "backup", ...args, "--result-file", resultFile], { ...env, PATH: `${path.join(toolchainDir(), "bin")}:${process.env.PATH}` });
    console.log(`kok etcd backup (a process, tsx start included) in ${Date.now() - started} ms:\n${run.stderr}`);
    expect(run.code, run.stderr).toBe(0);
    const line = run.stdout.trim().split("\n").pop()!;
    expect(readFileSync(resultFile, "utf8")).toBe(line);
    expect(line.length).toBeLessThan(4096);
    const result = JSON.parse(line) as Record<string, unknown>;
    expect(Object.keys(result).sort()).toEqual(["location", "pruned", "revision", "sha256", "size", "time"]);
    expect(result.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    const key = `${prefix}/${String(result.time).replace(/:/g, "-")}.db`;
    location = `s3://${OBJECT_STORE_BUCKET}/${key}`;
    expect(result.location).toBe(location);
    expect(result.revision).toBeGreaterThanOrEqual(KEYS + 1);
    // 200h ago (age), 3h ago (count), the half-written one of 300h ago (age).
    expect(result.pruned).toBe(3);
    for (const secret of [env.AWS_ACCESS_KEY_ID!, env.AWS_SECRET_ACCESS_KEY!]) expect(run.stdout + run.stderr).not.toContain(secret);

    // The object is the snapshot the result describes; the sidecar says the same.
    const body = await s3.getBytes(OBJECT_STORE_BUCKET, key);
    expect(body.length).toBe(result.size);
    expect(body.length).toBeGreaterThan(KEYS * VALUE.length);
    expect(createHash("sha256").update(body).digest("hex")).toBe(result.sha256);
    const sidecar = JSON.parse((await s3.getBytes(OBJECT_STORE_BUCKET, key.replace(/\.db$/, ".json"))).toString("utf8")) as Record<string, unknown>;
    expect(sidecar).toEqual({ time: result.time, revision: result.revision, size: result.size, sha256: result.sha256, etcdVersion: expect.stringMatching(/^3\.\d+\.\d+$/), cluster: "team-a/prod" });
    console.log(`snapshot of ${KEYS} keys: ${body.length} bytes, revision ${String(result.revision)}, etcd storage ${String(sidecar.etcdVersion)}`);

    const left = await keysUnder(`${prefix}/`);
    // The client's listing follows continuation tokens: pages of 2 list the same keys.
    expect((await s3.list(OBJECT_STORE_BUCKET, `${prefix}/`, 2)).map((o) => o.key).sort()).toEqual(left);
    expect(left).toEqual([key, key.replace(/\.db$/, ".json"), ...seeded.kept, ...seeded.halfWritten, ...seeded.notABackup].sort());
    // The snapshot was written only to the work dir, and removed from it.
    expect(readdir(flags.workDir)).toEqual([]);
  }, 60_000);

  it("restores three members from it: they form one cluster with a new ID and every key, past the old revisions; a second restore does nothing", async () => {
    expect(location).not.toBe("");
    const names = ["restored-0", "restored-1", "restored-2"];
    const peerUrl = (i: number) => `http://127.0.0.1:${ports.restored[i].peer}`;
    const initialCluster = names.map((n, i) => `${n}=${peerUrl(i)}`).join(",");
    const restoreFlags = (i: number) => ({
      snapshot: location,
      s3Endpoint: flags.s3Endpoint,
      region: flags.region,
      dataDir: path.join(root, "restored", names[i]),
      name: names[i],
      initialCluster,
      initialClusterToken: "restored-token",
      initialAdvertisePeerUrls: peerUrl(i),
      etcdutl: flags.etcdutl,
    });
    // Each member's init container, as the StatefulSet's Pods start them: in parallel.
    let started = Date.now();
    const runs = names.map(() => capture(env));
    const codes = await Promise.all(names.map((_, i) => etcdRestoreCommand(restoreFlags(i), runs[i].io)));
    console.log(`3 members restored in parallel in ${Date.now() - started} ms; member 0: ${runs[0].err.join("").trim()}`);
    expect(codes, runs.map((r) => r.err.join("")).join("\n")).toEqual([0, 0, 0]);
    for (const [i, run] of runs.entries()) {
      expect(JSON.parse(run.out.join(""))).toMatchObject({ restored: true, snapshot: location, dataDir: restoreFlags(i).dataDir });
      expect(readdir(restoreFlags(i).dataDir)).toEqual(["member"]);
    }

    started = Date.now();
    restored = names.map((name, i) => startEtcd(root, name, restoreFlags(i).dataDir, ports.restored[i].client, ports.restored[i].peer, pki, { cluster: initialCluster, token: "restored-token" }));
    const answers = await Promise.all(restored.map((member) => serving(member, agent)));
    console.log(`restored 3-member etcd serving in ${Date.now() - started} ms`);
    const before = await countKeys(etcd!, agent);
    expect(before.count).toBe(KEYS);
    expect(answers.map((a) => a.count)).toEqual([KEYS, KEYS, KEYS]);
    // One cluster (the same ID on every member, from the same flags), not the source's.
    expect(new Set(answers.map((a) => a.clusterId)).size).toBe(1);
    expect(answers[0].clusterId).not.toBe(before.clusterId);
    const members = (await gateway(restored[1], "cluster/member/list", {}, agent)).members as { name: string }[];
    expect(members.map((m) => m.name).sort()).toEqual(names);
    // The revision jumped past anything a surviving client (a worker's kubelet) saw before, so its watches relist.
    expect(answers[2].revision).toBeGreaterThan(before.revision + 999_999_999);
    const value = await gateway(restored[2], "kv/range", { key: b64("k/01999") }, agent);
    expect(Buffer.from(String((value.kvs as { value: string }[])[0].value), "base64").toString()).toBe(VALUE);
    // A write through one member is read through another: a working quorum.
    await gateway(restored[0], "kv/put", { key: b64("after-restore"), value: b64("yes") }, agent);
    const read = await gateway(restored[2], "kv/range", { key: b64("after-restore") }, agent);
    expect((read.kvs as unknown[]).length).toBe(1);

    // Every Pod start runs the init container again: the member's data must stay as it is.
    const again = capture(env);
    expect(await etcdRestoreCommand(restoreFlags(0), again.io), again.err.join("")).toBe(0);
    expect(JSON.parse(again.out.join(""))).toEqual({ restored: false, snapshot: location, dataDir: restoreFlags(0).dataDir });
    expect((await countKeys(restored[0], agent)).count).toBe(KEYS);
  }, 60_000);

  it("fails with one clear line and leaves nothing for wrong credentials, a missing bucket, an unreachable etcd, a foreign client certificate or a key already taken", async () => {
    const before = await keysUnder(`${prefix}/`);
    const wrongSecret = "a-wrong-secret-the-store-refuses-000001";
    const taken = parseBackupStamp(path.basename(location, ".db"))!;
    const cases: { name: string; flags: Record<string, string>; env: NodeJS.ProcessEnv; expect: RegExp; now?: Date }[] = [
      { name: "wrong credentials", flags, env: { ...env, AWS_SECRET_ACCESS_KEY: wrongSecret }, expect: /HeadBucket kok-dev: AccessDenied/ },
      { name: "missing bucket", flags: { ...flags, bucket: "no-such-bucket-here" }, env, expect: /HeadBucket no-such-bucket-here: NoSuchBucket/ },
      { name: "unreachable etcd", flags: { ...flags, endpoints: `https://127.0.0.1:${ports.unused}` }, env, expect: new RegExp(`etcd member https://127\\.0\\.0\\.1:${ports.unused} is not healthy: .*ECONNREFUSED`) },
      {
        name: "client certificate of another CA",
        flags: { ...flags, cert: `${otherPki}/backup-client.crt`, key: `${otherPki}/backup-client.key` },
        env,
        expect: new RegExp(`etcd member ${etcd!.url.replace(/\./g, "\\.")} is not healthy: .*(alert|certificate)`),
      },
      // An on-demand run in the same second as the first backup: its key is taken.
      { name: "same second as another backup", flags, env, now: new Date(taken.getTime() + 999), expect: new RegExp(`${location.replace(/\./g, "\\.")} already exists: another backup ran in the same second`) },
    ];
    for (const c of cases) {
      const resultFile = path.join(root, `result-${c.name.replace(/ /g, "-")}`);
      const run = capture(c.env, c.now ?? new Date(Date.now() + 10_000));
      const started = Date.now();
      const code = await etcdBackupCommand({ ...c.flags, resultFile }, run.io);
      const message = readFileSync(resultFile, "utf8");
      console.log(`${c.name} (${Date.now() - started} ms): ${message}`);
      expect(code, c.name).toBe(1);
      expect(message, c.name).toMatch(/^etcd backup failed: /);
      expect(message, c.name).toMatch(c.expect);
      expect(message.split("\n"), c.name).toHaveLength(1);
      expect(run.out, c.name).toEqual([]);
      for (const secret of [wrongSecret, env.AWS_SECRET_ACCESS_KEY!, env.AWS_ACCESS_KEY_ID!]) expect(message + run.err.join(""), c.name).not.toContain(secret);
    }
    expect(await keysUnder(`${prefix}/`)).toEqual(before);
    expect(readdir(flags.workDir)).toEqual([]);
  }, 60_000);

  it("refuses to restore a snapshot altered in the bucket, one bigger than its sidecar says, and a corrupted one whose sidecar was made to match", async () => {
    const good = await s3.getBytes(OBJECT_STORE_BUCKET, location.replace(`s3://${OBJECT_STORE_BUCKET}/`, ""));
    const sidecar = JSON.parse((await s3.getBytes(OBJECT_STORE_BUCKET, location.replace(`s3://${OBJECT_STORE_BUCKET}/`, "").replace(/\.db$/, ".json"))).toString("utf8")) as Record<string, unknown>;
    const corrupted = Buffer.from(good);
    // Flip bytes across the file: pages of keys, and etcd's own hash at the end.
    for (let at = 4096; at < corrupted.length; at += 8192) corrupted[at] ^= 0xff;
    const sha = createHash("sha256").update(corrupted).digest("hex");
    const restore = async (key: string) => {
      const dataDir = path.join(root, `refused-${path.basename(key, ".db")}`);
      const run = capture(env);
      const peer = `http://127.0.0.1:${ports.unused}`;
      const code = await etcdRestoreCommand(
        { snapshot: `s3://${OBJECT_STORE_BUCKET}/${key}`, s3Endpoint: flags.s3Endpoint, region: flags.region, dataDir, name: "m", initialCluster: `m=${peer}`, initialClusterToken: "t", initialAdvertisePeerUrls: peer, etcdutl: flags.etcdutl },
        run.io,
      );
      return { code, message: run.err.join("").trim().split("\n").pop()!, memberLeft: existsSync(path.join(dataDir, "member")), scratchLeft: existsSync(path.join(dataDir, ".kok-restore")) };
    };

    // Altered after the upload: the bytes no longer match the sidecar.
    const altered = `${prefix}/altered/2026-01-01T00-00-00Z.db`;
    await s3.putBytes(OBJECT_STORE_BUCKET, altered, corrupted, "application/octet-stream");
    await s3.putBytes(OBJECT_STORE_BUCKET, altered.replace(/\.db$/, ".json"), Buffer.from(JSON.stringify(sidecar)), "application/json");
    let outcome = await restore(altered);
    console.log(`altered snapshot: ${outcome.message}`);
    expect(outcome).toMatchObject({ code: 1, memberLeft: false, scratchLeft: false });
    expect(outcome.message).toContain(`s3://${OBJECT_STORE_BUCKET}/${altered} does not match its sidecar`);

    // Bigger than its sidecar says: the download stops there (it lands on the member's volume).
    const grown = `${prefix}/grown/2026-01-01T00-00-00Z.db`;
    await s3.putBytes(OBJECT_STORE_BUCKET, grown, good, "application/octet-stream");
    await s3.putBytes(OBJECT_STORE_BUCKET, grown.replace(/\.db$/, ".json"), Buffer.from(JSON.stringify({ ...sidecar, size: 4096 })), "application/json");
    outcome = await restore(grown);
    console.log(`bigger than announced: ${outcome.message}`);
    expect(outcome).toMatchObject({ code: 1, memberLeft: false, scratchLeft: false });
    expect(outcome.message).toContain("larger than the 4096 bytes expected");

    // Corrupted before the upload (the sidecar matches the bytes): etcd's own checks refuse it.
    const corrupt = `${prefix}/corrupt/2026-01-01T00-00-00Z.db`;
    await s3.putBytes(OBJECT_STORE_BUCKET, corrupt, corrupted, "application/octet-stream");
    await s3.putBytes(OBJECT_STORE_BUCKET, corrupt.replace(/\.db$/, ".json"), Buffer.from(JSON.stringify({ ...sidecar, sha256: sha })), "application/json");
    outcome = await restore(corrupt);
    console.log(`corrupted snapshot: ${outcome.message}`);
    expect(outcome).toMatchObject({ code: 1, memberLeft: false, scratchLeft: false });
    expect(outcome.message).toMatch(new RegExp(`s3://${OBJECT_STORE_BUCKET}/${corrupt.replace(/\./g, "\\.")}: etcdutl snapshot (status|restore): .*refusing to restore it`));
  }, 60_000);

  it("takes the snapshot from the next member when the first does not answer", async () => {
    const down = `https://127.0.0.1:${ports.unused}`;
    const run = capture(env, new Date(Date.now() + 20_000));
    expect(await etcdBackupCommand({ ...flags, endpoints: `${down},${etcd!.url}` }, run.io), run.err.join("")).toBe(0);
    const log = run.err.join("");
    expect(log).toContain(`snapshot from ${etcd!.url}: revision`);
    const result = JSON.parse(run.out.join("").trim()) as { location: string; revision: number };
    expect(result.revision).toBeGreaterThanOrEqual(KEYS + 1);
    expect(await keysUnder(`${prefix}/`)).toContain(result.location.replace(`s3://${OBJECT_STORE_BUCKET}/`, ""));
  }, 60_000);

  it("uploads a file over the multipart threshold in parts that versitygw assembles byte for byte", async () => {
    const MIB = 1024 * 1024;
    // The real store checks each part's signed SHA-256 and the 5 MiB minimum of all but the last part.
    const parts = new S3Client({ ...s3Options(), multipartThresholdBytes: 6 * MIB, partBytes: 5 * MIB });
    const file = path.join(root, "big.db");
    const content = randomBytes(11 * MIB + 17);
    writeFileSync(file, content);
    const key = `${prefix}/multipart/big.db`;
    const digest = await parts.putFile(OBJECT_STORE_BUCKET, key, file);
    expect(digest).toBe(createHash("sha256").update(content).digest("hex"));
    const [object] = await s3.list(OBJECT_STORE_BUCKET, key);
    expect(object).toMatchObject({ key, size: content.length });
    const back = path.join(root, "big.back");
    expect(await s3.getFile(OBJECT_STORE_BUCKET, key, back)).toBe(content.length);
    expect(readFileSync(back).equals(content)).toBe(true);
    await s3.delete(OBJECT_STORE_BUCKET, key);
  }, 60_000);
});

function readdir(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}
