/**
 * The text of a Node script that does to a dynamic provider what Pulumi does to it: serialize it
 * with the SDK's closure serializer, then load the text in a fresh module and call `handler()`,
 * as the engine's dynamic-provider host does. `script` runs with the loaded provider as `loaded`
 * and prints lines starting with "RESULT " for the test to read.
 */
export interface SerializedProviderDriver {
  /** What the script `require`s for the serializer: a path, or the SDK's public module path. */
  readonly serializer: string;
  /** The compiled module holding the provider (an absolute path). */
  readonly module: string;
  readonly exportName: string;
  /** The directory whose node_modules the loaded text resolves its `require`s from. */
  readonly resolveFrom: string;
  /** Runs on the serialized text `sf.text` before it is loaded. */
  readonly inspect?: string;
  readonly script: string;
}

export function serializedProviderDriver(d: SerializedProviderDriver): string {
  return `const { serializeFunction } = require(${JSON.stringify(d.serializer)});
const provider = require(${JSON.stringify(d.module)})[${JSON.stringify(d.exportName)}];
serializeFunction(() => provider, { allowSecrets: true }).then(async (sf) => {
  ${d.inspect ?? ""}
  const Module = require("module");
  const m = new Module("serialized-provider", null);
  m.paths = Module._nodeModulePaths(${JSON.stringify(d.resolveFrom)});
  m._compile(sf.text, "serialized-provider.js");
  const loaded = m.exports.handler();
  ${d.script}
}).catch((e) => { console.error("driver failed: " + (e && e.stack || e)); process.exit(3); });
`;
}

/** A kubeconfig whose server nothing listens on: the provider's wait loop times out against it. */
export const UNREACHABLE_KUBECONFIG = `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: "https://127.0.0.1:1" } }]
users: [{ name: u, user: { token: t } }]
contexts: [{ name: x, context: { cluster: c, user: u } }]
current-context: x
`;
