// `loraga init`: creates an initialised adapter for a model — LoRA-GA from gradients (a gradient
// cache from `loraga estimate`, or estimated here from the same data flags), or any other init
// (default LoRA, gaussian, PiSSA, OLoRA, LoRA-One). Inits that move the base weights (LoRA-GA,
// PiSSA, OLoRA) record it in the adapter, so `loraga train --init-adapter` and `loraga convert`
// can restore the offset base W' = W - s B0 A0.

import type { Command } from "commander";
import type { Batch, CausalLM } from "../../models/model.js";
import type { QuantizeKind } from "../../models/weights.js";
import { type GradientMap, loadGradients } from "../../peft/gradient-cache.js";
import { getPeftModel } from "../../peft/peft-model.js";
import { selectTargets } from "../../peft/targets.js";
import { addEngineOptions, openEngine, openModel } from "../common.js";
import { resolveOptions, UsageError } from "../config-file.js";
import { addLoraFlags, loraConfigFromFlags, needsGradients } from "../lora-flags.js";
import { guardOutput } from "../output-guard.js";
import {
  addEstimateFlags,
  estimateFromFlags,
  quantizeAndReport,
  weightStorageFlags,
} from "./estimate.js";

/** A fixed 1 x 16 batch of spread-out token ids, for the logits error when no data was given. */
function probeBatch(model: CausalLM): Batch {
  const vocab = (model.config as { vocab_size?: number }).vocab_size ?? 2;
  const inputIds = Int32Array.from({ length: 16 }, (_, i) => (i * 7919 + 1) % vocab);
  return { batchSize: 1, seqLen: 16, inputIds, labels: inputIds.slice() };
}

export function registerInit(program: Command): void {
  const command = program
    .command("init")
    .description("initialise a LoRA adapter (LoRA-GA, PiSSA, OLoRA, LoRA-One, default) and save it")
    .requiredOption("--model <dir>", "Hugging Face model directory")
    .requiredOption(
      "--out <dir>",
      "adapter directory to write (adapter_config.json + adapter_model.safetensors)",
    )
    .option(
      "--grads <file>",
      "gradient cache from `loraga estimate` (otherwise estimate from --data)",
    )
    .option("--overwrite", "replace an existing output", false);
  addLoraFlags(command);
  addEstimateFlags(command, false);
  addEngineOptions(command);
  command.addHelpText(
    "after",
    "\nExamples:\n" +
      "  loraga init --model ./tiny-llama --grads grads.safetensors --r 8 --alpha 16 --out init-adapter\n" +
      "  loraga init --model ./tiny-llama --data train.jsonl --batches 8 --method lora-ga --variant peft \\\n" +
      "    --target q_proj,v_proj --r 8 --out init-adapter\n" +
      "  loraga init --model ./tiny-llama --method pissa --r 8 --out pissa-adapter\n",
  );
  command.action(async () => {
    const options = resolveOptions(command);
    const needsGrads = needsGradients(options);
    if (needsGrads && options.grads === undefined && options.data === undefined) {
      throw new UsageError(
        `--method ${options.method as string} needs --grads FILE or --data FILE to estimate from`,
      );
    }
    await guardOutput({
      flag: "--out",
      path: options.out as string,
      kind: "dir",
      overwrite: options.overwrite === true,
      inputs: [
        ["--model", options.model as string],
        ["--grads", options.grads as string | undefined],
        ["--data", options.data as string | undefined],
      ],
    });
    const engine = await openEngine(options);
    try {
      const model = await openModel(options.model as string, engine, weightStorageFlags(options));
      const config = loraConfigFromFlags(model, options);
      let namedGrad: GradientMap | undefined;
      let firstBatch: Batch | undefined;
      if (needsGrads) {
        if (options.grads !== undefined) {
          namedGrad = (
            await loadGradients(
              options.grads as string,
              selectTargets(config, model.linears()),
              model.linears(),
            )
          ).grads;
        } else {
          const estimated = await estimateFromFlags(
            model,
            options.model as string,
            options,
            options.quiet === true,
          );
          namedGrad = estimated.grads;
          firstBatch = estimated.firstBatch;
        }
      }
      const t0 = performance.now();
      const peft = getPeftModel(model, config, {
        seed: options.seed as number,
        svd: { method: options.svd as "lowrank" | "exact" },
        ...(namedGrad !== undefined && { namedGrad }),
      });
      const seconds = (performance.now() - t0) / 1000;
      if (options.quantize !== undefined) {
        // two-stage flow: the OFFSET base W' = W - s B0 A0 is what a quantized training run holds
        quantizeAndReport(
          model,
          options.quantize as QuantizeKind,
          firstBatch ?? probeBatch(model),
          options.quiet === true,
        );
      }
      await peft.save(options.out as string);
      if (options.quiet !== true) {
        process.stderr.write(
          `initialised ${peft.adapters.size} modules (${options.method as string}, r=${config.r}) in ${seconds.toFixed(2)}s; ` +
            `wrote ${options.out as string}\n`,
        );
      }
      peft.dispose();
      model.dispose();
    } finally {
      await engine.dispose();
    }
  });
}
