// PiSSA (arXiv 2404.02948), as PEFT's LoraLayer.pissa_init: with W (out, in) = U diag(S) V^T
// (transposed from the stored layout when fan_in_fan_out), S_r = S[:r] / s,
//   A = diag(sqrt(S_r)) V[:, :r]^T  (r, in),   B = U[:, :r] diag(sqrt(S_r))  (out, r),
//   W' = W - s B A   (so s B A is the rank-r principal part of W).
// "pissa" uses the exact SVD (one-sided Jacobi here, torch.linalg.svd in PEFT);
// "pissa_niter_N" the randomized SVD with q = r and N subspace iterations (torch.svd_lowrank).

import {
  describe,
  type InitContext,
  type InitResult,
  requireWeight,
  roundToAdapterDtype,
  scaledProduct,
  topSvd,
} from "./common.js";

/** niter of "pissa_niter_N", or null for exact "pissa". */
export function parsePissa(name: string): number | null {
  if (name === "pissa") return null;
  const m = /^pissa_niter_([0-9]+)$/.exec(name);
  if (m === null)
    throw new Error(
      `init_lora_weights should be "pissa" or "pissa_niter_<N>", got ${JSON.stringify(name)}`,
    );
  return Number(m[1]);
}

export function pissaInit(ctx: InitContext, niter: number | null): InitResult {
  const { r, inFeatures: n, outFeatures: m, scaling: s } = ctx;
  if (r > Math.min(m, n))
    throw new Error(`${describe(ctx)}: PiSSA needs r <= min(out, in), got r=${r}`);
  const W = requireWeight(ctx, "PiSSA");
  const svd =
    niter === null
      ? topSvd(W, m, n, r, ctx, { method: "exact" })
      : topSvd(W, m, n, r, ctx, { method: "lowrank", niter });
  const k = svd.k;
  const A = new Float32Array(r * n); // (r, in)
  const B = new Float32Array(m * r); // (out, r)
  for (let t = 0; t < r; t++) {
    const root = Math.sqrt(svd.S[t] / s);
    for (let j = 0; j < n; j++) A[t * n + j] = root * svd.V[j * k + t];
    for (let i = 0; i < m; i++) B[i * r + t] = root * svd.U[i * k + t];
  }
  roundToAdapterDtype(ctx, A, B);
  return { A, B, baseOffset: scaledProduct(B, A, m, r, n, s, ctx.kernels) };
}
