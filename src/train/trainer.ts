// The training loop: trains a Trainable (trainable.ts) — a PeftModel (LoRA: only the adapters'
// A and B) or fullFineTuning(model) (every weight) — with exact resume.
//
// API (what `loraga train` builds on):
//   const peft = getPeftModel(model, loraConfig, { seed })  // or loadPeftModel, fullFineTuning
//   const data = new ShuffledBatches(examples, { batchSize, maxLength, padTokenId, seed })  // data-order.ts
//   const result = await train(peft, data, {
//     steps, lr, optimizer: { kind: "adamw", weightDecay, beta1, beta2, eps } | { kind: "sgd", momentum },
//     schedule: "constant" | "constant_with_warmup" | "linear" | "cosine", warmupSteps,
//     gradAccum, clipNorm, evalEvery, evalBatches, earlyStopping: { patience, minDelta },
//     log: (record) => ..., logFile: "train.jsonl",
//     checkpointEvery, checkpointDir, keepCheckpoints, resume: true | "<checkpoint dir>",
//   });
//   await peft.save(dir)                                      // export (peft/adapter-io.ts)
//   peft.dispose()                                            // detaches and frees the adapters
//
// One optimiser step (0-based index k): for each of gradAccum micro-batches,
// model.lossAndGrads(batch, { paramGrads, lossScale: 1 / gradAccum }) accumulates gradients (so
// the update uses the mean of the micro-batch mean losses, as `(loss / accum).backward()` does in
// PyTorch); the global gradient norm is measured (and clipped to clipNorm if set,
// torch.nn.utils.clip_grad_norm_); the optimiser updates with lr = schedule(k); gradients are
// zeroed. The step's loss is the mean of its micro-batch losses.
// Log records (JSON lines when logFile is set, and passed to `log`):
//   {"type":"train","step","loss","lr","grad_norm","tokens","tokens_per_s","elapsed_s","peak_memory"}
//   {"type":"eval","step","eval_loss","perplexity","eval_tokens"}
//   step counts completed optimiser steps (1-based); tokens = counted (learned) target tokens of the
//   step; tokens_per_s = non-padding input tokens per second of the step; peak_memory is
//   heap.peakBytes (engine bytes). Seeds live with their RNG owners: the PeftModel's `seed`
//   (dropout) and the BatchSource's (data order). After train() returns, training mode is off.
// Evaluation (every evalEvery steps) is forward-only (metrics.ts); LoRA dropout is off during it.
// Early stopping: stop when eval_loss has not improved by more than minDelta for `patience`
// consecutive evaluations.
// Checkpoints (checkpoint.ts): every checkpointEvery steps and at the end (when checkpointDir is
// set): weights, optimiser state, step, data position, dropout RNG, early-stopping state. resume
// continues exactly where the checkpoint was taken (bit-identical losses on the same kernels):
// the schedule is a pure function of the step; the data source and RNG are restored from their state.
// Stopping early on request (shouldStop, polled before each step: the CLI's Ctrl-C): the loop ends
// at that step boundary, a checkpoint of the completed steps is written (when checkpointDir is
// set), and the result says interrupted. Resuming truncates logFile to the checkpoint's step, so a
// resumed run's log holds each step once. A micro-batch without a counted label (every label
// -100) is an error: it would train nothing while logging loss 0.
// The caller owns the trainable and its model; train() frees neither. Memory: optimiser state is
// allocated once, before the first step (gradient buffers belong to the trainable).

import { appendFile } from "node:fs/promises";
import { dirname } from "node:path";
import { makeDirs } from "../io/output-paths.js";
import type { Batch } from "../models/model.js";
import {
  type CheckpointContent,
  latestCheckpoint,
  loadCheckpoint,
  pruneCheckpoints,
  saveCheckpoint,
} from "./checkpoint.js";
import { clipToNorm } from "./clip.js";
import type { BatchSource } from "./data-order.js";
import { evaluateLoss } from "./metrics.js";
import {
  createOptimizer,
  type OptimizerConfig,
  type TrainableParam,
  withOptimizerDefaults,
} from "./optimizer.js";
import { learningRate, type ScheduleConfig, type ScheduleName } from "./schedule.js";
import { StepReadback } from "./step-readback.js";
import { truncateTrainLog } from "./train-log.js";
import type { Trainable } from "./trainable.js";

export interface TrainLogRecord {
  type: "train" | "eval";
  step: number;
  [key: string]: unknown;
}

