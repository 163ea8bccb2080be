// LoRA-GA gradient estimation: the mean, over a few batches, of the gradient of each batch's mean
// causal-LM loss with respect to the target linear weights (docs/lora-ga-spec.md §4; PEFT's
// preprocess_loraga divides the accumulated .grad by the number of backward passes, the official
// code averages the per-batch gradients: both are this mean). Only the target weight gradients are
// materialised; every other parameter stays gradient-free. A batch without a learned token, and a
// target whose mean gradient is all zeros or not finite, are errors naming the batch or module.
//
// One forward + backward per batch. The per-target sums accumulate in host memory with a window of
// heap accumulators (gradient-sums.ts): unbounded, every sum stays on the heap until the end;
// bounded (memoryBudget), finished sums move off the heap as backward reaches the next layers. The
// sums are the same either way (same kernel calls on the same values).
//
// accumulateGradients returns the raw sums with their batch count and per-batch losses (what a
// shard of a sharded estimation writes, gradient-shards.ts); estimateGradient divides by the count.
//
// Result: a GradientMap keyed by module path, each gradient in the weight's STORED layout
// ((out, in) for nn.Linear, (in, out) for GPT-2 Conv1D), as PEFT caches it.

import type { Batch, CausalLM } from "../models/model.js";
import { ALIGN_BYTES } from "../tensor/heap.js";
import {
  assertFiniteGradient,
  assertNonZeroGradient,
  type GradientMap,
  storedWeightShape,
} from "./gradient-cache.js";
import { GradientSums, type SumTarget } from "./gradient-sums.js";

interface EstimateProgress {
  /** Forward + backward passes (= batches) done so far. */
  done: number;
  /** Total batches when known (an array was passed), else null. */
  total: number | null;
  /** Loss of the batch just processed. */
  loss: number;
}

export interface EstimateOptions {
  /** Module paths of the target linear layers (e.g. from peft/targets.ts). */
  targets: readonly string[];
  onProgress?: (progress: EstimateProgress) => void;
  /**
   * Bounded estimation: most engine bytes of gradient accumulators at a time. A target's running
   * sum is brought onto the heap when backward reaches its layer and moved back to host memory
   * when room is needed for later layers, so peak engine memory is weights + activations + the
   * budget, for one forward + backward per batch plus copies of the moved sums. Default: no bound
   * (every sum stays on the heap). The result is the same as unbounded estimation.
   */
  memoryBudget?: number;
}

interface EstimateMemory {
  /** Forward + backward passes run (one per batch). */
  passes: number;
  /** Most accumulator bytes on the heap at a time. */
  heapGradBytes: number;
  /** Bytes of gradient sums moved from the heap to host memory (all batches together). */
  movedOutBytes: number;
  /** Highest engine heap use during estimation (heap.peakBytes after a resetPeak at the start). */
  peakBytes: number;
}

export interface AccumulateResult {
  /** Per target, by module path in the targets' order: the SUM of the per-batch gradients. */
  sums: GradientMap;
  /** Each batch's loss (its mean over its counted tokens), in batch order. */
  losses: number[];
  /** Counted (learned) tokens over all batches. */
  tokens: number;
  memory: EstimateMemory;
}

export interface EstimateResult {
  grads: GradientMap;
  /** Number of batches averaged. */
  batches: number;
  /** Mean of the per-batch losses. */
  meanLoss: number;
  memory: EstimateMemory;
}

/** Heap bytes of an f32 accumulator (the heap aligns blocks to ALIGN_BYTES). */
function accumulatorBytes(shape: readonly [number, number]): number {
  return Math.max(ALIGN_BYTES, Math.ceil((shape[0] * shape[1] * 4) / ALIGN_BYTES) * ALIGN_BYTES);
}

