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
}

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

export function installMocks(): MockRecorder {
  const resources: RecordedResource[] = [];
  pulumi.runtime.setMocks(
    {
      newResource(args: pulumi.runtime.MockResourceArgs) {
        const id = `${args.name}-id`;
        resources.push({ type: args.type, name: args.name, inputs: args.inputs, id });
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
