// Householder QR in float64 for tall matrices (m >= k): A = Q R with Q (m, k) orthonormal columns
// and R (k, k) upper triangular (the "reduced" factorisation, numpy's mode="reduced").
//
// Method: unblocked Householder reflections (Golub & Van Loan, Matrix Computations 4th ed.,
// Alg. 5.2.1; reflector choice as LAPACK dlarfg, Q formed in place as LAPACK dorg2r).
// Work is done on a COLUMN-MAJOR copy so that every inner loop (dot product, axpy) runs over
// contiguous memory.
//
// Why Householder and not CholeskyQR2: the randomized SVD orthonormalises X·Q for gradient
// matrices that are often numerically low-rank (rank <= tokens in the batch), so the Gram matrix
// is singular to working precision and Cholesky breaks down exactly on the inputs we care about.
// Householder costs about the same flops (~4mk^2 with Q formed) and is unconditionally stable.
//
// Rank deficiency: a column that is already zero below the diagonal gets no reflection (tau = 0,
// R[j][j] = 0); Q is still a product of reflectors, hence orthonormal, and nothing becomes NaN.
//
// Speed: the reflector updates (all but O(mk) of the work) run as WebAssembly SIMD f64x2 code
// (reflector-wasm.ts) on matrices of SIMD_MIN_DOUBLES values or more, else in TypeScript
// (applyReflector); both are the same algorithm, summed in a different order.

import { wasmReflectors } from "./reflector-wasm.js";

export interface Qr {
  m: number;
  k: number;
  /** (m, k) row-major, orthonormal columns. */
  Q: Float64Array;
  /** (k, k) row-major, upper triangular. */
  R: Float64Array;
}

function checkTall(what: string, length: number, m: number, k: number): void {
  if (!Number.isInteger(m) || !Number.isInteger(k) || m < 1 || k < 1) {
    throw new RangeError(`${what}: dimensions must be positive integers, got m=${m}, k=${k}`);
  }
  if (m < k) throw new RangeError(`${what}: needs a tall matrix (m >= k), got m=${m}, k=${k}`);
  if (length !== m * k) {
    throw new RangeError(
      `${what}: input has ${length} values, (m, k) = (${m}, ${k}) needs ${m * k}`,
    );
  }
}

/** Column-major copy of a row-major (m, k) matrix: cols[c * m + r] = a[r * k + c]. */
export function toColumnMajor(a: ArrayLike<number>, m: number, k: number): Float64Array {
  const cols = new Float64Array(m * k); // (k, m): column c at offset c*m
  for (let r = 0; r < m; r++) {
    const row = r * k;
    for (let c = 0; c < k; c++) cols[c * m + r] = a[row + c];
  }
  return cols;
}

/** Row-major (m, k) copy of a column-major matrix. */
export function fromColumnMajor(cols: Float64Array, m: number, k: number): Float64Array {
  const a = new Float64Array(m * k); // (m, k)
  for (let c = 0; c < k; c++) {
    const col = c * m;
    for (let r = 0; r < m; r++) a[r * k + c] = cols[col + r];
  }
  return a;
}

/** How a Householder step applies H_j to the columns after j (applyReflector, or its SIMD copy). */
export type ApplyReflector = (
  cols: Float64Array,
  m: number,
  k: number,
  j: number,
  t: number,
) => void;

/**
 * Below this many values withReflector stays in TypeScript: copying into the SIMD module's memory
 * and back costs more than it saves on small matrices (timings: docs/engine-notes.md).
 */
const SIMD_MIN_DOUBLES = 4096;

/**
 * Applies H_j = I - t v v^T (v = [1; cols[j+1.., j]]) to columns j+1..k-1, rows j..m-1:
 * c -= t (v^T c) v. Four columns share each pass over v (register blocking), with plain index
 * arithmetic on one array, the form V8 runs fastest here (docs/engine-notes.md).
 */
function applyReflector(cols: Float64Array, m: number, k: number, j: number, t: number): void {
  if (t === 0) return;
  const cj = j * m;
  const lo = j + 1;
  let c = j + 1;
  for (; c + 4 <= k; c += 4) {
    const o0 = c * m;
    const o1 = o0 + m;
    const o2 = o1 + m;
    const o3 = o2 + m;
    let d0 = cols[o0 + j];
    let d1 = cols[o1 + j];
    let d2 = cols[o2 + j];
    let d3 = cols[o3 + j];
    for (let i = lo; i < m; i++) {
      const x = cols[cj + i];
      d0 += x * cols[o0 + i];
      d1 += x * cols[o1 + i];
      d2 += x * cols[o2 + i];
      d3 += x * cols[o3 + i];
    }
    const f0 = t * d0;
    const f1 = t * d1;
    const f2 = t * d2;
    const f3 = t * d3;
    cols[o0 + j] -= f0;
    cols[o1 + j] -= f1;
    cols[o2 + j] -= f2;
    cols[o3 + j] -= f3;
    for (let i = lo; i < m; i++) {
      const x = cols[cj + i];
      cols[o0 + i] -= f0 * x;
      cols[o1 + i] -= f1 * x;
      cols[o2 + i] -= f2 * x;
      cols[o3 + i] -= f3 * x;
    }
  }
  for (; c < k; c++) {
    const o = c * m;
    let d = cols[o + j];
    for (let i = lo; i < m; i++) d += cols[cj + i] * cols[o + i];
    const f = t * d;
    cols[o + j] -= f;
    for (let i = lo; i < m; i++) cols[o + i] -= f * cols[cj + i];
  }
}

