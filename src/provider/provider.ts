/**
 * The component provider that offers ControlPlane, ClusterPki, WorkerNode and NodePool to every Pulumi language: the
 * engine calls `construct` and the components are built here, in Node, exactly as a TypeScript
 * program builds them. Served by src/provider/main.ts (the plugin `pulumi-resource-kube-on-kube`).
 *
 * Pulumi's own TypeScript component host would need the pulumi-language-nodejs plugin, which is
 * not built here; this provider serves the same protocol with @pulumi/pulumi's provider server.
 */
import { readFileSync } from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { resolveClusterSpec, SpecValidationError, validateClusterSpec, type ClusterSpec } from "../api/v1alpha1";
import { caRotationProblems, type CaRotationInput } from "../components/ca-rotation";
import { ControlPlane, type ControlPlaneArgs } from "../components/control-plane";
import { ClusterPki } from "../components/pki";
import { componentType } from "../components/type-tokens";
import { known } from "./known";
import { packageSchema } from "./schema";
import { constructNodePool } from "./node-pool";
import { constructWorkerNode } from "./worker-node";

/** The npm package's version: the plugin's and the schema's. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8")) as { version: string }).version;
}

/** A SpecValidationError as the engine prints input errors: one line per property. */
function asInputErrors(error: unknown): unknown {
  if (!(error instanceof SpecValidationError)) return error;
  return new pulumi.InputPropertiesError({ message: error.message, errors: error.problems.map((p) => ({ propertyPath: p.path, reason: p.message })) });
}

type Inputs = Record<string, unknown>;

/** The etcdBackup input: the keys stay Inputs (secrets, possibly another resource's outputs); the rest must be known. */
async function etcdBackupInput(input: unknown): Promise<ControlPlaneArgs["etcdBackup"]> {
  if (input === undefined || input === null) return undefined;
  if (pulumi.Output.isInstance(input)) {
    // The whole object is one Output (another resource's): its keys are taken from it, kept secret.
    const whole = input as pulumi.Output<{ accessKeyId: string; secretAccessKey: string; image?: string; clusterRef?: string }>;
    return {
      credentials: { accessKeyId: pulumi.secret(whole.apply((b) => b.accessKeyId)), secretAccessKey: pulumi.secret(whole.apply((b) => b.secretAccessKey)) },
      image: await known<string>("etcdBackup.image", whole.apply((b) => b.image)),
      clusterRef: await known<string>("etcdBackup.clusterRef", whole.apply((b) => b.clusterRef)),
    };
  }
  const given = input as { accessKeyId?: pulumi.Input<string>; secretAccessKey?: pulumi.Input<string>; image?: unknown; clusterRef?: unknown };
  const { accessKeyId, secretAccessKey } = given;
  return {
    credentials: accessKeyId !== undefined && secretAccessKey !== undefined ? { accessKeyId: pulumi.secret(accessKeyId), secretAccessKey: pulumi.secret(secretAccessKey) } : undefined,
    image: await known<string>("etcdBackup.image", given.image),
    clusterRef: await known<string>("etcdBackup.clusterRef", given.clusterRef),
  };
}

