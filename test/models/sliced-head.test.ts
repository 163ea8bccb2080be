// The lm_head over vocabulary slices when its weight lives off the heap (models/sliced-linear.ts,
// MemoryOptions.headSliceBytes). On every tiny fixture model and engine, an offloaded model whose
// head runs in slices of 40 vocabulary rows (96 = 40 + 40 + 16: a ragged last slice) must give
// the whole-weight path's (headSliceBytes Infinity) logits, loss, per-token losses, cached
// decoding logits and gradients — the untied lm_head's own weight gradient and LoRA adapters on
// every linear (lm_head included) among them — to float rounding; a spy on kernels.matmul proves
// the head ran in slices. On a random model with a large vocabulary, the scratch shrinks to one
// slice and the heap peak of a training step drops by about the (vocab, hidden) f32 copy.

import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels, KernelsName } from "../../src/kernels/kernels.js";
import { llamaParamSpecs } from "../../src/models/llama.js";
import { type Batch, type CausalLM, loadModel } from "../../src/models/model.js";
import { randomCheckpoint, syntheticLlamaConfig } from "../../src/models/random.js";
import { buildModel } from "../../src/models/registry.js";
import { DEFAULT_HEAD_SLICE_BYTES } from "../../src/models/sliced-linear.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { Rng } from "../../src/util/random.js";
import {
  FIXTURE_MODELS,
  MODEL_FIXTURES,
  readModelFixture,
  relErr,
} from "../helpers/model-fixtures.js";
import { NATIVE_ENGINES } from "../helpers/native.js";
import { attachRandomLora } from "../helpers/random-lora.js";

const KERNELS: KernelsName[] = ["ref", "wasm", ...NATIVE_ENGINES];
const SLICE_ROWS = 40;

function hiddenOf(model: CausalLM): number {
  const c = model.config as { hidden_size?: number; n_embd?: number };
  return (c.hidden_size ?? c.n_embd) as number;
}

/** Gradients of every heap parameter and every linear weight not tied to the embedding. */
function gradShapes(model: CausalLM): Map<string, readonly number[]> {
  const shapes = new Map<string, readonly number[]>();
  for (const [n, p] of model.params) shapes.set(n, p.shape);
  for (const l of model.linears()) {
    if (l.path === "lm_head" && l.weightName !== "lm_head.weight") continue; // tied
    shapes.set(
      l.weightName,
      l.fanInFanOut ? [l.inFeatures, l.outFeatures] : [l.outFeatures, l.inFeatures],
    );
  }
  return shapes;
}

interface Run {
  logits: Float32Array;
  loss: number;
  grads: Map<string, Float32Array>;
  tokenLosses: Float32Array;
  cached: Float32Array;
  loraLoss: number;
  loraGrads: Float32Array[];
  /** Rows of every matmul whose b is one slice of the head weight, (SLICE_ROWS, C). */
  sliceProducts: number;
}

async function runAll(model: CausalLM, kernels: Kernels, batch: Batch): Promise<Run> {
  const C = hiddenOf(model);
  let sliceProducts = 0;
  const original = kernels.matmul;
  (kernels as { matmul: Kernels["matmul"] }).matmul = (out, a, b, opts) => {
    if (b.rank === 2 && b.shape[0] === SLICE_ROWS && b.shape[1] === C) sliceProducts++;
    original.call(kernels, out, a, b, opts);
  };
  try {
    const logits = model.forward(batch).toArray();
    const heap = kernels.heap;
    const tensors = new Map<string, Tensor>(
      [...gradShapes(model)].map(([n, s]) => [n, heap.zeros([...s])]),
    );
    const { loss } = model.lossAndGrads(batch, { paramGrads: tensors });
    const grads = new Map([...tensors].map(([n, t]) => [n, t.toArray()]));
    for (const t of tensors.values()) t.dispose();
    const tokenLosses = await model.tokenLosses(batch);
    // cached decoding: the batch's first row, its first 5 tokens then one more (the head step)
    const cache = model.createCache(1, 8);
    model.forwardCached(cache, { rows: [0], inputIds: batch.inputIds.slice(0, 5), seqLen: 5 });
    const cached = model
      .forwardCached(cache, { rows: [0], inputIds: batch.inputIds.slice(5, 6), seqLen: 1 })
      .toArray();
    cache.dispose();
    // LoRA on every linear, lm_head included (the adapter runs on the whole sliced output)
    const lora = attachRandomLora(model, kernels);
    const loraLoss = model.lossAndGrads(batch).loss;
    const loraGrads = lora.adapters.flatMap((a) =>
      a.parameters().map((p) => (p.grad as Tensor).toArray()),
    );
    lora.detach();
    return { logits, loss, grads, tokenLosses, cached, loraLoss, loraGrads, sliceProducts };
  } finally {
    (kernels as { matmul: Kernels["matmul"] }).matmul = original;
  }
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  expect(actual.length, what).toBe(expected.length);
  expect(relErr(actual, expected).rel, what).toBeLessThan(1e-5);
}

