// The estimate-then-init workflow of LoRA-GA (and LoRA-One), shared by `estimate` (step 1 only),
// `init` (from a gradient cache, or estimating first) and `train` (estimating from its training
// rows, then training): one estimation with the same options, progress and memory report, and one
// init. Checks that need the loaded model (targets, LoRA-GA's rank limit, the gradient memory
// bound against the largest target) run in `prepareTargets`, before any estimation.

import type { LinearInfo } from "../../models/linear.js";
import type { Batch, CausalLM } from "../../models/model.js";
import type { LoraConfig } from "../../peft/config.js";
import {
  type AccumulateResult,
  accumulateGradients,
  type EstimateResult,
  estimateGradient,
} from "../../peft/estimate.js";
import { type GradientMap, loadGradients, storedWeightShape } from "../../peft/gradient-cache.js";
import { getPeftModel, type PeftModel } from "../../peft/peft-model.js";
import { selectTargets } from "../../peft/targets.js";
import { availableHostMemory } from "../../platform/host-memory.js";
import { ALIGN_BYTES, formatBytes } from "../../tensor/heap.js";
import { UsageError } from "../errors.js";
import { watchInterrupts } from "../interrupt.js";
import { checkLoraGARank, targetLinears } from "../options/lora.js";
import { createProgress } from "../progress.js";

/** How gradients are estimated (the estimation flags, after parsing). */
export interface EstimationSettings {
  /** --target */
  readonly target: string;
  /** --max-grad-memory: engine bytes for gradient accumulators at a time (undefined: no bound). */
  readonly maxGradMemory: number | undefined;
  readonly quiet: boolean;
}

/**
 * The target linears of `--target` on the loaded model, checked before any work: LoRA-GA's
 * 2r <= min(out, in) when `loraGARank` is given (its value and flag name), and that
 * --max-grad-memory (`budgetName`) holds each target's gradient.
 */
export function prepareTargets(
  model: CausalLM,
  settings: EstimationSettings,
  budgetName: string,
  loraGARank?: { readonly value: number; readonly name: string },
): LinearInfo[] {
  const targets = targetLinears(model, settings.target);
  if (loraGARank !== undefined) checkLoraGARank(loraGARank.name, loraGARank.value, targets);
  const budget = settings.maxGradMemory;
  if (budget !== undefined) {
    for (const t of targets) {
      const [rows, cols] = storedWeightShape(t);
      // the accumulator's heap block: f32 values, rounded up to the heap's alignment
      const bytes = Math.max(ALIGN_BYTES, Math.ceil((rows * cols * 4) / ALIGN_BYTES) * ALIGN_BYTES);
      if (bytes > budget) {
        throw new UsageError(
          `${budgetName} ${formatBytes(budget)} is smaller than the gradient of ${t.path} ` +
            `(${formatBytes(bytes)}); raise it to at least that`,
        );
      }
    }
  }
  return targets;
}

/**
 * Refuses, before any estimation, gradients that cannot fit in host memory: each target's f32
 * gradient lives in host memory from the first batch to the init (peft/gradient-sums.ts; a
 * gradient cache is read whole, gradient-cache.ts), so a shortfall would otherwise end part-way
 * through in the OOM killer, without a message. `available` is measured after the model loaded;
 * the engine heap's growth during estimation comes on top, so passing this check is necessary,
 * not sufficient.
 */
export function checkGradientHostMemory(
  targetName: string,
  targets: readonly LinearInfo[],
  available: number = availableHostMemory(),
): void {
  let need = 0;
  for (const t of targets) {
    const [rows, cols] = storedWeightShape(t);
    need += rows * cols * 4;
  }
  if (need > available) {
    throw new UsageError(
      `${targetName}: the f32 gradients of its ${targets.length} target modules need ` +
        `${formatBytes(need)} of host memory from estimation to init, and ${formatBytes(available)} ` +
        "is available: target fewer modules, or free memory",
    );
  }
}

export interface Estimated extends EstimateResult {
  targets: string[];
  seconds: number;
}

/** Estimates the targets' mean gradients over `batches`, with progress and a memory report. */
export async function estimateGradients(
  model: CausalLM,
  batches: readonly Batch[],
  targets: readonly LinearInfo[],
  settings: EstimationSettings,
): Promise<Estimated> {
  const t0 = performance.now();
  const paths = targets.map((l) => l.path);
  const result = await withProgress(batches.length, settings.quiet, (onProgress) =>
    estimateGradient(model, batches, { targets: paths, ...boundOf(settings), onProgress }),
  );
  reportMemory(model, result.memory, settings);
  return { ...result, targets: paths, seconds: (performance.now() - t0) / 1000 };
}

