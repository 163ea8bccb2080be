// `loraga estimate`: LoRA-GA gradient estimation over the first batches of a JSONL file, written
// as a gradient cache (.safetensors keyed by module path) that `loraga init --grads` reads.

import type { Command } from "commander";
import { selectTargets } from "../../peft/targets.js";
import { estimateGradient } from "../../peft/estimate.js";
import { saveGradients } from "../../peft/gradient-cache.js";
import type { CausalLM } from "../../models/model.js";
import { resolveOptions } from "../config-file.js";
import {
  addEngineOptions,
  intFlag,
  listFlag,
  loadBatches,
  openEngine,
  openModel,
  openTokenizerIfAny,
} from "../common.js";
import { createProgress } from "../progress.js";
import type { GradientMap } from "../../peft/gradient-cache.js";

export function addEstimateFlags(command: Command, required: boolean): Command {
  const flag = required ? command.requiredOption.bind(command) : command.option.bind(command);
  flag("--data <file>", "JSONL rows: {text} | {prompt, completion} | {messages} | {input_ids[, labels]}");
  return command
    .option("--target <list>", "target modules: comma-separated names, or a regex matching full paths", "all-linear")
    .option("--batch-size <n>", "rows per batch (consecutive rows, file order)", intFlag("--batch-size"), 2)
    .option("--max-length <n>", "truncate rows to this many tokens", intFlag("--max-length"), 512)
    .option("--batches <n>", "number of batches to average", intFlag("--batches"), 8);
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
  return selectTargets({ target_modules: spec, exclude_modules: null }, model.linears()).map((l) => l.path);
}

/** Runs estimation from parsed flags; shared by `estimate` and `init` without --grads. */
export async function estimateFromFlags(
  model: CausalLM,
  modelDir: string,
  options: Record<string, unknown>,
  quiet: boolean,
): Promise<{ grads: GradientMap; batches: number; meanLoss: number; targets: string[] }> {
  const tokenizer = await openTokenizerIfAny(modelDir);
  const vocabSize = (model.config as { vocab_size?: number }).vocab_size ?? Number.MAX_SAFE_INTEGER;
  const batches = await loadBatches(
    {
      data: options.data as string,
      batchSize: options.batchSize as number,
      maxLength: options.maxLength as number,
      batches: options.batches as number,
    },
    tokenizer,
    vocabSize,
  );
  const targets = targetPaths(model, options.target as string);
  const progress = createProgress(quiet);
  progress.start("estimate", batches.length);
  const result = await estimateGradient(model, batches, {
    targets,
    onProgress: ({ done, loss }) => progress.update(done, `loss ${loss.toFixed(4)}`),
  });
  progress.stop();
  return { ...result, targets };
}

export function registerEstimate(program: Command): void {
  const command = program
    .command("estimate")
    .description("estimate full weight gradients of the target modules (LoRA-GA step 1)")
    .requiredOption("--model <dir>", "Hugging Face model directory (config.json, *.safetensors)")
    .requiredOption("--out <file>", "gradient cache to write (.safetensors)");
  addEstimateFlags(command, true);
  addEngineOptions(command);
  command.addHelpText(
    "after",
    "\nExample:\n  loraga estimate --model ./tiny-llama --data train.jsonl --target q_proj,v_proj \\\n" +
      "    --batch-size 2 --max-length 256 --batches 8 --out grads.safetensors\n",
  );
  command.action(async () => {
    const options = resolveOptions(command);
    const engine = await openEngine(options);
    try {
      const model = await openModel(options.model as string, engine);
      const result = await estimateFromFlags(model, options.model as string, options, options.quiet === true);
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
