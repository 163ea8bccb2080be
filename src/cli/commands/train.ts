// `loraga train`: LoRA training (with any init: LoRA-GA, default, gaussian, PiSSA, OLoRA, LoRA-One,
// or an existing adapter) or full fine-tuning of a Hugging Face model on a JSONL file.
//
// Run directory (--out):
//   init-adapter/      the adapter as initialised (A0, B0 and how they were made) — what --resume
//                      and conversion rebuild the offset base W' = W - s B0 A0 from
//   adapter/           the trained adapter, for the base the run trained on
//   adapter-converted/ (inits that move the base) a plain rank-2r LoRA for the ORIGINAL base
//   model/             (full fine-tuning) the trained model as a Hugging Face checkpoint
//   train.jsonl        one JSON record per step and per evaluation (src/train/trainer.ts)
//   run.json           summary read by `loraga compare` (src/report/run-log.ts)
//   checkpoints/       with --checkpoint-every, or on Ctrl-C: exact-resume checkpoints (--resume)
//   .loraga.lock       while a process trains here (src/train/run-lock.ts)
// A fresh run needs a new or empty --out; --resume continues an unfinished one (output-guard.ts).

import { rm } from "node:fs/promises";
import { join } from "node:path";
import { loadExamples } from "../../data/dataset.js";
import type { TokenExample } from "../../data/examples.js";
import { keepLearnableRows } from "../../data/learnable.js";
import { writeFileAtomic } from "../../io/atomic-write.js";
import type { Batch, CausalLM } from "../../models/model.js";
import { saveModel } from "../../models/save.js";
import { loadPeftModel, type PeftModel } from "../../peft/peft-model.js";
import { ShuffledBatches, splitHeldOut } from "../../train/data-order.js";
import { evaluateLoss } from "../../train/metrics.js";
import { fullFineTuning, type Trainable } from "../../train/trainable.js";
import { train } from "../../train/trainer.js";
import { commandOf } from "../command.js";
import { UsageError } from "../errors.js";
import { InterruptedError, watchInterrupts } from "../interrupt.js";
import {
  batchesOf,
  dataFlag,
  exampleOptionsFor,
  maxLengthFlag,
  padTokenIdOf,
  trainOnPromptFlag,
} from "../options/data.js";
import { ENGINE_FLAGS, openEngine } from "../options/engine.js";
import { maxGradMemoryFlag } from "../options/estimation.js";
import { checkTarget, loraConfigFor, needsGradients, TRAIN_LORA_FLAGS } from "../options/lora.js";
import {
  attentionFlag,
  checkInputDir,
  checkInputFile,
  checkModelDir,
  gradientCheckpointingFlag,
  modelFlag,
  offloadFrozenFlag,
  openModel,
  openTokenizerIfAny,
  quantizeFlag,
  weightDtypeFlag,
} from "../options/model.js";
import { checkOutputDir, outFlag } from "../options/output.js";
import { type Parsed, required, stringFlag, switchFlag } from "../options/schema.js";
import {
  clipFlag,
  EVAL_FLAGS,
  gradAccumFlag,
  noShuffleFlag,
  OPTIMIZER_FLAGS,
  RUN_FLAGS,
  TRAIN_DATA_FLAGS,
} from "../options/training.js";
import { claimRunDir, removingCreatedDirs } from "../output-guard.js";
import { createProgress } from "../progress.js";
import {
  checkGradientHostMemory,
  estimateThenInit,
  type GradientSource,
  prepareTargets,
} from "../workflow/estimate-init.js";
import { quantizeAndReport } from "../workflow/quantize.js";

