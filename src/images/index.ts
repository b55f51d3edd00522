/**
 * Container images built on this machine from the toolchain's binaries and Debian packages, with
 * upstream's names, tags and layouts (docs/images.md): `kok images build` and `kok dev up` use
 * these. Nothing here is reachable from the library's entry (src/index.ts).
 */
export { buildImages, defaultImagesDir, type BuildOptions, type BuiltImage } from "./build";
export { IMAGE_NAMES, MissingInputsError, type ImageName } from "./definitions";
export { mirrorReference, pushImages, type PushedImage, type PushOptions } from "./push";
export { operatorBom, operatorReference } from "./operator-bom";