/**
 * The raw gradient sums of `batches` (a shard's share of an estimation, gradient-shards.ts), with
 * the same progress and memory report as estimateGradients.
 */
export async function accumulateShard(
  model: CausalLM,
  batches: readonly Batch[],
  targets: readonly LinearInfo[],
  settings: EstimationSettings,
): Promise<AccumulateResult> {
  const paths = targets.map((l) => l.path);
  const result = await withProgress(batches.length, settings.quiet, (onProgress) =>
    accumulateGradients(model, batches, { targets: paths, ...boundOf(settings), onProgress }),
  );
  reportMemory(model, result.memory, settings);
  return result;
}

function boundOf(settings: EstimationSettings): { memoryBudget?: number } {
  return settings.maxGradMemory === undefined ? {} : { memoryBudget: settings.maxGradMemory };
}

/** Runs an estimation under a progress bar of `total` batches; Ctrl-C exits at once. */
async function withProgress<T>(
  total: number,
  quiet: boolean,
  estimate: (onProgress: (p: { done: number; loss: number }) => void) => Promise<T>,
): Promise<T> {
  const progress = createProgress(quiet);
  progress.start("estimate", total);
  // Ctrl-C here exits at once (nothing to save yet), stopping the bar first
  const interrupts = watchInterrupts({ onHardExit: () => progress.stop() });
  try {
    return await estimate(({ done, loss }) => progress.update(done, `loss ${loss.toFixed(4)}`));
  } finally {
    interrupts.dispose();
    progress.stop();
  }
}

function reportMemory(
  model: CausalLM,
  m: AccumulateResult["memory"],
  settings: EstimationSettings,
): void {
  if (settings.quiet) return;
  const w = model.linearWeightBytes();
  const kind = settings.maxGradMemory === undefined ? "plain" : "bounded";
  process.stderr.write(
    `estimation: peak engine memory ${formatBytes(m.peakBytes)} (${kind}: ${m.passes} passes, ` +
      `at most ${formatBytes(m.heapGradBytes)} of gradients on the heap, ${formatBytes(m.movedOutBytes)} moved off it; ` +
      `linear weights ${formatBytes(w.heap)} on the heap${w.scratch > 0 ? ` + ${formatBytes(w.scratch)} f32 scratch` : ""})\n`,
  );
}

/** Where an init's gradients come from: a cache written by `estimate`, or estimation here. */
export type GradientSource =
  | { readonly kind: "cache"; readonly file: string }
  | {
      readonly kind: "estimate";
      /** Loaded only after every check passed (data loading can be slow). */
      readonly batches: () => Promise<readonly Batch[]>;
      readonly settings: EstimationSettings;
      readonly targets: readonly LinearInfo[];
    };

export interface Initialised {
  peft: PeftModel;
  estimateSeconds: number;
  initSeconds: number;
  /** The first estimation batch (for --quantize's logits error), when estimated here. */
  firstBatch: Batch | null;
}

/**
 * The workflow: gradients when the init needs them (source null otherwise), then the init.
 * `config` is loraConfigFor's; seed and svd are the LoRA flags'.
 */
export async function estimateThenInit(
  model: CausalLM,
  config: LoraConfig,
  source: GradientSource | null,
  init: { seed: number; svd: "lowrank" | "exact" },
): Promise<Initialised> {
  let namedGrad: GradientMap | undefined;
  let estimateSeconds = 0;
  let firstBatch: Batch | null = null;
  if (source?.kind === "cache") {
    const linears = model.linears();
    namedGrad = (await loadGradients(source.file, selectTargets(config, linears), linears)).grads;
  } else if (source?.kind === "estimate") {
    const batches = await source.batches();
    const estimated = await estimateGradients(model, batches, source.targets, source.settings);
    namedGrad = estimated.grads;
    estimateSeconds = estimated.seconds;
    firstBatch = batches[0] ?? null;
  }
  const t0 = performance.now();
  const peft = getPeftModel(model, config, {
    seed: init.seed,
    svd: { method: init.svd },
    ...(namedGrad !== undefined && { namedGrad }),
  });
  return { peft, estimateSeconds, initSeconds: (performance.now() - t0) / 1000, firstBatch };
}
