// Compressed frozen weights on the webgpu engine are expanded on the device, never on the host:
// a model loaded with bf16 / f16 weights (heap tensors, widened by kernels.convert) or int8 / nf4
// (codes that move onto the heap at their first use, expanded by kernels.dequantize) gives the
// logits of the same model on the reference engine (whose expansion is the host's quant/ code,
// tested against numpy in test/quant and test/models/frozen-weights.test.ts), while the engine's
// expansion kernels run and no linear weight is left off the heap. Re-storing a weight frees its
// heap codes, and disposing the model frees every heap byte it held. Llama (nn.Linear) and GPT-2
// (Conv1D: stored (in, out), int8 / nf4 codes (out, in)). On lavapipe in CI.

import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { createWebGpuKernels, type WebGpuKernels } from "../../src/kernels/webgpu/index.js";
import type { Batch } from "../../src/models/model.js";
import { loadModel } from "../../src/models/model.js";
import { Heap } from "../../src/tensor/heap.js";
import { Rng } from "../../src/util/random.js";
import { maxRelDiff } from "../helpers/allclose.js";
import { GPU_CONTEXT } from "../helpers/webgpu.js";

function batchOf(vocab: number): Batch {
  const rng = new Rng(9);
  const inputIds = Int32Array.from({ length: 2 * 7 }, () => rng.below(vocab));
  return { batchSize: 2, seqLen: 7, inputIds, labels: inputIds.slice() };
}

const KINDS = ["bf16", "f16", "int8", "nf4"] as const;

describe.skipIf(GPU_CONTEXT === null)(
  "webgpu: compressed frozen weights expand on the device",
  () => {
    let heap: Heap;
    let gpu: WebGpuKernels;
    beforeAll(async () => {
      heap = new Heap({ initialBytes: 8 * 2 ** 20 });
      gpu = await createWebGpuKernels(heap);
    });
    afterAll(async () => {
      await gpu?.dispose();
    });

    describe.each(["llama-gqa", "gpt2"])("%s", (name) => {
      test.each(KINDS)("%s: logits equal the reference engine's", async (kind) => {
        const dir = `test/fixtures/models/${name}`;
        const options =
          kind === "int8" || kind === "nf4" ? { quantize: kind } : { weightDtype: kind };
        const ref = await loadModel(dir, { kernels: createRefKernels(new Heap()), ...options });
        const batch = batchOf((ref.config as { vocab_size: number }).vocab_size);
        const want = ref.forward(batch).toArray();

        const before = heap.bytesInUse;
        const model = await loadModel(dir, { kernels: gpu, ...options });
        const quantized = kind === "int8" || kind === "nf4";
        if (quantized) expect(model.linearWeightBytes().offHeap).toBeGreaterThan(0); // not used yet
        const dequantize = vi.spyOn(gpu, "dequantize");
        const convert = vi.spyOn(gpu, "convert");
        const logits = model.forward(batch);
        await gpu.download(logits);
        const expanded = model.linears().filter((l) => model.weightStorage(l.path) === kind).length;
        expect(expanded).toBeGreaterThan(4);
        expect((quantized ? dequantize : convert).mock.calls.length).toBeGreaterThanOrEqual(
          expanded,
        );
        expect(model.linearWeightBytes().offHeap).toBe(0); // the codes moved onto the heap
        expect(maxRelDiff(logits.toArray(), want)).toBeLessThanOrEqual(1e-5);
        dequantize.mockRestore();
        convert.mockRestore();

        if (quantized) {
          // re-stored as f32: the heap codes are freed, the weight is a heap tensor again
          const path = model.linears()[0].path;
          const inUse = heap.bytesInUse;
          const values = model.readLinearWeight(path);
          model.quantizeLinears("f32", [path]);
          expect(model.readLinearWeight(path)).toEqual(values);
          // a new f32 tensor of 4 n bytes, less the codes and scales it replaces
          const info = model.linears()[0];
          expect(heap.bytesInUse - inUse).toBeLessThan(4 * info.inFeatures * info.outFeatures);
        }
        model.dispose();
        expect(heap.bytesInUse).toBe(before);
      });
    });

    // An off-heap lm_head expanded in vocabulary slices (src/models/sliced-linear.ts): each slice
    // is expanded on the host, so it must be uploaded before the device reads it.
    test("an offloaded lm_head in vocabulary slices: logits and token losses of the reference", async () => {
      const dir = "test/fixtures/models/llama-gqa";
      const ref = await loadModel(dir, { kernels: createRefKernels(new Heap()) });
      const vocab = (ref.config as { vocab_size: number }).vocab_size;
      const hidden = (ref.config as { hidden_size: number }).hidden_size;
      const batch = batchOf(vocab);
      const want = ref.forward(batch).toArray();
      const wantLosses = await ref.tokenLosses(batch);
      const model = await loadModel(dir, { kernels: gpu, offloadFrozen: "on" });
      const rows = Math.ceil(vocab / 3); // three slices
      model.setMemoryOptions({ headSliceBytes: 4 * hidden * rows });
      const matmul = vi.spyOn(gpu, "matmul");
      const logits = model.forward(batch);
      await gpu.download(logits);
      const sliceProducts = matmul.mock.calls.filter(
        ([, , b]) => b.rank === 2 && b.shape[0] === rows && b.shape[1] === hidden,
      ).length;
      matmul.mockRestore();
      expect(sliceProducts).toBeGreaterThan(0);
      expect(maxRelDiff(logits.toArray(), want)).toBeLessThanOrEqual(1e-5);
      expect(maxRelDiff(await model.tokenLosses(batch), wantLosses)).toBeLessThanOrEqual(1e-5);
      model.dispose();
      ref.dispose();
    });
  },
);
