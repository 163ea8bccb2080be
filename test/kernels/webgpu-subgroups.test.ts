// The subgroup kernels of the WebGPU engine (the GEMM's shuffled A fragment, gemm.ts; the
// subgroup row reductions, rows.ts) and the workgroup-memory kernels they replace, against the
// reference, on two adapters whose subgroup sizes differ: lavapipe (8; test/helpers/webgpu.ts)
// and SwiftShader (4; Dawn on the Vulkan ICD json of Debian's chromium package, which .ci/run
// installs). Each adapter runs both variants (WebGpuOptions.subgroups true / false): GEMM shapes
// with tails of the tile and of the K step in every transpose form, a batched and a fused (LoRA)
// product, two causal kinds; and every kernel with a row reduction (rmsnorm, layernorm and their
// backwards, attention softmax and its backward, cross-entropy, sumInto / sumSquaresInto /
// maxInto) at row lengths below, at and above the 256-invocation workgroup; and the two variants
// give the same bits (they add in the same order, rows.ts, gemm.ts). With CI set, both
// adapters must open and have subgroups, so that the subgroup kernels are what runs.

import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels, MatmulOptions } from "../../src/kernels/kernels.js";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { matmul as refMatmul } from "../../src/kernels/ref/matmul.js";
import { type GpuContext, openGpu } from "../../src/kernels/webgpu/device.js";
import { WebGpuKernels } from "../../src/kernels/webgpu/index.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { expectAllclose, expectGemmClose } from "../helpers/allclose.js";
import { expectNormTwins, type TwinEngines, twinKit } from "../helpers/engine-twins.js";
import { randomUniform } from "../helpers/random.js";
import { GPU_CONTEXT } from "../helpers/webgpu.js";

const SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json";
const CI = process.env.CI !== undefined && process.env.CI !== "";

/** A device on SwiftShader: Dawn's Vulkan instance is created with VK_ICD_FILENAMES set to it. */
async function openSwiftShader(): Promise<GpuContext | null> {
  if (!existsSync(SWIFTSHADER_ICD)) {
    if (CI) throw new Error(`no SwiftShader ICD at ${SWIFTSHADER_ICD} (the chromium package)`);
    return null;
  }
  const saved = process.env.VK_ICD_FILENAMES;
  process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  try {
    return await openGpu();
  } finally {
    process.env.VK_ICD_FILENAMES = saved;
  }
}

/** SwiftShader's device, or null where the chromium package is missing (CI: the test fails). */
const SWIFTSHADER: GpuContext | null | string = await openSwiftShader().catch((e) => String(e));

const ADAPTERS: { name: string; ctx: GpuContext | null | string }[] = [
  { name: "lavapipe", ctx: GPU_CONTEXT },
  { name: "SwiftShader", ctx: SWIFTSHADER },
];

const GEMM_SHAPES: [number, number, number][] = [
  [1, 37, 5],
  [13, 33, 17],
  [65, 63, 33],
  [97, 130, 200],
];

