/**
 * Offline validation of what a hostile tenant may write (issue 13, findings 4, 5 and 10): every
 * value below was accepted before, and each must now be refused with its field path named.
 */
import { describe, expect, it } from "vitest";
import {
  addressClass,
  clusterNameProblems,
  hostKeyProblem,
  machineNameProblems,
  stackNameProblems,
  validateClusterPackageVersionSpec,
  validateClusterSpec,
  validateMachineSpec,
  type Problem,
} from "../../src/api/v1alpha1";
import { HOST_KEY, machine, packages, sha } from "../support/worker-fixtures";
import { minimalSpec, standardSpec } from "../support/specs";

const at = (problems: Problem[], path: string) => problems.filter((p) => p.path === path).map((p) => p.message);

describe("Machine fields a tenant could aim at the platform", () => {
  it.each([
    ["169.254.169.254", "link-local"],
    ["0.0.0.0", "unspecified"],
    ["224.0.0.1", "multicast"],
    ["255.255.255.255", "broadcast"],
    ["fe80::1", "link-local"],
    ["::ffff:a9fe:a9fe", "IPv4-mapped"],
    ["::", "unspecified"],
  ])("refuses ip %s (%s) always", (ip, kind) => {
    const messages = at(validateMachineSpec(machine({ ip })), "spec.ip");
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain(kind);
  });

  it("leaves loopback to the admin policy (the dev and test hosts are 127.0.x.y)", () => {
    expect(addressClass("127.0.0.1")).toBe("loopback");
    expect(validateMachineSpec(machine({ ip: "127.0.0.12" }))).toEqual([]);
  });

  it.each(["-oProxyCommand=id", "root@evil", "Root", "a b", "x".repeat(33)])("refuses ssh.user %j", (user) => {
    const messages = at(validateMachineSpec(machine({ ssh: { ...machine().ssh, user } })), "spec.ssh.user");
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain("POSIX user name");
  });

  it("accepts ordinary user names", () => {
    for (const user of ["root", "ubuntu", "kok_admin", "_svc", "deploy-1"]) {
      expect(validateMachineSpec(machine({ ssh: { ...machine().ssh, user } }))).toEqual([]);
    }
  });

  it("refuses a host key followed by a second known_hosts line", () => {
    const hostKey = `${HOST_KEY}\n@cert-authority * ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDSt0jgvOR/Hvnv9zOhT82FwZzggLoEuOBpX82NUVwYj`;
    const messages = at(validateMachineSpec(machine({ ssh: { ...machine().ssh, hostKey } })), "spec.ssh.hostKey");
    expect(messages).toEqual(["must be one known_hosts key on one line (no newline or control character)"]);
    expect(hostKeyProblem(`@cert-authority * ${HOST_KEY}`)).toContain("markers");
    expect(hostKeyProblem(`${HOST_KEY}\r`)).toContain("one line");
    expect(hostKeyProblem(`${HOST_KEY} root@host`)).toBeUndefined();
  });

  it("refuses a package version that leaves the install root, in a Machine and in a catalog", () => {
    const bad = { ...packages(), kubelet: { version: "../../../../tmp/x", url: "http://mirror.local/kubelet", sha256: sha("b") } };
    const inMachine = at(validateMachineSpec(machine({ packages: bad })), "spec.packages.kubelet.version");
    expect(inMachine).toHaveLength(1);
    expect(inMachine[0]).toContain('no "/", no ".."');
    const inCatalog = validateClusterPackageVersionSpec({ clusterRef: { name: "a" }, packages: bad });
    expect(inCatalog.map((p) => p.path)).toEqual(["spec.packages.kubelet.version"]);
    for (const version of ["1..2", "v1.36.3/..", ".hidden", "1.0-", "a b"]) {
      expect(at(validateMachineSpec(machine({ packages: { ...packages(), cni: { ...packages().cni, version } } })), "spec.packages.cni.version")).toHaveLength(1);
    }
    for (const version of ["1.7.22", "v1.36.3", "1.6.20~ds1-1+b1", "v1.36.3-rc.0"]) {
      expect(validateMachineSpec(machine({ packages: { ...packages(), cni: { ...packages().cni, version } } }))).toEqual([]);
    }
  });

  it("bounds a rollout's health gate (readyTimeoutSeconds 1e10 was accepted)", () => {
    const problems = validateClusterPackageVersionSpec({ clusterRef: { name: "a" }, packages: packages(), rollout: { healthGate: { readyTimeoutSeconds: 1e10 } } });
    expect(problems.map((p) => p.path)).toEqual(["spec.rollout.healthGate.readyTimeoutSeconds"]);
  });

  it("lists every problem of a hostile Machine at once", () => {
    const problems = validateMachineSpec(
      machine({ ip: "169.254.169.254", ssh: { ...machine().ssh, user: "-oProxyCommand=id", hostKey: `${HOST_KEY}\n@revoked * x` } }),
    );
    expect(problems.map((p) => p.path).sort()).toEqual(["spec.ip", "spec.ssh.hostKey", "spec.ssh.user"]);
  });
});

