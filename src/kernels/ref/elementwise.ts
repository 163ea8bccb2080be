// Reference elementwise kernels: add, mul, scale, axpy, and the bias broadcast with its backward.
// All buffers have the same length unless stated; out may alias an input (each element is read
// before it is written). biasBackward accumulates (dBias +=), as every backward kernel does.
//
// Legend: R rows (flattened leading dims), C channels.

import type { Floats } from "./types.js";

/** out = a + b */
export function add(out: Floats, a: Floats, b: Floats): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i] + b[i];
}

/** out = a * b */
export function mul(out: Floats, a: Floats, b: Floats): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i] * b[i];
}

/** out = alpha * a */
export function scale(out: Floats, a: Floats, alpha: number): void {
  for (let i = 0; i < out.length; i++) out[i] = alpha * a[i];
}

/** out += alpha * a */
export function axpy(out: Floats, a: Floats, alpha: number): void {
  for (let i = 0; i < out.length; i++) out[i] += alpha * a[i];
}

/** out (R, C) += bias (C) on every row. */
export function addBias(out: Floats, bias: Floats, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let c = 0; c < cols; c++) out[row + c] += bias[c];
  }
}

/** dBias (C) += sum over rows of dOut (R, C), summed in float64. */
export function biasBackward(dBias: Floats, dOut: Floats, rows: number, cols: number): void {
  const acc = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let c = 0; c < cols; c++) acc[c] += dOut[row + c];
  }
  for (let c = 0; c < cols; c++) dBias[c] += acc[c];
}
