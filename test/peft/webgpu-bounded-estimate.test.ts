// Bounded gradient estimation (memoryBudget) on the webgpu engine: the sums that leave the heap
// mid-backward are read back from the device (Kernels.readback, one per target and pass) and
// brought back by an upload, so the bounded sums equal the plain sums on the same engine to the
// last bit, and the plain sums of the reference engine to 1e-5; at most `budget` bytes of sums are
// on the heap at a time, and the moved-out bytes are counted. Llama, GPT-2 (Conv1D) and a tied
// lm_head (its sum is the embedding's, pinned on the heap). On lavapipe in CI.

import { describe, expect, test } from "vitest";
import { collate, groupIntoBatches } from "../../src/data/batches.js";
import { loadExamples } from "../../src/data/dataset.js";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { createWebGpuKernels } from "../../src/kernels/webgpu/index.js";
import { type Batch, loadModel } from "../../src/models/model.js";
import { estimateGradient } from "../../src/peft/estimate.js";
import { Heap } from "../../src/tensor/heap.js";
import { GPU_CONTEXT } from "../helpers/webgpu.js";

async function fixtureBatches(): Promise<Batch[]> {
  const examples = await loadExamples("test/fixtures/e2e/data.jsonl", null);
  return groupIntoBatches(examples, 2).map((g) => collate(g, { maxLength: 10, padTokenId: 0 }));
}

describe.skipIf(GPU_CONTEXT === null)("bounded estimation on webgpu", () => {
  test.each([
    ["llama-gqa", false],
    ["gpt2", false],
    ["llama-tied", true],
  ] as const)(
    "%s (lm_head targeted: %s): bounded == plain, == the reference",
    async (name, withHead) => {
      const dir = `test/fixtures/models/${name}`;
      const batches = await fixtureBatches();
      const ref = await loadModel(dir, { kernels: createRefKernels(new Heap()) });
      const targets = ref
        .linears()
        .filter((l) => withHead || l.path !== "lm_head")
        .map((l) => l.path);
      const want = await estimateGradient(ref, batches, { targets });

      const kernels = await createWebGpuKernels(new Heap());
      try {
        const model = await loadModel(dir, { kernels });
        const plain = await estimateGradient(model, batches, { targets });
        const sizes = [...plain.grads.values()].map((g) => g.data.length * 4);
        const head = withHead ? (plain.grads.get("lm_head")?.data.length ?? 0) * 4 : 0;
        const budget = 2 * Math.max(...sizes) + head + 128;
        const bounded = await estimateGradient(model, batches, { targets, memoryBudget: budget });
        expect(bounded.memory.passes).toBe(batches.length);
        expect(bounded.memory.heapGradBytes).toBeLessThanOrEqual(budget);
        expect(bounded.memory.movedOutBytes).toBeGreaterThan(0);
        expect(bounded.memory.peakBytes).toBeLessThan(plain.memory.peakBytes);
        expect(bounded.meanLoss).toBe(plain.meanLoss);
        expect(Math.abs(bounded.meanLoss - want.meanLoss)).toBeLessThanOrEqual(
          1e-5 * want.meanLoss,
        );
        expect([...bounded.grads.keys()]).toEqual(targets);
        for (const path of targets) {
          const got = bounded.grads.get(path)?.data as Float32Array;
          expect(got, path).toEqual(plain.grads.get(path)?.data);
          const w = want.grads.get(path)?.data as Float32Array;
          let diff = 0;
          let scale = 0;
          for (let i = 0; i < w.length; i++) {
            diff = Math.max(diff, Math.abs(got[i] - w[i]));
            scale = Math.max(scale, Math.abs(w[i]));
          }
          expect(scale, path).toBeGreaterThan(0);
          expect(diff / scale, path).toBeLessThanOrEqual(1e-5);
        }
        model.dispose();
      } finally {
        await kernels.dispose();
      }
    },
  );
});
