// Trainer plumbing: log records (fields, JSONL file, eval records), early stopping, checkpoint
// pruning and temp-directory handling, SGD training lowers the loss, given-weights errors, the
// PeftModel's ownership (dispose detaches, frozen adapters refused, save records training).

import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels } from "../../src/kernels/kernels.js";
import { loadAdapter } from "../../src/peft/adapter-io.js";
import { getPeftModel } from "../../src/peft/peft-model.js";
import { latestCheckpoint, listCheckpoints } from "../../src/train/checkpoint.js";
import { FixedBatches } from "../../src/train/data-order.js";
import { fullFineTuning } from "../../src/train/trainable.js";
import { type TrainLogRecord, train } from "../../src/train/trainer.js";
import { initialAdapter, readBatches, refKernels, tinyModel } from "./train-helpers.js";

describe("trainer", () => {
  let kernels: Kernels;
  let dir: string;
  const batches = readBatches();
  beforeAll(async () => {
    kernels = await refKernels();
    dir = await mkdtemp(join(tmpdir(), "loraga-trainer-"));
  });
  afterAll(async () => {
    await kernels.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  async function lora() {
    const model = await tinyModel(kernels);
    const adapter = await initialAdapter(model);
    const trainable = getPeftModel(model, adapter.config, { weights: adapter.weights });
    return { model, adapter, trainable };
  }

  test("log records and JSONL file; eval every N steps; checkpoints pruned", async () => {
    const { model, trainable } = await lora();
    const records: TrainLogRecord[] = [];
    const logFile = join(dir, "logs", "run.jsonl");
    const ckptDir = join(dir, "ckpt");
    await mkdir(ckptDir, { recursive: true });
    await mkdir(join(ckptDir, ".checkpoint-2.999999.abcd.tmp")); // a dead process's partial save
    const result = await train(trainable, new FixedBatches(batches.train), {
      steps: 6,
      lr: 1e-3,
      evalEvery: 2,
      evalBatches: [batches.eval],
      logFile,
      log: (r) => records.push(r),
      checkpointEvery: 2,
      checkpointDir: ckptDir,
      keepCheckpoints: 2,
    });
    expect(result.steps).toBe(6);
    const trainRecs = records.filter((r) => r.type === "train");
    expect(trainRecs.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const r of trainRecs) {
      for (const key of [
        "loss",
        "lr",
        "grad_norm",
        "tokens",
        "tokens_per_s",
        "elapsed_s",
        "peak_memory",
      ]) {
        expect(typeof r[key], key).toBe("number");
      }
      expect(r.peak_memory as number).toBeGreaterThan(0);
    }
    const evals = records.filter((r) => r.type === "eval");
    expect(evals.map((r) => r.step)).toEqual([2, 4, 6]);
    for (const e of evals)
      expect(e.perplexity as number).toBeCloseTo(Math.exp(e.eval_loss as number), 8);
    const lines = readFileSync(logFile, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as TrainLogRecord);
    expect(lines).toEqual(JSON.parse(JSON.stringify(records)));
    expect((await listCheckpoints(ckptDir)).map((c) => c.step)).toEqual([4, 6]);
    expect(await latestCheckpoint(ckptDir)).toBe(join(ckptDir, "checkpoint-6"));
    expect((await readdir(ckptDir)).filter((n) => n.endsWith(".tmp"))).toEqual([]);
    const saved = await loadAdapter(join(ckptDir, "checkpoint-6", "adapter"), model.linears());
    for (const [path, w] of trainable.weights())
      expect(Array.from(saved.weights.get(path)?.A ?? [])).toEqual(Array.from(w.A));
    trainable.dispose();
    model.dispose();
  });

  test("early stopping after `patience` evaluations without improvement", async () => {
    const { model, trainable } = await lora();
    const result = await train(trainable, new FixedBatches(batches.train), {
      steps: 10,
      lr: 1e-3,
      evalEvery: 1,
      evalBatches: [batches.eval],
      earlyStopping: { patience: 2, minDelta: 100 }, // nothing improves by 100
    });
    expect(result.stoppedEarly).toBe(true);
    expect(result.steps).toBe(3); // first eval sets the best; two more without improvement
    trainable.dispose();
    model.dispose();
  });

  test("full fine-tuning with SGD lowers the loss on a repeated batch", async () => {
    const model = await tinyModel(kernels);
    const trainable = fullFineTuning(model);
    const result = await train(trainable, new FixedBatches([batches.train[0]]), {
      steps: 5,
      lr: 0.05,
      optimizer: { kind: "sgd", momentum: 0.9 },
    });
    expect(result.losses[4]).toBeLessThan(result.losses[0] - 0.1);
    trainable.dispose();
    model.dispose();
  });

  test("getPeftModel with weights names a targeted module without weights", async () => {
    const model = await tinyModel(kernels);
    const adapter = await initialAdapter(model);
    const [missing] = [...adapter.weights.keys()];
    const partial = new Map([...adapter.weights].slice(1));
    expect(() => getPeftModel(model, adapter.config, { weights: partial })).toThrow(
      `no lora_A/lora_B weights for targeted module ${missing}`,
    );
    // nothing stays attached after the failure: the base model's loss is back
    const base = await tinyModel(kernels);
    expect(model.lossAndGrads(readBatches().eval).loss).toBe(
      base.lossAndGrads(readBatches().eval).loss,
    );
    base.dispose();
    model.dispose();
  });
});
