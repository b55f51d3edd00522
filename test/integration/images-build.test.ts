/**
 * `buildImages` end to end on real inputs (the toolchain's etcd, kube-scheduler and pause, Debian's
 * packages through apt; stand-ins named in test/support/images-toolchain.ts): two builds into
 * fresh directories give identical digests; a changed input changes its image only; a rebuild is
 * a no-op; every layout passes the checks of test/support/oci-layout.ts; layers hold upstream's
 * paths with the expected modes; and the extracted root file systems really run their tools
 * (chroot: busybox's sh, wget, nslookup, httpd; kube-proxy's iptables, nft, conntrack, ipset with
 * their libraries; flannel's flanneld and the shell script its DaemonSet's install-cni container
 * runs). Missing inputs fail before anything is written, naming each one.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildImages, defaultImagesDir, MissingInputsError, type BuiltImage } from "../../src/images";
import { FLANNEL_SCRIPT_APPLETS } from "../../src/images/definitions";
import { runKok } from "../../src/cli/program";
import { checkLayout, listLayer, paxRecords, type CheckedImage } from "../support/oci-layout";
import { FIXTURE_KUBE_VERSION, fixtureToolchain } from "../support/images-toolchain";

const work = mkdtempSync(path.join(tmpdir(), "kok-images-"));
const toolchain = fixtureToolchain(path.join(work, "toolchain"));
// Downloaded .debs are shared with real builds: they are inputs, not output.
const debsDir = path.join(defaultImagesDir(), "debs");
/** What the fixture toolchain can build: one Kubernetes binary stands for the three alike. */
const FIXTURE_IMAGES = ["pause", "etcd", "kube-scheduler", "kube-proxy", "coredns", "local-path-provisioner", "busybox", "flannel"];
const build = (imagesDir: string, opts: { only?: string[]; toolchainDir?: string } = {}) =>
  buildImages({ imagesDir, debsDir, toolchainDir: opts.toolchainDir ?? toolchain, only: opts.only ?? FIXTURE_IMAGES });

let first: BuiltImage[];
let second: BuiltImage[];
const digests = (images: BuiltImage[]) => Object.fromEntries(images.flatMap((i) => i.refs.map((r) => [r, i.digest])));
const image = (ref: string): CheckedImage => {
  const built = first.find((i) => i.refs.includes(ref));
  if (!built) throw new Error(`${ref} was not built`);
  return checkLayout(built.layout).images.find((i) => i.ref === ref)!;
};

