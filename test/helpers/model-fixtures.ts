// The tiny Hugging Face checkpoints under test/fixtures/models (scripts/fixtures/
// make_tiny_models.py, make_full_batch_grads.py, make_tiny_archs.py) and their PyTorch float64 expectations, for the
// model tests: the fixture folder, reading a batch file with its expected values, and the relative
// error every comparison uses.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import type { Batch } from "../../src/models/model.js";

export const MODEL_FIXTURES = join(import.meta.dirname, "..", "fixtures", "models");

/**
 * Every model fixture folder under MODEL_FIXTURES. The model tests run on all of them, always: a
 * missing fixture fails (causal-lm.test.ts also checks this list against the folder's contents).
 */
export const FIXTURE_MODELS = [
  "llama-gqa",
  "llama-tied",
  "qwen2",
  "mistral",
  "gpt2",
  "qwen3",
  "smollm3",
  "phi3",
  "gemma3",
  "gemma3-bias",
] as const;

/** The encoder-decoder fixtures (make_tiny_t5.py): their batch has decoder targets. */
export const SEQ2SEQ_FIXTURE_MODELS = ["t5", "t5-v1_1"] as const;

export interface ModelFixture {
  batch: Batch;
  /** PyTorch float64 values stored as f32: "loss", "logits" (when present), "grad.<param>". */
  values: Map<string, Float32Array>;
}

/**
 * One model's batch and expected values: batch.json + expected.safetensors by default, or another
 * pair (batch-full.json + expected-full.safetensors: every label counted, no padding).
 */
export async function readModelFixture(
  name: string,
  batchFile = "batch.json",
  expectedFile = "expected.safetensors",
): Promise<ModelFixture> {
  const json = JSON.parse(readFileSync(join(MODEL_FIXTURES, name, batchFile), "utf8")) as {
    batch_size: number;
    seq_len: number;
    input_ids: number[];
    attention_mask?: number[];
    labels: number[];
    /** Encoder-decoder fixtures: the labels are the (B, decoder_seq_len) targets. */
    decoder_seq_len?: number;
  };
  const file = await SafetensorsFile.open(join(MODEL_FIXTURES, name, expectedFile));
  const values = new Map<string, Float32Array>();
  try {
    for (const key of file.entries.keys()) values.set(key, await file.readF32(key));
  } finally {
    await file.close();
  }
  const labels = Int32Array.from(json.labels);
  const batch: Batch = {
    batchSize: json.batch_size,
    seqLen: json.seq_len,
    inputIds: Int32Array.from(json.input_ids),
    ...(json.decoder_seq_len === undefined
      ? { labels }
      : { decoder: { seqLen: json.decoder_seq_len, labels } }),
    ...(json.attention_mask !== undefined && {
      attentionMask: Int32Array.from(json.attention_mask),
    }),
  };
  return { batch, values };
}

/** max |a - b| / max |b| (max |a - b| when b is all zero), with the worst index, for readable failures. */
export function relErr(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
): { rel: number; at: number } {
  let maxDiff = 0;
  let maxRef = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    if (!(diff <= maxDiff)) {
      maxDiff = diff;
      at = i;
    }
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
  }
  return { rel: maxRef > 0 ? maxDiff / maxRef : maxDiff, at };
}
