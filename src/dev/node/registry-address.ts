/**
 * TEMPORARY copy of the dev-services helper's `registryAddress(config)` (src/dev/registry.ts on
 * its branch: the registry listens on 127.0.0.1:<port base + 5000>), so the real node's mirror
 * config can be written before that branch is merged. On merge, import `registryAddress` from
 * ../registry and delete this file.
 */
import type { DevConfig } from "../config";

export function devRegistryAddress(config: DevConfig): string {
  return `127.0.0.1:${config.ports.apiServer - 6443 + 5000}`;
}