beforeAll(async () => {
  first = await build(path.join(work, "a"));
  second = await build(path.join(work, "b"));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Extracts an image's layers in order into a new directory (as root: owners and modes kept). */
function rootfs(ref: string): string {
  const dir = mkdtempSync(path.join(work, "rootfs-"));
  for (const layer of image(ref).layers) execFileSync("tar", ["-xpzf", layer, "-C", dir]);
  return dir;
}

describe("kok images build", () => {
  it("builds every image with upstream's names and tags", () => {
    const refs = Object.keys(digests(first)).sort();
    const patterns = [
      /^docker\.io\/flannel\/flannel:v0\.28\.10$/,
      /^docker\.io\/library\/busybox:\d+\.\d+\.\d+$/,
      /^docker\.io\/library\/busybox:latest$/,
      /^docker\.io\/rancher\/local-path-provisioner:v0\.0\.30$/,
      /^registry\.k8s\.io\/coredns\/coredns:v1\.15\.0$/,
      /^registry\.k8s\.io\/etcd:\d+\.\d+\.\d+-0$/,
      new RegExp(`^registry\\.k8s\\.io/kube-proxy:${FIXTURE_KUBE_VERSION}$`),
      new RegExp(`^registry\\.k8s\\.io/kube-scheduler:${FIXTURE_KUBE_VERSION}$`),
      /^registry\.k8s\.io\/pause:\d+\.\d+(\.\d+)?$/,
    ];
    expect(refs.length).toBe(patterns.length);
    refs.forEach((ref, i) => expect(ref).toMatch(patterns[i]!));
    expect(first.every((i) => !i.cached && i.size > 0)).toBe(true);
  });

  it("gives identical manifest digests when built again into a fresh directory", () => {
    expect(digests(second)).toEqual(digests(first));
    expect(second.map((i) => i.layout)).not.toEqual(first.map((i) => i.layout));
  });

  it("writes layouts that pass the checks of their bytes (digests, sizes, diff_ids, media types, platform)", () => {
    for (const built of first) {
      const { images, problems } = checkLayout(built.layout);
      expect(problems, built.layout).toEqual([]);
      expect(images.map((i) => i.ref).sort()).toEqual([...built.refs].sort());
      expect(new Set(images.map((i) => i.digest))).toEqual(new Set([built.digest]));
    }
  });

  it("finds a second build of the same inputs up to date, and a changed input changes only that image", async () => {
    const again = await build(path.join(work, "a"));
    expect(again.every((i) => i.cached)).toBe(true);
    expect(digests(again)).toEqual(digests(first));

    const changed = path.join(work, "toolchain-changed");
    fixtureToolchain(changed);
    const proxy = path.join(changed, "k8s", FIXTURE_KUBE_VERSION, "bin", "kube-proxy");
    appendFileSync(proxy, Buffer.from([0]));
    const rebuilt = await build(path.join(work, "a"), { toolchainDir: changed });
    const proxyRef = `registry.k8s.io/kube-proxy:${FIXTURE_KUBE_VERSION}`;
    expect(rebuilt.filter((i) => !i.cached).map((i) => i.refs[0])).toEqual([proxyRef]);
    expect(digests(rebuilt)[proxyRef]).not.toBe(digests(first)[proxyRef]);
    const withoutProxy = (images: BuiltImage[]) => Object.entries(digests(images)).filter(([ref]) => ref !== proxyRef);
    expect(withoutProxy(rebuilt)).toEqual(withoutProxy(first));
  });

  it("removes what a killed build left beside a layout when it rebuilds it", async () => {
    const busybox = first.find((i) => i.name === "busybox")!;
    // The pid of a process that has exited: a build by it can no longer be running.
    const gone = spawnSync("true").pid!;
    const leftover = `${busybox.layout}.tmp-${gone}`;
    mkdirSync(path.join(leftover, "blobs"), { recursive: true });
    const [rebuilt] = await buildImages({ imagesDir: path.join(work, "a"), debsDir, toolchainDir: toolchain, only: ["busybox"], force: true });
    expect(rebuilt).toMatchObject({ cached: false, digest: busybox.digest });
    expect(existsSync(leftover)).toBe(false);
    expect(readdirSync(path.dirname(busybox.layout))).toEqual([path.basename(busybox.layout)]);
  });

  it("lays the Kubernetes and etcd binaries out as upstream: /usr/local/bin, root-owned 0755, over the shared base", () => {
    const scheduler = image(`registry.k8s.io/kube-scheduler:${FIXTURE_KUBE_VERSION}`);
    const etcdRef = Object.keys(digests(first)).find((r) => r.startsWith("registry.k8s.io/etcd:"))!;
    const etcd = image(etcdRef);
    expect(scheduler.layers.length).toBe(2);
    // The base layer is byte-identical everywhere: a registry stores it once.
    expect(path.basename(etcd.layers[0]!)).toBe(path.basename(scheduler.layers[0]!));
    const base = Object.fromEntries(listLayer(scheduler.layers[0]!).map((e) => [e.path, e]));
    expect(base["tmp"]?.mode).toBe("drwxrwxrwt");
    expect(base["root"]?.mode).toBe("drwx------");
    expect(base["home/nonroot"]).toMatchObject({ mode: "drwx------", owner: "65532/65532" });
    for (const f of ["etc/passwd", "etc/group", "etc/nsswitch.conf", "etc/ssl/certs/ca-certificates.crt", "usr/share/zoneinfo/Etc/UTC"]) expect(base[f]?.mode, f).toBe("-rw-r--r--");
    expect(listLayer(scheduler.layers[1]!).filter((e) => e.mode[0] === "-").map((e) => [e.path, e.mode, e.owner])).toEqual([["usr/local/bin/kube-scheduler", "-rwxr-xr-x", "0/0"]]);
    expect(scheduler.config.config).toMatchObject({ Entrypoint: ["/usr/local/bin/kube-scheduler"], Env: expect.arrayContaining(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]) as unknown });
    expect(scheduler.config.config.User).toBeUndefined();
    const etcdFiles = listLayer(etcd.layers[1]!).map((e) => [e.path, e.mode]);
    expect(etcdFiles).toEqual(expect.arrayContaining([["usr/local/bin/etcd", "-rwxr-xr-x"], ["usr/local/bin/etcdctl", "-rwxr-xr-x"], ["usr/local/bin/etcdutl", "-rwxr-xr-x"], ["var/lib/etcd", "drwx------"]]));
  });

  it("makes pause FROM scratch as upstream: /pause alone, run as 65535", () => {
    const ref = Object.keys(digests(first)).find((r) => r.startsWith("registry.k8s.io/pause:"))!;
    const pause = image(ref);
    expect(pause.layers.length).toBe(1);
    expect(listLayer(pause.layers[0]!).map((e) => [e.path, e.mode, e.owner])).toEqual([["pause", "-rwxr-xr-x", "0/0"]]);
    expect(pause.config.config).toMatchObject({ Entrypoint: ["/pause"], User: "65535:65535" });
  });

  it("gives /coredns cap_net_bind_service and runs it as nonroot, as upstream's Dockerfile does", () => {
    const coredns = image("registry.k8s.io/coredns/coredns:v1.15.0");
    const cap = paxRecords(coredns.layers[1]!, "coredns")["SCHILY.xattr.security.capability"];
    expect(cap?.readUInt32LE(4)).toBe(1 << 10);
    expect(coredns.config.config).toMatchObject({ Entrypoint: ["/coredns"], User: "nonroot:nonroot", ExposedPorts: { "53/tcp": {}, "53/udp": {} } });
    const lpp = image("docker.io/rancher/local-path-provisioner:v0.0.30");
    expect(listLayer(lpp.layers[1]!).filter((e) => e.mode[0] === "-").map((e) => e.path)).toEqual(["usr/bin/local-path-provisioner"]);
  });

  it("lays flannel out as upstream (/opt/bin/flanneld, the entrypoint) over the base and kube-proxy's netfilter layer, byte-identical, plus busybox", () => {
    const flannel = image("docker.io/flannel/flannel:v0.28.10");
    const proxy = image(`registry.k8s.io/kube-proxy:${FIXTURE_KUBE_VERSION}`);
    expect(flannel.layers.length).toBe(4);
    expect(flannel.layers.slice(0, 2).map((l) => path.basename(l))).toEqual(proxy.layers.slice(0, 2).map((l) => path.basename(l)));
    const busybox = listLayer(flannel.layers[2]!);
    // One file (the first name in sorted order: bin/[), every other applet a hard link to it.
    expect(busybox.filter((e) => e.mode[0] === "-").map((e) => [e.path, e.mode, e.owner])).toEqual([["bin/[", "-rwxr-xr-x", "0/0"]]);
    const names = new Set(busybox.map((e) => e.path));
    for (const applet of [...FLANNEL_SCRIPT_APPLETS, "busybox"]) expect(names.has(`bin/${applet}`), applet).toBe(true);
    // Applets only: the base layer's /etc/passwd and /etc/group stay.
    expect(busybox.filter((e) => e.path !== "bin" && !e.path.startsWith("bin/")).map((e) => e.path)).toEqual([]);
    expect(listLayer(flannel.layers[3]!).filter((e) => e.mode[0] === "-").map((e) => [e.path, e.mode, e.owner])).toEqual([["opt/bin/flanneld", "-rwxr-xr-x", "0/0"]]);
    expect(flannel.config.config).toMatchObject({ Entrypoint: ["/opt/bin/flanneld"], Env: expect.arrayContaining(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]) as unknown });
    expect(flannel.config.config.User).toBeUndefined();
  });
});

