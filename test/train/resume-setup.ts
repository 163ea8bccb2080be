// The training run of the kill-and-resume test, shared by the test (in-process, uninterrupted and
// resumed runs) and the child process it kills (resume-child.ts): LoRA with dropout 0.1 (so the
// RNG state matters), shuffled data over more than one epoch (so the data position matters),
// AdamW + cosine schedule with warmup + clipping + grad accumulation, a checkpoint every 2 steps.

import type { TokenExample } from "../../src/data/examples.js";
import type { Kernels } from "../../src/kernels/kernels.js";
import { getPeftModel } from "../../src/peft/peft-model.js";
import { ShuffledBatches } from "../../src/train/data-order.js";
import { type TrainLogRecord, type TrainResult, train } from "../../src/train/trainer.js";
import { initialAdapter, readBatches, tinyModel } from "./train-helpers.js";

export const RESUME_STEPS = 10;

/** Every row of the fixture batches as an example (padding stripped). */
export function fixtureExamples(): TokenExample[] {
  const out: TokenExample[] = [];
  for (const b of readBatches().train) {
    for (let r = 0; r < b.batchSize; r++) {
      const row = (a: Int32Array) => Array.from(a.subarray(r * b.seqLen, (r + 1) * b.seqLen));
      const mask = row(b.attentionMask as Int32Array);
      const len = mask.indexOf(0) < 0 ? b.seqLen : mask.indexOf(0);
      out.push({
        inputIds: row(b.inputIds).slice(0, len),
        labels: row(b.labels as Int32Array).slice(0, len),
        source: `row ${out.length}`,
      });
    }
  }
  return out;
}

export async function runResumable(
  kernels: Kernels,
  options: {
    checkpointDir: string;
    logFile?: string;
    resume?: boolean;
    onStep?: (r: TrainLogRecord) => void;
  },
): Promise<TrainResult> {
  const model = await tinyModel(kernels);
  const adapter = await initialAdapter(model);
  const trainable = getPeftModel(model, adapter.config.with({ lora_dropout: 0.1 }), {
    weights: adapter.weights,
    seed: 11,
  });
  const data = new ShuffledBatches(fixtureExamples(), {
    batchSize: 2,
    maxLength: 8,
    padTokenId: 0,
    seed: 5,
  });
  try {
    return await train(trainable, data, {
      steps: RESUME_STEPS,
      lr: 1e-3,
      optimizer: { kind: "adamw", weightDecay: 0.01 },
      schedule: "cosine",
      warmupSteps: 2,
      gradAccum: 2,
      clipNorm: 1.0,
      checkpointEvery: 2,
      checkpointDir: options.checkpointDir,
      ...(options.logFile !== undefined && { logFile: options.logFile }),
      ...(options.resume !== undefined && { resume: options.resume }),
      ...(options.onStep !== undefined && { log: options.onStep }),
    });
  } finally {
    trainable.dispose();
    model.dispose();
  }
}