export interface TrainOptions {
  /** Total optimiser steps of the run (a resumed run continues up to the same total). */
  steps: number;
  lr: number;
  optimizer?: OptimizerConfig;
  schedule?: ScheduleName;
  warmupSteps?: number;
  /** Micro-batches per optimiser step (default 1). */
  gradAccum?: number;
  /** Max global gradient norm; null/undefined = no clipping. */
  clipNorm?: number | null;
  evalEvery?: number;
  evalBatches?: readonly Batch[];
  earlyStopping?: { patience: number; minDelta?: number };
  log?: (record: TrainLogRecord) => void;
  /** JSONL log file (appended). */
  logFile?: string;
  checkpointEvery?: number;
  checkpointDir?: string;
  /** Keep only the newest N checkpoints (default: all). */
  keepCheckpoints?: number;
  /** true: the newest checkpoint in checkpointDir (fresh start if none); a string: that checkpoint. */
  resume?: boolean | string;
  /** Polled before each step; true ends the run there (checkpoint written, result.interrupted). */
  shouldStop?: () => boolean;
  /**
   * Free-form record saved with every checkpoint (not compared on resume). A resumed run keeps
   * saving the notes of the checkpoint it resumed from (they describe the run's start), and
   * returns them as resumedNotes.
   */
  notes?: Record<string, unknown>;
}

export interface TrainResult {
  /** Completed optimiser steps. */
  steps: number;
  /** Loss of every step run by THIS call (index 0 = first step after a resume). */
  losses: number[];
  lastEval: { loss: number; perplexity: number } | null;
  stoppedEarly: boolean;
  /** Step the run resumed from (0 for a fresh start). */
  resumedFrom: number;
  /** Loss of the last completed step, also when it ran before a resume (null: no step yet). */
  lastLoss: number | null;
  /** shouldStop ended the run before `steps`. */
  interrupted: boolean;
  /** The notes of the checkpoint this run resumed from (null: fresh start or none saved). */
  resumedNotes: Record<string, unknown> | null;
}

function positiveInt(what: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1)
    throw new Error(`train: ${what} must be a positive integer, got ${v}`);
  return v;
}

