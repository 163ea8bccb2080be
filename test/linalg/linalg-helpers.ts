// Plain, obviously-correct float64 helpers for the linear-algebra tests (row-major matrices).

import { Rng } from "../../src/util/random.js";

/** (m, n) row-major matrix of N(0, 1) entries. */
export function randomMatrix(rng: Rng, m: number, n: number): Float64Array {
  const a = new Float64Array(m * n);
  rng.fillNormal(a, 0, 1);
  return a;
}

/** c (m, n) = a (m, k) b (k, n). */
export function matmul(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  k: number,
  n: number,
): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const x = a[i * k + p];
      for (let j = 0; j < n; j++) c[i * n + j] += x * b[p * n + j];
    }
  }
  return c;
}

export function transpose(a: ArrayLike<number>, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
  return t;
}

/** max |Q^T Q - I| for a row-major (m, k) Q. */
export function orthonormalityError(q: ArrayLike<number>, m: number, k: number): number {
  const g = matmul(transpose(q, m, k), q, k, m, k);
  let worst = 0;
  for (let i = 0; i < k; i++)
    for (let j = 0; j < k; j++) worst = Math.max(worst, Math.abs(g[i * k + j] - (i === j ? 1 : 0)));
  return worst;
}

/** max |U diag(S) V^T - A| / max|A| (or absolute when A = 0). */
export function reconstructionError(
  a: ArrayLike<number>,
  u: ArrayLike<number>,
  s: ArrayLike<number>,
  v: ArrayLike<number>,
  m: number,
  n: number,
  k: number,
): number {
  const us = new Float64Array(m * k);
  for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) us[i * k + j] = u[i * k + j] * s[j];
  const r = matmul(us, transpose(v, n, k), m, k, n);
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < m * n; i++) {
    worst = Math.max(worst, Math.abs(r[i] - a[i]));
    scale = Math.max(scale, Math.abs(a[i]));
  }
  return scale > 0 ? worst / scale : worst;
}

/**
 * Upper bound on sin(largest principal angle) between span(A) and span(B), both (rows, k) with
 * orthonormal columns: ||(I - A A^T) B||_F >= ||(I - A A^T) B||_2 = sin(theta_max).
 */
export function sinAngleBound(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  rows: number,
  k: number,
): number {
  const atb = matmul(transpose(a, rows, k), b, k, rows, k);
  const proj = matmul(a, atb, rows, k, k);
  let sum = 0;
  for (let i = 0; i < rows * k; i++) sum += (b[i] - proj[i]) ** 2;
  return Math.sqrt(sum);
}

/** The first `cols` columns of a row-major (rows, k) matrix. */
export function columns(a: ArrayLike<number>, rows: number, k: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = a[r * k + c];
  return out;
}

/** max |a - b| over two equal-length arrays, with -b allowed per column (sign-invariant). */
export function maxDiffUpToColumnSign(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  rows: number,
  k: number,
): number {
  let worst = 0;
  for (let c = 0; c < k; c++) {
    let same = 0;
    let flipped = 0;
    for (let r = 0; r < rows; r++) {
      same = Math.max(same, Math.abs(a[r * k + c] - b[r * k + c]));
      flipped = Math.max(flipped, Math.abs(a[r * k + c] + b[r * k + c]));
    }
    worst = Math.max(worst, Math.min(same, flipped));
  }
  return worst;
}

/** A random (m, m) orthogonal matrix's first k columns, via Gram–Schmidt (twice) on N(0,1) columns. */
export function randomOrthonormal(rng: Rng, m: number, k: number): Float64Array {
  const q = new Float64Array(m * k); // (m, k)
  const v = new Float64Array(m);
  for (let c = 0; c < k; c++) {
    rng.fillNormal(v, 0, 1);
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < c; p++) {
        let dot = 0;
        for (let r = 0; r < m; r++) dot += q[r * k + p] * v[r];
        for (let r = 0; r < m; r++) v[r] -= dot * q[r * k + p];
      }
    }
    let norm = 0;
    for (let r = 0; r < m; r++) norm += v[r] * v[r];
    norm = Math.sqrt(norm);
    for (let r = 0; r < m; r++) q[r * k + c] = v[r] / norm;
  }
  return q;
}

/** U diag(s) V^T for U (m, k), V (n, k): a matrix with a known SVD. */
export function withSpectrum(
  u: Float64Array,
  s: ArrayLike<number>,
  v: Float64Array,
  m: number,
  n: number,
  k: number,
): Float64Array {
  const us = new Float64Array(m * k);
  for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) us[i * k + j] = u[i * k + j] * s[j];
  return matmul(us, transpose(v, n, k), m, k, n);
}

export { Rng };