const SCHEMA = {
  model: modelFlag(),
  data: required(
    dataFlag("training JSONL: {text} | {prompt, completion} | {messages} | {input_ids[, labels]}"),
  ),
  out: outFlag("<dir>", "run directory (adapters, logs, checkpoints)"),
  ...EVAL_FLAGS,
  initAdapter: stringFlag(
    "--init-adapter <dir>",
    "start from this adapter instead of initialising one",
  ),
  offsetBase: switchFlag(
    "--offset-base",
    "subtract s*B*A of --init-adapter from the base first (LoRA-GA/PiSSA adapters made elsewhere)",
  ),
  target: TRAIN_DATA_FLAGS.target,
  gaBatches: TRAIN_DATA_FLAGS.gaBatches,
  maxGradMemory: maxGradMemoryFlag,
  ...OPTIMIZER_FLAGS,
  batchSize: TRAIN_DATA_FLAGS.batchSize,
  gradAccum: gradAccumFlag,
  maxLength: maxLengthFlag,
  clip: clipFlag,
  shuffle: noShuffleFlag,
  trainOnPrompt: trainOnPromptFlag("learn prompt / user tokens too"),
  ...RUN_FLAGS,
  gradientCheckpointing: gradientCheckpointingFlag,
  attention: attentionFlag,
  weightDtype: weightDtypeFlag,
  offloadFrozen: offloadFrozenFlag,
  quantize: quantizeFlag(
    "QLoRA-style: quantize the frozen linear weights after the init (int8 or nf4)",
  ),
  ...TRAIN_LORA_FLAGS,
  ...ENGINE_FLAGS,
};

type Plan = Parsed<typeof SCHEMA>;

function check(parsed: Plan): Plan {
  const { options: o, name } = parsed;
  const out = o.out;
  checkModelDir(name("model"), o.model);
  checkInputFile(name("data"), o.data);
  if (o.evalData !== undefined) checkInputFile(name("evalData"), o.evalData);
  if (o.initAdapter !== undefined) checkInputDir(name("initAdapter"), o.initAdapter);
  checkTarget(name("target"), o.target);
  // the run directory's state (finished, resumable, in use) is claimRunDir's, at the start of run
  checkOutputDir(name("out"), out);
  if (o.method === "full" && (o.quantize !== undefined || o.weightDtype !== "f32")) {
    throw new UsageError(
      "--method full trains every weight in f32: --weight-dtype and --quantize apply to LoRA methods",
    );
  }
  if (o.method === "full" && o.offloadFrozen === "on") {
    throw new UsageError(
      "--method full trains every weight on the engine heap: --offload-frozen applies to LoRA methods",
    );
  }
  const evaluates = o.evalData !== undefined || o.evalSplit > 0;
  if (o.earlyStopping !== undefined && (o.evalEvery === undefined || !evaluates)) {
    throw new UsageError(
      `${name("earlyStopping")} needs --eval-every and held-out data (--eval-data or --eval-split)`,
    );
  }
  return parsed;
}

interface Prepared {
  /** The PeftModel (LoRA methods) or the full fine-tuning trainable. */
  trainable: Trainable;
  peft: PeftModel | null;
  estimateSeconds: number;
  initSeconds: number;
}

/** The training and held-out rows; too few rows for a batch is a usage error naming the flags. */
async function loadRows(
  { options: o, name }: Plan,
  model: CausalLM,
  tokenizer: Awaited<ReturnType<typeof openTokenizerIfAny>>,
): Promise<{ examples: TokenExample[]; evalExamples: TokenExample[] }> {
  const exampleOptions = exampleOptionsFor(model, o.trainOnPrompt);
  const warn = (message: string) => process.stderr.write(`${message}\n`);
  const learnable = async (file: string) =>
    keepLearnableRows(await loadExamples(file, tokenizer, exampleOptions), {
      maxLength: o.maxLength,
      file,
      warn,
    });
  let examples = await learnable(o.data);
  let evalExamples: TokenExample[] = [];
  if (o.evalData !== undefined) {
    evalExamples = await learnable(o.evalData);
  } else if (o.evalSplit > 0) {
    if (o.evalSplit >= examples.length) {
      throw new UsageError(
        `${name("evalSplit")} ${o.evalSplit} must be below the ${examples.length} rows of ${o.data}`,
      );
    }
    const split = splitHeldOut(examples, o.evalSplit, o.seed);
    examples = split.train;
    evalExamples = split.heldOut;
  }
  if (examples.length < o.batchSize) {
    const held =
      o.evalData === undefined && o.evalSplit > 0
        ? ` after ${name("evalSplit")} ${o.evalSplit}`
        : "";
    throw new UsageError(
      `${o.data}: ${examples.length} training rows${held} cannot fill one batch of ${name("batchSize")} ${o.batchSize}`,
    );
  }
  return { examples, evalExamples };
}

