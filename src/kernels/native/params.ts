// The argument block of the native GEMM: MatmulOptions (kernels.ts) turned into element offsets
// and strides, in the layout native/src/addon.c reads (its T_* and P_* enums; keep both in step).
// A bf16 b (a frozen weight; NativeKernels.bf16Matmul) is addressed in bf16 elements and flagged.
// Every transpose is a choice of strides:
//   op(A)[i, p] = a[i*rsA + p*csA],  op(B)[p, j] = b[p*rsB + j*csB],  C[i, j] = c[i*rsC + j*csC].

import type { Tensor } from "../../tensor/tensor.js";
import type { MatmulOptions } from "../kernels.js";
import type { MatmulShape } from "../validate.js";

/** Fields of one term (alpha op(A) op(B)). */
const T = {
  a: 0,
  rsA: 1,
  csA: 2,
  batchA: 3,
  b: 4,
  rsB: 5,
  csB: 6,
  batchB: 7,
  k: 8,
  alpha: 9,
  bBf16: 10,
};
const TERM_FIELDS = 11;
/** Fields of the call, after two terms. */
const P = {
  c: 22,
  rsC: 23,
  csC: 24,
  batchC: 25,
  m: 26,
  n: 27,
  batch: 28,
  nterms: 29,
  accumulate: 30,
  causal: 31,
  period: 32,
};
export const GEMM_PARAMS = 33;

const CAUSAL_KIND = { maskOut: 1, lowerA: 2, upperA: 3 } as const;

interface TermSpec {
  a: Tensor;
  b: Tensor;
  transA: boolean;
  transB: boolean;
  alpha: number;
  /** op(a) is (rows, k), op(b) (k, n) */
  rows: number;
  k: number;
  n: number;
  /** a and b advance by these (elements) per batch entry */
  batchA: number;
  batchB: number;
}

function writeTerm(params: Float64Array, index: number, t: TermSpec): void {
  const o = index * TERM_FIELDS;
  params[o + T.a] = t.a.ptr / 4;
  // a: (rows, k), or (k, rows) with transA
  params[o + T.rsA] = t.transA ? 1 : t.k;
  params[o + T.csA] = t.transA ? t.rows : 1;
  params[o + T.batchA] = t.batchA;
  const bf16 = t.b.dtype === "bf16";
  params[o + T.b] = t.b.ptr / (bf16 ? 2 : 4);
  params[o + T.bBf16] = bf16 ? 1 : 0;
  // b: (k, n), or (n, k) with transB
  params[o + T.rsB] = t.transB ? 1 : t.n;
  params[o + T.csB] = t.transB ? t.k : 1;
  params[o + T.batchB] = t.batchB;
  params[o + T.k] = t.k;
  params[o + T.alpha] = t.alpha;
}

/**
 * Fills `params` for out = alpha op(a) op(b) (+ plus) (+ out), shape as checkMatmul returned it.
 * A plain a with a shared 2-D b is one product over all batch rows, (batch*M, K) x (K, N).
 */
export function fillGemmParams(
  params: Float64Array,
  out: Tensor,
  a: Tensor,
  b: Tensor,
  options: MatmulOptions,
  shape: MatmulShape,
): void {
  params.fill(0);
  const transA = options.transA === true;
  const flatten = !shape.bBatched && !transA;
  const batch = flatten ? 1 : shape.batch;
  const m = flatten ? shape.batch * shape.m : shape.m;
  const { n, k } = shape;
  writeTerm(params, 0, {
    a,
    b,
    transA,
    transB: options.transB === true,
    alpha: options.alpha ?? 1,
    rows: m,
    k,
    n,
    batchA: m * k,
    batchB: shape.bBatched ? k * n : 0,
  });
  let nterms = 1;
  if (options.plus !== undefined) {
    const plus = options.plus;
    writeTerm(params, 1, {
      a: plus.a,
      b: plus.b,
      transA: plus.transA === true,
      transB: plus.transB === true,
      alpha: plus.alpha ?? 1,
      rows: m,
      k: shape.k2,
      n,
      batchA: 0,
      batchB: 0,
    });
    nterms = 2;
  }
  params[P.c] = out.ptr / 4;
  params[P.rsC] = n;
  params[P.csC] = 1;
  params[P.batchC] = m * n;
  params[P.m] = m;
  params[P.n] = n;
  params[P.batch] = batch;
  params[P.nterms] = nterms;
  params[P.accumulate] = options.accumulate === true ? 1 : 0;
  params[P.causal] = options.causal === undefined ? 0 : CAUSAL_KIND[options.causal.kind];
  params[P.period] = options.causal?.period ?? 0;
}
