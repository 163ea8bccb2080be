// Exact SVD in float64 by one-sided Jacobi, preconditioned by a Householder QR: the oracle for
// small matrices and the "small SVD" step of the randomized SVD (svd-lowrank.ts).
//
// Method (Drmač & Veselić, "New fast and accurate Jacobi SVD algorithm I", SIAM J. Matrix Anal.
// Appl. 29(4), 2008, §3: QR first, then one-sided Jacobi on R^T; rotations as Hestenes 1958 /
// Demmel & Veselić 1992 with Rutishauser's stable tangent): for a tall T (r, k) = Q R,
//   one-sided Jacobi orthogonalises the columns of R^T:  R^T W = Uj diag(S)
//   so R = W diag(S) Uj^T and T = (Q W) diag(S) Uj^T.
// Convergence: a sweep over all pairs repeats until every pair satisfies
// |a_p . a_q| <= sqrt(k) eps ||a_p|| ||a_q||; the result is accurate to a few ulps relative to ||T||.
// Singular values come out sorted descending; a left vector of an exactly-zero singular value is
// completed to an orthonormal basis (so U^T U = I always holds).

import { multiplyColumns } from "./dense.js";
import { formQInPlace, fromColumnMajor, householderInPlace, withReflector } from "./qr.js";

/** A (possibly truncated) SVD: A ~= U diag(S) V^T. */
export interface Svd {
  m: number;
  n: number;
  k: number;
  /** (m, k) row-major, orthonormal columns. */
  U: Float64Array;
  /** (k), descending, >= 0. */
  S: Float64Array;
  /** (n, k) row-major, orthonormal columns. */
  V: Float64Array;
}

/** The SVD of a tall matrix in column-major form: T = left diag(S) right^T. */
export interface TallSvd {
  /** (k), descending. */
  S: Float64Array;
  /** column-major (r, k): k columns of length r. */
  left: Float64Array;
  /** column-major (k, k). */
  right: Float64Array;
}

/** Unit roundoff of float64. */
const EPS = 2 ** -53;
const MAX_SWEEPS = 80;

function swapColumns(a: Float64Array, len: number, i: number, j: number): void {
  const oi = i * len;
  const oj = j * len;
  for (let x = 0; x < len; x++) {
    const t = a[oi + x];
    a[oi + x] = a[oj + x];
    a[oj + x] = t;
  }
}

/**
 * One-sided Jacobi in place on column-major `cols` (k columns of length r): rotates column pairs
 * until they are mutually orthogonal, applying the same rotations to `w` (column-major (k, k),
 * usually starting as I). Returns the number of sweeps used.
 */
