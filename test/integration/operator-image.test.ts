/**
 * The operator image (src/images/operator.ts) built for real, twice, from the toolchain, Debian's
 * packages and this checkout's production install: the same digest both times; a layout that
 * passes the independent byte checks; the bill of materials equal to docs/operator-image-bom.md
 * (so the committed copy fails this test when it is stale); and a smoke run of the image's root
 * file system without a container runtime: the layers extracted, then, in new mount and PID
 * namespaces, the root bound read-only, tmpfs volumes on the image's VOLUMEs and chroot as
 * 65532:65532, the image's Entrypoint (tini → kok) and its Pulumi CLI are run. Last, pushed to a
 * local registry as kube-on-kube/operator:<version>, crane validates it.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toolchainDir } from "../../src/dev/toolchain";
import { buildImages, defaultImagesDir, pushImages, type BuiltImage } from "../../src/images";
import { checkLayout, listLayer, type CheckedImage } from "../support/oci-layout";
import { startRegistry } from "../support/registry";

const repo = path.resolve(__dirname, "..", "..");
const work = mkdtempSync(path.join(tmpdir(), "kok-operator-image-"));
// Downloaded .debs are inputs shared with real builds, not output.
const debsDir = path.join(defaultImagesDir(), "debs");
const build = (dir: string) => buildImages({ imagesDir: path.join(work, dir), debsDir, only: ["operator"] });

let first: BuiltImage;
let second: BuiltImage;
let image: CheckedImage;
let rootfs: string;

beforeAll(async () => {
  // Two builds must give one digest: the image `kok images build` keeps in its images directory
  // (CI builds it before the tests; built here when it is not there) and a fresh build into an
  // empty directory, with an npm install of its own.
  [first] = (await buildImages({ imagesDir: defaultImagesDir(), debsDir, only: ["operator"] })) as [BuiltImage];
  [second] = (await build("fresh")) as [BuiltImage];
  image = checkLayout(first.layout).images[0]!;
  rootfs = path.join(work, "rootfs");
  mkdirSync(rootfs);
  for (const layer of image.layers) execFileSync("tar", ["-xpzf", layer, "-C", rootfs]);
  // What a runtime mounts before it makes the root read-only.
  for (const dir of ["proc", "dev"]) mkdirSync(path.join(rootfs, dir));
  // A fresh build of about 700 MB of layers: 2-5 min on the shared 2-core machine.
}, 1_500_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

const config = () => image.config.config as { User: string; Entrypoint: string[]; Cmd: string[]; Env: string[]; Volumes: Record<string, unknown>; WorkingDir: string };

/**
 * Runs `argv` in the extracted image as its user, with its Env, PID 1 in a new PID namespace,
 * the root read-only and a tmpfs on each VOLUME (owned by the user, as fsGroup would make them).
 */