/**
 * Householder factorisation in place on column-major `cols` (k columns of length m, m >= k).
 * Afterwards the upper triangle holds R, the part below the diagonal holds the reflector vectors
 * v_j (v_j[j] = 1 implied), and tau[j] their scales: H_j = I - tau_j v_j v_j^T.
 */
export function householderInPlace(
  cols: Float64Array,
  m: number,
  k: number,
  tau: Float64Array,
  apply: ApplyReflector = applyReflector,
): void {
  for (let j = 0; j < k; j++) {
    const cj = j * m;
    // ||x||^2 for x = cols[j.., j], scaled by the largest entry against under/overflow
    let scale = 0;
    for (let i = j; i < m; i++) {
      const a = Math.abs(cols[cj + i]);
      if (a > scale) scale = a;
    }
    let tailSq = 0;
    if (scale > 0) {
      for (let i = j + 1; i < m; i++) {
        const x = cols[cj + i] / scale;
        tailSq += x * x;
      }
    }
    const alpha = cols[cj + j];
    if (scale === 0 || tailSq === 0) {
      // already zero below the diagonal: H_j = I (LAPACK dlarfg's tau = 0 case)
      tau[j] = 0;
      continue;
    }
    const a0 = alpha / scale;
    const norm = scale * Math.sqrt(a0 * a0 + tailSq);
    const beta = alpha >= 0 ? -norm : norm;
    tau[j] = (beta - alpha) / beta;
    const inv = 1 / (alpha - beta);
    for (let i = j + 1; i < m; i++) cols[cj + i] *= inv;
    cols[cj + j] = beta;
    apply(cols, m, k, j, tau[j]);
  }
}

/**
 * Overwrites the output of householderInPlace with Q's k columns (column-major), i.e.
 * Q = H_0 H_1 ... H_{k-1} applied to the first k columns of I (LAPACK dorg2r order).
 */
export function formQInPlace(
  cols: Float64Array,
  m: number,
  k: number,
  tau: Float64Array,
  apply: ApplyReflector = applyReflector,
): void {
  for (let j = k - 1; j >= 0; j--) {
    const cj = j * m;
    const t = tau[j];
    // apply H_j to columns j+1..k-1; their row j is still zero, so c[j] -= f sets it to -f
    apply(cols, m, k, j, t);
    // column j becomes H_j e_j
    for (let i = j + 1; i < m; i++) cols[cj + i] *= -t;
    cols[cj + j] = 1 - t;
    for (let i = 0; i < j; i++) cols[cj + i] = 0;
  }
}

/** Replaces column-major `cols` (k columns of length m) by an orthonormal basis of their span. */
export function orthonormalizeColumnsInPlace(cols: Float64Array, m: number, k: number): void {
  checkTall("orthonormalizeColumnsInPlace", cols.length, m, k);
  const tau = new Float64Array(k);
  withReflector(cols, (work, apply) => {
    householderInPlace(work, m, k, tau, apply);
    formQInPlace(work, m, k, tau, apply);
  });
}

/**
 * Runs Householder `steps` on column-major `cols` with the fastest reflector: when cols is large
 * enough and the runtime has SIMD, on a copy in the SIMD module's memory (reflector-wasm.ts),
 * copied back afterwards; else on cols itself with applyReflector.
 */
export function withReflector(
  cols: Float64Array,
  steps: (work: Float64Array, apply: ApplyReflector) => void,
): void {
  const simd = cols.length >= SIMD_MIN_DOUBLES ? wasmReflectors() : null;
  if (simd === null) {
    steps(cols, applyReflector);
    return;
  }
  const work = simd.view(cols.length).subarray(0, cols.length);
  work.set(cols);
  steps(work, (_, m, k, j, t) => {
    if (t !== 0) simd.apply(m, k, j, t);
  });
  cols.set(work);
}

/** Reduced QR of a row-major (m, k) matrix, m >= k. */
export function qr(a: ArrayLike<number>, m: number, k: number): Qr {
  checkTall("qr", a.length, m, k);
  const cols = toColumnMajor(a, m, k);
  const tau = new Float64Array(k);
  const R = new Float64Array(k * k); // (k, k)
  withReflector(cols, (work, apply) => {
    householderInPlace(work, m, k, tau, apply);
    for (let c = 0; c < k; c++) for (let r = 0; r <= c; r++) R[r * k + c] = work[c * m + r];
    formQInPlace(work, m, k, tau, apply);
  });
  return { m, k, Q: fromColumnMajor(cols, m, k), R };
}

/** Q of the reduced QR of a row-major (m, k) matrix: an (m, k) row-major orthonormal basis. */
export function orthonormalize(a: ArrayLike<number>, m: number, k: number): Float64Array {
  checkTall("orthonormalize", a.length, m, k);
  const cols = toColumnMajor(a, m, k);
  orthonormalizeColumnsInPlace(cols, m, k);
  return fromColumnMajor(cols, m, k);
}