/** Trains `trainable` (a PeftModel, or fullFineTuning(model)) on `data`; see the file header. */
export async function train(
  trainable: Trainable,
  data: BatchSource,
  options: TrainOptions,
): Promise<TrainResult> {
  const steps = options.steps;
  if (!Number.isSafeInteger(steps) || steps < 0)
    throw new Error(`train: steps must be a non-negative integer, got ${steps}`);
  const gradAccum = positiveInt("gradAccum", options.gradAccum ?? 1);
  const evalEvery =
    options.evalEvery === undefined ? 0 : positiveInt("evalEvery", options.evalEvery);
  const checkpointEvery =
    options.checkpointEvery === undefined
      ? 0
      : positiveInt("checkpointEvery", options.checkpointEvery);
  if (evalEvery > 0 && (options.evalBatches === undefined || options.evalBatches.length === 0)) {
    throw new Error("train: evalEvery is set but evalBatches is empty");
  }
  if (options.earlyStopping !== undefined) {
    if (evalEvery === 0) throw new Error("train: earlyStopping needs evalEvery and evalBatches");
    positiveInt("earlyStopping.patience", options.earlyStopping.patience);
  }
  if (
    (checkpointEvery > 0 || options.resume !== undefined) &&
    options.checkpointDir === undefined &&
    typeof options.resume !== "string"
  ) {
    throw new Error("train: checkpointEvery / resume need checkpointDir");
  }
  const clipNorm = options.clipNorm ?? null;
  const optimizerConfig = withOptimizerDefaults(options.optimizer ?? { kind: "adamw" });
  const schedule: ScheduleConfig = {
    name: options.schedule ?? "constant",
    baseLr: options.lr,
    warmupSteps: options.warmupSteps ?? 0,
    totalSteps: steps,
  };
  learningRate(schedule, 0); // validates the schedule before any work
  const model = trainable.base;
  const kernels = model.kernels;
  const params = trainableParams(trainable);
  const grads = params.map((p) => p.grad);
  const paramGrads = trainable.paramGrads;
  const optimizer = createOptimizer(kernels, params, optimizerConfig);
  const readback = new StepReadback(kernels, gradAccum, grads);
  // options that must match on resume
  const run = {
    steps,
    lr: options.lr,
    schedule: schedule.name,
    warmupSteps: schedule.warmupSteps,
    gradAccum,
    clipNorm,
    optimizer: optimizerConfig,
    weights: trainable.kind,
  };

  let startStep = 0;
  const book = {
    bestEvalLoss: null as number | null,
    evalsWithoutImprovement: 0,
    lastLoss: null as number | null,
  };
  let resumedNotes: Record<string, unknown> | null = null;
  let notes = options.notes;
  try {
    const resumeDir =
      typeof options.resume === "string"
        ? options.resume
        : options.resume === true
          ? await latestCheckpoint(options.checkpointDir as string)
          : null;
    if (resumeDir !== null) {
      const ckpt = await loadCheckpoint(resumeDir, model.linears());
      restore(ckpt, resumeDir, trainable, params, run);
      kernels.upload(...params.map((p) => p.param));
      optimizer.loadState(ckpt.optimizer);
      data.restore(ckpt.data);
      book.bestEvalLoss = ckpt.trainer.bestEvalLoss;
      book.evalsWithoutImprovement = ckpt.trainer.evalsWithoutImprovement;
      book.lastLoss = ckpt.trainer.lastLoss;
      resumedNotes = ckpt.notes ?? null;
      if (ckpt.notes !== undefined) notes = ckpt.notes;
      startStep = ckpt.step;
      if (options.logFile !== undefined) await truncateTrainLog(options.logFile, startStep);
    }

    if (options.logFile !== undefined) await makeDirs(dirname(options.logFile));
    const emit = async (record: TrainLogRecord): Promise<void> => {
      options.log?.(record);
      if (options.logFile !== undefined)
        await appendFile(options.logFile, `${JSON.stringify(record)}\n`);
    };
    const checkpoint = async (step: number): Promise<void> => {
      await kernels.download(); // the weights and optimiser state, read on the host below
      const content: CheckpointContent = {
        step,
        optimizer: optimizer.state(),
        data: data.state(),
        rng: trainable.rng?.state() ?? null,
        trainer: { ...book },
        run,
        ...(notes !== undefined && { notes }),
        weights: trainable.trainedWeights(),
      };
      await saveCheckpoint(options.checkpointDir as string, content);
      if (options.keepCheckpoints !== undefined)
        await pruneCheckpoints(options.checkpointDir as string, options.keepCheckpoints);
    };

    kernels.upload(); // whatever the host set up before this call (an init, a restore)
    const losses: number[] = [];
    let lastEval: TrainResult["lastEval"] = null;
    let stoppedEarly = false;
    let interrupted = false;
    const t0 = performance.now();
    trainable.zeroGrad();
    trainable.setTraining(true);
    let step = startStep;
    while (step < steps) {
      if (options.shouldStop?.() === true) {
        interrupted = true;
        if (options.checkpointDir !== undefined) await checkpoint(step);
        break;
      }
      const stepStart = performance.now();
      const lr = learningRate(schedule, step);
      let tokens = 0;
      let inputTokens = 0;
      for (let micro = 0; micro < gradAccum; micro++) {
        const batch = data.next();
        inputTokens += realTokens(batch);
        const counted = readback.lossAndGrads(
          model,
          batch,
          micro,
          paramGrads === undefined
            ? { lossScale: 1 / gradAccum }
            : { paramGrads, lossScale: 1 / gradAccum },
        );
        if (counted === 0) {
          throw new Error(
            `train: step ${step + 1}: a micro-batch has no learned token (every label is -100), so it would train nothing`,
          );
        }
        tokens += counted;
      }
      // the step's one wait: its losses and the gradient norm (step-readback.ts)
      const { loss, gradNorm } = await readback.read();
      if (clipNorm !== null) clipToNorm(kernels, grads, clipNorm, gradNorm);
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
        throw new Error(
          `train: step ${step + 1}: loss ${loss}, gradient norm ${gradNorm} (not finite); lower the learning rate or enable clipping`,
        );
      }
      optimizer.update(lr);
      trainable.zeroGrad();
      step++;
      losses.push(loss);
      book.lastLoss = loss;
      const now = performance.now();
      await emit({
        type: "train",
        step,
        loss,
        lr,
        grad_norm: gradNorm,
        tokens,
        tokens_per_s: inputTokens / Math.max(1e-9, (now - stepStart) / 1000),
        elapsed_s: (now - t0) / 1000,
        peak_memory: kernels.heap.peakBytes,
      });
      if (evalEvery > 0 && step % evalEvery === 0) {
        trainable.setTraining(false);
        const ev = await evaluateLoss(model, options.evalBatches as readonly Batch[]);
        trainable.setTraining(true);
        lastEval = { loss: ev.loss, perplexity: ev.perplexity };
        await emit({
          type: "eval",
          step,
          eval_loss: ev.loss,
          perplexity: ev.perplexity,
          eval_tokens: ev.tokens,
        });
        const minDelta = options.earlyStopping?.minDelta ?? 0;
        if (book.bestEvalLoss === null || ev.loss < book.bestEvalLoss - minDelta) {
          book.bestEvalLoss = ev.loss;
          book.evalsWithoutImprovement = 0;
        } else {
          book.evalsWithoutImprovement++;
        }
        if (
          options.earlyStopping !== undefined &&
          book.evalsWithoutImprovement >= options.earlyStopping.patience
        )
          stoppedEarly = true;
      }
      const last = step === steps || stoppedEarly;
      if (
        options.checkpointDir !== undefined &&
        ((checkpointEvery > 0 && step % checkpointEvery === 0) || (last && checkpointEvery > 0))
      ) {
        await checkpoint(step);
      }
      if (stoppedEarly) break;
    }
    await kernels.download(); // the trained weights, for the caller to save
    return {
      steps: step,
      losses,
      lastEval,
      stoppedEarly,
      resumedFrom: startStep,
      lastLoss: book.lastLoss,
      interrupted,
      resumedNotes,
    };
  } finally {
    trainable.setTraining(false);
    optimizer.dispose();
    readback.dispose();
  }
}

