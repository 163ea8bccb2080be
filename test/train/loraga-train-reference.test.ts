// LoRA training from a LoRA-GA init adapter made by PEFT 0.21 (loaded with the base offset
// W' = W - s B0 A0, as `loraga train --init-adapter DIR --offset-base` does) vs PyTorch + PEFT
// training the same model: per-step losses (fixture: scripts/fixtures/make_train_loraga_reference.py).
import { readFileSync } from "node:fs";
import { expect, test } from "vitest";
import { collate, groupIntoBatches } from "../../src/data/batches.js";
import { loadExamples } from "../../src/data/dataset.js";
import { createKernels } from "../../src/kernels/index.js";
import { loadModel } from "../../src/models/model.js";
import { loadPeftModel } from "../../src/peft/peft-model.js";
import { Heap } from "../../src/tensor/heap.js";
import { FixedBatches } from "../../src/train/data-order.js";
import { train } from "../../src/train/trainer.js";

test("8 AdamW steps from PEFT's LoRA-GA init on the offset base match PEFT's per-step losses", async () => {
  const kernels = await createKernels("ref", { heap: new Heap() });
  const model = await loadModel("test/fixtures/models/llama-gqa", { kernels });
  const before = model.readLinearWeight("model.layers.0.self_attn.q_proj");
  const peft = await loadPeftModel(model, "test/fixtures/train-loraga/adapter_init", {
    trainable: true,
    offsetBase: true,
  });
  expect(peft.initial).not.toBeNull(); // the base was offset
  expect(model.readLinearWeight("model.layers.0.self_attn.q_proj")).not.toEqual(before);
  const examples = await loadExamples("test/fixtures/e2e/data.jsonl", null);
  const batches = groupIntoBatches(examples, 2).map((g) =>
    collate(g, { maxLength: 10, padTokenId: 0 }),
  );
  const result = await train(peft, new FixedBatches(batches), {
    steps: 8,
    lr: 1e-3,
    optimizer: { kind: "adamw", beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
    schedule: "constant",
  });
  const expected = (
    JSON.parse(readFileSync("test/fixtures/train-loraga/losses.json", "utf8")) as {
      losses: number[];
    }
  ).losses;
  expect(result.losses).toHaveLength(8);
  result.losses.forEach((loss, i) => {
    expect(
      Math.abs(loss - expected[i]),
      `step ${i + 1}: ${loss} vs PEFT ${expected[i]}`,
    ).toBeLessThanOrEqual(1e-4);
  });
  await kernels.dispose();
});