describe.each(KERNELS)("lm_head in vocabulary slices (%s kernels)", (kernelsName) => {
  let kernels: Kernels;
  beforeAll(async () => {
    kernels = await createKernels(kernelsName, { heap: new Heap(), threads: 2 });
  });
  afterAll(async () => {
    await kernels.dispose();
  });

  test.each(FIXTURE_MODELS)("%s: the whole-weight head's values", async (name) => {
    const model = await loadModel(join(MODEL_FIXTURES, name), { kernels, offloadFrozen: "on" });
    const batch = (await readModelFixture(name)).batch;
    try {
      const C = hiddenOf(model);
      expect(model.vocabSize).toBeGreaterThan(2 * SLICE_ROWS); // at least three slices
      model.setMemoryOptions({ headSliceBytes: Number.POSITIVE_INFINITY });
      const whole = await runAll(model, kernels, batch);
      model.setMemoryOptions({ headSliceBytes: 4 * C * SLICE_ROWS });
      const sliced = await runAll(model, kernels, batch);
      expect(whole.sliceProducts).toBe(0);
      expect(sliced.sliceProducts).toBeGreaterThan(0);
      expectClose(sliced.logits, whole.logits, "logits");
      expect(Math.abs(sliced.loss - whole.loss)).toBeLessThan(1e-6 * Math.abs(whole.loss));
      for (const [n, g] of whole.grads) expectClose(sliced.grads.get(n) as Float32Array, g, n);
      expectClose(sliced.tokenLosses, whole.tokenLosses, "tokenLosses");
      expectClose(sliced.cached, whole.cached, "cached logits");
      expect(Math.abs(sliced.loraLoss - whole.loraLoss)).toBeLessThan(1e-6 * whole.loraLoss);
      expect(sliced.loraGrads.length).toBe(whole.loraGrads.length);
      sliced.loraGrads.forEach((g, i) => {
        expectClose(g, whole.loraGrads[i], `lora grad ${i}`);
      });
    } finally {
      model.dispose();
    }
  });
});

/** An offloaded random llama (untied head) with a (vocab, hidden) head, and a batch for it. */
async function largeVocabModel(kernels: Kernels, V: number, C: number) {
  const config = syntheticLlamaConfig({
    layers: 1,
    hidden: C,
    intermediate: 2 * C,
    heads: 2,
    vocab: V,
  });
  const model = await buildModel(
    config,
    randomCheckpoint(llamaParamSpecs(config), 7),
    kernels,
    "(random)",
    { offloadFrozen: "on" },
  );
  const rng = new Rng(4);
  const inputIds = Int32Array.from({ length: 2 * 24 }, () => rng.below(V));
  return { model, batch: { batchSize: 2, seqLen: 24, inputIds, labels: inputIds.slice() } };
}

test.each(["ref", ...NATIVE_ENGINES] as KernelsName[])(
  "a large vocabulary off the heap: the scratch holds one slice, the heap footprint drops by the head's f32 copy (%s)",
  async (kernelsName) => {
    // head (32768, 64) f32 = 8 MiB; slices of 1024 rows = 256 KiB
    const V = 32768;
    const C = 64;
    const kernels = await createKernels(kernelsName, { heap: new Heap(), threads: 2 });
    const { model, batch } = await largeVocabModel(kernels, V, C);
    try {
      const headBytes = 4 * V * C;
      const step = (sliceBytes: number) => {
        model.setMemoryOptions({ headSliceBytes: sliceBytes });
        const scratch = model.linearWeightBytes().scratch;
        kernels.heap.resetPeak();
        const lora = attachRandomLora(model, kernels, { which: (p) => p.endsWith("q_proj") });
        const { loss } = model.lossAndGrads(batch);
        const grads = lora.adapters.flatMap((a) =>
          a.parameters().map((p) => (p.grad as Tensor).toArray()),
        );
        lora.detach();
        return { loss, grads, scratch, peak: kernels.heap.peakBytes };
      };
      const whole = step(Number.POSITIVE_INFINITY);
      const sliced = step(1024 * 4 * C);
      expect(whole.scratch).toBeGreaterThanOrEqual(headBytes);
      // one slice (256 KiB) and its output buffer (a quarter of it)
      expect(sliced.scratch).toBe(1024 * 4 * C + (1024 * 4 * C) / 4);
      expect(whole.peak - sliced.peak).toBeGreaterThan(headBytes - 2 ** 20);
      expect(Math.abs(sliced.loss - whole.loss)).toBeLessThan(1e-6 * whole.loss);
      sliced.grads.forEach((g, i) => {
        expectClose(g, whole.grads[i], `lora grad ${i}`);
      });
    } finally {
      model.dispose();
      await kernels.dispose();
    }
  },
);

test("a head larger than the default slice: the model reserves one slice, and a step's heap peak stays far below the head's f32 copy", async () => {
  // head (262144, 64) f32 = 64 MiB, twice the default slice (32 MiB)
  const V = 262144;
  const C = 64;
  const kernels = await createKernels("ref", { heap: new Heap() });
  const { model, batch } = await largeVocabModel(kernels, V, C);
  try {
    const slice = DEFAULT_HEAD_SLICE_BYTES;
    expect(model.linearWeightBytes().scratch).toBe(slice + slice / 4);
    const before = kernels.heap.bytesInUse; // the weights' scratch included
    kernels.heap.resetPeak();
    const small = { ...batch, batchSize: 1, seqLen: 8 };
    small.inputIds = batch.inputIds.slice(0, 8);
    small.labels = small.inputIds.slice();
    const { loss } = model.lossAndGrads(small);
    expect(Number.isFinite(loss)).toBe(true);
    // the plan: one 64 MiB chunk of logits rows (8 rows x 1 MiB) and small activations
    expect(kernels.heap.peakBytes - before).toBeLessThan(16 * 2 ** 20);
  } finally {
    model.dispose();
    await kernels.dispose();
  }
});
