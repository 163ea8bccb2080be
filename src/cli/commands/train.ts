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
import { type Command, Option } from "commander";
import { collate, groupIntoBatches } from "../../data/batches.js";
import { loadExamples } from "../../data/dataset.js";
import type { TokenExample } from "../../data/examples.js";
import { keepLearnableRows } from "../../data/learnable.js";
import { writeFileAtomic } from "../../io/atomic-write.js";
import type { Batch, CausalLM } from "../../models/model.js";
import { saveModel } from "../../models/save.js";
import type { QuantizeKind } from "../../models/weights.js";
import { saveAdapter } from "../../peft/adapter-io.js";
import { estimateGradient } from "../../peft/estimate.js";
import type { GradientMap } from "../../peft/gradient-cache.js";
import { getPeftModel, loadPeftModel, type PeftModel } from "../../peft/peft-model.js";
import { selectTargets } from "../../peft/targets.js";
import { ShuffledBatches, splitHeldOut } from "../../train/data-order.js";
import { evaluateLoss } from "../../train/metrics.js";
import { SCHEDULE_NAMES } from "../../train/schedule.js";
import { fullFineTuning, loraTrainableOf, type Trainable, train } from "../../train/trainer.js";
import {
  addEngineOptions,
  intFlag,
  listFlag,
  numberFlag,
  openEngine,
  openModel,
  openTokenizerIfAny,
} from "../common.js";
import { resolveOptions, UsageError } from "../config-file.js";
import { InterruptedError, watchInterrupts } from "../interrupt.js";
import { addLoraFlags, loraConfigFromFlags, needsGradients } from "../lora-flags.js";
import { claimRunDir } from "../output-guard.js";
import { createProgress, type Progress } from "../progress.js";
import { quantizeAndReport, weightStorageFlags } from "./estimate.js";

