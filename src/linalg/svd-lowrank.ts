// Randomized truncated SVD that reproduces torch.svd_lowrank's current algorithm
// (torch/_lowrank.py `_svd_lowrank` + `get_approximate_basis`; Halko, Martinsson & Tropp 2009,
// arXiv:0909.4061, Alg. 4.4 range finder with subspace iteration, then Alg. 5.1). See
// docs/lora-ga-spec.md §5:
//
//   if m < n: X = G^T (make it tall) else X = G
//   Omega = randn(cols(X), q)
//   Q = orth(X Omega);  repeat niter: Q = orth(X^T Q); Q = orth(X Q)
//   Ub, S, Vb^T = svd(Q^T X);  U = Q Ub;  V = Vb;  if transposed: swap U and V
//
// Given the same Omega the result equals torch's up to rounding and per-triplet signs.
// By default every orthonormalisation is a Householder QR, as torch's. `normalizer: "lu"` makes
// all but the last use an LU basis instead (lu-basis.ts, scikit-learn's
// power_iteration_normalizer="LU"): only span(Q) matters to the result (docs/lora-ga-spec.md §5:
// U = Q Ub are the singular vectors of Q Q^T G whatever basis spans Q), and LU keeps the span at a
// quarter of the flops; the last basis is always an orthonormal Householder Q.
// Numerics: G is read as given (float32 or float64); orthonormalisation (Householder QR) and the
// small SVD (QR of (Q^T X)^T, then one-sided Jacobi, svd-jacobi.ts) run in float64. The big
// products G·P and P^T·G run either in float64 TypeScript loops or, when `kernels` is given, on the
// engine's float32 matmul (the same precision torch uses on a float32 gradient).
//
// Storage trick: every q-column basis P is kept as P^T, (q, rows) row-major, which is P in
// column-major order (what the QR wants), and both products needed are of the form P^T·G or
// P^T·G^T, so no transposed copy of G is ever made.

import type { Kernels } from "../kernels/kernels.js";
import type { Tensor } from "../tensor/tensor.js";
import { Rng } from "../util/random.js";
import { multiplyColumns } from "./dense.js";
import { luBasisColumnsInPlace } from "./lu-basis.js";
import { fromColumnMajor, orthonormalizeColumnsInPlace, toColumnMajor } from "./qr.js";
import { type Svd, svdTallColumns } from "./svd-jacobi.js";

export interface SvdLowrankOptions {
  /** Number of triplets computed (torch's q): 1 <= q <= min(m, n). */
  q: number;
  /** Subspace iterations; default 2 as torch. */
  niter?: number;
  /** Seed for Omega (an Rng normal stream, filled row-major); default 0. */
  seed?: number;
  /** Explicit test matrix Omega, (cols(X), q) row-major where X is G made tall; overrides seed. */
  omega?: Float64Array;
  /** When given, the products with G run on this engine's matmul (float32). */
  kernels?: Kernels;
  /** Normaliser between subspace iterations: "qr" (default, torch's choice) or "lu" (faster, same span). */
  normalizer?: "lu" | "qr";
}

/** The two products the algorithm needs, for P^T given as (q, rows) row-major. */
interface GProducts {
  /** (q, n) = P^T G, for P^T (q, m). */
  left(pt: Float64Array, q: number): Float64Array;
  /** (q, m) = P^T G^T, for P^T (q, n). */
  right(pt: Float64Array, q: number): Float64Array;
  dispose(): void;
}