describe("the root file systems run their tools (chroot, as root)", () => {
  beforeAll(() => {
    if (process.getuid?.() !== 0) throw new Error("these tests extract layers with their owners and chroot into them: run them as root");
  });
  const sh = (root: string, script: string) => execFileSync("chroot", [root, "/bin/sh", "-c", script], { encoding: "utf8" });

  it("busybox: sh, wget, nslookup and httpd are applets on PATH; latest and the version tag are one image", () => {
    const version = Object.keys(digests(first)).find((r) => /busybox:\d/.test(r))!;
    expect(digests(first)[version]).toBe(digests(first)["docker.io/library/busybox:latest"]);
    const root = rootfs(version);
    expect(sh(root, "which wget nslookup httpd && wget --help 2>&1 | head -1")).toMatch(/^\/bin\/wget\n\/bin\/nslookup\n\/bin\/httpd\nBusyBox v\d/);
    expect(sh(root, "mkdir -p /tmp/t && echo hi > /tmp/t/f && cat /tmp/t/f && id -u")).toBe("hi\n0\n");
    expect(image(version).config.config).toMatchObject({ Cmd: ["sh"] });
  });

  it("kube-proxy: iptables (nft and legacy), ip6tables, nft, conntrack and ipset start with the libraries of the image", () => {
    const root = rootfs(`registry.k8s.io/kube-proxy:${FIXTURE_KUBE_VERSION}`);
    const run = (...cmd: string[]) => execFileSync("chroot", [root, ...cmd], { encoding: "utf8" });
    expect(run("/usr/sbin/iptables", "--version")).toMatch(/^iptables v1\.\d+\.\d+ \(nf_tables\)/);
    expect(run("/usr/sbin/iptables-legacy", "--version")).toMatch(/\(legacy\)/);
    expect(run("/usr/sbin/ip6tables-restore", "--version")).toMatch(/nf_tables/);
    expect(run("/usr/sbin/nft", "--version")).toMatch(/^nftables v1\./);
    expect(run("/usr/sbin/conntrack", "--version")).toMatch(/^conntrack v1\./);
    expect(run("/usr/sbin/ipset", "--version")).toMatch(/^ipset v\d+/);
    expect(existsSync(path.join(root, "usr/local/bin/kube-proxy"))).toBe(true);
    expect(existsSync(path.join(root, "usr/share/doc"))).toBe(false);
  });

  it("flannel: flanneld prints its version; the install-cni script's applets work; iptables and nft are there", () => {
    const root = rootfs("docker.io/flannel/flannel:v0.28.10");
    // What the DaemonSet's install-cni container does: render from subnet.env, write beside, rename.
    const script = [
      "set -eu",
      "mkdir -p /run/flannel /etc/cni/net.d",
      "printf 'FLANNEL_NETWORK=10.244.0.0/16\\nFLANNEL_SUBNET=10.244.1.1/24\\n' > /run/flannel/subnet.env",
      'test -f /run/flannel/subnet.env && [ -s /run/flannel/subnet.env ]',
      "subnet=$(grep '^FLANNEL_SUBNET=' /run/flannel/subnet.env | sed 's/^FLANNEL_SUBNET=//')",
      'echo "{\\"subnet\\": \\"$subnet\\"}" > /etc/cni/net.d/.10-flannel.conflist.tmp',
      "cp /etc/cni/net.d/.10-flannel.conflist.tmp /etc/cni/net.d/.copy && rm /etc/cni/net.d/.copy",
      "mv /etc/cni/net.d/.10-flannel.conflist.tmp /etc/cni/net.d/10-flannel.conflist",
      "sleep 0",
      "cat /etc/cni/net.d/10-flannel.conflist",
    ].join("\n");
    expect(sh(root, script)).toBe('{"subnet": "10.244.1.1/24"}\n');
    expect(sh(root, "/opt/bin/flanneld --version 2>&1")).toBe("v0.28.10\n");
    expect(sh(root, "which iptables ip6tables nft && iptables --version")).toMatch(/^\/usr\/sbin\/iptables\n\/usr\/sbin\/ip6tables\n\/usr\/sbin\/nft\niptables v1\.\d+\.\d+ \(nf_tables\)/);
  });

  it("etcd: the binaries run from their upstream paths", () => {
    const ref = Object.keys(digests(first)).find((r) => r.startsWith("registry.k8s.io/etcd:"))!;
    const root = rootfs(ref);
    const version = ref.replace(/^.*:(.*)-0$/, "$1");
    expect(execFileSync("chroot", [root, "/usr/local/bin/etcd", "--version"], { encoding: "utf8" })).toContain(`etcd Version: ${version}`);
    expect(execFileSync("chroot", [root, "/usr/local/bin/etcdctl", "version"], { encoding: "utf8" })).toContain(`etcdctl version: ${version}`);
  });
});

