/**
 * `pushImages` against a real registry (the toolchain's distribution v3): images land under the
 * upstream repository path without its host, the manifest read back over HTTP has the built digest,
 * crane (go-containerregistry) validates every pushed image, blobs already there are not sent
 * again and a layer pushed once is mounted into the next repository. Faults name the image, the
 * registry and what to do: nothing listening, a registry refusing uploads, a registry off loopback.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toolchainDir } from "../../src/dev/toolchain";
import { buildImages, defaultImagesDir, pushImages, type BuiltImage, type PushedImage } from "../../src/images";
import { runKok } from "../../src/cli/program";
import { FIXTURE_KUBE_VERSION, fixtureToolchain } from "../support/images-toolchain";
import { freePort, startRegistry, type TestRegistry } from "../support/registry";

const work = mkdtempSync(path.join(tmpdir(), "kok-images-push-"));
let registry: TestRegistry;
let built: BuiltImage[];
let pushed: PushedImage[];
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";

beforeAll(async () => {
  registry = await startRegistry(path.join(work, "registry"));
  built = await buildImages({
    imagesDir: path.join(work, "images"),
    debsDir: path.join(defaultImagesDir(), "debs"),
    toolchainDir: fixtureToolchain(path.join(work, "toolchain")),
    only: ["pause", "etcd", "kube-scheduler", "busybox"],
  });
  pushed = await pushImages({ registry: registry.address, images: built });
});
afterAll(async () => {
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

const builtDigest = (ref: string) => built.find((b) => b.refs.includes(ref))!.digest;

describe("pushing into a real registry", () => {
  it("pushes every tag under the upstream repository path without its host", () => {
    const busybox = built.find((b) => b.name === "busybox")!.refs[0]!.replace("docker.io/", "");
    const etcd = built.find((b) => b.name === "etcd")!.refs[0]!.replace("registry.k8s.io/", "");
    const pause = built.find((b) => b.name === "pause")!.refs[0]!.replace("registry.k8s.io/", "");
    expect(pushed.map((p) => p.target)).toEqual([pause, etcd, `kube-scheduler:${FIXTURE_KUBE_VERSION}`, busybox, "library/busybox:latest"].map((r) => `${registry.address}/${r}`));
    for (const p of pushed) expect(p.digest).toBe(builtDigest(p.source));
  });

  it("serves back each manifest with the built digest, and lists both busybox tags", async () => {
    for (const p of pushed) {
      const [repository, tag] = p.target.slice(registry.address.length + 1).split(":");
      const response = await fetch(`http://${registry.address}/v2/${repository}/manifests/${tag}`, { headers: { Accept: MANIFEST } });
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe(MANIFEST);
      const body = Buffer.from(await response.arrayBuffer());
      expect(`sha256:${createHash("sha256").update(body).digest("hex")}`).toBe(p.digest);
      expect(response.headers.get("docker-content-digest")).toBe(p.digest);
    }
    const tags = (await (await fetch(`http://${registry.address}/v2/library/busybox/tags/list`)).json()) as { tags: string[] };
    expect(tags.tags.sort()).toEqual([built.find((b) => b.name === "busybox")!.refs[0]!.split(":")[1], "latest"].sort());
  });

  it("passes crane validate (go-containerregistry reads every blob and checks digests and diff_ids)", () => {
    const crane = path.join(toolchainDir(), "bin", "crane");
    for (const p of pushed) {
      expect(execFileSync(crane, ["validate", "--insecure", "--remote", p.target], { encoding: "utf8" })).toBe(`PASS: ${p.target}\n`);
    }
  });

  it("mounts the shared base layer from a repository it was pushed to, and sends nothing the registry has", async () => {
    // pause: layer + config; etcd: base + etcd + config; kube-scheduler: base mounted from etcd;
    // busybox: layer + config, then :latest points at the same blobs.
    expect(pushed.map((p) => p.uploaded)).toEqual([2, 3, 2, 2, 0]);
    const again = await pushImages({ registry: registry.address, images: built });
    expect(again.map((p) => p.uploaded)).toEqual([0, 0, 0, 0, 0]);
    expect(again.map((p) => p.digest)).toEqual(pushed.map((p) => p.digest));
  });

  it("without a list, pushes every layout under the images directory", async () => {
    const all = await pushImages({ registry: registry.address, imagesDir: path.join(work, "images") });
    expect(all.map((p) => p.target).sort()).toEqual(pushed.map((p) => p.target).sort());
  });
});

describe("`kok images build --registry`", () => {
  it("builds, pushes and says so per image and in total", async () => {
    const lines: string[] = [];
    const original = console.log;
    console.log = (line: string) => void lines.push(line);
    try {
      expect(await runKok(["images", "build", "--only", "busybox", "--images-dir", path.join(work, "cli"), "--registry", registry.address])).toBe(0);
    } finally {
      console.log = original;
    }
    const digest = built.find((b) => b.name === "busybox")!.digest;
    expect(lines[0]).toMatch(/^fetching Debian package busybox-static \S+$/);
    expect(lines[1]).toMatch(new RegExp(`^docker\\.io/library/busybox:\\S+, docker\\.io/library/busybox:latest  ${digest.slice(0, 19)}  \\d+\\.\\d MB  built in \\d+\\.\\ds$`));
    expect(lines).toContain(`2 tag(s) pushed to ${registry.address}`);
    expect(lines.filter((l) => l.startsWith(`${registry.address}/library/busybox:`)).length).toBe(2);
  });
});

describe("push faults", () => {
  it("names the image, the registry and what to do when nothing listens", async () => {
    const port = await freePort();
    const busybox = built.filter((b) => b.name === "busybox");
    await expect(pushImages({ registry: `127.0.0.1:${port}`, images: busybox })).rejects.toThrow(
      new RegExp(`^pushing ${busybox[0]!.refs[0]!.replace(/\./g, "\\.")} to 127\\.0\\.0\\.1:${port}/library/busybox:[^:]+: registry 127\\.0\\.0\\.1:${port} is not reachable \\(HEAD /v2/library/busybox/blobs/sha256:[0-9a-f]{64}: connect ECONNREFUSED.*\\): start it \\(\`kok dev up\`\\) or pass --registry HOST:PORT of a running one$`),
    );
  });

  it("names the blob and the registry's own error when it refuses the upload", async () => {
    const readOnly = await startRegistry(path.join(work, "read-only"), { readOnly: true });
    try {
      const pause = built.filter((b) => b.name === "pause");
      await expect(pushImages({ registry: readOnly.address, images: pause })).rejects.toThrow(
        new RegExp(`^pushing registry\\.k8s\\.io/pause:\\S+ to ${readOnly.address.replace(/\./g, "\\.")}/pause:\\S+: starting the upload of sha256:[0-9a-f]{64} to pause: 405 Method not allowed$`),
      );
    } finally {
      await readOnly.stop();
    }
  });

  it("`kok images build --registry` off loopback is a usage error before anything is built", async () => {
    const errors: string[] = [];
    const original = console.error;
    console.error = (line: string) => void errors.push(line);
    try {
      expect(await runKok(["images", "build", "--only", "busybox", "--images-dir", path.join(work, "never"), "--registry", "10.0.0.1:5000"])).toBe(2);
    } finally {
      console.error = original;
    }
    expect(errors.join("\n")).toBe('kok images build: --registry: registry "10.0.0.1:5000": pushes go over plain HTTP, so only to HOST:PORT on loopback (127.0.0.1:5000, localhost:5000, [::1]:5000)');
  });
});