async function run(plan: Plan): Promise<void> {
  const o = plan.options;
  const out = o.out;
  const logFile = o.log ?? join(out, "train.jsonl");
  const claim = await claimRunDir({
    out,
    resume: o.resume,
    log: logFile,
    inputs: [
      ["--model", o.model],
      ["--data", o.data],
      ["--eval-data", o.evalData],
      ["--init-adapter", o.initAdapter],
    ],
  });
  const engine = await openEngine(o).catch(async (error: unknown) => {
    await claim.lock.release();
    throw error;
  });
  const progress = createProgress(o.quiet);
  // Ctrl-C / SIGTERM: graceful (save, then InterruptedError) only while train() runs
  const interrupts = watchInterrupts({
    onHardExit: () => progress.stop(),
    stopMessage: "stopping after the current step to save a checkpoint",
  });
  try {
    const model = await openModel(
      o.model,
      engine,
      {
        weightDtype: o.weightDtype,
        offloadFrozen: o.method === "full" ? "off" : o.offloadFrozen,
      },
      { gradient_checkpointing: o.gradientCheckpointing, attention: o.attention },
    );
    const tokenizer = await openTokenizerIfAny(o.model);
    const { examples, evalExamples } = await loadRows(plan, model, tokenizer);
    const padTokenId = padTokenIdOf(tokenizer);
    const shape = { batchSize: o.batchSize, maxLength: o.maxLength };
    const evalBatches: Batch[] = batchesOf(evalExamples, shape, padTokenId);

    const prepared = await prepare(model, examples, plan, padTokenId);
    if (o.quantize !== undefined) {
      // two-stage flow (QLoRA-style): the offset base W' is what gets quantized
      await quantizeAndReport(
        model,
        o.quantize,
        evalBatches[0] ??
          batchesOf(examples, { batchSize: 4, maxLength: o.maxLength, batches: 1 }, padTokenId)[0],
        o.quiet,
      );
    }
    const data = new ShuffledBatches(examples, {
      batchSize: o.batchSize,
      maxLength: o.maxLength,
      padTokenId,
      seed: o.seed,
      shuffle: o.shuffle,
    });
    progress.start("train", o.steps);
    interrupts.graceful = true;
    const result = await train(prepared.trainable, data, {
      steps: o.steps,
      lr: o.lr,
      optimizer:
        o.optimizer === "sgd"
          ? { kind: "sgd", momentum: o.momentum, weightDecay: o.weightDecay }
          : {
              kind: "adamw",
              beta1: o.betas[0],
              beta2: o.betas[1],
              eps: o.eps,
              weightDecay: o.weightDecay,
            },
      schedule: o.schedule,
      warmupSteps: o.warmup,
      gradAccum: o.gradAccum,
      clipNorm: o.clip > 0 ? o.clip : null,
      ...(o.evalEvery !== undefined &&
        evalBatches.length > 0 && { evalEvery: o.evalEvery, evalBatches }),
      ...(o.earlyStopping !== undefined && { earlyStopping: { patience: o.earlyStopping } }),
      logFile,
      log: (record) => {
        if (record.type === "train" && typeof record.loss === "number")
          progress.update(record.step, `loss ${record.loss.toFixed(4)}`);
      },
      checkpointDir: join(out, "checkpoints"),
      ...(o.checkpointEvery !== undefined && { checkpointEvery: o.checkpointEvery }),
      ...(o.keepCheckpoints !== undefined && { keepCheckpoints: o.keepCheckpoints }),
      ...(claim.resumeFrom !== null && { resume: claim.resumeFrom }),
      shouldStop: () => interrupts.received !== null,
      notes: {
        estimate_seconds: prepared.estimateSeconds,
        svd_seconds: prepared.initSeconds,
        init_seconds: prepared.estimateSeconds + prepared.initSeconds,
      },
    });
    interrupts.graceful = false;
    progress.stop();
    if (result.interrupted) {
      await saveOutputs(model, prepared, out, o.model);
      throw new InterruptedError(
        interrupts.received ?? "SIGINT",
        interruptedMessage(out, result.steps, o.steps, prepared.trainable.kind),
      );
    }

    let finalEval = result.lastEval;
    if (evalBatches.length > 0 && (finalEval === null || o.evalEvery === undefined)) {
      const ev = await evaluateLoss(model, evalBatches);
      finalEval = { loss: ev.loss, perplexity: ev.perplexity };
    }
    await saveOutputs(model, prepared, out, o.model);
    // a resumed run's init happened in the first process: its timings come from the checkpoint
    const timings = result.resumedNotes ?? {
      estimate_seconds: prepared.estimateSeconds,
      svd_seconds: prepared.initSeconds,
      init_seconds: prepared.estimateSeconds + prepared.initSeconds,
    };
    const lora = prepared.peft?.config ?? null; // the adapter's own r/alpha (--init-adapter too)
    const summary = {
      name: o.name ?? o.method,
      method: o.method,
      model: o.model,
      r: lora?.r ?? null,
      lora_alpha: lora?.lora_alpha ?? null,
      target_modules: lora?.target_modules ?? null,
      steps: result.steps,
      stopped_early: result.stoppedEarly,
      estimate_seconds: timings.estimate_seconds ?? null,
      svd_seconds: timings.svd_seconds ?? null,
      init_seconds: timings.init_seconds ?? null,
      final_train_loss: result.lastLoss,
      final_metrics:
        finalEval === null
          ? []
          : [
              { name: "eval_loss", value: finalEval.loss },
              { name: "perplexity", value: finalEval.perplexity },
            ],
      peak_memory: engine.heap.peakBytes,
    };
    await writeFileAtomic(join(out, "run.json"), `${JSON.stringify(summary, null, 2)}\n`);
    if (!o.quiet) {
      const evalText =
        finalEval === null
          ? ""
          : `, eval loss ${finalEval.loss.toFixed(4)} (ppl ${finalEval.perplexity.toFixed(2)})`;
      process.stderr.write(
        `trained ${result.steps} steps, last loss ${(result.lastLoss ?? Number.NaN).toFixed(4)}${evalText}; wrote ${out}\n`,
      );
    }
    prepared.trainable.dispose();
    model.dispose();
  } finally {
    interrupts.dispose();
    progress.stop();
    await engine.dispose();
    await claim.lock.release();
  }
}

