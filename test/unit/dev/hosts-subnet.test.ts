import fc from "fast-check";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cidrsOverlap, parseCidr } from "../../../src/api/v1alpha1/cidr";
import { BUSINESS_DEFAULT_CIDRS, defaultConfig, hostsCidrFor, hostsCidrProblem, loadConfig, statePaths, type DevConfig } from "../../../src/dev/config";
import { packageVersionPolicyProblems } from "../../../src/api/v1alpha1/policy-checks";
import { devAdminPolicy } from "../../../src/dev/dev-policy";
import { hostMac, hostNetnsName, inHost, workersRegistry } from "../../../src/dev/host-netns";
import { hostsNetwork } from "../../../src/dev/node/netns";
import { realNodeLayout } from "../../../src/dev/node/layout";
import { forwards } from "../../../src/dev/node/forwarder";
import { objectStoreEndpoint, objectStorePodEndpoint } from "../../../src/dev/object-store";
import { backupEndpointPolicyProblems } from "../../../src/api/v1alpha1/backup-endpoints";
import { minimalSpec } from "../../support/specs";

describe("the sandbox hosts' subnet", () => {
  it("is a /24 in 10.250.0.0/16 derived from the port base: the default base and every test base differ", () => {
    expect(hostsCidrFor(10000)).toBe("10.250.100.0/24");
    expect(defaultConfig("/tmp/kok-a").hostsCIDR).toBe("10.250.100.0/24");
    // test/support/dev-cluster.ts freePortBase: 11000 + 100·k, k < 88.
    const bases = [10000, ...Array.from({ length: 88 }, (_, k) => 11000 + 100 * k)];
    expect(new Set(bases.map(hostsCidrFor)).size).toBe(bases.length);
  });

  it("never overlaps the dev pod ranges the tests pick, the dev defaults, or the business defaults", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1000, max: 60000 }), fc.integer({ min: 100, max: 249 }), (base, second) => {
        const config = defaultConfig("/tmp/kok-x", base, `10.${second}.0.0/16`);
        expect(hostsCidrProblem(config)).toBeUndefined();
        for (const other of [config.podCIDR, config.serviceCIDR, "10.88.0.0/16", BUSINESS_DEFAULT_CIDRS.serviceCIDR, BUSINESS_DEFAULT_CIDRS.podCIDR]) {
          expect(cidrsOverlap(parseCidr(config.hostsCIDR)!, parseCidr(other)!)).toBe(false);
        }
      }),
    );
  });

  it("is refused, by name, when it overlaps a range or is no usable IPv4 range", () => {
    const config = defaultConfig("/tmp/kok-a", 20000, "10.77.0.0/16");
    expect(hostsCidrProblem({ ...config, hostsCIDR: "10.77.3.0/24" })).toBe(
      "the hosts subnet 10.77.3.0/24 overlaps the meta-cluster's pod range (podCIDR) 10.77.0.0/16: set another hostsCIDR in the state directory's config.json",
    );
    expect(hostsCidrProblem({ ...config, hostsCIDR: "10.0.0.128/25" })).toContain("overlaps the meta-cluster's Service range (serviceCIDR) 10.0.0.0/24");
    expect(hostsCidrProblem({ ...config, hostsCIDR: "10.100.0.0/24" })).toContain("overlaps the business clusters' default Service range 10.96.0.0/12");
    expect(hostsCidrProblem({ ...config, hostsCIDR: "10.244.9.0/24" })).toContain("overlaps the business clusters' default pod range 10.244.0.0/16");
    expect(hostsCidrProblem({ ...config, hostsCIDR: "10.250.1.0/30" })).toContain("must be a /16 to /28");
    expect(hostsCidrProblem({ ...config, hostsCIDR: "fd00::/64" })).toContain("is not an IPv4 CIDR");
    expect(() => hostsNetwork({ ...config, hostsCIDR: "10.77.3.0/24" })).toThrow("overlaps the meta-cluster's pod range");
  });

  it("gives the bridge the first address and host i the (10+i)-th", () => {
    const net = hostsNetwork(defaultConfig("/tmp/kok-a", 20000, "10.77.0.0/16"));
    expect(net).toMatchObject({ cidr: "10.250.200.0/24", gateway: "10.250.200.1", prefix: 24 });
    expect([net.address(0), net.address(1)]).toEqual(["10.250.200.10", "10.250.200.11"]);
  });

  it("is filled in for a state directory saved before it existed", () => {
    const dir = mkdtempSync(join(tmpdir(), "kok-hosts-"));
    const old: { -readonly [K in keyof DevConfig]?: DevConfig[K] } = { ...defaultConfig(dir, 12300) };
    delete old.hostsCIDR;
    writeFileSync(statePaths(dir).config, JSON.stringify(old));
    expect(loadConfig(dir)?.hostsCIDR).toBe("10.250.123.0/24");
  });
});

