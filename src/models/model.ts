// The model API every architecture implements (in the spirit of transformers.js' *ForCausalLM):
// load an HF checkpoint directory, run forward to logits, or forward + backward of the mean
// causal-LM loss with gradients accumulated into caller-owned tensors. Architectures are looked up
// by config.json's model_type in registry.ts; this file holds only the shared types and loadModel.

import { openCheckpoint } from "../io/safetensors.js";
import { type KnownModelConfig, readModelConfig } from "../io/hf-config.js";
import type { Kernels } from "../kernels/kernels.js";
import type { Tensor } from "../tensor/tensor.js";
import type { LinearAdapter, LinearInfo } from "./linear.js";
import { assertSupportedModelType, buildModel } from "./registry.js";
import type { WeightLoadOptions, WeightStorageKind } from "./weights.js";

/** One batch of token ids, flattened row-major (B*T). */
export interface Batch {
  batchSize: number;
  seqLen: number;
  /** (B*T) token ids. */
  inputIds: Int32Array;
  /** (B*T), 1 = real token, 0 = padding; right padding only (1...1 0...0 per row). */
  attentionMask?: Int32Array;
  /** (B*T), -100 = ignored; unshifted: the model shifts them by one, like transformers. */
  labels?: Int32Array;
}

export interface LossAndGradsOptions {
  /**
   * Gradients are ACCUMULATED (+=) into these tensors, keyed by parameter name (same shape as the
   * parameter). Only these parameter gradients are computed; activation gradients always flow so
   * that adapters receive theirs.
   */
  paramGrads?: ReadonlyMap<string, Tensor>;
  /** Multiplies every gradient (not the returned loss). Default 1. */
  lossScale?: number;
}

export interface CausalLM {
  readonly modelType: string;
  /** The config.json the model was built from, as io/hf-config.ts validated it. */
  readonly config: KnownModelConfig;
  readonly kernels: Kernels;
  /** Parameters by HF name, in HF storage layout (a tied lm_head appears once, as the embedding). */
  readonly params: ReadonlyMap<string, Tensor>;
  /** Every linear layer (not embeddings); lm_head included. */
  linears(): LinearInfo[];
  /** Attaches (or with null detaches) an adapter to the linear layer at `path` (the LoRA hook). */
  setAdapter(path: string, adapter: LinearAdapter | null): void;
  /** Logits (B, T, V), owned by the model and valid until the next call. */
  forward(batch: Batch): Tensor;
  /**
   * Forward + backward of the mean causal-LM loss (labels shifted by one, -100 ignored, mean over
   * the counted tokens of the batch; loss 0 and no gradient when nothing is counted). Returns the
   * loss and the number of counted tokens.
   */
  lossAndGrads(batch: Batch, options?: LossAndGradsOptions): { loss: number; tokens: number };
  /** How the frozen weight of the linear layer at `path` is stored (models/weights.ts). */
  weightStorage(path: string): WeightStorageKind;
  /** An f32 copy of a linear weight in its stored layout (dequantized when compressed). */
  readLinearWeight(path: string): Float32Array;
  /** Overwrites a linear weight from f32 values (stored layout), re-encoded in its storage. */
  writeLinearWeight(path: string, data: Float32Array): void;
  /**
   * Re-stores linear weights as `kind` (default: every linear except lm_head and tied weights).
   * int8 / nf4 weights leave `params` (no gradients for them) and live off the engine heap. For
   * LoRA-GA call it AFTER getPeftModel, so that the offset base W - s B A is what gets quantized.
   */
  quantizeLinears(kind: WeightStorageKind, paths?: readonly string[]): void;
  /** Bytes of the linear weights on the heap / off it, and of the f32 expansion scratch. */
  linearWeightBytes(): { heap: number; offHeap: number; scratch: number };
  /** Frees every tensor the model owns (parameters and activations). */
  dispose(): void;
}

export interface LoadModelOptions extends WeightLoadOptions {
  kernels: Kernels;
}

/** Loads config.json + safetensors weights of a Hugging Face model directory. */
export async function loadModel(dir: string, options: LoadModelOptions): Promise<CausalLM> {
  const config = await readModelConfig(dir);
  assertSupportedModelType(config.model_type); // before touching the weights
  const checkpoint = await openCheckpoint(dir);
  try {
    const storage: WeightLoadOptions = {
      ...(options.weightDtype !== undefined && { weightDtype: options.weightDtype }),
      ...(options.quantize !== undefined && { quantize: options.quantize }),
    };
    return await buildModel(config, checkpoint, options.kernels, dir, storage);
  } finally {
    await checkpoint.close();
  }
}
