// `loraga estimate`: LoRA-GA gradient estimation over the first batches of a JSONL file, written
// as a gradient cache (.safetensors keyed by module path) that `loraga init --grads` reads.

import { type Command, Option } from "commander";
import type { Batch, CausalLM } from "../../models/model.js";
import type { QuantizeKind, WeightDtype, WeightLoadOptions } from "../../models/weights.js";
import type { EstimateMemory } from "../../peft/estimate.js";
import { estimateGradient } from "../../peft/estimate.js";
import type { GradientMap } from "../../peft/gradient-cache.js";
import { saveGradients } from "../../peft/gradient-cache.js";
import { selectTargets } from "../../peft/targets.js";
import { formatBytes } from "../../tensor/heap.js";
import {
  addEngineOptions,
  intFlag,
  listFlag,
  loadBatches,
  openEngine,
  openModel,
  openTokenizerIfAny,
} from "../common.js";
import { resolveOptions, UsageError } from "../config-file.js";
import { watchInterrupts } from "../interrupt.js";
import { guardOutput } from "../output-guard.js";
import { createProgress } from "../progress.js";

export function addEstimateFlags(command: Command, required: boolean): Command {
  const flag = required ? command.requiredOption.bind(command) : command.option.bind(command);
  flag(
    "--data <file>",
    "JSONL rows: {text} | {prompt, completion} | {messages} | {input_ids[, labels]}",
  );
  return command
    .option(
      "--target <list>",
      "target modules: comma-separated names, or a regex matching full paths",
      "all-linear",
    )
    .option(
      "--batch-size <n>",
      "rows per batch (consecutive rows, file order)",
      intFlag("--batch-size"),
      2,
    )
    .option("--max-length <n>", "truncate rows to this many tokens", intFlag("--max-length"), 512)
    .option("--batches <n>", "number of batches to average", intFlag("--batches"), 8)
    .option(
      "--shuffle",
      "take the batches from a seeded shuffle of all rows (--seed) instead of the first rows",
      false,
    )
    .option(
      "--train-on-prompt",
      "count prompt / user tokens in the loss too (default: as training does)",
      false,
    )
    .option(
      "--max-grad-memory <size>",
      "bounded estimation: engine memory for gradients at a time (e.g. 512M, 2G)",
      byteSizeFlag("--max-grad-memory"),
    )
    .addOption(
      new Option(
        "--weight-dtype <dtype>",
        "storage of the frozen linear weights (compute stays f32)",
      )
        .choices(["f32", "bf16", "f16"])
        .default("f32"),
    )
    .addOption(
      new Option(
        "--quantize <kind>",
        "after estimating (on float weights): quantize the linear weights and log the logits error",
      ).choices(["int8", "nf4"]),
    );
}

/** Parses a byte count with an optional K/M/G (binary) suffix: "1048576", "512M", "1.5G", "2GiB". */
export function byteSizeFlag(flag: string): (value: string) => number {
  return (value) => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$/i.exec(value);
    const unit = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30 }[(m?.[2] ?? "").toLowerCase()];
    const bytes = m === null || unit === undefined ? Number.NaN : Math.floor(Number(m[1]) * unit);
    if (!(bytes > 0))
      throw new UsageError(
        `${flag} must be a size in bytes like 1048576, 512M or 2G, got "${value}"`,
      );
    return bytes;
  };
}

/** loadModel's storage options from --weight-dtype (estimation always runs on float weights). */
export function weightStorageFlags(options: Record<string, unknown>): WeightLoadOptions {
  const dtype = options.weightDtype as WeightDtype | undefined;
  return dtype === undefined ? {} : { weightDtype: dtype };
}

/**
 * Quantizes the model's linear weights (--quantize) and logs the logits error of `batch` against
 * the float weights it had (max |diff| / max |float logits|): the cost of a quantized base.
 */
export function quantizeAndReport(
  model: CausalLM,
  kind: QuantizeKind,
  batch: Batch,
  quiet: boolean,
): number {
  const before = model.forward(batch).toArray();
  const floatBytes = model.linearWeightBytes();
  model.quantizeLinears(kind);
  const after = model.forward(batch).toArray();
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < before.length; i++) {
    diff = Math.max(diff, Math.abs(after[i] - before[i]));
    ref = Math.max(ref, Math.abs(before[i]));
  }
  const error = ref > 0 ? diff / ref : diff;
  if (!quiet) {
    const bytes = model.linearWeightBytes();
    process.stderr.write(
      `quantized linear weights to ${kind}: ${formatBytes(floatBytes.heap)} -> ${formatBytes(bytes.heap + bytes.offHeap)} ` +
        `(+ ${formatBytes(bytes.scratch)} f32 scratch); logits max rel error vs float ${error.toExponential(2)}\n`,
    );
  }
  return error;
}

/**
 * The target_modules value for a --target flag: "all-linear" expands, as PEFT expands it, to the
 * names of every linear layer except the output layer; a value with regex characters is a regex
 * matched against full module paths; anything else is a comma-separated list of names.
 */
