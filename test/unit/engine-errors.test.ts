import { describe, expect, it } from "vitest";
import { summarizeEngineError } from "../../src/runtime/engine-errors";

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