/** Where an interrupted run was saved and how to continue it. */
function interruptedMessage(out: string, step: number, steps: number, kind: string): string {
  const args = process.argv.slice(2);
  const again =
    args[0] === "train"
      ? `loraga ${[...args.filter((a) => a !== "--resume"), "--resume"].map(shellQuote).join(" ")}`
      : "the same `loraga train` command with --resume";
  return (
    `interrupted at step ${step} of ${steps}: checkpoint ${join(out, "checkpoints", `checkpoint-${step}`)}, ` +
    `${kind === "full" ? "model" : "adapter"} so far in ${join(out, kind === "full" ? "model" : "adapter")}\n` +
    `  to continue: ${again}`
  );
}

/** `arg` as a POSIX shell reads it back: bare when safe, else in single quotes. */
function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}

/**
 * Attaches what trains: adapters (initialised — LoRA-GA by the shared estimate-then-init workflow
 * on the first rows of the training data, as the official scripts do —, loaded, or rebuilt for
 * --resume) or every weight. Targets and LoRA-GA's rank limit are checked before any estimation.
 */
async function prepare(
  model: CausalLM,
  examples: readonly TokenExample[],
  { options: o, name }: Plan,
  padTokenId: number,
): Promise<Prepared> {
  const seed = o.seed;
  const initDir = join(o.out, "init-adapter");
  if (o.method === "full") {
    return { trainable: fullFineTuning(model), peft: null, estimateSeconds: 0, initSeconds: 0 };
  }
  const method = o.method;
  let peft: PeftModel;
  let estimateSeconds = 0;
  let initSeconds = 0;
  if (o.resume) {
    peft = await loadPeftModel(model, initDir, { trainable: true, seed });
  } else if (o.initAdapter !== undefined) {
    peft = await loadPeftModel(model, o.initAdapter, {
      trainable: true,
      seed,
      offsetBase: o.offsetBase,
    });
    await peft.save(initDir);
  } else {
    const settings = {
      target: o.target,
      maxGradMemory: needsGradients(method) ? o.maxGradMemory : undefined,
      quiet: o.quiet,
    };
    const targets = prepareTargets(
      model,
      settings,
      name("maxGradMemory"),
      method === "lora-ga" ? { value: o.r, name: name("r") } : undefined,
    );
    if (needsGradients(method)) checkGradientHostMemory(name("target"), targets);
    const config = loraConfigFor(model, { ...o, method });
    // estimation batches: the first rows of the (unshuffled) training data
    const batchPlan = { batchSize: o.batchSize, maxLength: o.maxLength, batches: o.gaBatches };
    const source: GradientSource | null = needsGradients(method)
      ? {
          kind: "estimate",
          settings,
          targets,
          batches: async () => batchesOf(examples, batchPlan, padTokenId),
        }
      : null;
    const initialised = await estimateThenInit(model, config, source, o);
    peft = initialised.peft;
    estimateSeconds = initialised.estimateSeconds;
    initSeconds = initialised.initSeconds;
    await peft.save(initDir);
  }
  return { trainable: peft, peft, estimateSeconds, initSeconds };
}

