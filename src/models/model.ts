// The model API every architecture implements (in the spirit of transformers.js' *ForCausalLM):
// load an HF checkpoint directory, run forward to logits, or forward + backward of the mean
// causal-LM loss with gradients accumulated into caller-owned tensors. Architectures are looked up
// by config.json's model_type in registry.ts; this file holds only the shared types and loadModel.
// Incremental decoding: createCache + forwardCached append tokens to the rows of a key/value cache
// (models/kv-cache.ts) and return the logits of the new tokens only, each row at its own position.

import { type KnownModelConfig, readModelConfig } from "../io/hf-config.js";
import { openCheckpoint } from "../io/safetensors.js";
import type { Kernels } from "../kernels/kernels.js";
import type { Tensor } from "../tensor/tensor.js";
import type { AttentionImpl, AttentionTile } from "./attention.js";
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
  /**
   * Encoder-decoder models (t5) only, and required there: the target side. inputIds and
   * attentionMask are then the encoder's input, and `labels` must be absent.
   */
  decoder?: DecoderTargets;
}

/** The target sequence of an encoder-decoder batch (Batch.decoder). */
export interface DecoderTargets {
  /** Target tokens per row (Td). */
  seqLen: number;
  /**
   * (B*Td) target ids, -100 = ignored (padding). The decoder reads them shifted right behind
   * decoder_start_token_id (-100 read as the pad id), and position t predicts labels[t] (no
   * further shift), as T5ForConditionalGeneration(labels=...) does. forward() returns the
   * (B, Td, V) logits of those positions.
   */
  labels: Int32Array;
}

/**
 * Keys and values of the tokens seen so far, per batch row, for CausalLM.forwardCached. Heap
 * memory, allocated once by createCache; call dispose() when done.
 */
export interface KvCache {
  readonly batchSize: number;
  /** Most tokens (prompt + generated) a row can hold. */
  readonly maxLength: number;
  /** Heap bytes held (keys, values and the step scratch). */
  readonly bytes: number;
  /** Tokens cached in `row` so far (its next token's position). */
  length(row: number): number;
  dispose(): void;
}

/** One cached step: `seqLen` new tokens for each listed row of a KvCache. */
export interface CachedStep {
  /** Cache rows to extend (distinct, each in [0, cache.batchSize)); other rows are untouched. */
  rows: readonly number[];
  /** (rows.length * seqLen) token ids, row-major: the new tokens of rows[0], then rows[1], ... */
  inputIds: Int32Array;
  seqLen: number;
  /**
   * "all" (default): logits of every new token, (N, seqLen, V). "last": only of each row's last
   * new token, (N, 1, V) — what generation needs after a prompt (saves the lm_head on the rest).
   */
  logits?: "all" | "last";
}

export interface LossAndGradsOptions {
  /**
   * Gradients are ACCUMULATED (+=) into these tensors, keyed by parameter name (same shape as the
   * parameter). Only these parameter gradients are computed; activation gradients flow as far as
   * something needs them (adapters always receive theirs). As in PyTorch autograd, the gradient
   * of the first layer's input is skipped when nothing asks for it: no embedding gradient, no
   * first-layer input-norm gradient, no inputsEmbedsGrad. A linear layer's own weight gradient is
   * looked up (get) in that layer's backward, right before its product accumulates into it, and not
   * kept afterwards, so the map may hand out the tensor only then (peft/gradient-sums.ts does).
   */
  paramGrads?: ReadonlyMap<string, Tensor>;
  /**
   * f32 (B, T, hidden): OVERWRITTEN with d loss / d inputs_embeds, Hugging Face's inputs_embeds
   * (llama family: embed_tokens(ids); gpt2: wte(ids), whose gradient equals that of wte + wpe;
   * gemma3_text: the scaled embed_tokens(ids) * sqrt(hidden)),
   * scaled by lossScale like every other gradient. Zero when no token is counted.
   */
  inputsEmbedsGrad?: Tensor;
  /** Multiplies every gradient (not the returned loss). Default 1. */
  lossScale?: number;
  /**
   * f32 (1): the mean loss is written here by kernels instead of being read on the host (0 when
   * nothing is counted), so that a deferred engine (webgpu) can run the step without waiting;
   * the caller downloads it. lossAndGrads then returns only the token count.
   */
  lossOut?: Tensor;
}

/**
 * Memory against time in training and scoring (CausalLM.setMemoryOptions). Neither option changes
 * a result beyond float rounding of summed gradients.
 */
