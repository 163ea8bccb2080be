// Frozen weights kept off the engine heap (WeightLoadOptions.offloadFrozen, models/weights.ts and
// models/embedding-table.ts). Offloading changes where the weights live, never the values a matmul
// sees, so on every tiny fixture model and engine the offloaded model must give the SAME logits,
// loss and gradients as the model with its weights on the heap (bit for bit), and PyTorch's within
// the causal-LM test's tolerance. Also: a bf16 checkpoint keeps its embedding in bf16 off the heap
// with the same results, LoRA training steps give the same losses, saveModel writes the offloaded
// weights, and a model whose frozen weights exceed a small heap limit loads ("auto") and trains.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels, KernelsName } from "../../src/kernels/kernels.js";
import { llamaParamSpecs } from "../../src/models/llama.js";
import { type Batch, type CausalLM, loadModel } from "../../src/models/model.js";
import { randomCheckpoint, syntheticLlamaConfig } from "../../src/models/random.js";
import { buildModel } from "../../src/models/registry.js";
import { saveModel } from "../../src/models/save.js";
import type { OffloadMode } from "../../src/models/weights.js";
import { LoraConfig, LoraGAConfig } from "../../src/peft/config.js";
import { estimateGradient } from "../../src/peft/estimate.js";
import { getPeftModel } from "../../src/peft/peft-model.js";
import { Heap, HeapExhaustedError } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { createOptimizer } from "../../src/train/optimizer.js";
import { Rng } from "../../src/util/random.js";
import {
  FIXTURE_MODELS,
  MODEL_FIXTURES,
  readModelFixture,
  relErr,
} from "../helpers/model-fixtures.js";
import { NATIVE_ENGINES } from "../helpers/native.js";

const KERNELS: KernelsName[] = ["ref", "wasm", ...NATIVE_ENGINES];

/** The token embedding's HF name in each architecture. */
function tokenEmbedding(model: CausalLM): string {
  return model.modelType === "gpt2" ? "transformer.wte.weight" : "model.embed_tokens.weight";
}

/** Gradients any storage can give: heap parameters plus every float linear weight (not tied). */
function gradNames(model: CausalLM): string[] {
  const linear = model
    .linears()
    .map((l) => l.weightName)
    .filter((n) => n !== tokenEmbedding(model));
  return [...new Set([...model.params.keys(), ...linear])].filter(
    (n) => n !== tokenEmbedding(model),
  );
}

function lossAndGrads(
  model: CausalLM,
  batch: Batch,
  names: readonly string[],
  shapes: ReadonlyMap<string, readonly number[]>,
): { loss: number; grads: Map<string, Float32Array> } {
  const heap = model.kernels.heap;
  const tensors = new Map<string, Tensor>(
    names.map((n) => [n, heap.zeros([...(shapes.get(n) as readonly number[])])]),
  );
  const { loss } = model.lossAndGrads(batch, { paramGrads: tensors });
  const grads = new Map([...tensors].map(([n, t]) => [n, t.toArray()]));
  for (const t of tensors.values()) t.dispose();
  return { loss, grads };
}

function shapesOf(model: CausalLM): Map<string, readonly number[]> {
  const shapes = new Map<string, readonly number[]>();
  for (const [n, p] of model.params) shapes.set(n, p.shape);
  for (const l of model.linears())
    shapes.set(
      l.weightName,
      l.fanInFanOut ? [l.inFeatures, l.outFeatures] : [l.outFeatures, l.inFeatures],
    );
  return shapes;
}

/** AdamW LoRA steps on one batch; returns the losses. */
function loraSteps(model: CausalLM, batch: Batch, steps: number): number[] {
  const modules = model.modelType === "gpt2" ? ["c_attn", "c_fc"] : ["q_proj", "down_proj"];
  const peft = getPeftModel(
    model,
    new LoraConfig({ r: 2, lora_alpha: 4, target_modules: modules, init_lora_weights: "gaussian" }),
    { seed: 3 },
  );
  const params = peft
    .parameters()
    .map((p) => ({ name: p.name, param: p.param, grad: p.grad as Tensor }));
  const optimizer = createOptimizer(model.kernels, params, { kind: "adamw" });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    peft.zeroGrad();
    losses.push(model.lossAndGrads(batch).loss);
    optimizer.update(1e-2);
  }
  optimizer.dispose();
  peft.dispose();
  return losses;
}

