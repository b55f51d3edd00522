/**
 * When SshStep runs its script again on an update (src/components/ssh-step.ts): a changed script,
 * trigger or stdin does; a changed stdin that is only a credential (`stdinIsCredential`: the
 * drain and Ready steps get the admin kubeconfig there) is stored for the next run and the delete
 * script, but runs nothing — a CA rotation re-issues that kubeconfig, and a drain for it would
 * evict Pods for no reason (or fail on a bare Pod). Runs the provider's methods with bash locally.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { sshStepDynamicProvider } from "../../src/components/ssh-step";

const dir = mkdtempSync(join(tmpdir(), "kok-ssh-step-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const runs = join(dir, "runs");
const script = `echo ran >> ${runs}; cat`;
const count = () => readFileSync(runs, "utf8").split("\n").filter(Boolean).length;

describe("SshStep updates", () => {
  it("runs again for a new stdin of content, and not for a new credential on stdin, whose value it keeps", async () => {
    const base = { create: script, update: script, triggers: ["v1"] };
    const created = await sshStepDynamicProvider.create!({ ...base, stdin: "kubeconfig-1", stdinIsCredential: true });
    expect(count()).toBe(1);
    const update = sshStepDynamicProvider.update!;

    const kept = await update("id", created.outs, { ...base, stdin: "kubeconfig-2", stdinIsCredential: true });
    expect(count()).toBe(1);
    expect(kept.outs).toMatchObject({ stdin: "kubeconfig-2", stdout: "kubeconfig-1" });

    await update("id", kept.outs, { ...base, triggers: ["v2"], stdin: "kubeconfig-2", stdinIsCredential: true });
    expect(count()).toBe(2);

    const content = await update("id", kept.outs, { ...base, stdin: "serving-cert-2" });
    expect(count()).toBe(3);
    expect(content.outs).toMatchObject({ stdout: "serving-cert-2" });
  });
});