/** Plain TypeScript float64 products, register-blocked over 4 rows of P^T. */
function tsProducts(g: Float32Array | Float64Array, m: number, n: number): GProducts {
  return {
    left(pt, q) {
      const out = new Float64Array(q * n); // (q, n)
      let i = 0;
      for (; i + 4 <= q; i += 4) {
        const o0 = i * n;
        const o1 = o0 + n;
        const o2 = o1 + n;
        const o3 = o2 + n;
        for (let r = 0; r < m; r++) {
          const p0 = pt[i * m + r];
          const p1 = pt[(i + 1) * m + r];
          const p2 = pt[(i + 2) * m + r];
          const p3 = pt[(i + 3) * m + r];
          const gr = r * n;
          for (let j = 0; j < n; j++) {
            const x = g[gr + j];
            out[o0 + j] += p0 * x;
            out[o1 + j] += p1 * x;
            out[o2 + j] += p2 * x;
            out[o3 + j] += p3 * x;
          }
        }
      }
      for (; i < q; i++) {
        const o = i * n;
        for (let r = 0; r < m; r++) {
          const p = pt[i * m + r];
          const gr = r * n;
          for (let j = 0; j < n; j++) out[o + j] += p * g[gr + j];
        }
      }
      return out;
    },
    right(pt, q) {
      const out = new Float64Array(q * m); // (q, m)
      let i = 0;
      for (; i + 4 <= q; i += 4) {
        const a0 = i * n;
        const a1 = a0 + n;
        const a2 = a1 + n;
        const a3 = a2 + n;
        for (let r = 0; r < m; r++) {
          const gr = r * n;
          let s0 = 0;
          let s1 = 0;
          let s2 = 0;
          let s3 = 0;
          for (let j = 0; j < n; j++) {
            const x = g[gr + j];
            s0 += pt[a0 + j] * x;
            s1 += pt[a1 + j] * x;
            s2 += pt[a2 + j] * x;
            s3 += pt[a3 + j] * x;
          }
          out[i * m + r] = s0;
          out[(i + 1) * m + r] = s1;
          out[(i + 2) * m + r] = s2;
          out[(i + 3) * m + r] = s3;
        }
      }
      for (; i < q; i++) {
        const a = i * n;
        for (let r = 0; r < m; r++) {
          const gr = r * n;
          let s = 0;
          for (let j = 0; j < n; j++) s += pt[a + j] * g[gr + j];
          out[i * m + r] = s;
        }
      }
      return out;
    },
    dispose() {},
  };
}

/** Products on the engine: G is copied once into an f32 heap tensor; P^T goes in as f32. */
function kernelProducts(
  kernels: Kernels,
  g: Float32Array | Float64Array,
  m: number,
  n: number,
  q: number,
): GProducts {
  const heap = kernels.heap;
  const owned: Tensor[] = [];
  const alloc = (shape: number[]): Tensor => {
    const t = heap.tensor(shape, "f32");
    owned.push(t);
    return t;
  };
  try {
    const gT = alloc([m, n]); // (m, n)
    const ptM = alloc([q, m]); // P^T for P with m rows
    const ptN = alloc([q, n]); // P^T for P with n rows
    const outN = alloc([q, n]); // P^T G
    const outM = alloc([q, m]); // P^T G^T
    gT.f32().set(g);
    return {
      left(pt) {
        ptM.f32().set(pt);
        kernels.matmul(outN, ptM, gT);
        return Float64Array.from(outN.f32());
      },
      right(pt) {
        ptN.f32().set(pt);
        kernels.matmul(outM, ptN, gT, { transB: true });
        return Float64Array.from(outM.f32());
      },
      dispose() {
        for (const t of owned) t.dispose();
        owned.length = 0;
      },
    };
  } catch (err) {
    for (const t of owned) t.dispose();
    throw err;
  }
}

/**
 * Randomized truncated SVD of the row-major (m, n) matrix `a`, torch.svd_lowrank's algorithm.
 * Returns k = q triplets: U (m, q), S (q) descending, V (n, q), a ~= U diag(S) V^T.
 */
