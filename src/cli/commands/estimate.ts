// `loraga estimate`: LoRA-GA gradient estimation over the first batches of a JSONL file, written
// as a gradient cache (.safetensors keyed by module path) that `loraga init --grads` reads. With
// --shard i/N: only share i of those batches, written as a partial sum (peft/gradient-shards.ts)
// that `loraga reduce` combines with the other N - 1 into the same gradient cache.

import type { TokenBatch } from "../../data/batches.js";
import type { LinearInfo } from "../../models/linear.js";
import type { CausalLM } from "../../models/model.js";
import { saveGradients } from "../../peft/gradient-cache.js";
import { savePartial, shardRange } from "../../peft/gradient-shards.js";
import { commandOf } from "../command.js";
import { UsageError } from "../errors.js";
import { exampleOptionsFor, loadBatches } from "../options/data.js";
import { ENGINE_FLAGS, openEngine } from "../options/engine.js";
import { ESTIMATE_FLAGS, shardFlag } from "../options/estimation.js";
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
import {
  accumulateShard,
  checkGradientHostMemory,
  type EstimationSettings,
  estimateGradients,
  prepareTargets,
} from "../workflow/estimate-init.js";
import { quantizeAndReport } from "../workflow/quantize.js";
import { batchesFingerprint, modelFingerprint } from "../workflow/shards.js";

const SCHEMA = {
  model: modelFlag("Hugging Face model directory (config.json, *.safetensors)"),
  out: outFlag("<file>", "gradient cache to write (.safetensors)"),
  overwrite: overwriteFlag,
  seed: withDefault(intFlag("--seed <n>", "seed of --shuffle", 0), 0),
  ...ESTIMATE_FLAGS,
  shard: shardFlag,
  ...ENGINE_FLAGS,
};

type Plan = Parsed<typeof SCHEMA>;

function check(parsed: Plan): Plan {
  const { options: o, name } = parsed;
  checkModelDir(name("model"), o.model);
  checkInputFile(name("data"), o.data);
  checkTarget(name("target"), o.target);
  checkOutputFile(name("out"), o.out);
  if (o.shard !== undefined && o.shard.count > o.batches) {
    throw new UsageError(
      `${name("shard")} ${o.shard.index}/${o.shard.count}: ${o.shard.count} shards of ${o.batches} batches (--batches) leave some empty; use at most ${o.batches}`,
    );
  }
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
      { weightDtype: o.weightDtype, offloadFrozen: o.offloadFrozen },
      { gradient_checkpointing: o.gradientCheckpointing, attention: o.attention },
    );
    const settings = { target: o.target, maxGradMemory: o.maxGradMemory, quiet: o.quiet };
    const targets = prepareTargets(model, settings, name("maxGradMemory"));
    checkGradientHostMemory(name("target"), targets);
    const batches = await loadBatches(
      o.data,
      {
        batchSize: o.batchSize,
        maxLength: o.maxLength,
        batches: o.batches,
        ...(o.shuffle && { shuffleSeed: o.seed }),
      },
      await openTokenizerIfAny(o.model),
      exampleOptionsFor(model, o.trainOnPrompt),
    );
    if (o.shard === undefined) {
      const result = await estimateGradients(model, batches, targets, settings);
      if (o.quantize !== undefined) await quantizeAndReport(model, o.quantize, batches[0], o.quiet);
      await saveGradients(o.out, result.grads, {
        batches: String(result.batches),
        mean_loss: String(result.meanLoss),
      });
      if (!o.quiet) {
        process.stderr.write(
          `wrote ${result.grads.size} gradients (${result.batches} batches, mean loss ${result.meanLoss.toFixed(4)}) to ${o.out}\n`,
        );
      }
    } else {
      const shard = { spec: o.shard, name: name("shard"), targets, settings };
      await estimateShard(model, batches, shard, o);
    }
    model.dispose();
  } finally {
    await engine.dispose();
  }
}

/** --shard: the share's sums of `batches` (all of a single run's), written as a partial file. */
async function estimateShard(
  model: CausalLM,
  batches: readonly TokenBatch[],
  {
    spec,
    name,
    targets,
    settings,
  }: {
    spec: { index: number; count: number };
    name: string;
    targets: readonly LinearInfo[];
    settings: EstimationSettings;
  },
  o: Plan["options"],
): Promise<void> {
  const label = `${spec.index}/${spec.count}`;
  if (spec.count > batches.length) {
    throw new UsageError(
      `${name} ${label}: the data gives only ${batches.length} batches; use at most ${batches.length} shards`,
    );
  }
  const { start, end } = shardRange(batches.length, spec);
  const origin = {
    model: await modelFingerprint(o.model),
    data: batchesFingerprint(batches),
    weightDtype: o.weightDtype,
  };
  const mine = batches.slice(start, end);
  const sums = await accumulateShard(model, mine, targets, settings);
  if (o.quantize !== undefined) await quantizeAndReport(model, o.quantize, mine[0], o.quiet);
  await savePartial(o.out, sums, spec, batches.length, origin);
  if (!o.quiet) {
    process.stderr.write(
      `wrote partial sums of ${sums.sums.size} gradients (shard ${label}: batches ${start}..${end - 1} of ${batches.length}) to ${o.out}\n`,
    );
  }
}

export const registerEstimate = commandOf({
  name: "estimate",
  description: "estimate full weight gradients of the target modules (LoRA-GA step 1)",
  schema: SCHEMA,
  helpAfter:
    "\nExample:\n  loraga estimate --model ./tiny-llama --data train.jsonl --target q_proj,v_proj \\\n" +
    "    --batch-size 2 --max-length 256 --batches 8 --out grads.safetensors\n" +
    "Sharded (here 4 processes; see `loraga reduce --help`):\n" +
    "  for i in 0 1 2 3; do loraga estimate ... --batches 8 --shard $i/4 --out part$i.safetensors & done; wait\n" +
    "  loraga reduce part0.safetensors part1.safetensors part2.safetensors part3.safetensors --out grads.safetensors\n",
  check,
  run,
});
