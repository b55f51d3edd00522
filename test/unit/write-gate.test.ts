/**
 * The write gate: a replica whose term ended (or that is frozen past its renewal deadline) writes
 * nothing more, while its reads go on; decided at each call, not when the client was built.
 */
import { describe, expect, it } from "vitest";
import { EngineFence, FencedError } from "../../src/runtime/fencing";
import { writeGated } from "../../src/runtime/write-gate";

/** A client shaped like the generated ones: methods on a class prototype that use `this`. */
class FakeApi {
  readonly calls: string[] = [];
  private readonly prefix = "api";
  async readNamespacedSecret(name: string): Promise<string> {
    this.calls.push(`read ${name}`);
    return `${this.prefix}:${name}`;
  }
  async patchNamespacedCustomObjectStatus(name: string): Promise<string> {
    this.calls.push(`patch ${name}`);
    return `${this.prefix}:${name}`;
  }
  async createNamespacedEvent(name: string): Promise<string> {
    this.calls.push(`create ${name}`);
    return name;
  }
  async deleteNamespacedPod(name: string): Promise<string> {
    this.calls.push(`delete ${name}`);
    return name;
  }
  async replaceNamespacedSecret(name: string): Promise<string> {
    this.calls.push(`replace ${name}`);
    return name;
  }
}

describe("writeGated", () => {
  it("lets every call through while the replica may write, with the client's own `this`", async () => {
    const api = new FakeApi();
    const gated = writeGated(api, () => true, "FakeApi");
    expect(await gated.patchNamespacedCustomObjectStatus("a")).toBe("api:a");
    expect(await gated.readNamespacedSecret("b")).toBe("api:b");
    expect(api.calls).toEqual(["patch a", "read b"]);
  });

  it("refuses create, patch, replace and delete once the term ended, and keeps reading", async () => {
    const api = new FakeApi();
    let leads = true;
    const gated = writeGated(api, () => leads, "FakeApi");
    await gated.createNamespacedEvent("before");
    leads = false;
    for (const call of [() => gated.createNamespacedEvent("e"), () => gated.patchNamespacedCustomObjectStatus("s"), () => gated.replaceNamespacedSecret("r"), () => gated.deleteNamespacedPod("p")]) {
      await expect(call()).rejects.toBeInstanceOf(FencedError);
    }
    await expect(gated.patchNamespacedCustomObjectStatus("s")).rejects.toThrow(
      "FakeApi.patchNamespacedCustomObjectStatus: this replica does not lead (its lease was lost or it is stopping); it writes nothing to the meta-cluster",
    );
    expect(await gated.readNamespacedSecret("still")).toBe("api:still");
    expect(api.calls).toEqual(["create before", "read still"]);
  });

  it("follows the engine fence: closed before a term, open in it, closed when it ends or when the renewal deadline passes", async () => {
    let now = 1_000;
    const fence = new EngineFence({ identity: "unit", clock: { now: () => now, setTimer: () => () => undefined } });
    const api = new FakeApi();
    const gated = writeGated(api, () => fence.mayWrite(), "FakeApi");
    await expect(gated.createNamespacedEvent("standby")).rejects.toBeInstanceOf(FencedError);
    fence.open(undefined);
    fence.renewed(2_000);
    await gated.createNamespacedEvent("leading");
    // Frozen past the renewal deadline: the elector has not noticed yet, the gate has.
    now = 2_000;
    await expect(gated.createNamespacedEvent("frozen")).rejects.toBeInstanceOf(FencedError);
    fence.renewed(5_000);
    await gated.createNamespacedEvent("renewed");
    await fence.close();
    await expect(gated.createNamespacedEvent("lost")).rejects.toBeInstanceOf(FencedError);
    expect(api.calls).toEqual(["create leading", "create renewed"]);
  });
});
