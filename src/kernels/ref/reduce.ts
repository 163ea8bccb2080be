// Reference reductions over a whole buffer, accumulated in float64 (plain JS numbers).

import type { Floats } from "./types.js";

export function sum(a: Floats): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
}

/** Largest value; NaN if any element is NaN; -Infinity when empty. */
export function max(a: Floats): number {
  let m = -Infinity;
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    if (Number.isNaN(v)) return Number.NaN;
    if (v > m) m = v;
  }
  return m;
}

/** Sum of squares (squared L2 norm). */
export function sumSquares(a: Floats): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return s;
}