describe("a network host's names and command line", () => {
  const config = defaultConfig("/tmp/kok-a", 20000, "10.77.0.0/16");

  it("names namespaces with the state's tag and reaches the registry on the machine's end of the link", () => {
    const tag = realNodeLayout(config).tag;
    expect(hostNetnsName(config, 3)).toBe(`kokh-${tag}-3`);
    expect(workersRegistry(config)).toBe(`10.77.255.254:${config.ports.registry}`);
    // A fixed, locally administered MAC per host: kept across restarts, unique per dev cluster and index.
    expect(hostMac(config, 3)).toBe(`02:6b:${tag.slice(0, 2)}:${tag.slice(2)}:00:03`);
    expect(hostMac(config, 300)).toMatch(/:01:2c$/);
    expect(hostMac(defaultConfig("/tmp/kok-b", 20000), 3)).not.toBe(hostMac(config, 3));
  });

  it("runs a command in the host's network namespace with private mounts and its own hostname, passing paths as arguments", () => {
    const root = mkdtempSync(join(tmpdir(), "kok-host-root-"));
    const { command, args } = inHost("/run/netns/kokh-abcd-0", "hn-0", root, "/usr/sbin/sshd", ["-D"]);
    expect(command).toBe("nsenter");
    expect(args.slice(0, 8)).toEqual(["--net=/run/netns/kokh-abcd-0", "--", "unshare", "--mount", "--uts", "--propagation", "private", "--"]);
    const rest = args.slice(12);
    expect(rest).toEqual([
      "hn-0",
      join(root, "etc/cni/net.d"), "/etc/cni/net.d",
      join(root, "opt/cni/bin"), "/opt/cni/bin",
      join(root, "run/flannel"), "/run/flannel",
      join(root, "run/netns"), "/run/netns",
      "--", "/usr/sbin/sshd", "-D",
    ]);
  });
});

describe("the dev admin policy and network hosts", () => {
  const config = defaultConfig("/tmp/kok-a", 20000, "10.77.0.0/16");

  it("allows SSH to the hosts subnets and, given the dev cluster, registry mirrors at the workers' registry address", () => {
    const policy = devAdminPolicy(config);
    expect(policy.sshTargets.allowed).toContain("10.250.0.0/16");
    const mirrors = { "registry.k8s.io": [`http://${workersRegistry(config)}`], "docker.io": [`http://${workersRegistry(config)}`] };
    expect(packageVersionPolicyProblems({ registryMirrors: mirrors }, policy)).toEqual([]);
    expect(packageVersionPolicyProblems({ registryMirrors: mirrors }, devAdminPolicy())).toHaveLength(2);
    expect(policy.allowedRegistries).toContain("registry.k8s.io");
  });

  it("allows the object store as Pods reach it as an etcd backup endpoint, over plain http, and nothing else", () => {
    const withEndpoint = (endpoint: string) => ({ etcd: { ...minimalSpec().etcd, backup: { store: { s3: { bucket: "kok-dev", prefix: "backups", endpoint, credentialsSecretRef: { name: "store" } } } } } });
    const policy = devAdminPolicy(config);
    expect(objectStorePodEndpoint(config)).toBe("http://10.77.255.254:29000");
    expect(backupEndpointPolicyProblems(withEndpoint(objectStorePodEndpoint(config)), policy.allowedBackupEndpoints)).toEqual([]);
    // The loopback listener itself is never a backup endpoint; neither is another address of the pod range.
    for (const endpoint of [objectStoreEndpoint(config), "http://10.77.0.5:29000", "http://169.254.169.254"]) {
      expect(backupEndpointPolicyProblems(withEndpoint(endpoint), policy.allowedBackupEndpoints), endpoint).toHaveLength(1);
    }
    // Without the dev cluster's config, no endpoint is known: none is allowed.
    expect(devAdminPolicy().allowedBackupEndpoints).toEqual([]);
  });

  it("forwards the object store's port from the node link's machine end, next to the apiserver and the registry", () => {
    const layout = realNodeLayout(config);
    expect(forwards(config, layout, `127.0.0.1:${config.ports.registry}`)).toEqual([
      `10.77.255.254:${config.ports.apiServer}=127.0.0.1:${config.ports.apiServer}`,
      `10.77.255.254:${config.ports.registry}=127.0.0.1:${config.ports.registry}`,
      `10.77.255.254:${config.ports.objectStore}=127.0.0.1:${config.ports.objectStore}`,
    ]);
    expect(objectStorePodEndpoint(config)).toBe(`http://${layout.link.host}:${config.ports.objectStore}`);
  });
});
