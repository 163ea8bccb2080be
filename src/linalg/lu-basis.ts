// A cheap, well-conditioned basis of span(Y) from an LU factorisation with partial pivoting:
// P Y = L U  =>  span(Y) = span(P^T L) when Y has full column rank; P^T L has unit entries at the
// pivot rows and |entries| <= 1 elsewhere, so it is well conditioned in practice.
//
// Used as the normaliser between the subspace-iteration products of the randomized SVD, as
// scikit-learn's randomized_svd does (power_iteration_normalizer="LU"; Halko et al. 2009 §4.5
// only need the columns kept from collapsing onto the dominant direction). It costs ~m k^2 flops
// against ~4 m k^2 for a Householder QR that also forms Q. The final basis before B = Q^T X
// must be orthonormal and is always a Householder QR (qr.ts).
//
// Rank deficiency: a column that is zero below the diagonal after elimination keeps L's unit
// diagonal entry, so P^T L still has full column rank and nothing becomes NaN.

/**
 * Replaces column-major `cols` (k columns of length m, m >= k) by P^T L, a basis of the same
 * span (for full-rank input), with the row permutation undone so rows keep their meaning.
 */
export function luBasisColumnsInPlace(cols: Float64Array, m: number, k: number): void {
  if (m < k) throw new RangeError(`luBasisColumnsInPlace: needs m >= k, got m=${m}, k=${k}`);
  const perm = new Int32Array(m); // row i of the working matrix is row perm[i] of Y
  for (let i = 0; i < m; i++) perm[i] = i;
  for (let j = 0; j < k; j++) {
    const cj = j * m;
    let p = j;
    let best = Math.abs(cols[cj + j]);
    for (let i = j + 1; i < m; i++) {
      const x = Math.abs(cols[cj + i]);
      if (x > best) {
        best = x;
        p = i;
      }
    }
    if (p !== j) {
      for (let c = 0; c < k; c++) {
        const o = c * m;
        const t = cols[o + j];
        cols[o + j] = cols[o + p];
        cols[o + p] = t;
      }
      const t = perm[j];
      perm[j] = perm[p];
      perm[p] = t;
    }
    if (best > 0) {
      const inv = 1 / cols[cj + j];
      for (let i = j + 1; i < m; i++) cols[cj + i] *= inv;
      eliminate(cols, m, k, j);
    }
    // column j of L: zeros above, 1 on the diagonal (U's entries are not needed)
    for (let i = 0; i < j; i++) cols[cj + i] = 0;
    cols[cj + j] = 1;
  }
  // undo the permutation: row perm[i] of P^T L is row i of L
  const l = cols.slice();
  for (let c = 0; c < k; c++) {
    const o = c * m;
    for (let i = 0; i < m; i++) cols[o + perm[i]] = l[o + i];
  }
}

/** Trailing update of step j: column c -= U[j][c] * l_j below row j, four columns per pass. */
function eliminate(cols: Float64Array, m: number, k: number, j: number): void {
  const cj = j * m;
  const lo = j + 1;
  let c = j + 1;
  for (; c + 4 <= k; c += 4) {
    const o0 = c * m;
    const o1 = o0 + m;
    const o2 = o1 + m;
    const o3 = o2 + m;
    const f0 = cols[o0 + j];
    const f1 = cols[o1 + j];
    const f2 = cols[o2 + j];
    const f3 = cols[o3 + j];
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
    const f = cols[o + j];
    if (f === 0) continue;
    for (let i = lo; i < m; i++) cols[o + i] -= f * cols[cj + i];
  }
}
