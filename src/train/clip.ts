// Global-norm gradient clipping with torch.nn.utils.clip_grad_norm_ semantics (norm_type 2):
//   total_norm = || (||g_1||, ..., ||g_n||) ||_2 = sqrt(sum over all gradients of g^2)
//   clip_coef  = max_norm / (total_norm + 1e-6), clamped to at most 1; every gradient *= clip_coef
// torch multiplies even when the clamped coefficient is 1 (a no-op), so we skip that case.
// The sum of squares is accumulated in float64 (kernels.sumSquares). A non-finite total norm is
// returned as is and the gradients are left untouched (torch's error_if_nonfinite=False would
// scale them by NaN; the trainer reports it instead).

import type { Kernels } from "../kernels/kernels.js";
import type { Tensor } from "../tensor/tensor.js";

/** The L2 norm over all gradients together. */
export function globalGradNorm(kernels: Kernels, grads: Iterable<Tensor>): number {
  let sumSq = 0;
  for (const g of grads) sumSq += kernels.sumSquares(g);
  return Math.sqrt(sumSq);
}

/** Clips in place to maxNorm; returns the total norm BEFORE clipping (as torch does). */
export function clipGradNorm(kernels: Kernels, grads: readonly Tensor[], maxNorm: number): number {
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm))
    throw new Error(`clip: max norm must be finite and > 0, got ${maxNorm}`);
  const total = globalGradNorm(kernels, grads);
  clipToNorm(kernels, grads, maxNorm, total);
  return total;
}

/**
 * Scales the gradients, whose global norm is `total` (measured by the caller), to at most maxNorm;
 * a non-finite total leaves them untouched.
 */
export function clipToNorm(
  kernels: Kernels,
  grads: readonly Tensor[],
  maxNorm: number,
  total: number,
): void {
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm))
    throw new Error(`clip: max norm must be finite and > 0, got ${maxNorm}`);
  if (!Number.isFinite(total)) return;
  const coef = Math.min(1, maxNorm / (total + 1e-6));
  if (coef < 1) for (const g of grads) kernels.scale(g, g, coef);
}
