// Reference AdamW step in place, with torch.optim.AdamW's semantics and order of operations
// (Loshchilov & Hutter 2019, arXiv 1711.05101; PyTorch docs "AdamW" algorithm box and
// torch/optim/adam.py _single_tensor_adam with decoupled_weight_decay, amsgrad=False,
// maximize=False):
//   p  <- p * (1 - lr * weight_decay)            decoupled weight decay, before the moments
//   m  <- m + (1 - beta1) (g - m)                exp_avg.lerp_(grad, 1 - beta1)
//   v  <- beta2 v + (1 - beta2) g^2              exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
//   bc1 = 1 - beta1^step,  bc2 = 1 - beta2^step  (step is 1-based)
//   denom = sqrt(v) / sqrt(bc2) + eps            eps is added after the bias correction
//   p  <- p - (lr / bc1) m / denom
// Each updated element of p, m, v is stored back in the buffers' precision (float32 in the engine).
//
// Legend: P parameters; param, grad, m, v all (P).

import type { AdamWOptions } from "../kernels.js";
import type { Floats } from "./types.js";

export function adamw(
  param: Floats,
  grad: Floats,
  m: Floats,
  v: Floats,
  options: AdamWOptions,
): void {
  const { lr, beta1, beta2, eps, weightDecay, step } = options;
  const decay = 1 - lr * weightDecay;
  const biasCorrection1 = 1 - beta1 ** step;
  const biasCorrection2Sqrt = Math.sqrt(1 - beta2 ** step);
  const stepSize = lr / biasCorrection1;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i];
    if (weightDecay !== 0) param[i] *= decay;
    m[i] += (1 - beta1) * (g - m[i]);
    v[i] = beta2 * v[i] + (1 - beta2) * g * g;
    const denom = Math.sqrt(v[i]) / biasCorrection2Sqrt + eps;
    param[i] -= (stepSize * m[i]) / denom;
  }
}
