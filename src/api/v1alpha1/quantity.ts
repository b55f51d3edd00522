/** Kubernetes quantities as numbers, to compare a spec's sizes with the admin policy's caps. */
import { QUANTITY_PATTERN } from "./patterns";

const SUFFIX: Record<string, number> = {
  "": 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** The value of `250m`, `20Gi` or `1e3` in base units; undefined when it is not a quantity. */
export function parseQuantity(text: string): number | undefined {
  if (!new RegExp(QUANTITY_PATTERN).test(text)) return undefined;
  const match = /^\+?([0-9.]+)([eE][+-]?[0-9]+|[a-zA-Z]*)$/.exec(text);
  if (!match) return undefined;
  const [, number, suffix] = match;
  if (/^[eE]/.test(suffix)) return Number(`${number}${suffix}`);
  const factor = SUFFIX[suffix];
  return factor === undefined ? undefined : Number(number) * factor;
}