describe.each(KERNELS)("frozen weights off the heap (%s kernels)", (kernelsName) => {
  let kernels: Kernels;
  beforeAll(async () => {
    kernels = await createKernels(kernelsName, { heap: new Heap(), threads: 2 });
  });
  afterAll(async () => {
    await kernels.dispose();
  });

  const open = (name: string, offloadFrozen: OffloadMode) =>
    loadModel(join(MODEL_FIXTURES, name), { kernels, offloadFrozen });

  test.each(FIXTURE_MODELS)(
    "%s: same logits, loss and gradients as on the heap, and PyTorch's",
    async (name) => {
      const onHeap = await open(name, "off");
      const off = await open(name, "on");
      const fixture = await readModelFixture(name);
      const embedding = tokenEmbedding(off);
      try {
        // where the weights went: every linear weight and the token embedding left the heap
        expect(off.params.has(embedding)).toBe(false);
        expect(onHeap.params.has(embedding)).toBe(true);
        expect(off.linearWeightBytes().heap).toBe(0);
        expect(off.linearWeightBytes().offHeap).toBe(onHeap.linearWeightBytes().heap);
        for (const l of off.linears()) expect(off.params.has(l.weightName), l.path).toBe(false);
        // logits: bit for bit, and PyTorch's
        const logits = off.forward(fixture.batch).toArray();
        expect(logits).toEqual(onHeap.forward(fixture.batch).toArray());
        const want = fixture.values.get("logits");
        if (want !== undefined) expect(relErr(logits, want).rel).toBeLessThan(1e-5);
        // loss and gradients (offloaded linear weights included): bit for bit, and PyTorch's
        const names = gradNames(off);
        const shapes = shapesOf(onHeap);
        const ours = lossAndGrads(off, fixture.batch, names, shapes);
        const ref = lossAndGrads(onHeap, fixture.batch, names, shapes);
        expect(ours.loss).toBe(ref.loss);
        const wantLoss = (fixture.values.get("loss") as Float32Array)[0];
        expect(Math.abs(ours.loss - wantLoss) / Math.abs(wantLoss)).toBeLessThan(1e-5);
        for (const n of names) {
          const g = ours.grads.get(n) as Float32Array;
          expect(g, n).toEqual(ref.grads.get(n));
          const torch = fixture.values.get(`grad.${n}`);
          if (torch !== undefined) expect(relErr(g, torch).rel, n).toBeLessThan(1e-4);
        }
        // the embedding off the heap takes no gradient
        const dEmbed = kernels.heap.zeros([...(onHeap.params.get(embedding) as Tensor).shape]);
        expect(() =>
          off.lossAndGrads(fixture.batch, { paramGrads: new Map([[embedding, dEmbed]]) }),
        ).toThrow(/not a parameter/);
        dEmbed.dispose();
        // LoRA training steps: the same losses
        expect(loraSteps(off, fixture.batch, 3)).toEqual(loraSteps(onHeap, fixture.batch, 3));
      } finally {
        onHeap.dispose();
        off.dispose();
      }
    },
  );
});