export interface MemoryOptions {
  /**
   * transformers' gradient_checkpointing: lossAndGrads keeps only each decoder layer's input from
   * the forward pass (plus one layer's activations, shared) and recomputes a layer's forward right
   * before its backward: activation memory grows with one layer instead of all of them, for about
   * one more forward pass of time. Same loss and gradients (the recompute repeats the same
   * operations; LoRA dropout masks are replayed, not redrawn). Default false.
   */
  gradient_checkpointing?: boolean;
  /**
   * Most bytes of f32 logits the lm_head writes at a time in lossAndGrads and tokenLosses: rows
   * are processed in chunks of floor(bytes / (4 * vocab)) rows (at least one), so the (tokens,
   * vocab) logits and their gradient never exist whole. forward() still returns all of them.
   * Default 64 MiB.
   */
  logitsChunkBytes?: number;
  /**
   * Most bytes of the f32 expansion of an lm_head weight kept off the heap (offloaded frozen
   * weights): the head's products run over vocabulary slices of floor(bytes / (4 * hidden)) rows,
   * so the (vocab, hidden) f32 copy never exists (models/sliced-linear.ts). Infinity: the whole
   * weight at once (the former path, kept for comparison). Same results to float rounding. No
   * effect on a head kept on the heap. Default 32 MiB.
   */
  headSliceBytes?: number;
  /**
   * How causal attention is computed (models/attention.ts). "tiled": per tile of query rows, the
   * backward pass recomputing each tile's probabilities: no (T, T) buffer per head survives a
   * layer, attention memory grows linearly with T. "full": every layer keeps its (B, H, T, T)
   * probabilities for backward (memory quadratic in T), the former path, kept for comparison.
   * Same results to float rounding. Default "tiled".
   */
  attention?: AttentionImpl;
  /**
   * Query rows per tile of the "tiled" attention (its scratch: three (tile, T) buffers shared by
   * all layers). "auto" (default): about 1 MiB per buffer (2^18 / T rows, at least 64).
   */
  attentionTile?: AttentionTile;
}

export interface CausalLM {
  readonly modelType: string;
  /** The config.json the model was built from, as io/hf-config.ts validated it. */
  readonly config: KnownModelConfig;
  /** Number of token ids (config.json's vocab_size): every input id and label is below it. */
  readonly vocabSize: number;
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
   * A key/value cache for `batchSize` rows of at most `maxLength` tokens each. Throws, naming the
   * numbers, when maxLength exceeds the model's positions (max_position_embeddings, n_positions,
   * or an unsupported sliding_window).
   */
  createCache(batchSize: number, maxLength: number): KvCache;
  /**
   * Incremental forward: appends step.seqLen tokens to each listed row of `cache` (row b's new
   * token t sits at position cache.length(b) + t and attends to the row's cached tokens and the
   * new ones before it) and returns their logits, (N, seqLen, V) or (N, 1, V) (step.logits), owned
   * by the cache and valid until its next step. Equals forward() on the whole sequence at those
   * positions; attached adapters apply. Throws, naming the numbers, when a row would exceed
   * cache.maxLength.
   */
  forwardCached(cache: KvCache, step: CachedStep): Tensor;
  /**
   * Forward + backward of the mean causal-LM loss (labels shifted by one, -100 ignored, mean over
   * the counted tokens of the batch; loss 0 and no gradient when nothing is counted). Returns the
   * loss and the number of counted tokens (only the count with options.lossOut, which receives
   * the loss; a deferred engine needs lossOut).
   */
  lossAndGrads(
    batch: Batch,
    options: LossAndGradsOptions & { lossOut: Tensor },
  ): { tokens: number };
  lossAndGrads(batch: Batch, options?: LossAndGradsOptions): { loss: number; tokens: number };
  /**
   * Forward only: the negative log-likelihood of every position's label (labels shifted by one,
   * as lossAndGrads), (B*T), 0 where the label is ignored. The lm_head runs on the counted rows
   * only when the ignored ones are a large share (prompts under completion-only labels).
   * Asynchronous because a deferred engine (webgpu) delivers the losses by a download.
   */
  tokenLosses(batch: Batch): Promise<Float32Array>;
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
  /**
   * Bytes of the linear weights on the heap / off it (quantized, or offloaded with offloadFrozen),
   * and of the f32 expansion scratch.
   */
  linearWeightBytes(): { heap: number; offHeap: number; scratch: number };
  /**
   * The float parameters kept off the heap (WeightLoadOptions.offloadFrozen): HF name, stored shape
   * and a reader of an f32 copy in the stored layout. Empty when nothing is offloaded; int8 / nf4
   * weights are not listed (they are not float parameters any more).
   */
  offHeapParams(): OffHeapParam[];
  /** The memory options in effect, defaults filled in. */
  readonly memoryOptions: Readonly<Required<MemoryOptions>>;
  /** Changes the given memory options (others keep their value); frees the activation plan. */
  setMemoryOptions(options: MemoryOptions): void;
  /** Frees every tensor the model owns (parameters and activations). */
  dispose(): void;
}

/** A float parameter kept off the engine heap (CausalLM.offHeapParams). */
export interface OffHeapParam {
  name: string;
  shape: readonly number[];
  read(): Float32Array;
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
      ...(options.offloadFrozen !== undefined && { offloadFrozen: options.offloadFrozen }),
    };
    return await buildModel(config, checkpoint, options.kernels, dir, storage);
  } finally {
    await checkpoint.close();
  }
}
