// PEFT's init_lora_weights="gaussian" (LoraLayer.reset_lora_parameters): A ~ N(0, std = 1/r)
// (nn.init.normal_(A, std=1/r): the STANDARD DEVIATION is 1/r), B = 0, base weight untouched.

import type { InitContext, InitResult } from "./common.js";

export function gaussianInit(ctx: InitContext): InitResult {
  const A = new Float32Array(ctx.r * ctx.inFeatures); // (r, in)
  ctx.rng.fillNormal(A, 0, 1 / ctx.r);
  return { A, B: new Float32Array(ctx.outFeatures * ctx.r), baseOffset: null };
}