describe("names within what every derived name allows", () => {
  it("refuses a 120-character Machine name, and one whose stack name passes Pulumi's 100", () => {
    expect(machineNameProblems("m".repeat(120))[0].message).toContain("at most 63");
    const name = "m".repeat(60);
    const problems = machineNameProblems(name, "n".repeat(40));
    expect(problems).toHaveLength(1);
    expect(problems[0].message).toContain("101 characters; Pulumi allows 100");
    expect(machineNameProblems(name, "n".repeat(39))).toEqual([]);
  });

  it("checks a Cluster's stack name with its namespace", () => {
    expect(clusterNameProblems("a".repeat(40), "metadata.name", "n".repeat(59))).toEqual([]);
    expect(clusterNameProblems("a".repeat(40), "metadata.name", "n".repeat(60))[0].message).toContain("Pulumi allows 100");
    expect(stackNameProblems("Cluster", undefined, "x")).toEqual([]);
  });
});

describe("Cluster fields a tenant could use against the platform", () => {
  it.each([
    ["v99.0.0", "not supported"],
    ["v1.20.0", "not supported"],
    ["v2.36.0", "not supported"],
  ])("refuses kubernetesVersion %s", (kubernetesVersion, text) => {
    expect(at(validateClusterSpec(minimalSpec({ kubernetesVersion })), "spec.kubernetesVersion")[0]).toContain(text);
  });

  it("refuses an etcd version outside the supported range", () => {
    expect(at(validateClusterSpec(minimalSpec({ etcd: { ...minimalSpec().etcd, version: "4.0.0" } })), "spec.etcd.version")[0]).toContain("not supported");
    expect(at(validateClusterSpec(minimalSpec({ etcd: { ...minimalSpec().etcd, version: "3.5.0" } })), "spec.etcd.version")[0]).toContain("too old");
  });

  it("refuses system: groups and users in extra kubeconfigs", () => {
    const problems = validateClusterSpec(standardSpec({ kubeconfigs: [{ name: "root", user: "system:kube-controller-manager", groups: ["system:masters"] }] }));
    expect(at(problems, "spec.kubeconfigs[0].groups[0]")[0]).toContain("system:masters bypasses RBAC");
    expect(at(problems, "spec.kubeconfigs[0].user")[0]).toContain("system: user");
  });

  it("bounds replicas and certificate lifetimes", () => {
    const problems = validateClusterSpec(
      standardSpec({ apiServer: { ...standardSpec().apiServer, replicas: 100000 }, certificates: { validityDays: 100000, renewBeforeDays: 30, caValidityDays: 1e9 } }),
    );
    expect(problems.map((p) => p.path)).toEqual(expect.arrayContaining(["spec.apiServer.replicas", "spec.certificates.validityDays", "spec.certificates.caValidityDays"]));
  });

  it("closes etcd.storage.volumeSource to the shapes of emptyDir and hostPath", () => {
    const secret = validateClusterSpec(minimalSpec({ etcd: { version: "3.6.16", storage: { volumeSource: { secret: { secretName: "x" } } as never } } }));
    expect(secret.map((p) => p.path)).toEqual(["spec.etcd.storage.volumeSource.secret"]);
    const smuggled = validateClusterSpec(minimalSpec({ etcd: { version: "3.6.16", storage: { volumeSource: { hostPath: { path: "/", type: "Socket" } } as never } } }));
    expect(smuggled.map((p) => p.path)).toEqual(["spec.etcd.storage.volumeSource.hostPath.type"]);
    const traversal = validateClusterSpec(minimalSpec({ etcd: { version: "3.6.16", storage: { volumeSource: { hostPath: { path: "/data/etcd/../../etc" } } } } }));
    expect(at(traversal, "spec.etcd.storage.volumeSource.hostPath.path")[0]).toContain('".." segments');
  });

  it("refuses image references that are not plain registry paths", () => {
    const problems = validateClusterSpec(minimalSpec({ imageRepository: "evil.example.com/x:latest", etcd: { ...minimalSpec().etcd, image: "$(id)" } }));
    expect(problems.map((p) => p.path).sort()).toEqual(["spec.etcd.image", "spec.imageRepository"]);
  });
});