export function targetModules(model: CausalLM, value: string): string[] | string {
  if (value === "all-linear") {
    const names = model
      .linears()
      .filter((l) => !l.path.endsWith("lm_head"))
      .map((l) => l.path.slice(l.path.lastIndexOf(".") + 1));
    return [...new Set(names)].sort();
  }
  return /[\\^$*+?()[\]{}|]/.test(value) ? value : listFlag(value);
}

export function targetPaths(model: CausalLM, value: string): string[] {
  const spec = targetModules(model, value);
  return selectTargets({ target_modules: spec, exclude_modules: null }, model.linears()).map(
    (l) => l.path,
  );
}

/** Runs estimation from parsed flags; shared by `estimate` and `init` without --grads. */
export async function estimateFromFlags(
  model: CausalLM,
  modelDir: string,
  options: Record<string, unknown>,
  quiet: boolean,
): Promise<{
  grads: GradientMap;
  batches: number;
  meanLoss: number;
  targets: string[];
  firstBatch: Batch;
  memory: EstimateMemory;
}> {
  const tokenizer = await openTokenizerIfAny(modelDir);
  const vocabSize = (model.config as { vocab_size?: number }).vocab_size ?? Number.MAX_SAFE_INTEGER;
  const batches = await loadBatches(
    {
      data: options.data as string,
      batchSize: options.batchSize as number,
      maxLength: options.maxLength as number,
      batches: options.batches as number,
      trainOnPrompt: options.trainOnPrompt === true,
      ...(options.shuffle === true && { shuffleSeed: (options.seed as number | undefined) ?? 0 }),
    },
    tokenizer,
    vocabSize,
  );
  const targets = targetPaths(model, options.target as string);
  const progress = createProgress(quiet);
  const budget = options.maxGradMemory as number | undefined;
  progress.start("estimate", batches.length); // bounded: the bar runs once per group
  const interrupts = watchInterrupts({ onHardExit: () => progress.stop() });
  const result = await estimateGradient(model, batches, {
    targets,
    ...(budget !== undefined && { memoryBudget: budget }),
    onProgress: ({ done, loss, group, groups }) =>
      progress.update(
        ((done - 1) % batches.length) + 1,
        groups > 1
          ? `group ${group + 1}/${groups}, loss ${loss.toFixed(4)}`
          : `loss ${loss.toFixed(4)}`,
      ),
  }).finally(() => interrupts.dispose());
  progress.stop();
  if (!quiet) {
    const m = result.memory;
    const w = model.linearWeightBytes();
    process.stderr.write(
      `estimation: peak engine memory ${formatBytes(m.peakBytes)} (${budget === undefined ? "plain" : "bounded"}: ${m.groups} group(s), ` +
        `${m.passes} passes, largest group's gradients ${formatBytes(m.largestGroupBytes)}; linear weights ` +
        `${formatBytes(w.heap)} on the heap${w.scratch > 0 ? ` + ${formatBytes(w.scratch)} f32 scratch` : ""})\n`,
    );
  }
  return { ...result, targets, firstBatch: batches[0] };
}

export function registerEstimate(program: Command): void {
  const command = program
    .command("estimate")
    .description("estimate full weight gradients of the target modules (LoRA-GA step 1)")
    .requiredOption("--model <dir>", "Hugging Face model directory (config.json, *.safetensors)")
    .requiredOption("--out <file>", "gradient cache to write (.safetensors)")
    .option("--overwrite", "replace an existing output", false)
    .option("--seed <n>", "seed of --shuffle", intFlag("--seed", 0), 0);
  addEstimateFlags(command, true);
  addEngineOptions(command);
  command.addHelpText(
    "after",
    "\nExample:\n  loraga estimate --model ./tiny-llama --data train.jsonl --target q_proj,v_proj \\\n" +
      "    --batch-size 2 --max-length 256 --batches 8 --out grads.safetensors\n",
  );
  command.action(async () => {
    const options = resolveOptions(command);
    await guardOutput({
      flag: "--out",
      path: options.out as string,
      kind: "file",
      overwrite: options.overwrite === true,
      inputs: [
        ["--model", options.model as string],
        ["--data", options.data as string],
      ],
    });
    const engine = await openEngine(options);
    try {
      const model = await openModel(options.model as string, engine, weightStorageFlags(options));
      const result = await estimateFromFlags(
        model,
        options.model as string,
        options,
        options.quiet === true,
      );
      if (options.quantize !== undefined) {
        quantizeAndReport(
          model,
          options.quantize as QuantizeKind,
          result.firstBatch,
          options.quiet === true,
        );
      }
      await saveGradients(options.out as string, result.grads, {
        batches: String(result.batches),
        mean_loss: String(result.meanLoss),
      });
      if (options.quiet !== true) {
        process.stderr.write(
          `wrote ${result.grads.size} gradients (${result.batches} batches, mean loss ${result.meanLoss.toFixed(4)}) to ${options.out as string}\n`,
        );
      }
      model.dispose();
    } finally {
      await engine.dispose();
    }
  });
}
