// The estimate-then-init workflow of LoRA-GA (and LoRA-One), shared by `estimate` (step 1 only),
// `init` (from a gradient cache, or estimating first) and `train` (estimating from its training
// rows, then training): one estimation with the same options, progress and memory report, and one
// init. Checks that need the loaded model (targets, LoRA-GA's rank limit, the gradient memory
// bound against the largest target) run in `prepareTargets`, before any estimation.

import type { LinearInfo } from "../../models/linear.js";
import type { Batch, CausalLM } from "../../models/model.js";
import type { LoraConfig } from "../../peft/config.js";
import { type EstimateResult, estimateGradient } from "../../peft/estimate.js";
import { type GradientMap, loadGradients, storedWeightShape } from "../../peft/gradient-cache.js";
import { getPeftModel, type PeftModel } from "../../peft/peft-model.js";
import { selectTargets } from "../../peft/targets.js";
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
  const progress = createProgress(settings.quiet);
  const budget = settings.maxGradMemory;
  progress.start("estimate", batches.length); // bounded: the bar runs once per group
  // Ctrl-C here exits at once (nothing to save yet), stopping the bar first
  const interrupts = watchInterrupts({ onHardExit: () => progress.stop() });
  let result: EstimateResult;
  try {
    result = await estimateGradient(model, batches, {
      targets: paths,
      ...(budget !== undefined && { memoryBudget: budget }),
      onProgress: ({ done, loss, group, groups }) =>
        progress.update(
          ((done - 1) % batches.length) + 1,
          groups > 1
            ? `group ${group + 1}/${groups}, loss ${loss.toFixed(4)}`
            : `loss ${loss.toFixed(4)}`,
        ),
    });
  } finally {
    interrupts.dispose();
    progress.stop();
  }
  if (!settings.quiet) {
    const m = result.memory;
    const w = model.linearWeightBytes();
    process.stderr.write(
      `estimation: peak engine memory ${formatBytes(m.peakBytes)} (${budget === undefined ? "plain" : "bounded"}: ${m.groups} group(s), ` +
        `${m.passes} passes, largest group's gradients ${formatBytes(m.largestGroupBytes)}; linear weights ` +
        `${formatBytes(w.heap)} on the heap${w.scratch > 0 ? ` + ${formatBytes(w.scratch)} f32 scratch` : ""})\n`,
    );
  }
  return { ...result, targets: paths, seconds: (performance.now() - t0) / 1000 };
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
