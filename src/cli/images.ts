/**
 * `kok images build [--only NAMES] [--registry HOST:PORT] [--force]`: the images of docs/images.md
 * built as OCI layouts under the images directory and, with a registry, pushed into it.
 * `kok images bom`: the operator image's bill of materials, as its build wrote it.
 * program.ts declares the flags.
 */
import { buildImages, defaultImagesDir, operatorBom, pushImages } from "../images";
import { UnknownImageError } from "../images/build";
import { IMAGE_NAMES, MissingInputsError } from "../images/definitions";
import { checkRegistry } from "../images/push";

export interface ImagesBuildFlags {
  readonly only?: string;
  readonly registry?: string;
  readonly imagesDir?: string;
  readonly force?: boolean;
}

const log = (line: string) => console.log(line);

export async function imagesBuildCommand(flags: ImagesBuildFlags): Promise<number> {
  // Without --only, every image: the operator's too (buildImages alone leaves it out, for `kok dev up`).
  const only = flags.only
    ?.split(",")
    .map((n) => n.trim())
    .filter(Boolean) ?? [...IMAGE_NAMES];
  const registry = flags.registry ?? process.env.KOK_REGISTRY;
  if (registry) {
    // Before building: a registry that can never be pushed to is a usage error, not a failed build.
    try {
      checkRegistry(registry);
    } catch (error) {
      console.error(`kok images build: ${flags.registry ? "--registry" : "KOK_REGISTRY"}: ${(error as Error).message}`);
      return 2;
    }
  }
  const started = process.hrtime.bigint();
  try {
    const imagesDir = flags.imagesDir ?? defaultImagesDir();
    const images = await buildImages({ imagesDir, only, force: flags.force, log });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    log(`${images.length} image(s) in ${imagesDir}: ${images.filter((i) => !i.cached).length} built, ${images.filter((i) => i.cached).length} up to date, ${seconds.toFixed(1)}s`);
    if (registry) {
      const pushed = await pushImages({ registry, images, log });
      log(`${pushed.length} tag(s) pushed to ${registry}`);
    }
    return 0;
  } catch (error) {
    if (error instanceof UnknownImageError) {
      console.error(`kok images build: --only: ${error.message}`);
      return 2;
    }
    if (error instanceof MissingInputsError) {
      console.error(`kok images build: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

/** Prints the built operator image's bill of materials (exit 1 when it is not built). */
export function imagesBomCommand(flags: { readonly imagesDir?: string }): number {
  try {
    process.stdout.write(operatorBom(flags.imagesDir ?? defaultImagesDir()));
    return 0;
  } catch (error) {
    console.error(`kok images bom: ${(error as Error).message}`);
    return 1;
  }
}
