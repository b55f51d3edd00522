/**
 * Pulumi mocks for component tests: every registered resource is recorded, provider functions
 * (`call`) are refused so a test cannot silently depend on an unmocked data source, and the tls
 * resources get deterministic fake PEM outputs so kubeconfigs and Secrets can be inspected.
 *
 * Use from a test file (vitest isolates files, and the Pulumi runtime is process-global):
 *   const recorder = installMocks();   // at module top, before importing components
 */
import * as pulumi from "@pulumi/pulumi";

export interface RecordedResource {
  readonly type: string;
  readonly name: string;
  readonly inputs: Record<string, unknown>;
  readonly id: string;
  /** Whether a provider manages it (false for ComponentResources). */
  readonly custom: boolean;
  /** Names of the resources it was registered as depending on (`dependsOn`, parents' dependsOn). */
  readonly dependsOn: string[];
  /** Name of its parent resource, if any. */
  readonly parent?: string;
  /** Reference (`urn::id`) of the provider that manages it, if not the default one. */
  readonly provider?: string;
}

/** The mock monitor hides a registration's dependencies; this hook records them by name. */
interface RegisterRequest {
  getName(): string;
  getDependenciesList(): string[];
  getParent(): string;
}
const registrations = new Map<string, { dependsOn: string[]; parent?: string }>();
const urnName = (urn: string) => urn.slice(urn.lastIndexOf("::") + 2);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { MockMonitor } = require("@pulumi/pulumi/runtime/mocks") as { MockMonitor: { prototype: Record<string, unknown> } };
const originalRegister = MockMonitor.prototype.registerResource as (this: unknown, req: RegisterRequest, cb: unknown) => Promise<void>;
MockMonitor.prototype.registerResource = function (this: unknown, req: RegisterRequest, cb: unknown) {
  registrations.set(req.getName(), {
    dependsOn: req.getDependenciesList().map(urnName),
    parent: req.getParent() ? urnName(req.getParent()) : undefined,
  });
  return originalRegister.call(this, req, cb);
};

export interface MockRecorder {
  readonly resources: RecordedResource[];
  ofType(type: string): RecordedResource[];
  named(name: string): RecordedResource;
  reset(): void;
}

/** Outputs the real providers compute and our components read. */
function computedOutputs(type: string, name: string): Record<string, unknown> {
  switch (type) {
    case "tls:index/privateKey:PrivateKey":
      return { privateKeyPem: `-----BEGIN PRIVATE KEY-----\nmock-${name}\n-----END PRIVATE KEY-----\n`, publicKeyPem: `-----BEGIN PUBLIC KEY-----\nmock-${name}\n-----END PUBLIC KEY-----\n` };
    case "tls:index/selfSignedCert:SelfSignedCert":
    case "tls:index/locallySignedCert:LocallySignedCert":
      return {
        certPem: `-----BEGIN CERTIFICATE-----\nmock-${name}\n-----END CERTIFICATE-----\n`,
        validityEndTime: "2027-11-25T00:00:00Z",
        readyForRenewal: false,
      };
    case "tls:index/certRequest:CertRequest":
      return { certRequestPem: `-----BEGIN CERTIFICATE REQUEST-----\nmock-${name}\n-----END CERTIFICATE REQUEST-----\n` };
    default:
      return {};
  }
}

/** `stackOutputs`: what a `pulumi.StackReference` in the program under test reads. */
export function installMocks(options: { stackOutputs?: Record<string, unknown> } = {}): MockRecorder {
  const resources: RecordedResource[] = [];
  pulumi.runtime.setMocks(
    {
      newResource(args: pulumi.runtime.MockResourceArgs) {
        const id = `${args.name}-id`;
        const registration = registrations.get(args.name) ?? { dependsOn: [] };
        resources.push({ type: args.type, name: args.name, inputs: args.inputs, id, custom: args.custom ?? false, provider: args.provider, ...registration });
        if (args.type === "pulumi:pulumi:StackReference") {
          return { id, state: { ...args.inputs, outputs: options.stackOutputs ?? {}, secretOutputNames: [] } };
        }
        return { id, state: { ...args.inputs, ...computedOutputs(args.type, args.name) } };
      },
      call(args: pulumi.runtime.MockCallArgs) {
        throw new Error(`unmocked provider call ${args.token}: component tests must not call data sources`);
      },
    },
    "kube-on-kube",
    "test",
    false,
  );
  return {
    resources,
    ofType: (type) => resources.filter((r) => r.type === type),
    named(name) {
      const found = resources.filter((r) => r.name === name);
      if (found.length !== 1) throw new Error(`expected one resource named ${name}, found ${found.length}`);
      return found[0];
    },
    reset: () => void resources.splice(0),
  };
}

/** Whether the provider resource named `providerName` manages `r` (its reference is `urn::id`, the URN ending in `::<name>`). */
export function managedBy(r: RecordedResource, providerName: string): boolean {
  return r.provider !== undefined && r.provider.slice(0, r.provider.lastIndexOf("::")).endsWith(`::${providerName}`);
}

/** The value of an Output (or plain value) once the mock engine has resolved it. */
export function valueOf<T>(output: pulumi.Input<T>): Promise<T> {
  return new Promise((resolve) => pulumi.output(output).apply((v) => resolve(v as T)));
}

/** Whether an Output is marked secret. */
export function isSecretOutput(output: pulumi.Output<unknown>): Promise<boolean> {
  return pulumi.isSecret(output);
}

/** Waits until every resource registration started so far has been recorded. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/** Whether a recorded input value arrived at the engine marked secret. */
export function isSecretInput(value: unknown): boolean {
  return typeof value === "object" && value !== null && SECRET_SIG in value;
}

/** A recorded input with secret markers removed (to inspect what the engine would store). */
export function plain<T = unknown>(value: unknown): T {
  if (Array.isArray(value)) return value.map((v) => plain(v)) as T;
  if (typeof value !== "object" || value === null) return value as T;
  if (isSecretInput(value)) return plain((value as { value: unknown }).value);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)])) as T;
}
