// Random LoRA adapters on a model's linear layers, for tests that compare two ways of running the
// same training step: both runs get adapters with the same values and (for dropout) the same
// seeded mask stream, so any difference comes from the model code under test.

import type { Kernels } from "../../src/kernels/kernels.js";
import type { CausalLM } from "../../src/models/model.js";
import { LoraLinear } from "../../src/peft/lora.js";
import { Rng } from "../../src/util/random.js";

/**
 * Attaches a LoRA adapter (r 2, scaling 0.5, N(0, 0.1^2) A and B, so every gradient path is
 * nonzero) to each linear whose path passes `which` (default: all, lm_head included). Returns the
 * adapters; detach() removes and frees them.
 */
export function attachRandomLora(
  model: CausalLM,
  kernels: Kernels,
  options: { dropout?: number; seed?: number; which?: (path: string) => boolean } = {},
): { adapters: LoraLinear[]; detach(): void } {
  const values = new Rng(options.seed ?? 11);
  const masks = new Rng((options.seed ?? 11) + 1);
  const r = 2;
  const adapters: LoraLinear[] = [];
  for (const info of model.linears()) {
    if (options.which !== undefined && !options.which(info.path)) continue;
    const A = Float32Array.from({ length: r * info.inFeatures }, () => 0.1 * values.normal());
    const B = Float32Array.from({ length: info.outFeatures * r }, () => 0.1 * values.normal());
    const lora = new LoraLinear(kernels, info, {
      r,
      scaling: 0.5,
      A,
      B,
      ...(options.dropout !== undefined && { dropout: options.dropout, rng: masks }),
    });
    model.setAdapter(info.path, lora);
    adapters.push(lora);
  }
  return {
    adapters,
    detach() {
      for (const lora of adapters) {
        model.setAdapter(lora.info.path, null);
        lora.dispose();
      }
    },
  };
}