/** The trainable's tensors with their gradient buffers; a frozen one (no gradient) is an error. */
function trainableParams(trainable: Trainable): TrainableParam[] {
  return trainable.parameters().map(({ name, param, grad }) => {
    if (grad === null)
      throw new Error(`train: ${name} is frozen (no gradient buffer; attach with trainable: true)`);
    return { name, param, grad };
  });
}

/** Non-padding input tokens of a batch (what the forward pass really processes). */
function realTokens(batch: Batch): number {
  if (batch.attentionMask === undefined) return batch.batchSize * batch.seqLen;
  let n = 0;
  for (let i = 0; i < batch.attentionMask.length; i++) n += batch.attentionMask[i];
  return n;
}

/** Copies a checkpoint's weights and RNG into the live trainable, after checking it fits. */
function restore(
  ckpt: CheckpointContent,
  dir: string,
  trainable: Trainable,
  params: readonly TrainableParam[],
  run: Record<string, unknown>,
): void {
  for (const [key, value] of Object.entries(run)) {
    if (JSON.stringify(ckpt.run[key]) !== JSON.stringify(value)) {
      throw new Error(
        `resume ${dir}: option ${key} was ${JSON.stringify(ckpt.run[key])} in the checkpoint, now ${JSON.stringify(value)}`,
      );
    }
  }
  if (ckpt.weights.kind !== trainable.kind)
    throw new Error(
      `resume ${dir}: checkpoint holds ${ckpt.weights.kind} weights, training ${trainable.kind}`,
    );
  const values = new Map<string, Float32Array>();
  if (ckpt.weights.kind === "lora") {
    for (const [path, w] of ckpt.weights.adapters) {
      values.set(`${path}.lora_A.weight`, w.A);
      values.set(`${path}.lora_B.weight`, w.B);
    }
  } else {
    for (const [name, t] of ckpt.weights.params) values.set(name, t.data);
  }
  if (values.size !== params.length)
    throw new Error(
      `resume ${dir}: checkpoint has ${values.size} trained tensors, the run ${params.length}`,
    );
  for (const p of params) {
    const v = values.get(p.name);
    if (v === undefined) throw new Error(`resume ${dir}: no weights for ${p.name}`);
    if (v.length !== p.param.size)
      throw new Error(`resume ${dir}: ${p.name} has ${v.length} values, expected ${p.param.size}`);
  }
  for (const p of params) p.param.f32().set(values.get(p.name) as Float32Array);
  if (trainable.rng !== null) {
    if (ckpt.rng === null) throw new Error(`resume ${dir}: no RNG state for LoRA dropout`);
    trainable.rng.setState(ckpt.rng); // in place: the adapters hold this instance
  }
}
