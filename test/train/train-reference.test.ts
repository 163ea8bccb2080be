// Our trainer against a plain PyTorch + PEFT training loop (scripts/fixtures/make_train_reference.py):
// same tiny model (Llama; Gemma 3), same initial adapter (saved by PEFT), same batches in the same
// order; per-step losses, learning rates and pre-clip gradient norms, and the eval loss after
// training. The same LoRA run on the tiny qwen3, smollm3 and phi3
// (scripts/fixtures/make_tiny_archs.py; phi3's adapters sit on the fused qkv_proj and gate_up_proj).
// Tolerance: 1e-4 relative (losses are ~6, so ~6e-4 absolute), see maxMixedError.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels } from "../../src/kernels/kernels.js";
import { loadModel } from "../../src/models/model.js";
import { loadAdapter } from "../../src/peft/adapter-io.js";
import { getPeftModel } from "../../src/peft/peft-model.js";
import { FixedBatches } from "../../src/train/data-order.js";
import { evaluateLoss } from "../../src/train/metrics.js";
import { fullFineTuning } from "../../src/train/trainable.js";
import { type TrainLogRecord, train } from "../../src/train/trainer.js";
import { MODEL_FIXTURES } from "../helpers/model-fixtures.js";
import {
  initialAdapter,
  maxMixedError,
  type RunReference,
  readBatches,
  readReference,
  refKernels,
  TRAIN_FIXTURES,
  TRAIN_REFERENCES,
  tinyModel,
} from "./train-helpers.js";

const TOL = 1e-4;

describe.each(TRAIN_REFERENCES)("training vs PyTorch/PEFT ($name, ref kernels)", (fixture) => {
  let kernels: Kernels;
  const batches = readBatches(fixture.dir);
  const reference = readReference(fixture.dir);
  beforeAll(async () => {
    kernels = await refKernels();
  });
  afterAll(async () => {
    await kernels.dispose();
  });

  async function runLora(
    name: "lora_constant" | "lora_cosine",
    options: Parameters<typeof train>[2],
  ) {
    const model = await tinyModel(kernels, fixture.model);
    const adapter = await initialAdapter(model, fixture.dir);
    const trainable = getPeftModel(model, adapter.config, { weights: adapter.weights });
    const records: TrainLogRecord[] = [];
    const result = await train(trainable, new FixedBatches(batches.train), {
      ...options,
      log: (r) => records.push(r),
    });
    const evalLoss = (await evaluateLoss(model, [batches.eval])).loss;
    trainable.dispose();
    model.dispose();
    return { result, records, evalLoss, ref: reference[name] };
  }

  function check(out: {
    result: { losses: number[] };
    records: TrainLogRecord[];
    evalLoss: number;
    ref: (typeof reference)["lora_constant"];
  }) {
    const lrs = out.records.filter((r) => r.type === "train").map((r) => r.lr as number);
    const norms = out.records.filter((r) => r.type === "train").map((r) => r.grad_norm as number);
    expect(lrs.length).toBe(out.ref.lrs.length);
    expect(maxMixedError(lrs, out.ref.lrs), `lrs ${lrs} vs ${out.ref.lrs}`).toBeLessThanOrEqual(
      1e-12,
    );
    const lossErr = maxMixedError(out.result.losses, out.ref.losses);
    console.log(
      `loss err ${lossErr.toExponential(2)}, grad-norm err ${maxMixedError(norms, out.ref.grad_norms).toExponential(2)}, eval err ${maxMixedError([out.evalLoss], [out.ref.eval_loss]).toExponential(2)}`,
    );
    expect(lossErr, `losses ${out.result.losses} vs ${out.ref.losses}`).toBeLessThanOrEqual(TOL);
    expect(
      maxMixedError(norms, out.ref.grad_norms),
      `grad norms ${norms} vs ${out.ref.grad_norms}`,
    ).toBeLessThanOrEqual(TOL);
    expect(maxMixedError([out.evalLoss], [out.ref.eval_loss])).toBeLessThanOrEqual(TOL);
  }

  test("LoRA, AdamW lr 1e-3, constant schedule, no clipping, 8 steps", async () => {
    const out = await runLora("lora_constant", {
      steps: 8,
      lr: 1e-3,
      optimizer: { kind: "adamw", weightDecay: 0 },
      schedule: "constant",
    });
    check(out);
  });

  test("LoRA, weight decay 0.01, warmup 2 + cosine, grad accumulation 2, clip 1.0", async () => {
    const out = await runLora("lora_cosine", {
      steps: 8,
      lr: 1e-3,
      optimizer: { kind: "adamw", weightDecay: 0.01 },
      schedule: "cosine",
      warmupSteps: 2,
      gradAccum: 2,
      clipNorm: 1.0,
    });
    check(out);
  });

  test("full fine-tuning, linear schedule with warmup 2, clip 1.0", async () => {
    const model = await tinyModel(kernels, fixture.model);
    const trainable = fullFineTuning(model);
    const records: TrainLogRecord[] = [];
    const result = await train(trainable, new FixedBatches(batches.train), {
      steps: 8,
      lr: 1e-3,
      optimizer: { kind: "adamw", weightDecay: 0 },
      schedule: "linear",
      warmupSteps: 2,
      clipNorm: 1.0,
      log: (r) => records.push(r),
    });
    const evalLoss = (await evaluateLoss(model, [batches.eval])).loss;
    trainable.dispose();
    model.dispose();
    check({ result, records, evalLoss, ref: reference.full_linear });
  });
});

describe.each(["qwen3", "smollm3", "phi3"])(
  "LoRA training on %s vs PyTorch/PEFT (ref kernels)",
  (name) => {
    test("AdamW lr 1e-3, constant schedule, no clipping, 8 steps", async () => {
      const kernels = await refKernels();
      const batches = readBatches();
      const dir = join(TRAIN_FIXTURES, "archs", name);
      const ref = (
        JSON.parse(readFileSync(join(dir, "reference.json"), "utf8")) as {
          lora_constant: RunReference;
        }
      ).lora_constant;
      const model = await loadModel(join(MODEL_FIXTURES, name), { kernels });
      const adapter = await loadAdapter(join(dir, "adapter_init"), model.linears());
      const trainable = getPeftModel(model, adapter.config, { weights: adapter.weights });
      const records: TrainLogRecord[] = [];
      const result = await train(trainable, new FixedBatches(batches.train), {
        steps: 8,
        lr: 1e-3,
        optimizer: { kind: "adamw", weightDecay: 0 },
        schedule: "constant",
        log: (r) => records.push(r),
      });
      const evalLoss = (await evaluateLoss(model, [batches.eval])).loss;
      trainable.dispose();
      model.dispose();
      await kernels.dispose();
      const norms = records.filter((r) => r.type === "train").map((r) => r.grad_norm as number);
      expect(
        maxMixedError(result.losses, ref.losses),
        `losses ${result.losses}`,
      ).toBeLessThanOrEqual(TOL);
      expect(maxMixedError(norms, ref.grad_norms), `grad norms ${norms}`).toBeLessThanOrEqual(TOL);
      expect(maxMixedError([evalLoss], [ref.eval_loss])).toBeLessThanOrEqual(TOL);
    });
  },
);
