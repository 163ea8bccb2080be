// One fine-tuning run in the worker, step for step what `loraga train` does with the same flags
// (src/cli/commands/train.ts: load, keep the learnable rows, estimate on the first batches and
// init, train on seeded shuffled batches with AdamW, save the adapters), then the eval loss that
// `loraga eval` reports for the saved adapter (src/cli/commands/eval-generate.ts). Paths are in
// the worker's in-memory file system (node/vfs.ts); train.jsonl is the CLI's log, record for record.

import { batchesOf, exampleOptionsFor, padTokenIdOf } from "../../src/cli/options/data.js";
import {
  checkLoraGARank,
  loraConfigFor,
  needsGradients,
  TRAIN_LORA_FLAGS,
  targetLinears,
} from "../../src/cli/options/lora.js";
import type { Flag } from "../../src/cli/options/schema.js";
import { OPTIMIZER_FLAGS } from "../../src/cli/options/training.js";
import { loadExamples } from "../../src/data/dataset.js";
import { keepLearnableRows } from "../../src/data/learnable.js";
import { loadTokenizer, TOKENIZER_FILE, type Tokenizer } from "../../src/io/tokenizer.js";
import type { Kernels } from "../../src/kernels/kernels.js";
import { type CausalLM, loadModel } from "../../src/models/model.js";
import { isEncoderDecoder } from "../../src/models/registry.js";
import { saveModel } from "../../src/models/save.js";
import { estimateGradient } from "../../src/peft/estimate.js";
import { getPeftModel, type PeftModel } from "../../src/peft/peft-model.js";
import { ShuffledBatches } from "../../src/train/data-order.js";
import { evaluateLoss } from "../../src/train/metrics.js";
import { fullFineTuning, type Trainable } from "../../src/train/trainable.js";
import { train } from "../../src/train/trainer.js";
import { existsSync } from "./node/fs.js";
import { getFile, list } from "./node/vfs.js";
import type { FromWorker, RunOutcome, SavedFile, Stage } from "./protocol.js";
import type { Method, RunSettings } from "./settings.js";

/** A flag's value when the command line does not give it (the CLI's default). */
function cliDefault<V>(flag: Flag<V, V>): V {
  if (flag.absent === "required") throw new Error(`internal: ${flag.flags} has no default`);
  return flag.absent.value;
}

export interface RunContext {
  kernels: Kernels;
  /** Model directory and data files, as paths in the in-memory file system. */
  modelDir: string;
  dataFile: string;
  evalFile: string;
  settings: RunSettings;
  report: (message: FromWorker) => void;
  shouldStop: () => boolean;
}

/** What stays loaded after a run: the fine-tuned model, for generation. */
export interface Loaded {
  model: CausalLM;
  trainable: Trainable;
  tokenizer: Tokenizer | null;
}

export async function loadTokenizerIfAny(modelDir: string): Promise<Tokenizer | null> {
  return existsSync(`${modelDir}/${TOKENIZER_FILE}`) ? loadTokenizer(modelDir) : null;
}

/** Loads the run's model (config.json and the safetensors weights) on `kernels`. */
export function loadRunModel(modelDir: string, kernels: Kernels): Promise<CausalLM> {
  return loadModel(modelDir, { kernels });
}

/**
 * Runs `method` under run directory `label`; returns its outcome and the loaded result. `loadedModel`:
 * the model already loaded on ctx.kernels by loadRunModel (else it is loaded here).
 */
