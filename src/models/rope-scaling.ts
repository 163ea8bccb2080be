// config.json's RoPE scaling (io/hf-config.ts, Hugging Face field names) -> the RoPE tables'
// RopeScaling (kernels/ref/rope.ts), for every architecture with rotary embeddings.

import type { RopeScaling as HfRopeScaling } from "../io/hf-config.js";
import type { RopeScaling } from "../kernels/ref/rope.js";

/** undefined for the default rotary embedding (null in the config). */
export function ropeScalingOf(
  rope: HfRopeScaling | null,
  modelType: string,
): RopeScaling | undefined {
  if (rope === null) return undefined;
  if (rope.rope_type === "linear") return { type: "linear", factor: rope.factor };
  const need = <V>(value: V | undefined, field: string): V => {
    if (value === undefined)
      throw new Error(`${modelType}: rope_scaling "${rope.rope_type}" needs ${field}`);
    return value;
  };
  if (rope.rope_type === "longrope") {
    return {
      type: "longrope",
      shortFactor: need(rope.short_factor, "short_factor"),
      longFactor: need(rope.long_factor, "long_factor"),
      originalMaxPositionEmbeddings: need(
        rope.original_max_position_embeddings,
        "original_max_position_embeddings",
      ),
      attentionFactor: need(rope.attention_factor, "attention_factor"),
    };
  }
  return {
    type: "llama3",
    factor: rope.factor,
    lowFreqFactor: need(rope.low_freq_factor, "low_freq_factor"),
    highFreqFactor: need(rope.high_freq_factor, "high_freq_factor"),
    originalMaxPositionEmbeddings: need(
      rope.original_max_position_embeddings,
      "original_max_position_embeddings",
    ),
  };
}
