/**
 * A ControlPlane under the Pulumi mocks (test/support/pulumi-mocks.ts), with every resource
 * registered: its admin kubeconfig resolved and the mocks settled, so the recorder holds the graph.
 */
import { ControlPlane } from "../../src/components/control-plane";
import { settle, valueOf } from "./pulumi-mocks";

export async function deployControlPlane(name: string, args: ConstructorParameters<typeof ControlPlane>[1]): Promise<ControlPlane> {
  const cp = new ControlPlane(name, args);
  await valueOf(cp.adminKubeconfig);
  await settle();
  return cp;
}
