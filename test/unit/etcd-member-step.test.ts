/**
 * `kok etcd member`'s failure when the membership cannot be read (src/backup/member.ts): etcdctl
 * says `context deadline exceeded` whatever the cause, so the message names the endpoints and what
 * Node's TLS client found there. A stand-in etcdctl fails as the real one does; the endpoint is a
 * loopback port nobody listens on.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runMemberStep, type MemberOptions } from "../../src/backup/member";
import { ensurePki } from "../../src/dev/pki";

/** A port that was free a moment ago, on loopback. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe("kok etcd member when the membership cannot be read", () => {
  let dir: string;
  let options: MemberOptions;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "kok-member-step-"));
    await ensurePki(dir, [{ file: "client", commonName: "kube-on-kube-etcd-membership", usage: "client" }]);
    const etcdctl = join(dir, "etcdctl");
    writeFileSync(etcdctl, "#!/bin/sh\necho 'Error: context deadline exceeded' >&2\nexit 1\n");
    chmodSync(etcdctl, 0o755);
    const port = await closedPort();
    options = {
      action: "list",
      endpoints: [`https://127.0.0.1:${port}`],
      tls: { cacert: join(dir, "ca.crt"), cert: join(dir, "client.crt"), key: join(dir, "client.key") },
      etcdctl,
      timeoutMs: 5000,
    };
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("names the endpoint and the cause etcdctl did not say, and no key material", async () => {
    const error = await runMemberStep(options, () => undefined).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error).toBeInstanceOf(Error);
    const endpoint = options.endpoints[0];
    expect(error!.message).toBe(`etcdctl member list at ${endpoint}: context deadline exceeded; etcd member ${endpoint} is not healthy: connect ECONNREFUSED ${endpoint.replace("https://", "")}`);
    const key = readFileSync(options.tls.key, "utf8").split("\n").filter((l) => l.length > 20);
    for (const line of key) expect(error!.message).not.toContain(line);
  });
});
