// `loraga estimate`: LoRA-GA gradient estimation over the first batches of a JSONL file, written
// as a gradient cache (.safetensors keyed by module path) that `loraga init --grads` reads.

import { saveGradients } from "../../peft/gradient-cache.js";
import { commandOf } from "../command.js";
import { loadBatches } from "../options/data.js";
import { ENGINE_FLAGS, openEngine } from "../options/engine.js";
import { ESTIMATE_FLAGS } from "../options/estimation.js";
import { checkTarget } from "../options/lora.js";
import {
  checkInputFile,
  checkModelDir,
  modelFlag,
  openModel,
  openTokenizerIfAny,
} from "../options/model.js";
import { checkOutputFile, outFlag, overwriteFlag } from "../options/output.js";
import { intFlag, type Parsed, withDefault } from "../options/schema.js";
import { guardOutput } from "../output-guard.js";
import { estimateGradients, prepareTargets } from "../workflow/estimate-init.js";
import { quantizeAndReport } from "../workflow/quantize.js";

const SCHEMA = {
  model: modelFlag("Hugging Face model directory (config.json, *.safetensors)"),
  out: outFlag("<file>", "gradient cache to write (.safetensors)"),
  overwrite: overwriteFlag,
  seed: withDefault(intFlag("--seed <n>", "seed of --shuffle", 0), 0),
  ...ESTIMATE_FLAGS,
  ...ENGINE_FLAGS,
};

type Plan = Parsed<typeof SCHEMA>;

function check(parsed: Plan): Plan {
  const { options: o, name } = parsed;
  checkModelDir(name("model"), o.model);
  checkInputFile(name("data"), o.data);
  checkTarget(name("target"), o.target);
  checkOutputFile(name("out"), o.out);
  return parsed;
}

async function run({ options: o, name }: Plan): Promise<void> {
  await guardOutput({
    flag: name("out"),
    path: o.out,
    kind: "file",
    overwrite: o.overwrite,
    inputs: [
      [name("model"), o.model],
      [name("data"), o.data],
    ],
  });
  const engine = await openEngine(o);
  try {
    const model = await openModel(
      o.model,
      engine,
      { weightDtype: o.weightDtype },
      { gradient_checkpointing: o.gradientCheckpointing, attention: o.attention },
    );
    const settings = { target: o.target, maxGradMemory: o.maxGradMemory, quiet: o.quiet };
    const targets = prepareTargets(model, settings, name("maxGradMemory"));
    const batches = await loadBatches(
      o.data,
      {
        batchSize: o.batchSize,
        maxLength: o.maxLength,
        batches: o.batches,
        ...(o.shuffle && { shuffleSeed: o.seed }),
      },
      await openTokenizerIfAny(o.model),
      { vocabSize: model.vocabSize, trainOnPrompt: o.trainOnPrompt },
    );
    const result = await estimateGradients(model, batches, targets, settings);
    if (o.quantize !== undefined) quantizeAndReport(model, o.quantize, batches[0], o.quiet);
    await saveGradients(o.out, result.grads, {
      batches: String(result.batches),
      mean_loss: String(result.meanLoss),
    });
    if (!o.quiet) {
      process.stderr.write(
        `wrote ${result.grads.size} gradients (${result.batches} batches, mean loss ${result.meanLoss.toFixed(4)}) to ${o.out}\n`,
      );
    }
    model.dispose();
  } finally {
    await engine.dispose();
  }
}

export const registerEstimate = commandOf({
  name: "estimate",
  description: "estimate full weight gradients of the target modules (LoRA-GA step 1)",
  schema: SCHEMA,
  helpAfter:
    "\nExample:\n  loraga estimate --model ./tiny-llama --data train.jsonl --target q_proj,v_proj \\\n" +
    "    --batch-size 2 --max-length 256 --batches 8 --out grads.safetensors\n",
  check,
  run,
});
