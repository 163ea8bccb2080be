// Shared test support for test/train: fixture batches (scripts/fixtures/make_train_reference.py),
// tiny model loading with the ref kernels, the reference runs' initial adapter.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels } from "../../src/kernels/kernels.js";
import { type Batch, type CausalLM, loadModel } from "../../src/models/model.js";
import { loadAdapter } from "../../src/peft/adapter-io.js";
import { Heap } from "../../src/tensor/heap.js";

// The kill-and-resume child runs compiled outside the tree; it is told where the fixtures are.
const FIXTURES = process.env.LORAGA_TEST_FIXTURES ?? join(import.meta.dirname, "..", "fixtures");
export const TRAIN_FIXTURES = join(FIXTURES, "train");
export const MODEL_DIR = join(FIXTURES, "models", "llama-gqa");

/** A reference-training fixture: the tiny model and the folder of its runs. */
export interface TrainFixture {
  name: string;
  model: string;
  dir: string;
}
/** The reference runs of make_train_reference.py, per tiny model (llama-gqa: the default). */
export const TRAIN_REFERENCES: readonly TrainFixture[] = [
  { name: "llama-gqa", model: MODEL_DIR, dir: TRAIN_FIXTURES },
  {
    name: "gemma3",
    model: join(FIXTURES, "models", "gemma3"),
    dir: join(FIXTURES, "train-gemma3"),
  },
];

interface JsonBatch {
  batch_size: number;
  seq_len: number;
  input_ids: number[];
  attention_mask: number[];
  labels: number[];
}

function toBatch(b: JsonBatch): Batch {
  return {
    batchSize: b.batch_size,
    seqLen: b.seq_len,
    inputIds: Int32Array.from(b.input_ids),
    attentionMask: Int32Array.from(b.attention_mask),
    labels: Int32Array.from(b.labels),
  };
}

export function readBatches(dir = TRAIN_FIXTURES): { train: Batch[]; eval: Batch } {
  const json = JSON.parse(readFileSync(join(dir, "batches.json"), "utf8")) as {
    train: JsonBatch[];
    eval: JsonBatch;
  };
  return { train: json.train.map(toBatch), eval: toBatch(json.eval) };
}

export interface RunReference {
  losses: number[];
  lrs: number[];
  grad_norms: number[];
  eval_loss: number;
}

export function readReference(
  dir = TRAIN_FIXTURES,
): Record<"lora_constant" | "lora_cosine" | "full_linear", RunReference> {
  return JSON.parse(readFileSync(join(dir, "reference.json"), "utf8")) as Record<
    "lora_constant" | "lora_cosine" | "full_linear",
    RunReference
  >;
}

export async function refKernels(): Promise<Kernels> {
  return createKernels("ref", { heap: new Heap({ initialBytes: 16 * 2 ** 20 }) });
}

export async function tinyModel(kernels: Kernels, dir = MODEL_DIR): Promise<CausalLM> {
  return loadModel(dir, { kernels });
}

/** The initial LoRA adapter of the reference runs (saved by PEFT), matched to `model`'s linears. */
export async function initialAdapter(
  model: CausalLM,
  dir = TRAIN_FIXTURES,
): ReturnType<typeof loadAdapter> {
  return loadAdapter(join(dir, "adapter_init"), model.linears());
}

/** max over i of |a_i - b_i| / max(1, |b_i|): relative for |b| > 1, absolute below. */
export function maxMixedError(actual: readonly number[], expected: readonly number[]): number {
  let worst = 0;
  expected.forEach((e, i) => {
    worst = Math.max(worst, Math.abs(actual[i] - e) / Math.max(1, Math.abs(e)));
  });
  return Number.isNaN(worst) || actual.length !== expected.length
    ? Number.POSITIVE_INFINITY
    : worst;
}
