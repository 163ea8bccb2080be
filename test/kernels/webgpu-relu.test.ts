// The WebGPU engine's relu / reluBackward (the optional kernels T5 v1.0's feed-forward runs on
// that engine) against the host loop the CPU engines take (models/t5-activation.ts with the
// reference kernels): equal values, zeros (derivative 0, as PyTorch's) and negative zeros
// included, over more elements than one 256-invocation workgroup.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels } from "../../src/kernels/kernels.js";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { createWebGpuKernels, type WebGpuKernels } from "../../src/kernels/webgpu/index.js";
import { activationBackward, activationForward } from "../../src/models/t5-activation.js";
import { Heap } from "../../src/tensor/heap.js";
import { randomUniform } from "../helpers/random.js";
import { GPU_CONTEXT } from "../helpers/webgpu.js";

describe.skipIf(GPU_CONTEXT === null)("webgpu relu against the host loop", () => {
  let heap: Heap;
  let ref: Kernels;
  let gpu: WebGpuKernels;
  beforeAll(async () => {
    heap = new Heap({ initialBytes: 2 ** 20 });
    ref = createRefKernels(heap);
    gpu = await createWebGpuKernels(heap);
  });
  afterAll(async () => {
    await gpu?.dispose();
  });

  test("forward and backward", async () => {
    const n = 1000;
    const xs = randomUniform(n, 7, 3);
    for (let i = 0; i < n; i += 10) xs[i] = i % 20 === 0 ? 0 : -0;
    const x = heap.fromArray(xs, [n]);
    const dy = heap.fromArray(randomUniform(n, 8, 1), [n]);
    const [outRef, outGpu, dxRef, dxGpu] = [0, 1, 2, 3].map(() =>
      heap.fromArray(randomUniform(n, 9, 1), [n]),
    );
    activationForward(ref, "relu", outRef, x);
    activationBackward(ref, "relu", dxRef, x, dy);
    expect(gpu.relu).toBeDefined();
    activationForward(gpu, "relu", outGpu, x);
    activationBackward(gpu, "relu", dxGpu, x, dy);
    await gpu.download(outGpu, dxGpu);
    expect(outRef.f32().filter((v) => v === 0).length).toBeGreaterThan(n / 3);
    const values = (t: typeof x) => Array.from(t.f32(), (v) => v + 0); // -0 counts as 0
    expect(values(outGpu)).toEqual(values(outRef));
    expect(values(dxGpu)).toEqual(values(dxRef));
  });
});