function inImage(argv: string[], extraEnv: string[] = []): { status: number | null; stdout: string; stderr: string } {
  const script = path.join(work, "enter.sh");
  const [uid, gid] = config().User.split(":");
  const volumes = Object.keys(config().Volumes).map((v) => `mount -t tmpfs -o uid=${uid},gid=${gid},mode=${v === "/tmp" ? "1777" : "0700"} tmpfs "$R${v}"`);
  writeFileSync(
    script,
    [
      "set -e",
      'R="$1"; shift',
      'mount --bind "$R" "$R"',
      'mount -o remount,bind,ro "$R"',
      ...volumes,
      'mount -t proc proc "$R/proc"',
      'mount --rbind /dev "$R/dev"',
      `exec env -i ${[...config().Env, ...extraEnv].map((e) => `'${e}'`).join(" ")} chroot --userspec=${uid}:${gid} "$R" "$@"`,
    ].join("\n"),
  );
  const run = spawnSync("unshare", ["--mount", "--pid", "--fork", "bash", script, rootfs, ...argv], { encoding: "utf8", timeout: 120_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe("the operator image", () => {
  it("is kube-on-kube/operator:<package version>, with the same digest when built again into a fresh directory", () => {
    const { version } = JSON.parse(readFileSync(path.join(repo, "package.json"), "utf8")) as { version: string };
    expect(first.refs).toEqual([`docker.io/kube-on-kube/operator:${version}`]);
    expect(second.cached).toBe(false);
    expect(second.layout).not.toBe(first.layout);
    expect(second.digest).toBe(first.digest);
    expect(checkLayout(first.layout).problems).toEqual([]);
  });

  it("has a bill of materials equal to docs/operator-image-bom.md (regenerate: npm run kok -- images bom > docs/operator-image-bom.md)", () => {
    const built = readFileSync(path.join(first.layout, "bom.md"), "utf8");
    expect(readFileSync(path.join(repo, "docs", "operator-image-bom.md"), "utf8")).toBe(built);
    // Each npm package of the image at the version of the project's lock.
    const lock = JSON.parse(readFileSync(path.join(repo, "package-lock.json"), "utf8")) as { packages: Record<string, { version: string }> };
    const npmRows = [...built.matchAll(/^\| npm \S+ \| (\S+) \| `\/usr\/lib\/kube-on-kube\/(\S+)` \|/gm)];
    expect(npmRows.length).toBeGreaterThan(100);
    for (const [, version, at] of npmRows) expect(`${at}@${version}`).toBe(`${at}@${lock.packages[at!]?.version}`);
  });

  it("runs as 65532 with tini → kok operator, and every written path on a VOLUME", () => {
    expect(config()).toMatchObject({
      User: "65532:65532",
      Entrypoint: ["/usr/bin/tini", "--", "/usr/local/bin/kok"],
      Cmd: ["operator", "--state-dir=/var/lib/kube-on-kube"],
      WorkingDir: "/home/kube-on-kube",
      Volumes: { "/home/kube-on-kube": {}, "/tmp": {}, "/var/lib/kube-on-kube": {} },
    });
    expect(config().Env).toEqual(expect.arrayContaining(["HOME=/home/kube-on-kube", "PULUMI_HOME=/home/kube-on-kube/.pulumi", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true"]));
    const app = Object.fromEntries(listLayer(image.layers.at(-1)!).map((e) => [e.path, e]));
    expect(app["var/lib/kube-on-kube"]).toMatchObject({ mode: "drwx------", owner: "65532/65532" });
    expect(app["usr/lib/kube-on-kube/dist/cli/main.js"]).toMatchObject({ mode: "-rwxr-xr-x", owner: "0/0" });
    expect(app["usr/local/bin/kok"]?.link).toBe("../../lib/kube-on-kube/dist/cli/main.js");
    // Nothing but the volumes belongs to the user: the code cannot be changed by the process running it.
    const owned = image.layers.flatMap((l) => listLayer(l)).filter((e) => e.owner !== "0/0").map((e) => e.path);
    expect(owned.sort()).toEqual(["home/kube-on-kube", "home/nonroot", "var/lib/kube-on-kube"]);
  });

  it("starts its entry point on a read-only root as 65532: kok operator --help", () => {
    const help = inImage([...config().Entrypoint, "operator", "--help"]);
    expect(help.stderr).toBe("");
    expect(help.stdout).toContain("Usage: kok operator [options]");
    expect(help.status).toBe(0);
  });

  it("has the Pulumi CLI, Node, kubectl, ssh, etcdctl and etcdutl the bill of materials names, and a root it cannot write", () => {
    const bom = readFileSync(path.join(first.layout, "bom.md"), "utf8");
    const version = (part: string) => new RegExp(`^\\| ${part} \\| (\\S+) \\|`, "m").exec(bom)?.[1];
    const run = inImage(["sh", "-c", "pulumi version; node --version; kubectl version --client; ssh -V 2>&1; id -u; etcdctl version; etcdutl version; touch /usr/local/bin/x 2>&1 || true"]);
    expect(run.status).toBe(0);
    const lines = run.stdout.split("\n");
    expect(lines[0]).toBe(`v${version("Pulumi CLI")}`);
    expect(lines[1]).toBe(`v${version("Node.js")}`);
    expect(lines[2]).toBe(`Client Version: ${version("kubectl")}`);
    expect(run.stdout).toContain(`OpenSSH_${version("Debian openssh-client")!.replace(/^1:/, "").replace(/-.*$/, "")}`);
    expect(run.stdout).toContain("\n65532\n");
    // The etcd backups run `kok etcd backup|restore` in this image, which call these two.
    expect(run.stdout).toContain(`etcdctl version: ${version("etcdctl")}\n`);
    expect(run.stdout).toContain(`etcdutl version: ${version("etcdutl")}\n`);
    expect(run.stdout).toContain("Read-only file system");
  });

  it("passes the operator's engine check but the passphrase: the CLI runs, every plugin is found, the state dir is writable", () => {
    const run = inImage([...config().Entrypoint, ...config().Cmd]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain("no state passphrase");
    expect(run.stderr).not.toMatch(/Pulumi CLI|did not print a version|not installed|cannot be created or written/);
  });

  it("is pushed to a registry as kube-on-kube/operator:<version>, and crane validates it there", async () => {
    const registry = await startRegistry(path.join(work, "registry"));
    try {
      const [pushed] = await pushImages({ registry: registry.address, images: [first] });
      expect(pushed).toMatchObject({ target: `${registry.address}/kube-on-kube/operator:${first.refs[0]!.split(":").at(-1)}`, digest: first.digest });
      const crane = path.join(toolchainDir(), "bin", "crane");
      expect(execFileSync(crane, ["validate", "--insecure", "--remote", pushed!.target], { encoding: "utf8" })).toBe(`PASS: ${pushed!.target}\n`);
    } finally {
      await registry.stop();
    }
  });
});
