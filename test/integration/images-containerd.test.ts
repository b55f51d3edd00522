/**
 * The mirror path end to end with the real runtime: images built and pushed into a real registry
 * are pulled by containerd 2 (the toolchain's) under their *upstream* names through a hosts.toml
 * mirror for registry.k8s.io and docker.io, exactly as the node's containerd is configured, and
 * run with runc. containerd gets its own root, state and socket in a temporary directory, no CRI
 * plugin, and is stopped by its pid.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toolchainDir } from "../../src/dev/toolchain";
import { buildImages, defaultImagesDir, pushImages, type BuiltImage } from "../../src/images";
import { fixtureToolchain } from "../support/images-toolchain";
import { startRegistry, type TestRegistry } from "../support/registry";

const work = mkdtempSync(path.join(tmpdir(), "kok-images-ctr-"));
const bin = path.join(toolchainDir(), "bin");
const socket = path.join(work, "containerd.sock");
const hostsDir = path.join(work, "certs.d");
let registry: TestRegistry;
let containerd: ChildProcess | undefined;
let built: BuiltImage[];
const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` };

const ctr = (...args: string[]) => execFileSync(path.join(bin, "ctr"), ["--address", socket, ...args], { encoding: "utf8", env, stdio: ["ignore", "pipe", "pipe"], timeout: 120_000 });

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("containerd needs root: run this test as root");
  for (const b of ["containerd", "ctr", "runc", "containerd-shim-runc-v2"]) {
    if (!existsSync(path.join(bin, b))) throw new Error(`${path.join(bin, b)} is missing: build it with \`bash tools/toolchain.sh ${b === "runc" ? "runc" : "containerd"}\``);
  }
  registry = await startRegistry(path.join(work, "registry"));
  built = await buildImages({
    imagesDir: path.join(work, "images"),
    debsDir: path.join(defaultImagesDir(), "debs"),
    toolchainDir: fixtureToolchain(path.join(work, "toolchain")),
    only: ["etcd", "busybox", "flannel"],
  });
  await pushImages({ registry: registry.address, images: built });
  // The node's mirror configuration: each upstream host answered by the local registry.
  for (const host of ["registry.k8s.io", "docker.io"]) {
    mkdirSync(path.join(hostsDir, host), { recursive: true });
    writeFileSync(path.join(hostsDir, host, "hosts.toml"), `server = "https://${host}"\n\n[host."http://${registry.address}"]\n  capabilities = ["pull", "resolve"]\n`);
  }
  const config = path.join(work, "containerd.toml");
  writeFileSync(
    config,
    [
      "version = 3",
      `root = "${path.join(work, "root")}"`,
      `state = "${path.join(work, "state")}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images"]',
      "[grpc]",
      `  address = "${socket}"`,
      "[ttrpc]",
      `  address = "${socket}.ttrpc"`,
      "",
    ].join("\n"),
  );
  const log = path.join(work, "containerd.log");
  containerd = spawn(path.join(bin, "containerd"), ["--config", config], { env, stdio: ["ignore", openSync(log, "a"), openSync(log, "a")] });
  for (let i = 0; !existsSync(socket); i++) {
    if (containerd.exitCode !== null || i > 300) throw new Error(`containerd did not start: ${readFileSync(log, "utf8").slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
});

afterAll(async () => {
  if (containerd && containerd.exitCode === null) {
    const exited = new Promise((r) => containerd!.once("exit", r));
    containerd.kill("SIGTERM");
    await exited;
  }
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe("containerd through a registry mirror", () => {
  it("pulls busybox by its Docker Hub name and runs its applets", () => {
    const digest = built.find((b) => b.name === "busybox")!.digest;
    ctr("images", "pull", "--hosts-dir", hostsDir, "docker.io/library/busybox:latest");
    expect(ctr("images", "ls", "-q")).toContain("docker.io/library/busybox:latest");
    expect(ctr("images", "ls")).toContain(digest);
    const out = ctr("run", "--rm", "docker.io/library/busybox:latest", "kok-busybox", "sh", "-c", "echo hello; id -u; which wget nslookup httpd");
    expect(out).toBe("hello\n0\n/bin/wget\n/bin/nslookup\n/bin/httpd\n");
  });

  it("pulls flannel by its Docker Hub name; flanneld and the install-cni script's shell run in it", () => {
    const ref = built.find((b) => b.name === "flannel")!.refs[0]!;
    ctr("images", "pull", "--hosts-dir", hostsDir, ref);
    const script = "/opt/bin/flanneld --version 2>&1; mkdir -p /etc/cni/net.d && echo '{}' > /etc/cni/net.d/.f.tmp && mv /etc/cni/net.d/.f.tmp /etc/cni/net.d/f && cat /etc/cni/net.d/f";
    expect(ctr("run", "--rm", ref, "kok-flannel", "/bin/sh", "-c", script)).toBe(`${ref.replace(/^.*:/, "")}\n{}\n`);
  });

  it("pulls etcd by its registry.k8s.io name and runs etcdctl from /usr/local/bin", () => {
    const ref = built.find((b) => b.name === "etcd")!.refs[0]!;
    ctr("images", "pull", "--hosts-dir", hostsDir, ref);
    const version = ref.replace(/^.*:(.*)-0$/, "$1");
    expect(ctr("run", "--rm", ref, "kok-etcd", "/usr/local/bin/etcdctl", "version")).toContain(`etcdctl version: ${version}`);
  });
});
