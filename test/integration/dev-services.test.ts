/**
 * `kok dev`'s registry and object store for real: the toolchain's distribution `registry` and
 * `versitygw` started by `kok dev up --no-node` in a throwaway state directory, an image pushed
 * and read back over the registry API, objects written and read over S3 with our SigV4 signer
 * (and a wrong secret refused), Pulumi's s3:// backend logged into with `kok dev env`'s URL, a
 * killed registry reported and restarted. Needs the toolchain; fails, never skips, without it.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, statePaths, type DevConfig } from "../../src/dev/config";
import { httpRequest } from "../../src/dev/http";
import { OBJECT_STORE_BUCKET, objectStoreTarget, readObjectStoreCredentials, s3ErrorCode, s3Request } from "../../src/dev/object-store";
import { readPidFile, isAlive } from "../../src/dev/processes";
import { registryAddress } from "../../src/dev/registry";
import { sha256Hex } from "../../src/runtime/s3/sign";
import { toolchainBinary, toolchainDir } from "../../src/dev/toolchain";
import { kok, newDevCluster, type DevCluster, type KokResult } from "../support/dev-cluster";

let cluster: DevCluster;
let config: DevConfig;
let upOutput: KokResult;

const up = () => kok(["dev", "up", ...cluster.args, "--port-base", String(cluster.portBase), "--no-node"]);

/** Pushes one blob the way a client does: start an upload session, then PUT its bytes with their digest. */
async function pushBlob(registry: string, repo: string, data: Buffer): Promise<string> {
  const digest = `sha256:${sha256Hex(data)}`;
  const session = await httpRequest(`http://${registry}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  expect(session.status).toBe(202);
  const location = new URL(String(session.headers.location), `http://${registry}`);
  location.searchParams.set("digest", digest);
  const put = await httpRequest(location.toString(), { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: data });
  expect(put.status).toBe(201);
  return digest;
}

describe("kok dev: the registry and the object store", () => {
  beforeAll(async () => {
    cluster = await newDevCluster();
    upOutput = await up();
    if (upOutput.code !== 0) throw new Error(`kok dev up failed (${upOutput.code}):\n${upOutput.stdout}\n${upOutput.stderr}`);
    const loaded = loadConfig(cluster.stateDir);
    if (!loaded) throw new Error("no config.json after up");
    config = loaded;
  });

  afterAll(async () => {
    if (cluster) await kok(["dev", "down", ...cluster.args, "--purge"]);
  });

  it("starts both on the ports of the base, creates the bucket, and never prints the secret", () => {
    expect(upOutput.stdout).toContain(`registry: started on http://127.0.0.1:${cluster.portBase + 5000}`);
    expect(upOutput.stdout).toContain(`object store: started on http://127.0.0.1:${cluster.portBase + 9000}`);
    expect(upOutput.stdout).toMatch(/registry: healthy \(/);
    expect(upOutput.stdout).toMatch(/object store: healthy, bucket kok-dev created \(/);
    const { secretAccessKey } = readObjectStoreCredentials(config);
    expect(upOutput.stdout + upOutput.stderr).not.toContain(secretAccessKey);
    // Nor does the process's own log, nor its command line.
    expect(readFileSync(join(statePaths(cluster.stateDir).logs, "object-store.log"), "utf8")).not.toContain(secretAccessKey);
    const pid = readPidFile(join(statePaths(cluster.stateDir).pids, "object-store.pid"))?.pid;
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).not.toContain(secretAccessKey);
  });

  it("serves an image pushed over the registry API, stored under the state dir", async () => {
    const registry = registryAddress(config);
    const layer = Buffer.from(`a layer written at ${new Date().toISOString()}`);
    const imageConfig = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [`sha256:${sha256Hex(layer)}`] } }));
    const layerDigest = await pushBlob(registry, "kok/test", layer);
    const configDigest = await pushBlob(registry, "kok/test", imageConfig);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: imageConfig.length },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layerDigest, size: layer.length }],
      }),
    );
    const put = await httpRequest(`http://${registry}/v2/kok/test/manifests/v1`, {
      method: "PUT",
      headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
      body: manifest,
    });
    expect(put.status).toBe(201);
    expect(put.headers["docker-content-digest"]).toBe(`sha256:${sha256Hex(manifest)}`);

    const got = await httpRequest(`http://${registry}/v2/kok/test/manifests/v1`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
    expect(got.status).toBe(200);
    expect(got.body.equals(manifest)).toBe(true);
    const blob = await httpRequest(`http://${registry}/v2/kok/test/blobs/${layerDigest}`);
    expect(blob.body.equals(layer)).toBe(true);
    const missing = await httpRequest(`http://${registry}/v2/kok/test/manifests/no-such-tag`);
    expect(missing.status).toBe(404);
    expect(existsSync(join(statePaths(cluster.stateDir).registryData, "docker/registry/v2/repositories/kok/test"))).toBe(true);
  });

  it("stores objects over S3 with our signer and refuses a wrong secret", async () => {
    const target = objectStoreTarget(config);
    const body = `state written at ${new Date().toISOString()}`;
    const put = await s3Request(target, { method: "PUT", path: `/${OBJECT_STORE_BUCKET}/stacks/dev one.json`, body, headers: { "content-type": "application/json" } });
    expect(put.status).toBe(200);
    const get = await s3Request(target, { method: "GET", path: `/${OBJECT_STORE_BUCKET}/stacks/dev one.json` });
    expect(get.status).toBe(200);
    expect(get.body.toString()).toBe(body);
    // The POSIX backend: the bucket is a directory in the state dir, the object a file.
    expect(readFileSync(join(statePaths(cluster.stateDir).objectStoreData, OBJECT_STORE_BUCKET, "stacks", "dev one.json"), "utf8")).toBe(body);
    const list = await s3Request(target, { method: "GET", path: `/${OBJECT_STORE_BUCKET}`, query: { "list-type": "2", prefix: "stacks/" } });
    expect(list.body.toString()).toContain("<Key>stacks/dev one.json</Key>");

    const wrong = { ...target, credentials: { ...target.credentials, secretAccessKey: `${target.credentials.secretAccessKey}x` } };
    const refused = await s3Request(wrong, { method: "GET", path: `/${OBJECT_STORE_BUCKET}/stacks/dev one.json` });
    expect(refused.status).toBe(403);
    expect(s3ErrorCode(refused)).toBe("SignatureDoesNotMatch");
  });

  it("env prints every variable as an export a shell evaluates back to the same values", async () => {
    const env = await kok(["dev", "env", ...cluster.args]);
    expect(env.code).toBe(0);
    const { accessKeyId, secretAccessKey } = readObjectStoreCredentials(config);
    const script = `${env.stdout}\nfor v in KUBECONFIG KOK_REGISTRY KOK_S3_ENDPOINT KOK_S3_BUCKET KOK_S3_BACKEND_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION; do echo "$v=\${!v}"; done`;
    const values = Object.fromEntries(
      execFileSync("bash", ["-c", script], { encoding: "utf8" })
        .trim()
        .split("\n")
        .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
    );
    const s3 = `http://127.0.0.1:${cluster.portBase + 9000}`;
    expect(values).toEqual({
      KUBECONFIG: cluster.kubeconfig,
      KOK_REGISTRY: `127.0.0.1:${cluster.portBase + 5000}`,
      KOK_S3_ENDPOINT: s3,
      KOK_S3_BUCKET: "kok-dev",
      KOK_S3_BACKEND_URL: `s3://kok-dev?endpoint=${s3}&region=us-east-1&use_path_style=true`,
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
      AWS_REGION: "us-east-1",
    });
  });

  it("is a Pulumi state backend through KOK_S3_BACKEND_URL", async () => {
    const env = await kok(["dev", "env", ...cluster.args]);
    const exported = Object.fromEntries(
      execFileSync("bash", ["-c", `${env.stdout}\nenv -0`], { encoding: "utf8" })
        .split("\0")
        .filter((l) => /^(KOK_S3_|AWS_)/.test(l))
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    const project = join(cluster.stateDir, "pulumi-project");
    mkdirSync(project);
    writeFileSync(join(project, "Pulumi.yaml"), "name: kok-dev-backend\nruntime: yaml\n");
    const pulumi = (...args: string[]) =>
      execFileSync(toolchainBinary("pulumi"), args, {
        cwd: project,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          PATH: process.env.PATH,
          HOME: cluster.stateDir,
          PULUMI_HOME: join(toolchainDir(), "pulumi-home"),
          PULUMI_BACKEND_URL: exported.KOK_S3_BACKEND_URL,
          PULUMI_CONFIG_PASSPHRASE: "dev-services-test",
          PULUMI_SKIP_UPDATE_CHECK: "true",
          PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
          ...exported,
        },
      });
    pulumi("stack", "init", "organization/kok-dev-backend/dev", "--non-interactive");
    const stacks = JSON.parse(pulumi("stack", "ls", "--json")) as { name: string }[];
    expect(stacks.map((st) => st.name)).toEqual(["dev"]);
    const list = await s3Request(objectStoreTarget(config), { method: "GET", path: `/${OBJECT_STORE_BUCKET}`, query: { "list-type": "2", prefix: ".pulumi/" } });
    expect(list.body.toString()).toContain("<Key>.pulumi/stacks/kok-dev-backend/dev.json</Key>");
  });

  it("status shows both healthy, then a killed registry as not running; up restarts it with its images", async () => {
    const healthy = await kok(["dev", "status", ...cluster.args]);
    expect(healthy.stdout).toMatch(/^registry +pid \d+ +healthy$/m);
    expect(healthy.stdout).toMatch(/^object store +pid \d+ +healthy$/m);
    expect(healthy.stdout).not.toContain(readObjectStoreCredentials(config).secretAccessKey);

    const record = readPidFile(join(statePaths(cluster.stateDir).pids, "registry.pid"));
    process.kill(record?.pid ?? -1, "SIGKILL");
    while (isAlive(record)) await new Promise((r) => setTimeout(r, 50));
    const down = await kok(["dev", "status", ...cluster.args]);
    expect(down.code).toBe(1);
    expect(down.stdout).toMatch(/^registry +stopped +not healthy: not running/m);
    expect(down.stdout).toMatch(/^object store +pid \d+ +healthy$/m);

    const again = await up();
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("registry: started on");
    expect(again.stdout).toContain("object store: already running");
    expect(again.stdout).toMatch(/object store: healthy, bucket kok-dev \(/);
    const got = await httpRequest(`http://${registryAddress(config)}/v2/kok/test/manifests/v1`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
    expect(got.status).toBe(200);
  });

  it("up stops at once, naming the file, when the running object store refuses the saved credentials", async () => {
    const file = statePaths(cluster.stateDir).objectStoreCredentials;
    const saved = readFileSync(file, "utf8");
    writeFileSync(file, JSON.stringify({ accessKeyId: "KOKNOTTHERUNNINGKEY0", secretAccessKey: "x".repeat(40) }));
    try {
      const result = await up();
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/object store \(http:\/\/127\.0\.0\.1:\d+\): ListBuckets answered \w+: the running object store does not take the credentials in /);
      expect(result.stderr).toContain("restart it (`kok dev down`, then `kok dev up`)");
      const status = await kok(["dev", "status", ...cluster.args]);
      expect(status.stdout).toMatch(/^object store +pid \d+ +not healthy: ListBuckets answered \w+: the running object store does not take/m);
    } finally {
      writeFileSync(file, saved, { mode: 0o600 });
    }
  });

  it("refuses to start a second dev cluster on the same ports, naming the registry's and the object store's", async () => {
    const other = await newDevCluster();
    const result = await kok(["dev", "up", ...other.args, "--port-base", String(cluster.portBase), "--no-node"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`port ${cluster.portBase + 5000} (registry) on 127.0.0.1 is in use`);
    expect(result.stderr).toContain(`port ${cluster.portBase + 9000} (object store) on 127.0.0.1 is in use`);
    rmSync(other.stateDir, { recursive: true, force: true });
  });

  it("names a missing registry or object store binary before starting anything", async () => {
    const other = await newDevCluster();
    const toolchain = join(other.stateDir, "toolchain");
    mkdirSync(join(toolchain, "bin"), { recursive: true });
    for (const name of ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]) symlinkSync(toolchainBinary(name), join(toolchain, "bin", name));
    const result = await kok(["dev", "up", ...other.args, "--port-base", String(other.portBase), "--no-node"], { KOK_TOOLCHAIN_DIR: toolchain });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`registry not found at ${toolchain}/bin/registry: build it with \`npm run toolchain\`, or only this part: \`bash tools/toolchain.sh registry\``);
    expect(result.stderr).toContain(`versitygw not found at ${toolchain}/bin/versitygw: build it with \`npm run toolchain\`, or only this part: \`bash tools/toolchain.sh versitygw\``);
    expect(result.stderr).not.toContain("etcd not found");
    expect(existsSync(join(other.stateDir, "pids"))).toBe(false);
    rmSync(other.stateDir, { recursive: true, force: true });
  });

  it("down stops both and keeps their data; down --purge removes it", async () => {
    const pids = ["registry", "object-store"].map((f) => readPidFile(join(statePaths(cluster.stateDir).pids, `${f}.pid`)));
    const result = await kok(["dev", "down", ...cluster.args]);
    expect(result.stdout).toContain("registry: stopped");
    expect(result.stdout).toContain("object store: stopped");
    for (const record of pids) expect(isAlive(record)).toBe(false);
    expect(existsSync(join(statePaths(cluster.stateDir).registryData, "docker"))).toBe(true);
    expect(existsSync(join(statePaths(cluster.stateDir).objectStoreData, OBJECT_STORE_BUCKET))).toBe(true);
    await kok(["dev", "down", ...cluster.args, "--purge"]);
    expect(existsSync(cluster.stateDir)).toBe(false);
  });
});
