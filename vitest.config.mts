import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const alias = { "kube-on-kube": fileURLToPath(new URL("./src/index.ts", import.meta.url)) };

// Four test levels (DESIGN.md §6). Component tests keep per-file isolation because the
// Pulumi runtime (mocks, settings) is process-global state.
export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      // 20 s, not vitest's 5: in CI the unit tests run beside the e2e suite on 2 cores, where a
      // test of a few hundred real HTTP requests took over 5 s (a hang still fails).
      { resolve: { alias }, test: { name: "unit", include: ["test/unit/**/*.test.ts"], testTimeout: 20_000 } },
      { resolve: { alias }, test: { name: "components", include: ["test/components/**/*.test.ts"], isolate: true, testTimeout: 30_000 } },
      { resolve: { alias }, test: { name: "integration", include: ["test/integration/**/*.test.ts"], testTimeout: 600_000, hookTimeout: 600_000, fileParallelism: false } },
      { resolve: { alias }, test: { name: "e2e", include: ["test/e2e/**/*.test.ts"], testTimeout: 1_800_000, hookTimeout: 1_800_000, fileParallelism: false } },
    ],
  },
});
