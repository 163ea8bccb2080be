// PEFT's init_lora_weights=True (LoraLayer.reset_lora_parameters): A as nn.init.kaiming_uniform_(A,
// a=sqrt(5)), B = 0, base weight untouched. kaiming_uniform_ with fan_in = A.size(1) = in_features
// and gain = sqrt(2 / (1 + a^2)) = sqrt(1/3) has bound = gain * sqrt(3 / fan_in) = 1 / sqrt(in)
// (torch.nn.init docs), so A ~ U(-1/sqrt(in), 1/sqrt(in)).
// Also init_lora_weights=False (no LoRA init; nn.Linear's default kaiming_uniform_(a=sqrt(5)) on
// both A and B, fan_in in_features and r respectively): the adapter does not start at zero.

import type { InitContext, InitResult } from "./common.js";

function kaimingUniformBound(fanIn: number): number {
  return 1 / Math.sqrt(fanIn);
}

export function defaultInit(ctx: InitContext): InitResult {
  const A = new Float32Array(ctx.r * ctx.inFeatures); // (r, in)
  const bound = kaimingUniformBound(ctx.inFeatures);
  ctx.rng.fillUniform(A, -bound, bound);
  return { A, B: new Float32Array(ctx.outFeatures * ctx.r), baseOffset: null };
}

export function noLoraInit(ctx: InitContext): InitResult {
  const A = new Float32Array(ctx.r * ctx.inFeatures); // (r, in)
  const B = new Float32Array(ctx.outFeatures * ctx.r); // (out, r)
  const ba = kaimingUniformBound(ctx.inFeatures);
  const bb = kaimingUniformBound(ctx.r);
  ctx.rng.fillUniform(A, -ba, ba);
  ctx.rng.fillUniform(B, -bb, bb);
  return { A, B, baseOffset: null };
}