function jacobiOrthogonalizeColumns(
  cols: Float64Array,
  r: number,
  k: number,
  w: Float64Array,
): number {
  const norms = new Float64Array(k); // squared column norms, refreshed every sweep
  // A pair counts as orthogonal when |cos| <= sqrt(r) * eps: the rounding level of a length-r
  // dot product, LAPACK dgesvj's CTOL (a stricter bound makes sweeps chase rounding noise).
  const tol = Math.sqrt(r) * EPS;
  for (let sweep = 1; sweep <= MAX_SWEEPS; sweep++) {
    for (let j = 0; j < k; j++) {
      let s = 0;
      const cj = j * r;
      for (let i = 0; i < r; i++) s += cols[cj + i] * cols[cj + i];
      norms[j] = s;
    }
    let rotated = false;
    for (let p = 0; p < k - 1; p++) {
      // de Rijk's pivoting (SIAM J. Sci. Stat. Comput. 10(2), 1989): bring the remaining column of
      // largest norm to position p; sweeps then converge faster and the output comes out sorted
      let best = p;
      for (let j = p + 1; j < k; j++) if (norms[j] > norms[best]) best = j;
      if (best !== p) {
        swapColumns(cols, r, p, best);
        swapColumns(w, k, p, best);
        const t = norms[p];
        norms[p] = norms[best];
        norms[best] = t;
      }
      const cp = p * r;
      const wp = p * k;
      for (let q = p + 1; q < k; q++) {
        const alpha = norms[p];
        const beta = norms[q];
        if (alpha === 0 || beta === 0) continue;
        const cq = q * r;
        let gamma = 0;
        for (let i = 0; i < r; i++) gamma += cols[cp + i] * cols[cq + i];
        if (Math.abs(gamma) <= tol * Math.sqrt(alpha) * Math.sqrt(beta)) continue;
        rotated = true;
        // the rotation [c s; -s c] that zeroes the pair's inner product (Rutishauser's form)
        const zeta = (beta - alpha) / (2 * gamma);
        const absZeta = Math.abs(zeta);
        const t =
          absZeta > 1e150
            ? 0.5 / zeta
            : (zeta >= 0 ? 1 : -1) / (absZeta + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        const wq = q * k;
        const common = Math.min(r, k);
        // one fused loop over the shared length (r === k in svdTallColumns), then the tails
        for (let i = 0; i < common; i++) {
          const x = cols[cp + i];
          const y = cols[cq + i];
          cols[cp + i] = c * x - s * y;
          cols[cq + i] = s * x + c * y;
          const u = w[wp + i];
          const v = w[wq + i];
          w[wp + i] = c * u - s * v;
          w[wq + i] = s * u + c * v;
        }
        for (let i = common; i < r; i++) {
          const x = cols[cp + i];
          const y = cols[cq + i];
          cols[cp + i] = c * x - s * y;
          cols[cq + i] = s * x + c * y;
        }
        for (let i = common; i < k; i++) {
          const u = w[wp + i];
          const v = w[wq + i];
          w[wp + i] = c * u - s * v;
          w[wq + i] = s * u + c * v;
        }
        // updated squared norms (Demmel & Veselić 1992, eq. for one-sided Jacobi)
        norms[p] = Math.max(0, alpha - t * gamma);
        norms[q] = beta + t * gamma;
      }
    }
    if (!rotated) return sweep;
  }
  return MAX_SWEEPS;
}

/**
 * Replaces zero columns of column-major `u` (k columns of length r) by unit vectors orthogonal
 * to every other column (classical Gram–Schmidt twice against candidates e_0, e_1, ...).
 */
function completeBasis(u: Float64Array, r: number, k: number, isZero: boolean[]): void {
  const v = new Float64Array(r);
  let candidate = 0;
  for (let j = 0; j < k; j++) {
    if (!isZero[j]) continue;
    for (; candidate < r; candidate++) {
      v.fill(0);
      v[candidate] = 1;
      for (let pass = 0; pass < 2; pass++) {
        for (let c = 0; c < k; c++) {
          if (c === j || (isZero[c] && c > j)) continue;
          let dot = 0;
          for (let i = 0; i < r; i++) dot += u[c * r + i] * v[i];
          for (let i = 0; i < r; i++) v[i] -= dot * u[c * r + i];
        }
      }
      let norm = 0;
      for (let i = 0; i < r; i++) norm += v[i] * v[i];
      norm = Math.sqrt(norm);
      if (norm > 0.5) {
        for (let i = 0; i < r; i++) u[j * r + i] = v[i] / norm;
        candidate++;
        break;
      }
    }
  }
}

/**
 * SVD of a tall column-major matrix (k columns of length r, r >= k). `cols` is destroyed.
 * T = Q R (Householder); Jacobi on R^T; left = Q W, right = Uj (see the header).
 */
export function svdTallColumns(cols: Float64Array, r: number, k: number): TallSvd {
  if (r < k) throw new RangeError(`svdTallColumns: needs r >= k, got r=${r}, k=${k}`);
  const tau = new Float64Array(k);
  const rt = new Float64Array(k * k); // R^T, column-major (k, k): column i of R^T = row i of R
  withReflector(cols, (work, apply) => {
    householderInPlace(work, r, k, tau, apply);
    for (let i = 0; i < k; i++) for (let c = i; c < k; c++) rt[i * k + c] = work[c * r + i];
    formQInPlace(work, r, k, tau, apply); // now Q (r, k), column-major
  });
  const w = new Float64Array(k * k); // (k, k) column-major, starts as I
  for (let i = 0; i < k; i++) w[i * k + i] = 1;
  jacobiOrthogonalizeColumns(rt, k, k, w);

  // singular values = column norms of R^T W; sort descending
  const sigma = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    let s = 0;
    for (let i = 0; i < k; i++) s += rt[j * k + i] * rt[j * k + i];
    sigma[j] = Math.sqrt(s);
  }
  const order = Array.from({ length: k }, (_, j) => j).sort((a, b) => sigma[b] - sigma[a]);
  const S = new Float64Array(k);
  const right = new Float64Array(k * k); // Uj, column-major (k, k)
  const wSorted = new Float64Array(k * k);
  const isZero: boolean[] = [];
  for (let jNew = 0; jNew < k; jNew++) {
    const j = order[jNew];
    const s = sigma[j];
    S[jNew] = s;
    isZero.push(s === 0);
    if (s > 0) for (let i = 0; i < k; i++) right[jNew * k + i] = rt[j * k + i] / s;
    for (let i = 0; i < k; i++) wSorted[jNew * k + i] = w[j * k + i];
  }
  if (isZero.includes(true)) completeBasis(right, k, k, isZero);

  const left = multiplyColumns(cols, r, k, wSorted, k); // Q W (r, k), column-major
  return { S, left, right };
}

/**
 * Exact thin SVD of a row-major (m, n) matrix in float64: k = min(m, n) triplets, S descending,
 * U (m, k) and V (n, k) with orthonormal columns. Use for small matrices (cost ~ m n k + k^3 per sweep).
 */
export function svdJacobi(a: ArrayLike<number>, m: number, n: number): Svd {
  if (!Number.isInteger(m) || !Number.isInteger(n) || m < 1 || n < 1) {
    throw new RangeError(`svdJacobi: dimensions must be positive integers, got m=${m}, n=${n}`);
  }
  if (a.length !== m * n) {
    throw new RangeError(
      `svdJacobi: input has ${a.length} values, (m, n) = (${m}, ${n}) needs ${m * n}`,
    );
  }
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new RangeError(`svdJacobi: input element ${i} is ${a[i]}`);
  }
  const k = Math.min(m, n);
  if (m >= n) {
    // T = A (m, n): column-major copy
    const cols = new Float64Array(m * n);
    for (let r = 0; r < m; r++) for (let c = 0; c < n; c++) cols[c * m + r] = a[r * n + c];
    const t = svdTallColumns(cols, m, n);
    return { m, n, k, U: fromColumnMajor(t.left, m, k), S: t.S, V: fromColumnMajor(t.right, n, k) };
  }
  // T = A^T (n, m): A's row-major storage is A^T's column-major storage. A = right S left^T.
  const t = svdTallColumns(Float64Array.from(a), n, m);
  return { m, n, k, U: fromColumnMajor(t.right, m, k), S: t.S, V: fromColumnMajor(t.left, n, k) };
}
