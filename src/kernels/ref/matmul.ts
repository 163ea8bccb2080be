// Reference GEMM: out = alpha * op(a) op(b) (+ out), strided and batched, on row-major buffers.
// The oracle for every fast matmul; straightforward loops, but not silly ones: i-k-j order with
// hoisted row offsets for the plain layout, i-j-k dot products when b is transposed (both operands
// then run contiguously), and each output row accumulated in float64 before it is written.
//
// Legend: batch = product of leading dims, M rows of out, N columns of out, K inner dim.
//   a: (batch, M, K), or (batch, K, M) with transA
//   b: (batch, K, N), or (batch, N, K) with transB; with bBatched false b is one 2-D matrix shared
//      by every batch entry (a linear layer's weight).
//   out: (batch, M, N); must not overlap a or b.
// causal (MatmulOptions.causal): excluded terms of the sums are skipped, masked outputs written 0.

import type { MatmulCausal } from "../kernels.js";
import type { Floats } from "./types.js";

export interface MatmulDims {
  batch: number;
  m: number;
  n: number;
  k: number;
  /** b has a batch dimension (false: one (K, N) or (N, K) matrix shared by every batch entry). */
  bBatched: boolean;
  transA: boolean;
  transB: boolean;
  accumulate: boolean;
  alpha: number;
  /** MatmulOptions.causal (kernels.ts): terms and outputs it excludes are skipped / zeroed. */
  causal?: MatmulCausal;
}

export function matmul(out: Floats, a: Floats, b: Floats, dims: MatmulDims): void {
  const { m, n, k, transA, transB, accumulate, alpha } = dims;
  let { batch } = dims;
  let rows = m;
  // A shared b with a plain a is one big GEMM over all batch rows: (batch*M, K) x (K, N).
  if (!dims.bBatched && !transA) {
    rows = batch * m;
    batch = 1;
  }
  const acc = new Float64Array(n); // one output row, accumulated in float64
  const causal = dims.causal;
  const period = causal?.period ?? 1;
  for (let bi = 0; bi < batch; bi++) {
    const aBase = bi * rows * k;
    const bBase = dims.bBatched ? bi * k * n : 0;
    const oBase = bi * rows * n;
    for (let i = 0; i < rows; i++) {
      // causal: query / key index of row i, and which terms p of the sum op(a)[i, p] may be nonzero
      const iq = i % period;
      const used = (p: number): boolean =>
        causal === undefined ||
        (causal.kind === "lowerA" ? p <= iq : causal.kind === "upperA" ? p % period >= iq : true);
      const nOut = causal?.kind === "maskOut" ? iq + 1 : n; // columns computed; the rest are 0
      if (transB) {
        // out[i, j] = sum_p A[i, p] * b[j, p]
        for (let j = 0; j < nOut; j++) {
          const bRow = bBase + j * k;
          let s = 0;
          if (transA) {
            for (let p = 0; p < k; p++) if (used(p)) s += a[aBase + p * rows + i] * b[bRow + p];
          } else {
            const aRow = aBase + i * k;
            for (let p = 0; p < k; p++) if (used(p)) s += a[aRow + p] * b[bRow + p];
          }
          acc[j] = s;
        }
        for (let j = nOut; j < n; j++) acc[j] = 0;
      } else {
        // out[i, :] = sum_p A[i, p] * b[p, :]
        acc.fill(0);
        for (let p = 0; p < k; p++) {
          if (!used(p)) continue;
          const aip = transA ? a[aBase + p * rows + i] : a[aBase + i * k + p];
          const bRow = bBase + p * n;
          for (let j = 0; j < nOut; j++) acc[j] += aip * b[bRow + j];
        }
      }
      const oRow = oBase + i * n;
      if (accumulate) for (let j = 0; j < n; j++) out[oRow + j] += alpha * acc[j];
      else for (let j = 0; j < n; j++) out[oRow + j] = alpha * acc[j];
    }
  }
}
