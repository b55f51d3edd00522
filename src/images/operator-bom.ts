/**
 * Where a built operator image's bill of materials is: bom.md in its layout, which `buildImages`
 * writes with the image. `kok images bom` prints it; docs/operator-image-bom.md is a copy.
 */
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { REPO_ROOT } from "./app-stage";
import { BOM_FILE } from "./bom";
import { layoutDirOf, parseReference, type ImageReference } from "./layout";

/** docker.io/kube-on-kube/operator:<version of this checkout's package.json>. */
export function operatorReference(repo: string = REPO_ROOT): ImageReference {
  const { version } = JSON.parse(readFileSync(path.join(repo, "package.json"), "utf8")) as { version: string };
  return parseReference(`docker.io/kube-on-kube/operator:${version}`);
}

/** The bill of materials of the operator image built under `imagesDir`; throws saying how to build it. */
export function operatorBom(imagesDir: string): string {
  const file = path.join(layoutDirOf(imagesDir, operatorReference()), BOM_FILE);
  if (!existsSync(file)) throw new Error(`${file} not found: build the image with \`kok images build --only operator\``);
  return readFileSync(file, "utf8");
}
