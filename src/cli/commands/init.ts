// `loraga init`: creates an initialised adapter for a model — LoRA-GA from gradients (a gradient
// cache from `loraga estimate`, or estimated here from the same data flags), or any other init
// (default LoRA, gaussian, PiSSA, OLoRA, LoRA-One). Inits that move the base weights (LoRA-GA,
// PiSSA, OLoRA) record it in the adapter, so `loraga train --init-adapter` and `loraga convert`
// can restore the offset base W' = W - s B0 A0.

import { commandOf } from "../command.js";
import { UsageError } from "../errors.js";
import { exampleOptionsFor, loadBatches } from "../options/data.js";
import { ENGINE_FLAGS, openEngine } from "../options/engine.js";
import { INIT_ESTIMATE_FLAGS } from "../options/estimation.js";
import { checkTarget, LORA_FLAGS, loraConfigFor, needsGradients } from "../options/lora.js";
import {
  checkInputFile,
  checkModelDir,
  modelFlag,
  openModel,
  openTokenizerIfAny,
} from "../options/model.js";
import { checkOutputDir, outFlag, overwriteFlag } from "../options/output.js";
import { type Parsed, stringFlag } from "../options/schema.js";
import { guardOutput, removingCreatedDirs } from "../output-guard.js";
import {
  checkGradientHostMemory,
  estimateThenInit,
  type GradientSource,
  prepareTargets,
} from "../workflow/estimate-init.js";
import { probeBatch, quantizeAndReport } from "../workflow/quantize.js";

const SCHEMA = {
  model: modelFlag(),
  out: outFlag(
    "<dir>",
    "adapter directory to write (adapter_config.json + adapter_model.safetensors)",
  ),
  overwrite: overwriteFlag,
  grads: stringFlag(
    "--grads <file>",
    "gradient cache from `loraga estimate` (otherwise estimate from --data)",
  ),
  ...LORA_FLAGS,
  ...INIT_ESTIMATE_FLAGS,
  ...ENGINE_FLAGS,
};

type Plan = Parsed<typeof SCHEMA>;

function check(parsed: Plan): Plan {
  const { options: o, name } = parsed;
  checkModelDir(name("model"), o.model);
  if (needsGradients(o.method)) {
    if (o.grads !== undefined) checkInputFile(name("grads"), o.grads);
    else if (o.data !== undefined) checkInputFile(name("data"), o.data);
    else
      throw new UsageError(
        `--method ${o.method} needs --grads FILE or --data FILE to estimate from`,
      );
  }
  checkTarget(name("target"), o.target);
  checkOutputDir(name("out"), o.out);
  return parsed;
}

async function run({ options: o, name }: Plan): Promise<void> {
  await guardOutput({
    flag: name("out"),
    path: o.out,
    kind: "dir",
    overwrite: o.overwrite,
    inputs: [
      [name("model"), o.model],
      [name("grads"), o.grads],
      [name("data"), o.data],
    ],
  });
  const engine = await openEngine(o);
  try {
    const model = await openModel(
      o.model,
      engine,
      { weightDtype: o.weightDtype, offloadFrozen: o.offloadFrozen },
      { gradient_checkpointing: o.gradientCheckpointing, attention: o.attention },
    );
    const settings = {
      target: o.target,
      maxGradMemory:
        needsGradients(o.method) && o.grads === undefined ? o.maxGradMemory : undefined,
      quiet: o.quiet,
    };
    const targets = prepareTargets(
      model,
      settings,
      name("maxGradMemory"),
      o.method === "lora-ga" ? { value: o.r, name: name("r") } : undefined,
    );
    if (needsGradients(o.method)) checkGradientHostMemory(name("target"), targets);
    const config = loraConfigFor(model, o);
    const data = o.data;
    let source: GradientSource | null = null;
    if (needsGradients(o.method) && o.grads !== undefined) {
      source = { kind: "cache", file: o.grads };
    } else if (needsGradients(o.method) && data !== undefined) {
      source = {
        kind: "estimate",
        settings,
        targets,
        batches: async () =>
          loadBatches(
            data,
            {
              batchSize: o.batchSize,
              maxLength: o.maxLength,
              batches: o.batches,
              ...(o.shuffle && { shuffleSeed: o.seed }),
            },
            await openTokenizerIfAny(o.model),
            exampleOptionsFor(model, o.trainOnPrompt),
          ),
      };
    }
    const { peft, initSeconds, firstBatch } = await estimateThenInit(model, config, source, o);
    if (o.quantize !== undefined) {
      // two-stage flow: the OFFSET base W' = W - s B0 A0 is what a quantized training run holds
      await quantizeAndReport(model, o.quantize, firstBatch ?? probeBatch(model), o.quiet);
    }
    await peft.save(o.out);
    if (!o.quiet) {
      process.stderr.write(
        `initialised ${peft.adapters.size} modules (${o.method}, r=${config.r}) in ${initSeconds.toFixed(2)}s; ` +
          `wrote ${o.out}\n`,
      );
    }
    peft.dispose();
    model.dispose();
  } finally {
    await engine.dispose();
  }
}

export const registerInit = commandOf({
  name: "init",
  description: "initialise a LoRA adapter (LoRA-GA, PiSSA, OLoRA, LoRA-One, default) and save it",
  schema: SCHEMA,
  helpAfter:
    "\nExamples:\n" +
    "  loraga init --model ./tiny-llama --grads grads.safetensors --r 8 --alpha 16 --out init-adapter\n" +
    "  loraga init --model ./tiny-llama --data train.jsonl --batches 8 --method lora-ga --variant peft \\\n" +
    "    --target q_proj,v_proj --r 8 --out init-adapter\n" +
    "  loraga init --model ./tiny-llama --method pissa --r 8 --out pissa-adapter\n",
  check,
  // a run stopped before writing anything leaves no empty --out behind
  run: (plan) => removingCreatedDirs(plan.options.out, () => run(plan)),
});