test("LoRA-GA on an offloaded model: estimation, init with the base offset, merge: as on the heap", async () => {
  const kernels = await createKernels("ref", { heap: new Heap() });
  const batch = (await readModelFixture("llama-gqa")).batch;
  const run = async (offloadFrozen: OffloadMode) => {
    const model = await loadModel(join(MODEL_FIXTURES, "llama-gqa"), { kernels, offloadFrozen });
    const targets = model
      .linears()
      .filter((l) => l.path !== "lm_head")
      .map((l) => l.path);
    const { grads } = await estimateGradient(model, [batch], { targets });
    const peft = getPeftModel(
      model,
      new LoraGAConfig({ r: 2, lora_alpha: 4, target_modules: ["q_proj", "down_proj"] }),
      { namedGrad: grads },
    );
    const adapted = model.forward(batch).toArray();
    peft.mergeAndUnload();
    const merged = model.forward(batch).toArray();
    const q = model.readLinearWeight("model.layers.0.self_attn.q_proj");
    const offHeap = model.linearWeightBytes().offHeap;
    model.dispose();
    return { grads: [...grads.values()].map((g) => g.data), adapted, merged, q, offHeap };
  };
  const heapRun = await run("off");
  const offRun = await run("on");
  expect(heapRun.offHeap).toBe(0);
  expect(offRun.offHeap).toBeGreaterThan(0);
  expect(offRun.grads).toEqual(heapRun.grads);
  expect(offRun.adapted).toEqual(heapRun.adapted);
  expect(offRun.merged).toEqual(heapRun.merged);
  expect(offRun.q).toEqual(heapRun.q);
  await kernels.dispose();
});

/**
 * Runs fn on a fresh engine with a BF16 copy of fixture model `name` written into a temporary
 * folder (its path given), then removes both.
 */
