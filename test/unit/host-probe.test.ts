import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { HostProbe, parseProbeOutput, probeScript, restartScript, type HostLayoutLike } from "../../src/host/host-probe";

let root: string | undefined;
afterEach(() => root && rmSync(root, { recursive: true, force: true }));

/** Runs a host command the way sshd would: through the login shell. */
const runLocally = (command: string) => execFileSync("sh", ["-c", command], { encoding: "utf8" });

describe("the probe script", () => {
  it.each(["systemd", "process", "none"] as const)("is valid bash and never fails for %s", (serviceManager) => {
    root = mkdtempSync(path.join(tmpdir(), "kok-probe-script-"));
    const layout: HostLayoutLike = { installRoot: root, serviceManager };
    expect(() => execFileSync("bash", ["-n", "-c", runLocally(`printf %s ${probeScript(layout).slice("/bin/bash -c ".length)}`)])).not.toThrow();
    if (serviceManager === "systemd") return; // systemctl belongs to the host, not to this test machine
    expect(parseProbeOutput(runLocally(probeScript(layout)))).toEqual({ observedVersions: {}, services: { containerd: false, kubelet: false } });
  });

  it("reads the package stamps as the verify step does", () => {
    root = mkdtempSync(path.join(tmpdir(), "kok-probe-script-"));
    const version = path.join(root, "opt/kube-on-kube/kubelet/v1.36.3-abc");
    mkdirSync(version, { recursive: true });
    writeFileSync(path.join(version, ".kube-on-kube-version"), 'v1.36.3-"odd"\n');
    symlinkSync(version, path.join(root, "opt/kube-on-kube/kubelet/current"));
    expect(parseProbeOutput(runLocally(probeScript({ installRoot: root, serviceManager: "process" }))).observedVersions).toEqual({ kubelet: 'v1.36.3-"odd"' });
  });

  it("restart restarts containerd before the kubelet and checks both run afterwards", () => {
    const withPids = restartScript({ installRoot: "/", serviceManager: "process" });
    expect(withPids.indexOf("svc_start containerd")).toBeLessThan(withPids.indexOf("svc_start kubelet"));
    expect(withPids).toContain("is not running");
    const systemd = restartScript({ installRoot: "/", serviceManager: "systemd" });
    expect(systemd.indexOf("systemctl restart containerd")).toBeLessThan(systemd.indexOf("systemctl restart kubelet"));
    expect(withPids).not.toContain("tasks kill");
  });

  it("with stopPods ends the Pods' containers after the kubelet stops and before containerd restarts", () => {
    for (const serviceManager of ["process", "systemd"] as const) {
      const script = restartScript({ installRoot: "/", serviceManager }, { stopPods: true });
      const stop = script.indexOf(serviceManager === "process" ? "svc_stop kubelet" : "systemctl stop kubelet");
      const kill = script.indexOf("tasks kill -a -s SIGTERM");
      const restart = script.indexOf(serviceManager === "process" ? "svc_start containerd" : "systemctl restart containerd");
      expect(stop, serviceManager).toBeGreaterThanOrEqual(0);
      expect(kill, serviceManager).toBeGreaterThan(stop);
      expect(restart, serviceManager).toBeGreaterThan(kill);
    }
  });
});

describe("parseProbeOutput", () => {
  it("takes the last line and keeps only known packages", () => {
    const out = 'banner\n{"observedVersions":{"kubelet":"v1","bogus":"x"},"services":{"containerd":true,"kubelet":false}}\n';
    expect(parseProbeOutput(out)).toEqual({ observedVersions: { kubelet: "v1" }, services: { containerd: true, kubelet: false } });
  });
  it("says what it got when the output is not a result", () => {
    expect(() => parseProbeOutput("Welcome!\n")).toThrow('the probe printed no result line (last line: "Welcome!")');
    expect(() => parseProbeOutput('{"observedVersions":{}}')).toThrow("unexpected shape");
  });
});

describe("HostProbe refusals (before any connection)", () => {
  const layout: HostLayoutLike = { installRoot: "/", serviceManager: "process" };
  it("refuses a host without a pinned key unless allowed, and reports the failed operation", async () => {
    const ops: string[] = [];
    const probe = new HostProbe({ onOperation: (op, result) => ops.push(`${op}:${result}`) });
    await expect(probe.probe({ host: "192.0.2.1", privateKey: "k" }, layout)).rejects.toThrow(
      "host probe of root@192.0.2.1:22 refused: no ssh.hostKey is pinned, so the host cannot be authenticated",
    );
    await expect(probe.restartServices({ host: "192.0.2.1", hostKey: "ssh-ed25519 AAAA" }, layout)).rejects.toThrow("neither a private key nor a password was given");
    expect(ops).toEqual(["probe:error", "restart:error"]);
  });
  it("rejects a timeout that is not positive", () => {
    expect(() => new HostProbe({ timeoutSeconds: 0 })).toThrow("timeoutSeconds must be positive");
  });
});
