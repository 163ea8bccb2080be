// Seeded random checkpoints for synthetic models (tests and benches that need a model of a given
// size without a file): every tensor of a param spec filled with N(0, std^2) values, norm weights
// with 1 (GPT-2 LayerNorm biases with 0). Deterministic per (seed, tensor order of reads).

import { type LlamaFamilyConfig, parseModelConfig } from "../io/hf-config.js";
import type { Tensor } from "../tensor/tensor.js";
import { Rng } from "../util/random.js";
import type { CheckpointSource, ParamSpec } from "./common.js";

/** A checkpoint stand-in holding `specs` (stored as F32) with seeded random values. */
export function randomCheckpoint(
  specs: readonly ParamSpec[],
  seed: number,
  std = 0.02,
): CheckpointSource {
  const entries = new Map(
    specs.map((s) => [s.stored ?? s.name, { shape: [...s.shape], file: "(random)", dtype: "F32" }]),
  );
  return {
    entries,
    readInto(name: string, target: Tensor) {
      // one generator per tensor: values do not depend on the order tensors are read in
      let h = seed >>> 0;
      for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
      const rng = new Rng(h);
      const data = target.f32();
      if (/norm\.weight$|ln_\w+\.weight$/.test(name)) data.fill(1);
      else if (/ln_\w+\.bias$/.test(name)) data.fill(0);
      else for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
    },
  };
}

/** A validated Llama config of the given size (untied lm_head, full multi-head attention). */
export function syntheticLlamaConfig(size: {
  layers: number;
  hidden: number;
  intermediate: number;
  heads: number;
  vocab: number;
}): LlamaFamilyConfig {
  const config = parseModelConfig({
    model_type: "llama",
    vocab_size: size.vocab,
    hidden_size: size.hidden,
    intermediate_size: size.intermediate,
    num_hidden_layers: size.layers,
    num_attention_heads: size.heads,
    num_key_value_heads: size.heads,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: false,
  });
  if (config.model_type !== "llama" || !config.recognized)
    throw new Error("syntheticLlamaConfig: not a llama config");
  return config as LlamaFamilyConfig;
}
