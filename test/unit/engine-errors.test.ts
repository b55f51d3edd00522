import { describe, expect, it } from "vitest";
import { ConcurrentUpdateError } from "@pulumi/pulumi/automation";
import { classifyEngineError, summarizeEngineError } from "../../src/runtime/engine-errors";

describe("summarizeEngineError", () => {
  it("keeps the bullets that follow a counting reason: they are the cause", () => {
    const output = [
      "Previewing update (team-a.prod):",
      "Diagnostics:",
      "  kubernetes:core/v1:Secret (prod-admin-kubeconfig-copy):",
      "    error: Preview failed: 1 error occurred:",
      '    \t* secrets "prod-admin-kubeconfig" is forbidden: denied by policy',
      "",
      "  pulumi:pulumi:Stack (kube-on-kube-team-a.prod):",
      "    error: preview failed",
    ].join("\n");
    expect(summarizeEngineError(new Error(output))).toBe('Preview failed: 1 error occurred: secrets "prod-admin-kubeconfig" is forbidden: denied by policy');
  });

  it("keeps the last distinct reasons, and the last lines when there is none", () => {
    expect(summarizeEngineError(new Error("error: a\nerror: b\nerror: a"))).toBe("a | b");
    expect(summarizeEngineError(new Error("one\ntwo\n\nthree\nfour"))).toBe("two | three | four");
  });
});

describe("classifyEngineError", () => {
  it("tells a checkpoint the CLI cannot load from any other engine failure", () => {
    // As the toolchain's CLI says it for a truncated state object (file:// and s3://).
    expect(classifyEngineError(new Error("code: 255\nstderr: error: failed to load checkpoint: place 1: invalid character '\\n' in string literal"))).toBe("state-unreadable");
    expect(classifyEngineError(new Error("error: could not deserialize deployment: unsupported checkpoint version 9"))).toBe("state-unreadable");
    expect(classifyEngineError(new Error("error: Deployment prod-apiserver: timed out"))).toBe("engine");
    // A program's own message that mentions checkpoints is not the engine's failure to load one.
    expect(classifyEngineError(new Error("error: spec.mode: the checkpoint was loaded"))).toBe("engine");
    expect(classifyEngineError(Object.create(ConcurrentUpdateError.prototype))).toBe("concurrent-update");
  });
});
