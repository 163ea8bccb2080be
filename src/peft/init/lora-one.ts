// LoRA-One (Zhang, Liu & Chen, "One-step full gradient suffices for low-rank fine-tuning, provably
// and efficiently", arXiv 2502.01235, ICML 2025). What was followed, and what was assumed:
// - The authors' README (github kyoonji/LoRA_initialization, "Algorithmic Overview"): SVD of the
//   NEGATIVE full-batch gradient -G = U S V^T, initialise from its top-r triplets with a 1/sqrt(gamma)
//   factor, and the adapted weight is W_pre + s * (product): the init IS a first (rank-r) gradient
//   step; the base weight is not offset.
// - The exact normalisation follows a public re-implementation that cites the official code
//   (LinearWithLoRAOne.gradient_reinit): in PEFT layout
//       B = U[:, :r] diag(sqrt(S[:r] / S[0])) / sqrt(gamma)   (out, r)
//       A = diag(sqrt(S[:r] / S[0])) V[:, :r]^T / sqrt(gamma)  (r, in)
//   so s B A = -(s / (gamma * sigma_1)) G_r: a step along the best rank-r approximation of -G with
//   spectral norm s / gamma. Its optional "reset_weight" (W -= s B A, making the start
//   function-preserving like LoRA-GA) is `subtractOffset` here, off by default.
// - Assumption: gamma defaults to 64, the stable_gamma of the README's example command (the
//   re-implementation defaults to 128). The SVD is torch.svd_lowrank-style with q = min(4r, min(m, n)),
//   niter 4, as in that re-implementation (or exact). The preconditioned optimizer part of LoRA-One
//   is a training-time matter and not part of this init.

import {
  describe,
  type InitContext,
  type InitResult,
  requireGrad,
  roundToAdapterDtype,
  type SvdChoice,
  scaledProduct,
  topSvd,
} from "./common.js";

export interface LoraOneInitOptions extends SvdChoice {
  stableGamma?: number;
  subtractOffset?: boolean;
}

const LORA_ONE_DEFAULT_GAMMA = 64;

export function loraOneInit(ctx: InitContext, options: LoraOneInitOptions = {}): InitResult {
  const { r, inFeatures: n, outFeatures: m, scaling: s } = ctx;
  if (r > Math.min(m, n))
    throw new Error(
      `${describe(ctx)}: LoRA-One needs r <= min(out, in) = ${Math.min(m, n)}, got r=${r}`,
    );
  const G = requireGrad(ctx, "LoRA-One");
  const negG = new Float32Array(G.length); // (out, in)
  for (let i = 0; i < G.length; i++) negG[i] = -G[i];
  const svd = topSvd(negG, m, n, Math.min(4 * r, Math.min(m, n)), ctx, options);
  const k = svd.k;
  const gamma = options.stableGamma ?? LORA_ONE_DEFAULT_GAMMA;
  if (!(gamma > 0))
    throw new Error(`${describe(ctx)}: LoRA-One stable_gamma must be > 0, got ${gamma}`);
  const s0 = svd.S[0];
  if (!(s0 > 0)) throw new Error(`${describe(ctx)}: LoRA-One needs a non-zero gradient`);
  const A = new Float32Array(r * n); // (r, in)
  const B = new Float32Array(m * r); // (out, r)
  for (let t = 0; t < r; t++) {
    const f = Math.sqrt(svd.S[t] / s0) / Math.sqrt(gamma);
    for (let j = 0; j < n; j++) A[t * n + j] = f * svd.V[j * k + t];
    for (let i = 0; i < m; i++) B[i * r + t] = f * svd.U[i * k + t];
  }
  roundToAdapterDtype(ctx, A, B);
  return {
    A,
    B,
    baseOffset:
      options.subtractOffset === true ? scaledProduct(B, A, m, r, n, s, ctx.kernels) : null,
  };
}