export function svdLowrank(
  a: Float32Array | Float64Array,
  m: number,
  n: number,
  options: SvdLowrankOptions,
): Svd {
  const { q } = options;
  const niter = options.niter ?? 2;
  const normalizer = options.normalizer ?? "qr";
  if (!Number.isInteger(m) || !Number.isInteger(n) || m < 1 || n < 1) {
    throw new RangeError(`svdLowrank: dimensions must be positive integers, got m=${m}, n=${n}`);
  }
  if (a.length !== m * n) {
    throw new RangeError(
      `svdLowrank: input has ${a.length} values, (m, n) = (${m}, ${n}) needs ${m * n}`,
    );
  }
  if (!Number.isInteger(q) || q < 1 || q > Math.min(m, n)) {
    throw new RangeError(
      `svdLowrank: q must be an integer in [1, min(m, n) = ${Math.min(m, n)}], got ${q}`,
    );
  }
  if (normalizer !== "lu" && normalizer !== "qr") {
    throw new RangeError(`svdLowrank: normalizer must be "lu" or "qr", got ${String(normalizer)}`);
  }
  if (!Number.isInteger(niter) || niter < 0) {
    throw new RangeError(`svdLowrank: niter must be a non-negative integer, got ${niter}`);
  }
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) {
      throw new RangeError(
        `svdLowrank: input element ${i} (row ${Math.floor(i / n)}, col ${i % n}) is ${a[i]}`,
      );
    }
  }

  const transposed = m < n;
  const rowsX = transposed ? n : m;
  const colsX = transposed ? m : n;

  // Omega (colsX, q) row-major -> Omega^T (q, colsX)
  let omegaT: Float64Array;
  if (options.omega !== undefined) {
    if (options.omega.length !== colsX * q) {
      throw new RangeError(
        `svdLowrank: omega has ${options.omega.length} values, expected (cols(X), q) = (${colsX}, ${q})`,
      );
    }
    omegaT = toColumnMajor(options.omega, colsX, q);
  } else {
    const omega = new Float64Array(colsX * q);
    new Rng(options.seed ?? 0).fillNormal(omega, 0, 1);
    omegaT = toColumnMajor(omega, colsX, q);
  }

  const products =
    options.kernels === undefined
      ? tsProducts(a, m, n)
      : kernelProducts(options.kernels, a, m, n, q);
  try {
    // X P for P (colsX, q) -> (X P)^T (q, rowsX);  X^T P for P (rowsX, q) -> (q, colsX)
    const mulX = (pt: Float64Array): Float64Array =>
      transposed ? products.left(pt, q) : products.right(pt, q);
    const mulXt = (pt: Float64Array): Float64Array =>
      transposed ? products.right(pt, q) : products.left(pt, q);

    const intermediate = normalizer === "lu" ? luBasisColumnsInPlace : orthonormalizeColumnsInPlace;
    let qt = mulX(omegaT); // (q, rowsX)
    (niter > 0 ? intermediate : orthonormalizeColumnsInPlace)(qt, rowsX, q);
    for (let it = 0; it < niter; it++) {
      const zt = mulXt(qt); // (q, colsX)
      intermediate(zt, colsX, q);
      qt = mulX(zt);
      (it === niter - 1 ? orthonormalizeColumnsInPlace : intermediate)(qt, rowsX, q);
    }
    // B = Q^T X (q, colsX) row-major = B^T (colsX, q) column-major
    const bt = mulXt(qt);
    // B^T = left diag(S) right^T  =>  B = right diag(S) left^T: Ub = right, Vb = left
    const small = svdTallColumns(bt, colsX, q);
    const ux = multiplyColumns(qt, rowsX, q, small.right, q); // U_X = Q Ub (rowsX, q), column-major
    const uX = fromColumnMajor(ux, rowsX, q); // (rowsX, q)
    const vX = fromColumnMajor(small.left, colsX, q); // (colsX, q)
    return transposed
      ? { m, n, k: q, U: vX, S: small.S, V: uX }
      : { m, n, k: q, U: uX, S: small.S, V: vX };
  } finally {
    products.dispose();
  }
}