async function constructControlPlane(name: string, inputs: Inputs, opts: pulumi.ComponentResourceOptions): Promise<pulumi.provider.ConstructResult> {
  const args: ControlPlaneArgs = {
    spec: (await known<ClusterSpec>("spec", inputs.spec)) as ClusterSpec,
    namespace: await known<string>("namespace", inputs.namespace),
    createNamespace: await known<boolean>("createNamespace", inputs.createNamespace),
    namespaceLabels: await known<Record<string, string>>("namespaceLabels", inputs.namespaceLabels),
    metaClusterDomain: await known<string>("metaClusterDomain", inputs.metaClusterDomain),
    // An Input: it may come from another resource; ControlPlane keeps it a secret.
    metaKubeconfig: inputs.metaKubeconfig as pulumi.Input<string> | undefined,
    running: await known<ControlPlaneArgs["running"]>("running", inputs.running),
    rotationDrill: await known<ControlPlaneArgs["rotationDrill"]>("rotationDrill", inputs.rotationDrill),
    operatorNamespace: await known<string>("operatorNamespace", inputs.operatorNamespace),
    encryptionKeyGeneration: await known<number>("encryptionKeyGeneration", inputs.encryptionKeyGeneration),
    etcdBackup: await etcdBackupInput(inputs.etcdBackup),
    // Validated by ControlPlane with the rest of its args (caRotation.<field> in the errors).
    caRotation: await known<CaRotationInput>("caRotation", inputs.caRotation),
  };
  const cp = new ControlPlane(name, args, opts);
  return {
    urn: cp.urn,
    state: {
      namespace: cp.namespace,
      endpoint: cp.endpoint,
      internalEndpoint: cp.internalEndpoint,
      caCertificate: cp.caCertificate,
      caPrivateKey: cp.caPrivateKey,
      adminKubeconfig: cp.adminKubeconfig,
      adminKubeconfigSecret: cp.adminKubeconfigSecret,
      version: cp.version,
      certificatesExpireAt: cp.certificatesExpireAt,
      certificateAuthorities: cp.certificateAuthorities,
    },
  };
}

async function constructClusterPki(name: string, inputs: Inputs, opts: pulumi.ComponentResourceOptions): Promise<pulumi.provider.ConstructResult> {
  const spec = (await known<ClusterSpec>("spec", inputs.spec)) as ClusterSpec;
  const rotation = await known<CaRotationInput>("caRotation", inputs.caRotation);
  const problems = [...validateClusterSpec(spec, "spec"), ...caRotationProblems(rotation, "caRotation")];
  if (problems.length) throw new SpecValidationError(`ClusterPki "${name}"`, problems);
  const namespace = (await known<string>("namespace", inputs.namespace)) ?? name;
  const metaClusterDomain = (await known<string>("metaClusterDomain", inputs.metaClusterDomain)) ?? "cluster.local";
  const pki = new ClusterPki(name, { cluster: { name, namespace, spec: resolveClusterSpec(spec), metaClusterDomain }, rotation }, opts);
  return {
    urn: pki.urn,
    state: {
      clusterCaCertificate: pki.clusterCa.certPem,
      clusterTrustBundle: pki.clusterTrustBundle,
      clusterCaPrivateKey: pki.clusterCa.keyPem,
      adminCertificate: pki.admin.certPem,
      adminPrivateKey: pki.admin.keyPem,
      certificatesExpireAt: pki.certificatesExpireAt,
    },
  };
}

const CONSTRUCTORS: Record<string, (name: string, inputs: Inputs, opts: pulumi.ComponentResourceOptions) => Promise<pulumi.provider.ConstructResult>> = {
  [componentType("ControlPlane")]: constructControlPlane,
  [componentType("ClusterPki")]: constructClusterPki,
  [componentType("WorkerNode")]: constructWorkerNode,
  [componentType("NodePool")]: constructNodePool,
};

export class KubeOnKubeProvider implements pulumi.provider.Provider {
  readonly version: string;
  readonly schema: string;

  constructor(version = packageVersion()) {
    this.version = version;
    this.schema = JSON.stringify(packageSchema(version).schema);
  }

  async construct(name: string, type: string, inputs: pulumi.Inputs, options: pulumi.ComponentResourceOptions): Promise<pulumi.provider.ConstructResult> {
    const build = CONSTRUCTORS[type];
    if (!build) throw new Error(`kube-on-kube has no component ${type}; it offers ${Object.keys(CONSTRUCTORS).join(", ")}`);
    try {
      return await build(name, inputs as Inputs, options);
    } catch (error) {
      throw asInputErrors(error);
    }
  }
}
