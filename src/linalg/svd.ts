// Public face of the SVD code: the exact Jacobi SVD (svd-jacobi.ts), the randomized low-rank SVD
// (svd-lowrank.ts), and sign-/basis-invariant comparison helpers for tests and benchmarks.
//
// Singular vectors are defined only up to sign (and, for repeated singular values, up to a
// rotation inside their subspace). canonicalizeSigns fixes the sign; maxPrincipalAngle compares
// subspaces without depending on either.

import { type Svd, svdJacobi } from "./svd-jacobi.js";

export { type Svd, svdJacobi } from "./svd-jacobi.js";
export { svdLowrank } from "./svd-lowrank.js";

/**
 * A copy of `svd` in which the largest-magnitude entry of every u_i is positive (first such entry
 * on ties); v_i is flipped together with u_i so U diag(S) V^T is unchanged.
 */
export function canonicalizeSigns(svd: Svd): Svd {
  const { m, n, k } = svd;
  const U = Float64Array.from(svd.U);
  const V = Float64Array.from(svd.V);
  for (let j = 0; j < k; j++) {
    let best = 0;
    for (let i = 0; i < m; i++) {
      if (Math.abs(U[i * k + j]) > Math.abs(best)) best = U[i * k + j];
    }
    if (best < 0) {
      for (let i = 0; i < m; i++) U[i * k + j] = -U[i * k + j];
      for (let i = 0; i < n; i++) V[i * k + j] = -V[i * k + j];
    }
  }
  return { m, n, k, U, S: Float64Array.from(svd.S), V };
}

/** The first `cols` columns of a row-major (rows, k) matrix, as a row-major (rows, cols) copy. */
export function leadingColumns(
  a: Float64Array,
  rows: number,
  k: number,
  cols: number,
): Float64Array {
  if (cols > k) throw new RangeError(`leadingColumns: asked for ${cols} of ${k} columns`);
  const out = new Float64Array(rows * cols); // (rows, cols)
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = a[r * k + c];
  return out;
}

/**
 * Largest principal angle, in degrees, between span(A) and span(B) for row-major (rows, k)
 * matrices with orthonormal columns: sin(theta_max) = ||(I - A A^T) B||_2 (Golub & Van Loan
 * §6.4.3), which stays accurate for tiny angles where acos of the cosines would not.
 */
export function maxPrincipalAngleDegrees(
  a: Float64Array,
  b: Float64Array,
  rows: number,
  k: number,
): number {
  if (a.length !== rows * k || b.length !== rows * k) {
    throw new RangeError(`maxPrincipalAngleDegrees: both bases must be (${rows}, ${k})`);
  }
  const atb = new Float64Array(k * k); // (k, k) = A^T B
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < k; i++) {
      const x = a[r * k + i];
      if (x === 0) continue;
      for (let j = 0; j < k; j++) atb[i * k + j] += x * b[r * k + j];
    }
  }
  const residual = Float64Array.from(b); // (rows, k) = B - A (A^T B)
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < k; i++) {
      const x = a[r * k + i];
      if (x === 0) continue;
      for (let j = 0; j < k; j++) residual[r * k + j] -= x * atb[i * k + j];
    }
  }
  const sinMax = svdJacobi(residual, rows, k).S[0];
  return (Math.asin(Math.min(1, sinMax)) * 180) / Math.PI;
}