export function registerTrain(program: Command): void {
  const command = program
    .command("train")
    .description(
      "train a LoRA adapter (LoRA-GA, PiSSA, ..., or an existing adapter) or the full model",
    )
    .requiredOption("--model <dir>", "Hugging Face model directory")
    .requiredOption(
      "--data <file>",
      "training JSONL: {text} | {prompt, completion} | {messages} | {input_ids[, labels]}",
    )
    .requiredOption("--out <dir>", "run directory (adapters, logs, checkpoints)")
    .option("--eval-data <file>", "held-out JSONL for evaluation")
    .option(
      "--eval-split <n>",
      "hold out N training rows for evaluation instead",
      intFlag("--eval-split", 0),
      0,
    )
    .option(
      "--eval-every <n>",
      "evaluate every N steps (default: at the end only)",
      intFlag("--eval-every"),
    )
    .option(
      "--early-stopping <n>",
      "stop after N evaluations without improvement",
      intFlag("--early-stopping"),
    )
    .option("--init-adapter <dir>", "start from this adapter instead of initialising one")
    .option(
      "--offset-base",
      "subtract s*B*A of --init-adapter from the base first (LoRA-GA/PiSSA adapters made elsewhere)",
      false,
    )
    .option("--target <list>", "target modules (names, regex, or all-linear)", "all-linear")
    .option(
      "--ga-batches <n>",
      "LoRA-GA: batches for gradient estimation",
      intFlag("--ga-batches"),
      8,
    )
    .addOption(
      new Option("--optimizer <name>", "optimizer").choices(["adamw", "sgd"]).default("adamw"),
    )
    .option("--lr <x>", "peak learning rate", numberFlag("--lr"), 1e-4)
    .option("--weight-decay <x>", "decoupled weight decay", numberFlag("--weight-decay"), 0)
    .option("--betas <a,b>", "AdamW betas", "0.9,0.999")
    .option("--eps <x>", "AdamW eps", numberFlag("--eps"), 1e-8)
    .option("--momentum <x>", "SGD momentum", numberFlag("--momentum"), 0)
    .addOption(
      new Option("--schedule <name>", "learning-rate schedule")
        .choices([...SCHEDULE_NAMES])
        .default("linear"),
    )
    .option("--warmup <n>", "warmup steps", intFlag("--warmup", 0), 0)
    .option("--steps <n>", "optimizer steps", intFlag("--steps"), 100)
    .option("--batch-size <n>", "rows per micro-batch", intFlag("--batch-size"), 4)
    .option("--grad-accum <n>", "micro-batches per step", intFlag("--grad-accum"), 1)
    .option("--max-length <n>", "truncate rows to this many tokens", intFlag("--max-length"), 512)
    .option("--clip <x>", "max global gradient norm (0 = off)", numberFlag("--clip"), 1)
    .option("--no-shuffle", "keep file order (default: shuffle every epoch)")
    .option("--train-on-prompt", "learn prompt / user tokens too", false)
    .option("--log <file>", "JSONL log (default: OUT/train.jsonl)")
    .option(
      "--checkpoint-every <n>",
      "write an exact-resume checkpoint every N steps",
      intFlag("--checkpoint-every"),
    )
    .option(
      "--keep-checkpoints <n>",
      "keep only the newest N checkpoints",
      intFlag("--keep-checkpoints"),
    )
    .option("--resume", "continue the run in --out from its newest checkpoint", false)
    .option("--name <name>", "run name in run.json (default: the method)")
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
        "QLoRA-style: quantize the frozen linear weights after the init (int8 or nf4)",
      ).choices(["int8", "nf4"]),
    );
  addLoraFlags(command, ["full"]);
  addEngineOptions(command);
  command.addHelpText(
    "after",
    "\nExamples:\n" +
      "  loraga train --model ./tiny-llama --data train.jsonl --method lora-ga --r 8 --lr 2e-4 --steps 200 --out runs/lora-ga\n" +
      "  loraga train --model ./tiny-llama --data train.jsonl --method lora --eval-split 64 --eval-every 20 --out runs/lora\n" +
      "  loraga train --model ./tiny-llama --data train.jsonl --init-adapter runs/init --out runs/from-init\n" +
      "  loraga train ... --checkpoint-every 50 --out runs/x      # later: the same command with --resume\n",
  );
  command.action(async () => {
    await runTrain(resolveOptions(command));
  });
}

interface Prepared {
  trainable: Trainable;
  peft: PeftModel | null;
  estimateSeconds: number;
  initSeconds: number;
}