async function withBf16Copy(
  kernelsName: KernelsName,
  name: string,
  fn: (kernels: Kernels, dir: string) => Promise<void>,
): Promise<void> {
  const kernels = await createKernels(kernelsName, { heap: new Heap(), threads: 2 });
  const dir = mkdtempSync(join(tmpdir(), "loraga-offload-"));
  try {
    const source = join(MODEL_FIXTURES, name);
    const f32 = await loadModel(source, { kernels });
    await saveModel(f32, join(dir, "bf16"), { sourceDir: source, dtype: "BF16" });
    f32.dispose();
    await fn(kernels, join(dir, "bf16"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await kernels.dispose();
  }
}

describe("offloading on a bf16 checkpoint, saving, and the heap limit", () => {
  test.each(KERNELS)(
    "a bf16 checkpoint: embedding kept bf16 off the heap, same results; saveModel writes every weight (%s)",
    async (kernelsName) => {
      // on the native engine with bf16 GEMMs (Kernels.bf16Matmul) the heap's bf16 weights go to the
      // matmul as they are, and so must the offloaded ones: the same bits either way
      await withBf16Copy(kernelsName, "llama-tied", async (kernels, bf16Dir) => {
        const onHeap = await loadModel(bf16Dir, {
          kernels,
          weightDtype: "bf16",
          offloadFrozen: "off",
        });
        const heapBefore = kernels.heap.bytesInUse;
        const off = await loadModel(bf16Dir, { kernels, weightDtype: "bf16", offloadFrozen: "on" });
        const embed = onHeap.params.get("model.embed_tokens.weight") as Tensor;
        // what stayed on the heap: norms and the scratch (the largest weight in f32: the tied head)
        const scratch = off.linearWeightBytes().scratch;
        expect(scratch).toBe(embed.byteLength);
        expect(kernels.heap.bytesInUse - heapBefore).toBeLessThan(scratch + 64 * 1024);
        const batch = (await readModelFixture("llama-tied")).batch;
        expect(off.forward(batch).toArray()).toEqual(onHeap.forward(batch).toArray());
        expect(loraSteps(off, batch, 2)).toEqual(loraSteps(onHeap, batch, 2));
        // saveModel: the offloaded weights and the embedding are written, with the values held
        const saved = join(bf16Dir, "..", "saved");
        await saveModel(off, saved, { sourceDir: bf16Dir });
        const file = await SafetensorsFile.open(join(saved, "model.safetensors"));
        try {
          expect(await file.readF32("model.embed_tokens.weight")).toEqual(embed.toArray());
          const q = "model.layers.0.self_attn.q_proj";
          expect(await file.readF32(`${q}.weight`)).toEqual(onHeap.readLinearWeight(q));
          expect(file.entries.size).toBe(onHeap.params.size);
        } finally {
          await file.close();
        }
        onHeap.dispose();
        off.dispose();
      });
    },
  );

  test.each(KERNELS)(
    "a bf16 checkpoint with an untied head, whole and in vocabulary slices: the on-heap results (%s)",
    async (kernelsName) => {
      // the untied lm_head is bf16 on the heap too: offloaded, its slices go to a bf16-GEMM
      // engine as they are (one matmul per slice instead of one: the same products, so float
      // rounding at most; widened to f32 they would differ by the activations' bf16 rounding)
      await withBf16Copy(kernelsName, "llama-gqa", async (kernels, dir) => {
        const load = (offloadFrozen: OffloadMode) =>
          loadModel(dir, { kernels, weightDtype: "bf16", offloadFrozen });
        const onHeap = await load("off");
        const off = await load("on");
        const batch = (await readModelFixture("llama-gqa")).batch;
        const want = onHeap.forward(batch).toArray();
        expect(off.forward(batch).toArray()).toEqual(want);
        expect(loraSteps(off, batch, 2)).toEqual(loraSteps(onHeap, batch, 2));
        // in slices of 40 vocabulary rows: a spy records the dtype each slice reaches matmul in
        const hidden = (off.config as { hidden_size: number }).hidden_size;
        off.setMemoryOptions({ headSliceBytes: 4 * hidden * 40 });
        const sliceDtypes = new Set<string>();
        const matmul = kernels.matmul;
        (kernels as { matmul: Kernels["matmul"] }).matmul = (out, a, b, opts) => {
          if (b.shape[0] === 40 && b.shape[1] === hidden) sliceDtypes.add(b.dtype);
          matmul.call(kernels, out, a, b, opts);
        };
        let sliced: Float32Array;
        try {
          sliced = off.forward(batch).toArray();
        } finally {
          (kernels as { matmul: Kernels["matmul"] }).matmul = matmul;
        }
        expect([...sliceDtypes]).toEqual([kernels.bf16Matmul === true ? "bf16" : "f32"]);
        expect(relErr(sliced, want).rel).toBeLessThan(1e-6);
        onHeap.dispose();
        off.dispose();
      });
    },
  );

  test.each(KERNELS)(
    "frozen weights larger than the heap limit: 'auto' offloads, and LoRA trains (%s)",
    async (kernelsName) => {
      // a random llama of ~12.6 MB of f32 weights, against a heap limited to 10 MiB above what the
      // engine itself takes (the wasm and native engines keep their scratch on the heap)
      const config = syntheticLlamaConfig({
        layers: 8,
        hidden: 128,
        intermediate: 512,
        heads: 4,
        vocab: 4096,
      });
      const checkpoint = randomCheckpoint(llamaParamSpecs(config), 5);
      const probe = await createKernels(kernelsName, { heap: new Heap(), threads: 2 });
      const engineBytes = probe.heap.bytesInUse;
      await probe.dispose();
      const room = 10 * 2 ** 20;
      const limit = engineBytes + room;
      const build = async (offloadFrozen: OffloadMode) => {
        const kernels = await createKernels(kernelsName, {
          heap: new Heap({ maxBytes: limit, initialBytes: 2 ** 20 }),
          threads: 2,
        });
        try {
          return await buildModel(config, checkpoint, kernels, "(random)", { offloadFrozen });
        } catch (error) {
          await kernels.dispose();
          throw error;
        }
      };
      await expect(build("off")).rejects.toThrow(HeapExhaustedError);
      const model = await build("auto");
      expect(model.linearWeightBytes().heap).toBe(0);
      const offHeapBytes = model
        .offHeapParams()
        .reduce((sum, p) => sum + 4 * p.shape.reduce((a, b) => a * b, 1), 0);
      expect(offHeapBytes).toBeGreaterThan(room); // f32 weights: 4 bytes each
      const rng = new Rng(2);
      const inputIds = Int32Array.from({ length: 2 * 16 }, () => rng.below(4096));
      const batch = { batchSize: 2, seqLen: 16, inputIds, labels: inputIds.slice() };
      const losses = loraSteps(model, batch, 4);
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses[3]).toBeLessThan(losses[0]);
      expect(model.kernels.heap.peakBytes).toBeLessThanOrEqual(limit);
      model.dispose();
      await model.kernels.dispose();
    },
  );
});
