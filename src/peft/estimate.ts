// LoRA-GA gradient estimation: the mean, over a few batches, of the gradient of each batch's mean
// causal-LM loss with respect to the target linear weights (spec §4; PEFT's preprocess_loraga
// divides the accumulated .grad by the number of backward passes, the official code averages the
// per-batch gradients: both are this mean). Only the target weight gradients are materialised;
// every other parameter stays gradient-free.
//
// Result: a GradientMap keyed by module path, each gradient in the weight's STORED layout
// ((out, in) for nn.Linear, (in, out) for GPT-2 Conv1D), as PEFT caches it.

import type { Batch, CausalLM } from "../models/model.js";
import type { Tensor } from "../tensor/tensor.js";
import { assertFiniteGradient, type GradientMap, storedWeightShape } from "./gradient-cache.js";

export interface EstimateProgress {
  /** Batches done so far. */
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
}

export interface EstimateResult {
  grads: GradientMap;
  /** Number of batches averaged. */
  batches: number;
  /** Mean of the per-batch losses. */
  meanLoss: number;
}

export async function estimateGradient(
  model: CausalLM,
  batches: Iterable<Batch> | AsyncIterable<Batch>,
  options: EstimateOptions,
): Promise<EstimateResult> {
  const linears = new Map(model.linears().map((info) => [info.path, info]));
  if (options.targets.length === 0) throw new Error("estimateGradient: no target modules");
  const heap = model.kernels.heap;
  const accumulators = new Map<string, Tensor>(); // parameter name -> (stored weight shape)
  const byPath = new Map<string, Tensor>();
  try {
    for (const path of options.targets) {
      const info = linears.get(path);
      if (info === undefined) {
        throw new Error(`estimateGradient: "${path}" is not a linear layer of this model`);
      }
      const grad = heap.zeros(storedWeightShape(info));
      accumulators.set(info.weightName, grad);
      byPath.set(path, grad);
    }
    const total = Array.isArray(batches) ? batches.length : null;
    let count = 0;
    let lossSum = 0;
    for await (const batch of batches) {
      const { loss } = model.lossAndGrads(batch, { paramGrads: accumulators });
      count++;
      lossSum += loss;
      options.onProgress?.({ done: count, total, loss });
    }
    if (count === 0) throw new Error("estimateGradient: no batches");
    const grads: GradientMap = new Map();
    for (const [path, grad] of byPath) {
      const data = grad.toArray();
      for (let i = 0; i < data.length; i++) data[i] /= count;
      assertFiniteGradient(path, data);
      grads.set(path, { shape: grad.shape as [number, number], data });
    }
    return { grads, batches: count, meanLoss: lossSum / count };
  } finally {
    for (const grad of accumulators.values()) grad.dispose();
  }
}