describe("bad input", () => {
  it("names every missing binary with its image, path and the toolchain target, and writes nothing", async () => {
    const broken = fixtureToolchain(path.join(work, "toolchain-broken"));
    unlinkSync(path.join(broken, "bin", "pause"));
    unlinkSync(path.join(broken, "bin", "etcdctl"));
    unlinkSync(path.join(broken, "k8s", FIXTURE_KUBE_VERSION, "bin", "kube-scheduler"));
    const out = path.join(work, "broken-out");
    const error = await build(out, { toolchainDir: broken }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MissingInputsError);
    expect((error as MissingInputsError).problems).toEqual([
      `registry.k8s.io/pause: pause not found at ${broken}/bin/pause: build it with \`bash tools/toolchain.sh pause\``,
      `registry.k8s.io/etcd: etcdctl not found at ${broken}/bin/etcdctl: build it with \`bash tools/toolchain.sh etcd\``,
      `registry.k8s.io/kube-scheduler:${FIXTURE_KUBE_VERSION}: kube-scheduler not found at ${broken}/k8s/${FIXTURE_KUBE_VERSION}/bin/kube-scheduler: build it with \`bash tools/toolchain.sh kube-1.36\``,
    ]);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  });

  it("names a toolchain without Kubernetes versions", async () => {
    const empty = path.join(work, "toolchain-empty");
    mkdirSync(empty);
    await expect(build(path.join(work, "empty-out"), { toolchainDir: empty, only: ["kube-apiserver"] })).rejects.toThrow(
      `kube-apiserver: no Kubernetes versions under ${empty}/k8s: build them with \`bash tools/toolchain.sh kube-1.36 kube-1.35\``,
    );
  });

  it("makes kube-proxy for every version that has it (the toolchain builds it for both minors), and names the newest when none has", async () => {
    const two = fixtureToolchain(path.join(work, "toolchain-two"));
    const older = path.join(two, "k8s", "v1.35.4", "bin");
    mkdirSync(older, { recursive: true });
    copyFileSync(path.join(two, "k8s", FIXTURE_KUBE_VERSION, "bin", "kube-proxy"), path.join(older, "kube-proxy"));
    const both = await build(path.join(work, "two-out"), { toolchainDir: two, only: ["kube-proxy"] });
    expect(both.map((b) => b.refs)).toEqual([["registry.k8s.io/kube-proxy:v1.35.4"], [`registry.k8s.io/kube-proxy:${FIXTURE_KUBE_VERSION}`]]);
    unlinkSync(path.join(older, "kube-proxy"));
    const built = await build(path.join(work, "two-out"), { toolchainDir: two, only: ["kube-proxy"] });
    expect(built.map((b) => b.refs)).toEqual([[`registry.k8s.io/kube-proxy:${FIXTURE_KUBE_VERSION}`]]);
    unlinkSync(path.join(two, "k8s", FIXTURE_KUBE_VERSION, "bin", "kube-proxy"));
    await expect(build(path.join(work, "two-out"), { toolchainDir: two, only: ["kube-proxy"] })).rejects.toThrow(
      `registry.k8s.io/kube-proxy:${FIXTURE_KUBE_VERSION}: kube-proxy not found at ${two}/k8s/${FIXTURE_KUBE_VERSION}/bin/kube-proxy: build it with \`bash tools/toolchain.sh kube-1.36\``,
    );
  });

  it("`kok images build` exits 1 naming the missing binary, and 2 for an unknown --only name", async () => {
    const broken = path.join(work, "toolchain-cli");
    fixtureToolchain(broken);
    unlinkSync(path.join(broken, "bin", "coredns"));
    const errors: string[] = [];
    const original = console.error;
    console.error = (line: string) => void errors.push(line);
    const before = process.env.KOK_TOOLCHAIN_DIR;
    process.env.KOK_TOOLCHAIN_DIR = broken;
    try {
      expect(await runKok(["images", "build", "--only", "coredns", "--images-dir", path.join(work, "cli-out")])).toBe(1);
      expect(errors.join("\n")).toContain(`registry.k8s.io/coredns/coredns: coredns not found at ${broken}/bin/coredns: build it with \`bash tools/toolchain.sh coredns\``);
      errors.length = 0;
      expect(await runKok(["images", "build", "--only", "busybox,nginx", "--images-dir", path.join(work, "cli-out")])).toBe(2);
      expect(errors.join("\n")).toContain('--only: unknown image "nginx": choose from pause, etcd,');
    } finally {
      console.error = original;
      if (before === undefined) delete process.env.KOK_TOOLCHAIN_DIR;
      else process.env.KOK_TOOLCHAIN_DIR = before;
    }
  });
});
