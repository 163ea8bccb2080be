// LoRA training of the tiny T5s against a plain PyTorch + PEFT loop (scripts/fixtures/
// make_tiny_t5.py, test/fixtures/train/t5/): same initial adapter (saved by PEFT), same seq2seq
// batches in the same order; per-step losses and pre-clip gradient norms of 8 AdamW steps, and the
// eval loss after training. Tolerance as train-reference.test.ts.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import type { Batch } from "../../src/models/model.js";
import { loadModel } from "../../src/models/model.js";
import { loadAdapter } from "../../src/peft/adapter-io.js";
import { getPeftModel } from "../../src/peft/peft-model.js";
import { FixedBatches } from "../../src/train/data-order.js";
import { evaluateLoss } from "../../src/train/metrics.js";
import { type TrainLogRecord, train } from "../../src/train/trainer.js";
import { MODEL_FIXTURES } from "../helpers/model-fixtures.js";
import { maxMixedError, type RunReference, refKernels, TRAIN_FIXTURES } from "./train-helpers.js";

const TOL = 1e-4;
const DIR = join(TRAIN_FIXTURES, "t5");

interface BatchJson {
  batch_size: number;
  seq_len: number;
  input_ids: number[];
  attention_mask: number[];
  decoder_seq_len: number;
  labels: number[];
}

function toBatch(b: BatchJson): Batch {
  return {
    batchSize: b.batch_size,
    seqLen: b.seq_len,
    inputIds: Int32Array.from(b.input_ids),
    attentionMask: Int32Array.from(b.attention_mask),
    decoder: { seqLen: b.decoder_seq_len, labels: Int32Array.from(b.labels) },
  };
}

describe.each(["t5", "t5-v1_1"])("LoRA training on %s vs PyTorch/PEFT (ref kernels)", (name) => {
  test("AdamW lr 1e-3, constant schedule, no clipping, 8 steps", async () => {
    const json = JSON.parse(readFileSync(join(DIR, "batches.json"), "utf8")) as {
      train: BatchJson[];
      eval: BatchJson;
    };
    const ref = (
      JSON.parse(readFileSync(join(DIR, name, "reference.json"), "utf8")) as {
        lora_constant: RunReference;
      }
    ).lora_constant;
    const kernels = await refKernels();
    const model = await loadModel(join(MODEL_FIXTURES, name), { kernels });
    const adapter = await loadAdapter(join(DIR, name, "adapter_init"), model.linears());
    const trainable = getPeftModel(model, adapter.config, { weights: adapter.weights });
    const records: TrainLogRecord[] = [];
    const result = await train(trainable, new FixedBatches(json.train.map(toBatch)), {
      steps: 8,
      lr: 1e-3,
      optimizer: { kind: "adamw", weightDecay: 0 },
      schedule: "constant",
      log: (r) => records.push(r),
    });
    const evalLoss = (await evaluateLoss(model, [toBatch(json.eval)])).loss;
    trainable.dispose();
    model.dispose();
    await kernels.dispose();
    const norms = records.filter((r) => r.type === "train").map((r) => r.grad_norm as number);
    expect(maxMixedError(result.losses, ref.losses), `losses ${result.losses}`).toBeLessThanOrEqual(
      TOL,
    );
    expect(maxMixedError(norms, ref.grad_norms), `grad norms ${norms}`).toBeLessThanOrEqual(TOL);
    expect(maxMixedError([evalLoss], [ref.eval_loss])).toBeLessThanOrEqual(TOL);
  });
});