export async function runMethod(
  ctx: RunContext,
  method: Method,
  label: string,
  loadedModel?: CausalLM,
): Promise<{ outcome: RunOutcome; loaded: Loaded }> {
  const s = ctx.settings;
  const stage = (stage: Stage, done = 0, total = 1) =>
    ctx.report({ type: "stage", run: label, stage, done, total });
  stage("load");
  const model = loadedModel ?? (await loadRunModel(ctx.modelDir, ctx.kernels));
  const tokenizer = await loadTokenizerIfAny(ctx.modelDir);
  const examples = keepLearnableRows(
    await loadExamples(ctx.dataFile, tokenizer, exampleOptionsFor(model, false)),
    // the dropped rows are already counted in the page's data preview
    { maxLength: s.maxLength, file: ctx.dataFile, warn: () => undefined },
  );
  if (examples.length < s.batchSize) {
    throw new Error(
      `${ctx.dataFile}: ${examples.length} training rows cannot fill one batch of --batch-size ${s.batchSize}`,
    );
  }
  const padTokenId = padTokenIdOf(tokenizer);
  const { trainable, peft } = await prepare(ctx, model, examples, method, padTokenId, stage);

  stage("train", 0, s.steps);
  const runDir = `/runs/${label}`;
  const data = new ShuffledBatches(examples, {
    batchSize: s.batchSize,
    maxLength: s.maxLength,
    padTokenId,
    seed: s.seed,
    shuffle: true,
  });
  const result = await train(trainable, data, {
    steps: s.steps,
    lr: s.lr,
    optimizer: {
      kind: "adamw",
      beta1: cliDefault(OPTIMIZER_FLAGS.betas)[0],
      beta2: cliDefault(OPTIMIZER_FLAGS.betas)[1],
      eps: cliDefault(OPTIMIZER_FLAGS.eps),
      weightDecay: cliDefault(OPTIMIZER_FLAGS.weightDecay),
    },
    schedule: s.schedule,
    warmupSteps: s.warmup,
    clipNorm: s.clip > 0 ? s.clip : null,
    logFile: `${runDir}/train.jsonl`,
    log: (record) => {
      if (record.type !== "train" || typeof record.loss !== "number") return;
      ctx.report({
        type: "step",
        run: label,
        step: record.step,
        loss: record.loss,
        tokensPerSecond: Number(record.tokens_per_s),
      });
    },
    shouldStop: ctx.shouldStop,
  });

  stage("eval");
  const evalExamples = await loadExamples(ctx.evalFile, tokenizer, {
    vocabSize: model.vocabSize,
    seq2seq: isEncoderDecoder(model.modelType),
  });
  const evalBatches = batchesOf(
    evalExamples,
    { batchSize: s.batchSize, maxLength: s.maxLength },
    padTokenId,
  );
  const evalLoss = (await evaluateLoss(model, evalBatches)).loss;

  stage("save");
  if (peft === null) {
    await saveModel(model, `${runDir}/model`, { sourceDir: ctx.modelDir });
  } else {
    await peft.save(`${runDir}/adapter`);
    if (peft.initial !== null) await peft.save(`${runDir}/adapter-converted`, { convert: true });
  }
  const outcome: RunOutcome = {
    label,
    steps: result.steps,
    losses: result.losses,
    interrupted: result.interrupted,
    evalLoss,
    evalData: ctx.evalFile,
    files: filesUnder(runDir),
  };
  return { outcome, loaded: { model, trainable, tokenizer } };
}

/** Attaches what trains, as train.ts's prepare does for a fresh run (no --init-adapter). */
async function prepare(
  ctx: RunContext,
  model: CausalLM,
  examples: Parameters<typeof batchesOf>[0],
  method: Method,
  padTokenId: number,
  stage: (stage: Stage, done?: number, total?: number) => void,
): Promise<{ trainable: Trainable; peft: PeftModel | null }> {
  const s = ctx.settings;
  if (method === "full") return { trainable: fullFineTuning(model), peft: null };
  const targets = targetLinears(model, s.target);
  if (method === "lora-ga") checkLoraGARank("--r", s.r, targets);
  const config = loraConfigFor(model, {
    ...s,
    method,
    rslora: cliDefault(TRAIN_LORA_FLAGS.rslora),
    model: ctx.modelDir,
  });
  let namedGrad: Awaited<ReturnType<typeof estimateGradient>>["grads"] | undefined;
  if (needsGradients(method)) {
    // estimation batches: the first rows of the (unshuffled) training data
    const batches = batchesOf(
      examples,
      { batchSize: s.batchSize, maxLength: s.maxLength, batches: s.gaBatches },
      padTokenId,
    );
    stage("estimate", 0, batches.length);
    const estimated = await estimateGradient(model, batches, {
      targets: targets.map((t) => t.path),
      onProgress: ({ done }) => stage("estimate", done, batches.length),
    });
    namedGrad = estimated.grads;
  }
  stage("init");
  const peft = getPeftModel(model, config, {
    seed: s.seed,
    svd: { method: s.svd },
    ...(namedGrad !== undefined && { namedGrad }),
  });
  return { trainable: peft, peft };
}

/** Every file under `dir` of the in-memory file system, with paths relative to it. */
function filesUnder(dir: string): SavedFile[] {
  const out: SavedFile[] = [];
  const walk = (at: string, rel: string) => {
    for (const name of list(at)) {
      const path = `${at}/${name}`;
      const blob = getFile(path);
      if (blob === undefined) walk(path, `${rel}${name}/`);
      else out.push({ path: `${rel}${name}`, blob });
    }
  };
  walk(dir, "");
  return out;
}