describe.each(ADAPTERS)("webgpu subgroup kernels on $name", ({ name, ctx: opened }) => {
  const ctx = typeof opened === "string" ? null : opened;
  afterAll(() => {
    // the lavapipe device is the helper's, shared by the file; SwiftShader's is this file's
    if (ctx !== null && ctx !== GPU_CONTEXT) ctx.device.destroy();
  });

  test("the adapter opens and has subgroups (required with CI set)", () => {
    if (CI) expect(ctx, `${name} did not open: ${String(opened)}`).not.toBeNull();
    if (ctx === null) return;
    if (CI) expect(ctx.subgroups, `${name} has no subgroups`).toBe(true);
    console.log(
      `${name}: ${ctx.adapterName}; subgroups ${ctx.subgroups}, sizes ${ctx.subgroupSizes.min}..${ctx.subgroupSizes.max}`,
    );
  });

  test.skipIf(ctx === null)("both variants give the same bits", async () => {
    const heap = new Heap({ initialBytes: 4 * 2 ** 20 });
    const variants = [true, false].map(
      (subgroups) => new WebGpuKernels(ctx as GpuContext, heap, { subgroups }),
    );
    let seed = 100;
    const rand = (shape: number[], range = 1): Tensor =>
      heap.fromArray(
        randomUniform(
          shape.reduce((x, y) => x * y, 1),
          seed++,
          range,
        ),
        shape,
      );
    const x = rand([7, 700], 3);
    const w = rand([700]);
    const dy = rand([7, 700]);
    const logits = rand([5, 700], 5);
    const targets = heap.fromArray(new Int32Array([0, 699, -100, 5, 300]));
    const scores = rand([1, 2, 6, 300], 4);
    const ga = rand([65, 33]);
    const gb = rand([63, 33]);
    const outputs = variants.map((k) => {
      const o = {
        norm: heap.tensor([7, 700]),
        rstd: heap.tensor([7]),
        dx: heap.tensor([7, 700]),
        mean: heap.tensor([7]),
        lnRstd: heap.tensor([7]),
        ln: heap.tensor([7, 700]),
        losses: heap.tensor([5]),
        dLogits: heap.tensor([5, 700]),
        probs: heap.tensor([1, 2, 6, 300]),
        sums: heap.tensor([3]),
        gemm: heap.tensor([65, 63]),
      };
      k.rmsnorm(o.norm, o.rstd, x, w, 1e-6);
      k.rmsnormBackward(o.dx, null, dy, x, w, o.rstd);
      k.layernorm(o.ln, o.mean, o.lnRstd, x, w, w, 1e-5);
      k.crossEntropy(o.losses, o.dLogits, logits, targets, { gradScale: 0.5 });
      k.attentionSoftmax(o.probs, scores, { scale: 0.3, causal: true });
      k.sumInto(o.sums.view([1], 0), x);
      k.sumSquaresInto(o.sums.view([1], 1), dy);
      k.maxInto(o.sums.view([1], 2), logits);
      k.matmul(o.gemm, ga, gb, { transB: true, alpha: 0.5 });
      return o;
    });
    for (const [i, k] of variants.entries()) await k.download(...Object.values(outputs[i]));
    for (const name of Object.keys(outputs[0]) as (keyof (typeof outputs)[0])[]) {
      const [a, b] = outputs.map(
        (o) => new Uint32Array(heap.memory.buffer, o[name].ptr, o[name].size),
      );
      expect(a, name).toEqual(b);
    }
  });

  describe.skipIf(ctx === null).each([true, false])("subgroups %s", (subgroups) => {
    let heap: Heap;
    let ref: Kernels;
    let gpu: WebGpuKernels;
    const engines: Partial<TwinEngines> = {};
    beforeAll(() => {
      heap = new Heap({ initialBytes: 4 * 2 ** 20 });
      ref = createRefKernels(heap);
      // the device is shared by both variants (the kernels' dispose would destroy it)
      gpu = new WebGpuKernels(ctx as GpuContext, heap, { subgroups });
      Object.assign(engines, { heap, ref, other: gpu });
    });

    const kit = twinKit(engines);
    const { rand, twins, expectSame } = kit;

    test("the variant asked for is the one that runs", () => {
      expect(gpu.subgroups).toBe(subgroups && (ctx as GpuContext).subgroups);
    });

    test.each(GEMM_SHAPES)("gemm %i x %i x %i, every transpose form", async (m, n, k) => {
      for (const form of [0, 1, 2, 3]) {
        const transA = (form & 1) === 1;
        const transB = (form & 2) === 2;
        const a = rand(transA ? [k, m] : [m, k]);
        const b = rand(transB ? [n, k] : [k, n]);
        const out = rand([m, n]);
        const want = out.toArray();
        const options: MatmulOptions = { transA, transB, accumulate: form === 1, alpha: 0.75 };
        if (form !== 1) out.f32().fill(Number.NaN);
        gpu.matmul(out, a, b, options);
        await gpu.download(out);
        refMatmul(want, a.f32(), b.f32(), {
          batch: 1,
          m,
          n,
          k,
          bBatched: false,
          transA,
          transB,
          accumulate: form === 1,
          alpha: 0.75,
        });
        expectGemmClose(out.f32(), want, k, `form ${form}`);
      }
    });

    test("gemm: batched b, the fused LoRA term, causal maskOut and upperA", async () => {
      // batched: out (3, 19, 23) = a (3, 19, 31) b (3, 23, 31)^T
      const a = rand([3, 19, 31]);
      const b = rand([3, 23, 31]);
      const batched = twins([3, 19, 23]);
      // LoRA forward: x W^T + 2 (x A^T) B^T with x (70, 96), W (72, 96), xA (70, 8), B (72, 8)
      const x = rand([70, 96]);
      const wt = rand([72, 96]);
      const xa = rand([70, 8]);
      const lb = rand([72, 8]);
      const lora = twins([70, 72]);
      // causal over T = 70 with 2 grouped heads: scores (140, 70) = q (140, 24) k (70, 24)^T
      const T = 70;
      const q = rand([2 * T, 24]);
      const kk = rand([T, 24]);
      const scores = twins([2 * T, T]);
      // upperA: out (70, 24) = P^T dO with P (140, 70) zero where k mod T < i
      const p = rand([2 * T, T]);
      const pv = p.f32();
      for (let r = 0; r < 2 * T; r++) for (let c = 0; c < T; c++) if (r % T < c) pv[r * T + c] = 0;
      const dO = rand([2 * T, 24]);
      const upper = twins([T, 24]);
      for (const [i, k] of [ref, gpu].entries()) {
        k.matmul(batched[i], a, b, { transB: true });
        k.matmul(lora[i], x, wt, {
          transB: true,
          plus: { a: xa, b: lb, transB: true, alpha: 2 },
        });
        k.matmul(scores[i], q, kk, { transB: true, causal: { kind: "maskOut", period: T } });
        k.matmul(upper[i], p, dO, { transA: true, causal: { kind: "upperA", period: T } });
      }
      await expectSame("gemm", [batched, lora, scores, upper], { rtol: 1e-4, atol: 1e-4 });
    });

    test.each([1, 5, 256, 700])("rmsnorm, layernorm and backwards, %i columns", async (C) => {
      await expectNormTwins(kit, 9, C);
    });

    test.each([
      { b: 2, h: 2, tq: 12, tk: 12, lengths: [12, 5] },
      { b: 1, h: 2, tq: 3, tk: 300, lengths: null },
    ])("attention softmax and backward, $tk keys", async (c) => {
      const shape = [c.b, c.h, c.tq, c.tk];
      const scores = rand(shape, 4);
      const probs = twins(shape);
      const keyLengths = c.lengths === null ? undefined : heap.fromArray(new Int32Array(c.lengths));
      const options = { scale: 0.3, causal: true, ...(keyLengths !== undefined && { keyLengths }) };
      ref.attentionSoftmax(probs[0], scores, options);
      gpu.attentionSoftmax(probs[1], scores, options);
      const dProbs = rand(shape);
      const dScores = twins(shape);
      ref.attentionSoftmaxBackward(dScores[0], probs[0], dProbs, 0.3);
      gpu.attentionSoftmaxBackward(dScores[1], probs[0], dProbs, 0.3);
      await expectSame("softmax", [probs, dScores]);
    });

    test("crossEntropy with ignored rows, and the whole-tensor reductions", async () => {
      const [N, V] = [6, 700];
      const logits = rand([N, V], 5);
      const targets = heap.fromArray(new Int32Array([0, 699, -100, 5, 300, 1]));
      const losses = twins([N]);
      const dLogits = twins([N, V]);
      ref.crossEntropy(losses[0], dLogits[0], logits, targets, { gradScale: 0.2 });
      gpu.crossEntropy(losses[1], dLogits[1], logits, targets, { gradScale: 0.2 });
      await expectSame("crossEntropy", [losses, dLogits]);
      for (const n of [1, 255, 10007]) {
        const a = rand([n], 3);
        const outs = [heap.tensor([1]), heap.tensor([1]), heap.tensor([1])];
        gpu.sumInto(outs[0], a);
        gpu.sumSquaresInto(outs[1], a);
        gpu.maxInto(outs[2], a);
        await gpu.download(...outs);
        expectAllclose(
          outs.map((t) => t.f32()[0]),
          [ref.sum(a), ref.sumSquares(a), ref.max(a)],
          { rtol: 1e-5, atol: 1e-4, label: `reductions of ${n}` },
        );
      }
    });
  });
});