/** Sums the target weight gradients of every batch: one forward + backward per batch. */
export async function accumulateGradients(
  model: CausalLM,
  batches: Iterable<Batch> | AsyncIterable<Batch>,
  options: EstimateOptions,
): Promise<AccumulateResult> {
  const linears = new Map(model.linears().map((info) => [info.path, info]));
  if (options.targets.length === 0) throw new Error("estimateGradient: no target modules");
  const targets: SumTarget[] = options.targets.map((path) => {
    const info = linears.get(path);
    if (info === undefined)
      throw new Error(`estimateGradient: "${path}" is not a linear layer of this model`);
    const shape = storedWeightShape(info);
    return { path, weightName: info.weightName, shape, bytes: accumulatorBytes(shape) };
  });
  const budget = options.memoryBudget;
  if (budget !== undefined && !(budget > 0))
    throw new Error(
      `estimateGradient: memoryBudget must be a positive number of bytes, got ${budget}`,
    );
  const kernels = model.kernels;
  kernels.upload(); // whatever the host wrote before this call
  const heap = kernels.heap;
  heap.resetPeak();
  const sums = new GradientSums(kernels, targets, budget ?? Number.POSITIVE_INFINITY);
  // a deferred engine writes each batch's loss here, read back once per batch
  const lossOut = kernels.deferred ? heap.zeros([1]) : null;
  const total = Array.isArray(batches) ? batches.length : null;
  const losses: number[] = [];
  let tokens = 0;
  try {
    for await (const batch of batches) {
      let loss: number;
      let counted: number;
      if (lossOut === null)
        ({ loss, tokens: counted } = model.lossAndGrads(batch, { paramGrads: sums }));
      else {
        counted = model.lossAndGrads(batch, { paramGrads: sums, lossOut }).tokens;
        await kernels.download(lossOut);
        await sums.settle(); // the sums moved off the heap in this pass
        loss = lossOut.f32()[0];
      }
      if (counted === 0) {
        throw new Error(
          `estimateGradient: batch ${losses.length + 1} has no learned token (every label is -100); its gradient would be zero`,
        );
      }
      losses.push(loss);
      tokens += counted;
      options.onProgress?.({ done: losses.length, total, loss });
    }
    if (losses.length === 0) throw new Error("estimateGradient: no batches");
    await kernels.download(); // the sums, read on the host by finish()
    const data = sums.finish();
    const out: GradientMap = new Map();
    for (const t of targets) {
      const sum = data.get(t.path) as Float32Array;
      assertFiniteGradient(t.path, sum);
      out.set(t.path, { shape: [t.shape[0], t.shape[1]], data: sum });
    }
    return {
      sums: out,
      losses,
      tokens,
      memory: {
        passes: losses.length,
        heapGradBytes: sums.peakResidentBytes,
        movedOutBytes: sums.movedOutBytes,
        peakBytes: heap.peakBytes,
      },
    };
  } finally {
    sums.dispose();
    lossOut?.dispose();
  }
}

/**
 * The mean gradient of `path` from its sum over `count` batches, in f32 (sum / count rounded
 * once), checked finite and not all zeros. An f32 sum is divided in place; an f64 sum (the reduce
 * of shards) gives a new array.
 */
export function meanGradient(
  path: string,
  sum: Float32Array | Float64Array,
  count: number,
): Float32Array {
  const mean = sum instanceof Float32Array ? sum : new Float32Array(sum.length);
  for (let i = 0; i < sum.length; i++) mean[i] = sum[i] / count;
  assertFiniteGradient(path, mean);
  assertNonZeroGradient(path, mean);
  return mean;
}

/** The mean of the per-batch losses, summed in batch order. */
export function meanLoss(losses: readonly number[]): number {
  let sum = 0;
  for (const loss of losses) sum += loss;
  return sum / losses.length;
}

export async function estimateGradient(
  model: CausalLM,
  batches: Iterable<Batch> | AsyncIterable<Batch>,
  options: EstimateOptions,
): Promise<EstimateResult> {
  const { sums, losses, memory } = await accumulateGradients(model, batches, options);
  const grads: GradientMap = new Map();
  for (const [path, { shape, data }] of sums) {
    grads.set(path, { shape, data: meanGradient(path, data, losses.length) });
  }
  return { grads, batches: losses.length, meanLoss: meanLoss(losses), memory };
}
