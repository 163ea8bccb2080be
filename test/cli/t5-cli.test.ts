// The loraga CLI on the tiny T5 (an encoder-decoder: JSONL rows are input -> target pairs):
// `estimate` writes PEFT 0.21's preprocess_loraga gradients (scripts/fixtures/make_tiny_t5.py), and
// `train --method lora-ga` runs end to end (estimate, init, 8 steps, held-out eval, the adapters
// written under PEFT's names for both stacks).

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import { expectAllclose } from "../helpers/allclose.js";
import { runCli, tempDir } from "../helpers/cli.js";

const MODEL = "test/fixtures/models/t5";
const DATA = "test/fixtures/e2e/t5-data.jsonl";

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

test("estimate on seq2seq rows writes PEFT's gradients", async () => {
  const out = join(tempDir(), "grads.safetensors");
  const r = runCli([
    "estimate",
    ...["--model", MODEL, "--data", DATA, "--target", "q,k,v,o,wi,wo"],
    ...["--batch-size", "2", "--batches", "3", "--max-length", "16", "--out", out],
    ...["--kernels", "ref"],
  ]);
  expect(r.stderr).toMatch(/wrote 42 gradients \(3 batches/);
  expect(r.status).toBe(0);
  const ours = await SafetensorsFile.open(out);
  const peft = await SafetensorsFile.open("test/fixtures/e2e/t5/grads.safetensors");
  expect([...ours.entries.keys()].sort()).toEqual([...peft.entries.keys()].sort());
  for (const key of peft.entries.keys()) {
    const want = await peft.readF32(key);
    expectAllclose(await ours.readF32(key), want, {
      rtol: 1e-4,
      atol: 1e-4 * maxAbs(want),
      label: key,
    });
  }
  await ours.close();
  await peft.close();
});

test("train --method lora-ga runs end to end, with a held-out eval loss", async () => {
  const out = join(tempDir(), "run");
  const r = runCli([
    "train",
    ...["--model", MODEL, "--data", DATA, "--out", out, "--method", "lora-ga"],
    ...["--target", "q,k,v,o,wi,wo", "--r", "2", "--ga-batches", "2", "--batch-size", "2"],
    ...["--steps", "8", "--lr", "1e-3", "--eval-split", "2", "--kernels", "ref"],
  ]);
  expect(r.stderr).toMatch(/trained 8 steps, last loss [\d.]+, eval loss [\d.]+/);
  expect(r.status).toBe(0);
  const log = readFileSync(join(out, "train.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { type: string; loss?: number });
  const losses = log.filter((l) => l.type === "train").map((l) => l.loss as number);
  expect(losses).toHaveLength(8);
  expect(losses.every(Number.isFinite)).toBe(true);
  const file = join(out, "adapter-converted", "adapter_model.safetensors");
  expect(existsSync(file)).toBe(true);
  const adapter = await SafetensorsFile.open(file);
  const keys = [...adapter.entries.keys()];
  await adapter.close();
  expect(keys).toContain("base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight");
  expect(keys).toContain(
    "base_model.model.decoder.block.2.layer.1.EncDecAttention.o.lora_B.weight",
  );
  expect(keys).toContain(
    "base_model.model.decoder.block.1.layer.2.DenseReluDense.wi.lora_A.weight",
  );
  expect(keys).toHaveLength(2 * 42);
});
