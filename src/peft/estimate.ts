// LoRA-GA gradient estimation: the mean, over a few batches, of the gradient of each batch's mean
// causal-LM loss with respect to the target linear weights (docs/lora-ga-spec.md §4; PEFT's
// preprocess_loraga divides the accumulated .grad by the number of backward passes, the official
// code averages the per-batch gradients: both are this mean). Only the target weight gradients are materialised;
// every other parameter stays gradient-free. A batch without a learned token, and a target whose
// mean gradient is all zeros or not finite, are errors naming the batch or module.
//
// Bounded estimation (memoryBudget): targets in groups, one pass over the batches per group, each
// group's mean spilled to JS memory before the next group's accumulators are allocated.
//
// Result: a GradientMap keyed by module path, each gradient in the weight's STORED layout
// ((out, in) for nn.Linear, (in, out) for GPT-2 Conv1D), as PEFT caches it.

import type { Batch, CausalLM } from "../models/model.js";
import { ALIGN_BYTES, formatBytes } from "../tensor/heap.js";
import type { Tensor } from "../tensor/tensor.js";
import {
  assertFiniteGradient,
  assertNonZeroGradient,
  type GradientEntry,
  type GradientMap,
  storedWeightShape,
} from "./gradient-cache.js";

interface EstimateProgress {
  /** Forward + backward passes done so far (over all groups). */
  done: number;
  /** Total passes when known (an array was passed, or a later group), else null. */
  total: number | null;
  /** Loss of the batch just processed. */
  loss: number;
  /** Group being estimated (0-based) and the number of groups. */
  group: number;
  groups: number;
}

export interface EstimateOptions {
  /** Module paths of the target linear layers (e.g. from peft/targets.ts). */
  targets: readonly string[];
  onProgress?: (progress: EstimateProgress) => void;
  /**
   * Bounded estimation: engine bytes allowed for gradient accumulators at a time. The targets are
   * packed (in the given order) into groups whose accumulators fit; each group runs every batch
   * (recomputing the forward), and its finished mean is copied out to JS memory ("spilled") and
   * freed before the next group. Peak engine memory is then weights + activations + the largest
   * group's gradients, at the cost of one pass over the batches per group. Default: no bound (one
   * group, one pass per batch). The result is the same as unbounded estimation (same operations
   * in the same order for every gradient).
   */
  memoryBudget?: number;
}

interface EstimateMemory {
  /** Groups of targets, and forward + backward passes run (groups * batches). */
  groups: number;
  passes: number;
  /** Accumulator bytes of the largest group. */
  largestGroupBytes: number;
  /** Highest engine heap use during estimation (heap.peakBytes after a resetPeak at the start). */
  peakBytes: number;
}

export interface EstimateResult {
  grads: GradientMap;
  /** Number of batches averaged. */
  batches: number;
  /** Mean of the per-batch losses. */
  meanLoss: number;
  memory: EstimateMemory;
}

/** Heap bytes of an f32 accumulator of `numel` elements (the heap aligns blocks to 64 bytes). */
function accumulatorBytes(shape: readonly [number, number]): number {
  return Math.max(ALIGN_BYTES, Math.ceil((shape[0] * shape[1] * 4) / ALIGN_BYTES) * ALIGN_BYTES);
}

interface Target {
  path: string;
  weightName: string;
  shape: [number, number];
  bytes: number;
}

/** Packs targets, in order, into groups whose accumulators fit `budget` bytes. */
function groupTargets(targets: readonly Target[], budget: number | undefined): Target[][] {
  if (budget === undefined) return [targets.slice()];
  if (!(budget > 0))
    throw new Error(
      `estimateGradient: memoryBudget must be a positive number of bytes, got ${budget}`,
    );
  const groups: Target[][] = [];
  let current: Target[] = [];
  let used = 0;
  for (const t of targets) {
    if (t.bytes > budget) {
      throw new Error(
        `estimateGradient: memoryBudget of ${formatBytes(budget)} is smaller than the gradient of ${t.path} ` +
          `(${formatBytes(t.bytes)}); raise the budget to at least that`,
      );
    }
    if (used + t.bytes > budget && current.length > 0) {
      groups.push(current);
      current = [];
      used = 0;
    }
    current.push(t);
    used += t.bytes;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

export async function estimateGradient(
  model: CausalLM,
  batches: Iterable<Batch> | AsyncIterable<Batch>,
  options: EstimateOptions,
): Promise<EstimateResult> {
  const linears = new Map(model.linears().map((info) => [info.path, info]));
  if (options.targets.length === 0) throw new Error("estimateGradient: no target modules");
  const targets: Target[] = options.targets.map((path) => {
    const info = linears.get(path);
    if (info === undefined)
      throw new Error(`estimateGradient: "${path}" is not a linear layer of this model`);
    const shape = storedWeightShape(info);
    return { path, weightName: info.weightName, shape, bytes: accumulatorBytes(shape) };
  });
  const groups = groupTargets(targets, options.memoryBudget);
  const heap = model.kernels.heap;
  heap.resetPeak();
  const grads: GradientMap = new Map();
  // a one-shot iterable is kept (token ids only) so that later groups can run the same batches
  let replay: Batch[] | null = Array.isArray(batches) ? (batches as Batch[]) : null;
  let count = 0;
  let lossSum = 0;
  let passes = 0;
  for (let g = 0; g < groups.length; g++) {
    const accumulators = new Map<string, Tensor>(); // parameter name -> (stored weight shape)
    try {
      for (const t of groups[g]) accumulators.set(t.weightName, heap.zeros(t.shape));
      const source: Iterable<Batch> | AsyncIterable<Batch> = replay ?? batches;
      const kept: Batch[] = [];
      const total = replay === null ? null : replay.length * groups.length;
      let groupCount = 0;
      for await (const batch of source) {
        const { loss, tokens } = model.lossAndGrads(batch, { paramGrads: accumulators });
        if (tokens === 0) {
          throw new Error(
            `estimateGradient: batch ${groupCount + 1} has no learned token (every label is -100); its gradient would be zero`,
          );
        }
        if (replay === null && groups.length > 1) kept.push(batch);
        groupCount++;
        passes++;
        if (g === 0) lossSum += loss;
        options.onProgress?.({ done: passes, total, loss, group: g, groups: groups.length });
      }
      if (g === 0) {
        count = groupCount;
        if (count === 0) throw new Error("estimateGradient: no batches");
        if (replay === null) replay = kept;
      } else if (groupCount !== count) {
        throw new Error(
          `estimateGradient: group ${g} saw ${groupCount} batches, the first saw ${count}`,
        );
      }
      // spill: the group's mean leaves the engine heap before the next group allocates
      for (const t of groups[g]) {
        const data = (accumulators.get(t.weightName) as Tensor).toArray();
        for (let i = 0; i < data.length; i++) data[i] /= count;
        assertFiniteGradient(t.path, data);
        assertNonZeroGradient(t.path, data);
        grads.set(t.path, { shape: t.shape, data });
      }
    } finally {
      for (const grad of accumulators.values()) grad.dispose();
    }
  }
  const ordered: GradientMap = new Map(
    targets.map((t) => [t.path, grads.get(t.path) as GradientEntry]),
  );
  return {
    grads: ordered,
    batches: count,
    meanLoss: lossSum / count,
    memory: {
      groups: groups.length,
      passes,
      largestGroupBytes: Math.max(...groups.map((grp) => grp.reduce((sum, t) => sum + t.bytes, 0))),
      peakBytes: heap.peakBytes,
    },
  };
}