async function runTrain(options: Record<string, unknown>): Promise<void> {
  const out = options.out as string;
  const full = options.method === "full";
  const quiet = options.quiet === true;
  const resume = options.resume === true;
  const betas = listFlag(options.betas as string).map(Number);
  if (betas.length !== 2 || betas.some((b) => !(b >= 0 && b < 1))) {
    throw new UsageError(`--betas must be two numbers in [0, 1), got "${options.betas as string}"`);
  }
  const logFile = (options.log as string | undefined) ?? join(out, "train.jsonl");
  const claim = await claimRunDir({
    out,
    resume,
    log: logFile,
    inputs: [
      ["--model", options.model as string],
      ["--data", options.data as string],
      ["--eval-data", options.evalData as string | undefined],
      ["--init-adapter", options.initAdapter as string | undefined],
    ],
  });
  const engine = await openEngine(options).catch(async (error) => {
    await claim.lock.release();
    throw error;
  });
  const progress = createProgress(quiet);
  const interrupts = watchInterrupts({
    onHardExit: () => progress.stop(),
    stopMessage: "stopping after the current step to save a checkpoint",
  });
  try {
    const modelDir = options.model as string;
    if (full && (options.quantize !== undefined || options.weightDtype !== "f32")) {
      throw new UsageError(
        "--method full trains every weight in f32: --weight-dtype and --quantize apply to LoRA methods",
      );
    }
    const model = await openModel(modelDir, engine, weightStorageFlags(options));
    const tokenizer = await openTokenizerIfAny(modelDir);
    const vocabSize =
      (model.config as { vocab_size?: number }).vocab_size ?? Number.MAX_SAFE_INTEGER;
    const exampleOptions = { vocabSize, trainOnPrompt: options.trainOnPrompt === true };
    const maxLength = options.maxLength as number;
    const warn = (message: string) => process.stderr.write(`${message}\n`);
    let examples = keepLearnableRows(
      await loadExamples(options.data as string, tokenizer, exampleOptions),
      { maxLength, file: options.data as string, warn },
    );
    let evalExamples: TokenExample[] = [];
    if (options.evalData !== undefined) {
      evalExamples = keepLearnableRows(
        await loadExamples(options.evalData as string, tokenizer, exampleOptions),
        { maxLength, file: options.evalData as string, warn },
      );
    } else if ((options.evalSplit as number) > 0) {
      const split = splitHeldOut(examples, options.evalSplit as number, options.seed as number);
      examples = split.train;
      evalExamples = split.heldOut;
    }
    const padTokenId = tokenizer?.padTokenId ?? tokenizer?.eosTokenId ?? 0;
    const batchSize = options.batchSize as number;
    const evalBatches: Batch[] = groupIntoBatches(evalExamples, batchSize).map((g) =>
      collate(g, { maxLength, padTokenId }),
    );

    const prepared = await prepare(
      model,
      examples,
      { ...options, maxLength, batchSize, padTokenId },
      resume,
      progress,
    );
    if (options.quantize !== undefined) {
      // two-stage flow (QLoRA-style): the offset base W' is what gets quantized
      quantizeAndReport(
        model,
        options.quantize as QuantizeKind,
        evalBatches[0] ?? data0(examples, maxLength, padTokenId),
        quiet,
      );
    }
    const data = new ShuffledBatches(examples, {
      batchSize,
      maxLength,
      padTokenId,
      seed: options.seed as number,
      shuffle: options.shuffle !== false,
    });
    const steps = options.steps as number;
    const clip = options.clip as number;
    progress.start("train", steps);
    interrupts.graceful = true;
    const checkpointDir = join(out, "checkpoints");
    const result = await train(model, prepared.trainable, data, {
      steps,
      lr: options.lr as number,
      optimizer:
        options.optimizer === "sgd"
          ? {
              kind: "sgd",
              momentum: options.momentum as number,
              weightDecay: options.weightDecay as number,
            }
          : {
              kind: "adamw",
              beta1: betas[0],
              beta2: betas[1],
              eps: options.eps as number,
              weightDecay: options.weightDecay as number,
            },
      schedule: options.schedule as "linear",
      warmupSteps: options.warmup as number,
      gradAccum: options.gradAccum as number,
      clipNorm: clip > 0 ? clip : null,
      ...(options.evalEvery !== undefined &&
        evalBatches.length > 0 && { evalEvery: options.evalEvery as number, evalBatches }),
      ...(options.earlyStopping !== undefined && {
        earlyStopping: { patience: options.earlyStopping as number },
      }),
      logFile,
      log: (record) => {
        if (record.type === "train")
          progress.update(record.step, `loss ${(record.loss as number).toFixed(4)}`);
      },
      checkpointDir,
      ...(options.checkpointEvery !== undefined && {
        checkpointEvery: options.checkpointEvery as number,
      }),
      ...(options.keepCheckpoints !== undefined && {
        keepCheckpoints: options.keepCheckpoints as number,
      }),
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
      await saveOutputs(model, prepared, out, modelDir);
      throw new InterruptedError(
        interrupts.received ?? "SIGINT",
        interruptedMessage(out, result.steps, steps, prepared.trainable.kind),
      );
    }

    let finalEval = result.lastEval;
    if (evalBatches.length > 0 && (finalEval === null || options.evalEvery === undefined)) {
      const ev = evaluateLoss(model, evalBatches);
      finalEval = { loss: ev.loss, perplexity: ev.perplexity };
    }
    await saveOutputs(model, prepared, out, modelDir);
    // a resumed run's init happened in the first process: its timings come from the checkpoint
    const timings = result.resumedNotes ?? {
      estimate_seconds: prepared.estimateSeconds,
      svd_seconds: prepared.initSeconds,
      init_seconds: prepared.estimateSeconds + prepared.initSeconds,
    };
    const lora = prepared.peft?.config ?? null; // the adapter's own r/alpha (--init-adapter too)
    const summary = {
      name: (options.name as string | undefined) ?? (options.method as string),
      method: options.method as string,
      model: modelDir,
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
    if (!quiet) {
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

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}

/** The first training batch, to measure the logits error of quantizing (no eval data given). */
function data0(examples: readonly TokenExample[], maxLength: number, padTokenId: number): Batch {
  return collate(examples.slice(0, 4), { maxLength, padTokenId });
}

/** Attaches what trains: adapters (initialised, loaded, or rebuilt for --resume) or every weight. */
async function prepare(
  model: CausalLM,
  examples: readonly TokenExample[],
  options: Record<string, unknown>,
  resume: boolean,
  progress: Progress,
): Promise<Prepared> {
  const seed = options.seed as number;
  const out = options.out as string;
  if (options.method === "full") {
    return { trainable: fullFineTuning(model), peft: null, estimateSeconds: 0, initSeconds: 0 };
  }
  const initDir = join(out, "init-adapter");
  let peft: PeftModel;
  let estimateSeconds = 0;
  let initSeconds = 0;
  if (resume) {
    peft = await loadPeftModel(model, initDir, { trainable: true, seed });
  } else if (options.initAdapter !== undefined) {
    peft = await loadPeftModel(model, options.initAdapter as string, {
      trainable: true,
      seed,
      offsetBase: options.offsetBase === true,
    });
    await peft.save(initDir);
  } else {
    const config = loraConfigFromFlags(model, options);
    let namedGrad: GradientMap | undefined;
    if (needsGradients(options)) {
      const t0 = performance.now();
      // estimation batches: the first rows of the (unshuffled) training data, as the official scripts do
      const batches = groupIntoBatches(examples, options.batchSize as number)
        .slice(0, options.gaBatches as number)
        .map((g) =>
          collate(g, {
            maxLength: options.maxLength as number,
            padTokenId: options.padTokenId as number,
          }),
        );
      progress.start("estimate", batches.length);
      const targets = selectTargets(config, model.linears()).map((l) => l.path);
      namedGrad = (
        await estimateGradient(model, batches, {
          targets,
          onProgress: ({ done, loss }) => progress.update(done, `loss ${loss.toFixed(4)}`),
        })
      ).grads;
      progress.stop();
      estimateSeconds = (performance.now() - t0) / 1000;
    }
    const t1 = performance.now();
    peft = getPeftModel(model, config, {
      seed,
      svd: { method: options.svd as "lowrank" | "exact" },
      ...(namedGrad !== undefined && { namedGrad }),
    });
    initSeconds = (performance.now() - t1) / 1000;
    await peft.save(initDir);
  }
  const adapters = new Map(peft.adapters);
  return {
    trainable: loraTrainableOf(model, peft.config, adapters, peft.rng),
    peft,
    estimateSeconds,
    initSeconds,
  };
}

async function saveOutputs(
  model: CausalLM,
  prepared: Prepared,
  out: string,
  modelDir: string,
): Promise<void> {
  if (prepared.trainable.kind === "full") {
    await rm(join(out, "model"), { recursive: true, force: true });
    await saveModel(model, join(out, "model"), { sourceDir: modelDir });
    return;
  }
  const peft = prepared.peft as PeftModel;
  await saveAdapter(join(out, "adapter"), peft.config, prepared.trainable.weights(), {
    init: { ...peft.initRecord, trained: true },
  });
  if (peft.initial !== null) await peft.save(join(out, "adapter-converted"), { convert: true });
}
