#!/usr/bin/env node
/**
 * The plugin `pulumi-resource-kube-on-kube`: serves KubeOnKubeProvider to the engine, which
 * starts it with the engine's address and reads the port it listens on from stdout. Launched by
 * provider/pulumi-resource-kube-on-kube; nothing else may write to stdout.
 */
import * as pulumi from "@pulumi/pulumi";
import { KubeOnKubeProvider } from "./provider";

pulumi.provider.main(new KubeOnKubeProvider(), process.argv.slice(2)).catch((error: unknown) => {
  console.error(`pulumi-resource-kube-on-kube: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
