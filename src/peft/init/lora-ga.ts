// LoRA-GA initialisation (arXiv 2407.05000) from one module's averaged loss gradient G (out, in).
// Two variants (the § numbers are sections of docs/lora-ga-spec.md):
//   "official" (§6, the paper's Algorithm 1, Outsider565/LoRA-GA): A = c V[:, I_A]^T, B = c U[:, I_B]
//     with orthonormal singular vectors; c per scale: gd 1/s, unit 1, stable out^{1/4}/sqrt(gamma),
//     weightS mean_{i<r} sqrt(sigma_i(W)/s). Optional norm_clip (§6.3).
//   "peft" (§7, HF PEFT 0.21 LoraLayer.lora_ga_init): B carries the selected singular values,
//     B = U[:, I_B] diag(S[I_B]); stable scales only B by shape[0]^{1/4}/sqrt(gamma) where shape[0]
//     is the STORED weight's first dimension (in_features for a Conv1D, as PEFT computes it);
//     weight_svd scales B by sigma_1(W)/S_B[0]; gd_scale divides A and B by s; "random" uses the
//     same r indices for A and B.
// Directions (0-based, half-open; §6): ArB2r I_A = [0, r), I_B = [r, 2r); A2rBr the reverse;
// ArBr I_A = odd, I_B = even indices of [0, 2r); official random: disjoint halves of a permutation.
// Common to both: G is transposed to (out, in) when fan_in_fan_out (PEFT's handling; the official
// fork is broken there, §6.2); 2r <= min(out, in) is required (an error naming the module, where
// both upstreams silently mis-shape); SVD = torch.svd_lowrank's algorithm with q = min(4r, min(m, n)),
// niter 4 (seeded from ctx.rng), or the exact SVD; A and B are rounded to the adapter dtype first and
// the base offset s B A is computed from the rounded values (upstream order, §6.4), so
// W' + s B A == W up to float32 rounding of W'.

import type { LoraGADirection, LoraGAScale, LoraGAVariant } from "../config.js";
import {
  describe,
  type InitContext,
  type InitResult,
  requireGrad,
  requireWeight,
  roundToAdapterDtype,
  type SvdChoice,
  scaledProduct,
  topSvd,
} from "./common.js";

export interface LoraGAInitOptions extends SvdChoice {
  direction: LoraGADirection;
  scale: LoraGAScale;
  stableGamma: number;
  variant: LoraGAVariant;
  normClip?: boolean;
}

/** Index sets (I_A, I_B) of the top-2r triplets per direction. */
export function directionIndices(
  direction: LoraGADirection,
  r: number,
  variant: LoraGAVariant,
  ctx: Pick<InitContext, "rng">,
): { ia: number[]; ib: number[] } {
  const range = (a: number, b: number, step = 1) => {
    const out: number[] = [];
    for (let i = a; i < b; i += step) out.push(i);
    return out;
  };
  switch (direction) {
    case "ArB2r":
      return { ia: range(0, r), ib: range(r, 2 * r) };
    case "A2rBr":
      return { ia: range(r, 2 * r), ib: range(0, r) };
    case "ArBr":
      return { ia: range(1, 2 * r, 2), ib: range(0, 2 * r, 2) };
    case "random": {
      const p = ctx.rng.shuffle(range(0, 2 * r));
      // official: disjoint halves; PEFT: the same r indices for A and B (docs/lora-ga-spec.md §7)
      return variant === "official"
        ? { ia: p.slice(0, r), ib: p.slice(r) }
        : { ia: p.slice(0, r), ib: p.slice(0, r) };
    }
    default:
      return direction satisfies never;
  }
}

export function loraGAInit(ctx: InitContext, options: LoraGAInitOptions): InitResult {
  const { r, inFeatures: n, outFeatures: m, scaling: s } = ctx;
  if (2 * r > Math.min(m, n)) {
    throw new Error(
      `${describe(ctx)}: LoRA-GA needs 2r <= min(out, in) = ${Math.min(m, n)}, got r=${r}; lower r (or its rank_pattern entry)`,
    );
  }
  const G = requireGrad(ctx, "LoRA-GA"); // (out, in)
  const q = Math.min(4 * r, Math.min(m, n));
  const svd = topSvd(G, m, n, q, ctx, options);
  const k = svd.k;
  const { ia, ib } = directionIndices(options.direction, r, options.variant, ctx);
  const A = new Float32Array(r * n); // (r, in)
  const B = new Float32Array(m * r); // (out, r)
  const peft = options.variant === "peft";
  for (let t = 0; t < r; t++) {
    const a = ia[t];
    const b = ib[t];
    const sb = peft ? svd.S[b] : 1;
    for (let j = 0; j < n; j++) A[t * n + j] = svd.V[j * k + a];
    for (let i = 0; i < m; i++) B[i * r + t] = sb * svd.U[i * k + b];
  }
  let cA = 1;
  let cB = 1;
  switch (options.scale) {
    case "gd":
      cA = 1 / s;
      cB = 1 / s;
      break;
    case "unit":
      break;
    case "stable": {
      const dim = peft && ctx.fanInFanOut ? n : m; // PEFT uses weight.shape[0] of the stored weight
      cB = dim ** 0.25 / Math.sqrt(options.stableGamma);
      if (!peft) cA = cB;
      break;
    }
    case "weightS": {
      const W = requireWeight(ctx, "LoRA-GA weightS scale");
      if (peft) {
        // weight_svd: svd_lowrank(W, q=r, niter=4).S[0] / S_B[0], B only, when S_B[0] > 0
        const sw = topSvd(W, m, n, r, ctx, options).S[0];
        const sb0 = svd.S[ib[0]];
        if (sb0 > 0) cB = sw / sb0;
      } else {
        // official: c = mean_{i<r} sqrt(sigma_i(W) / s) on both (svd_lowrank(W, q=4r), capped at min(m, n))
        const sw = topSvd(W, m, n, Math.min(4 * r, Math.min(m, n)), ctx, options).S;
        let sum = 0;
        for (let i = 0; i < r; i++) sum += Math.sqrt(sw[i] / s);
        cA = sum / r;
        cB = cA;
      }
      break;
    }
    default:
      return options.scale satisfies never;
  }
  if (cA !== 1) for (let i = 0; i < A.length; i++) A[i] *= cA;
  if (cB !== 1) for (let i = 0; i < B.length; i++) B[i] *= cB;
  roundToAdapterDtype(ctx, A, B);
  let offset = scaledProduct(B, A, m, r, n, s, ctx.kernels);
  if (options.normClip === true && !peft) {
    // docs/lora-ga-spec.md §6.3: ratio = max|W| / max|offset|; shrink when < 1 (offset recomputed
    // from the shrunk, rounded A and B so that W' + s B A == W still holds)
    const W = requireWeight(ctx, "LoRA-GA norm_clip");
    let maxW = 0;
    let maxO = 0;
    for (let i = 0; i < W.length; i++) maxW = Math.max(maxW, Math.abs(W[i]));
    for (let i = 0; i < offset.length; i++) maxO = Math.max(maxO, Math.abs(offset[i]));
    const ratio = maxO > 0 ? maxW / maxO : Number.POSITIVE_INFINITY;
    if (ratio < 1) {
      const root = Math.sqrt(ratio);
      for (let i = 0; i < A.length; i++) A[i] *= root;
      for (let i = 0; i < B.length; i++) B[i] *= root;
      roundToAdapterDtype(ctx, A, B);
      offset = scaledProduct(B, A, m, r, n, s, ctx.kernels);
    }
  }
  return { A, B, baseOffset: offset };
}