async function saveOutputs(
  model: CausalLM,
  prepared: Prepared,
  out: string,
  modelDir: string,
): Promise<void> {
  const peft = prepared.peft;
  if (peft === null) {
    await rm(join(out, "model"), { recursive: true, force: true });
    await saveModel(model, join(out, "model"), { sourceDir: modelDir });
    return;
  }
  await peft.save(join(out, "adapter")); // trained: its record says so
  if (peft.initial !== null) await peft.save(join(out, "adapter-converted"), { convert: true });
}

export const registerTrain = commandOf({
  name: "train",
  description:
    "train a LoRA adapter (LoRA-GA, PiSSA, ..., or an existing adapter) or the full model",
  schema: SCHEMA,
  helpAfter:
    "\nExamples:\n" +
    "  loraga train --model ./tiny-llama --data train.jsonl --method lora-ga --r 8 --lr 2e-4 --steps 200 --out runs/lora-ga\n" +
    "  loraga train --model ./tiny-llama --data train.jsonl --method lora --eval-split 64 --eval-every 20 --out runs/lora\n" +
    "  loraga train --model ./tiny-llama --data train.jsonl --init-adapter runs/init --out runs/from-init\n" +
    "  loraga train ... --checkpoint-every 50 --out runs/x      # later: the same command with --resume\n",
  check,
  // a run stopped before writing anything leaves no empty --out behind
  run: (plan) => removingCreatedDirs(plan.options.out, () => run(plan)),
});
