// The WebGPU kernels behind compressed frozen weights and SGD, against the host and the reference:
// - dequantize: int8 (row-wise) and nf4 (blockwise) codes moved onto the heap (HeapCodesWeight)
//   and expanded on the device give exactly the bits the host's quant/ code gives, for odd
//   sizes, partial blocks, zero rows and blocks, and the extreme codes; bf16 / f16 weights are
//   widened by convert (webgpu-kernels.test.ts);
// - the reference's dequantize-free path: HeapCodesWeight expands on the host as the host weight;
// - sgd over three steps (the first sets the momentum buffer) against the reference kernel, with
//   and without momentum, dampening, nesterov and weight decay, and its argument checks; the SGD
//   optimiser resumed from a saved state on webgpu equals two uninterrupted steps on ref;
// - offloaded bf16 / f16 frozen weights (models/weights.ts FrozenWeight): on webgpu their 2-byte
//   form is uploaded (the only upload of the expand, half the f32 expansion's bytes) and widened
//   on the device, whole or in row blocks, bit for bit as the host widens them.
// On lavapipe in CI (test/helpers/webgpu.ts); with CI set and no adapter, webgpu-adapter.test.ts
// fails the run.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels, SGDOptions } from "../../src/kernels/kernels.js";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { createWebGpuKernels, type WebGpuKernels } from "../../src/kernels/webgpu/index.js";
import { FrozenWeight, WeightScratch } from "../../src/models/weights.js";
import { HeapCodesWeight } from "../../src/quant/heap-codes.js";
import { quantizeWeight, weightFromHalfBits } from "../../src/quant/quantized-linear.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { createOptimizer } from "../../src/train/optimizer.js";
import { expectAllclose } from "../helpers/allclose.js";
import { randomUniform } from "../helpers/random.js";
import { GPU_CONTEXT } from "../helpers/webgpu.js";

/** (rows, cols) values with a zero row, a zero run of 70 elements and the row extremes. */
function weightValues(rows: number, cols: number, seed: number): Float32Array {
  const data = randomUniform(rows * cols, seed, 0.5);
  data.fill(0, cols, 2 * cols); // row 1: int8 scale 0
  data.fill(0, 3 * cols, 3 * cols + 70); // covers a whole nf4 block of 64
  data[5 * cols] = 2; // the largest code of its row / block
  data[6 * cols + 1] = -2; // the smallest
  return data;
}

describe.skipIf(GPU_CONTEXT === null)("webgpu dequantize and sgd", () => {
  let heap: Heap;
  let ref: Kernels;
  let gpu: WebGpuKernels;
  beforeAll(async () => {
    heap = new Heap({ initialBytes: 8 * 2 ** 20 });
    ref = createRefKernels(heap);
    gpu = await createWebGpuKernels(heap);
  });
  afterAll(async () => {
    await gpu?.dispose();
  });

  const CASES = [
    { kind: "int8", rows: 37, cols: 53, blocksize: undefined },
    { kind: "nf4", rows: 37, cols: 53, blocksize: 64 }, // odd numel: a padded last nibble
    { kind: "nf4", rows: 40, cols: 300, blocksize: 7 }, // blocks across rows, a partial last one
  ] as const;

  test.each(CASES)(
    "$kind ($rows x $cols, blocksize $blocksize): device == host, bit for bit",
    async ({ kind, rows, cols, blocksize }) => {
      const data = weightValues(rows, cols, rows * cols);
      const host = quantizeWeight(
        kind,
        data,
        [rows, cols],
        blocksize === undefined ? {} : { blocksize },
      );
      const want = heap.tensor([rows, cols]);
      host.dequantizeInto(want);
      const codes = new HeapCodesWeight(host, heap);
      expect(codes.bytes).toBe(host.bytes);
      const got = heap.tensor([rows, cols]);
      got.fill(7); // overwritten everywhere
      codes.expandOn(gpu, got);
      await gpu.download(got);
      const bits = (t: Tensor) => new Uint32Array(t.f32().buffer, t.ptr, t.size);
      expect(bits(got)).toEqual(bits(want));
      // the host's expansion through the heap tensors is the host weight's
      const again = heap.tensor([rows, cols]);
      codes.dequantizeInto(again);
      expect(bits(again)).toEqual(bits(want));
      const someRows = heap.tensor([2, cols]);
      codes.dequantizeRowsInto(someRows, 5, 7);
      expect(bits(someRows)).toEqual(bits(want).subarray(5 * cols, 7 * cols));
      expect(Array.from(want.f32().subarray(cols, 2 * cols))).toEqual(new Array(cols).fill(0));
      codes.dispose();
      expect(codes.codes.disposed && codes.scales.disposed).toBe(true);
    },
  );

  test("dequantize checks its arguments", () => {
    const host = quantizeWeight("nf4", weightValues(8, 16, 3), [8, 16]);
    const codes = new HeapCodesWeight(host, heap);
    expect(() => gpu.dequantize(heap.tensor([8, 15]), codes)).toThrow(/dequantize: 120 nf4/);
    expect(() => gpu.dequantize(heap.tensor([128], "i32"), codes)).toThrow(/dtype i32/);
    expect(() => gpu.dequantize(heap.tensor([128]), { ...codes, kind: "int8" })).toThrow(
      /128 code bytes/,
    );
    expect(ref.dequantize).toBeUndefined(); // the CPU engines expand on the host
    codes.dispose();
  });

  const SGD_CASES: (Omit<SGDOptions, "first" | "lr"> & { label: string })[] = [
    { label: "plain", momentum: 0, dampening: 0, nesterov: false, weightDecay: 0 },
    { label: "weight decay", momentum: 0, dampening: 0, nesterov: false, weightDecay: 0.1 },
    {
      label: "momentum, dampening",
      momentum: 0.9,
      dampening: 0.3,
      nesterov: false,
      weightDecay: 0,
    },
    { label: "nesterov, decay", momentum: 0.8, dampening: 0, nesterov: true, weightDecay: 0.05 },
  ];

  test.each(SGD_CASES)("sgd over three steps: $label", async ({ label, ...settings }) => {
    const n = 3000; // more than one workgroup's grid stride
    const param0 = randomUniform(n, 11, 1);
    const params = [heap.fromArray(param0), heap.fromArray(param0)];
    const bufs = settings.momentum > 0 ? [heap.zeros([n]), heap.zeros([n])] : [null, null];
    for (let step = 0; step < 3; step++) {
      const grad = heap.fromArray(randomUniform(n, 20 + step, 1));
      const options = { ...settings, lr: 0.05, first: step === 0 };
      ref.sgd(params[0], grad, bufs[0], options);
      gpu.sgd(params[1], grad, bufs[1], options);
    }
    await gpu.download(params[1], ...(bufs[1] === null ? [] : [bufs[1]]));
    expectAllclose(params[1].f32(), params[0].f32(), { label, rtol: 1e-6, atol: 1e-7 });
    if (bufs[0] !== null && bufs[1] !== null)
      expectAllclose(bufs[1].f32(), bufs[0].f32(), {
        label: `${label} buffer`,
        rtol: 1e-6,
        atol: 1e-7,
      });
    // the update moved the parameters (a test that cannot pass by doing nothing)
    expect(Math.abs(params[1].f32()[0] - param0[0])).toBeGreaterThan(1e-4);
  });

  test("sgd checks its arguments", () => {
    const p = heap.zeros([4]);
    const options = {
      lr: 0.1,
      momentum: 0.9,
      dampening: 0,
      nesterov: false,
      weightDecay: 0,
      first: true,
    };
    for (const k of [ref, gpu]) {
      expect(() => k.sgd(p, heap.zeros([4]), null, options)).toThrow(/momentum buffer/);
      expect(() => k.sgd(p, heap.zeros([3]), heap.zeros([4]), options)).toThrow(/sgd/);
      expect(() =>
        k.sgd(p, heap.zeros([4]), heap.zeros([4]), { ...options, lr: Number.NaN }),
      ).toThrow(/lr must be a finite/);
    }
  });

  test("the SGD optimiser resumes on webgpu: a loaded momentum buffer is uploaded", async () => {
    const n = 500;
    const param0 = randomUniform(n, 31, 1);
    const grads = [0, 1].map((s) => randomUniform(n, 40 + s, 1));
    const config = { kind: "sgd" as const, momentum: 0.9, weightDecay: 0.01 };
    // the reference: two steps in one optimiser
    const want = heap.fromArray(param0);
    const wantGrad = heap.tensor([n]);
    const refOpt = createOptimizer(ref, [{ name: "w", param: want, grad: wantGrad }], config);
    for (const g of grads) {
      wantGrad.f32().set(g);
      refOpt.update(0.1);
    }
    // webgpu: one step, state and weights saved, a stray step (the device rewrites the buffer),
    // then the saved state loaded back into the same optimiser and the second step
    const got = heap.fromArray(param0);
    const grad = heap.fromArray(grads[0]);
    const opt = createOptimizer(gpu, [{ name: "w", param: got, grad }], config);
    opt.update(0.1);
    await gpu.download();
    const state = opt.state();
    const saved = got.toArray();
    opt.update(0.1);
    opt.loadState(state);
    got.f32().set(saved);
    grad.f32().set(grads[1]);
    gpu.upload(got, grad);
    opt.update(0.1);
    await gpu.download(got);
    expectAllclose(got.f32(), want.f32(), { label: "resumed sgd", rtol: 1e-6, atol: 1e-7 });
    for (const o of [refOpt, opt]) o.dispose();
  });
});

/**
 * (n) 16-bit patterns of `kind`: random ones, then both zeros, both infinities, the largest
 * finite values and (f16) subnormals; no NaN (a device may canonicalise a NaN's payload).
 */
function halfPatterns(kind: "bf16" | "f16", n: number, seed: number): Uint16Array {
  const bits = new Uint16Array(n);
  let x = seed;
  const expMask = kind === "f16" ? 0x7c00 : 0x7f80;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    let b = x >>> 16;
    if ((b & expMask) === expMask) b &= ~0x4000; // finite: clear the top exponent bit
    bits[i] = b;
  }
  const special =
    kind === "f16"
      ? [0x0000, 0x8000, 0x7c00, 0xfc00, 0x7bff, 0xfbff, 0x0001, 0x83ff, 0x0200]
      : [0x0000, 0x8000, 0x7f80, 0xff80, 0x7f7f, 0xff7f, 0x0001, 0x807f, 0x0040];
  bits.set(special, 0);
  return bits;
}

describe.skipIf(GPU_CONTEXT === null)(
  "webgpu: offloaded 16-bit weights widened on the device",
  () => {
    let heap: Heap;
    let gpu: WebGpuKernels;
    beforeAll(async () => {
      heap = new Heap({ initialBytes: 4 * 2 ** 20 });
      gpu = await createWebGpuKernels(heap);
    });
    afterAll(async () => {
      await gpu?.dispose();
    });

    /** The tensors passed to gpu.upload while fn runs. */
    function uploadsDuring(fn: () => void): Tensor[] {
      const seen: Tensor[] = [];
      const upload = gpu.upload;
      gpu.upload = (...tensors: Tensor[]) => {
        seen.push(...tensors);
        upload.apply(gpu, tensors);
      };
      try {
        fn();
      } finally {
        gpu.upload = upload;
      }
      return seen;
    }
    const bits = (t: Tensor) => new Uint32Array(t.heap.memory.buffer, t.ptr, t.size).slice();

    test.each(["bf16", "f16"] as const)("%s: whole weight and row blocks", async (kind) => {
      const [rows, cols] = [10, 37]; // odd block sizes: the convert's last word is half used
      const stored = weightFromHalfBits(kind, halfPatterns(kind, rows * cols, 5), [rows, cols]);
      const want = heap.tensor([rows, cols]);
      stored.dequantizeInto(want); // the host's widening
      const wantBits = bits(want);

      const scratch = new WeightScratch(heap);
      const whole = new FrozenWeight("w", [rows, cols], false, false, new Map(), stored, scratch);
      let w: Tensor | null = null;
      const sent = uploadsDuring(() => {
        w = whole.expand(gpu).w;
      });
      expect(sent.map((t) => [t.dtype, t.byteLength])).toEqual([[kind, 2 * rows * cols]]);
      const got = w as unknown as Tensor;
      await gpu.download(got);
      expect(bits(got)).toEqual(wantBits);

      const blocked = new FrozenWeight(
        "b",
        [rows, cols],
        false,
        false,
        new Map(),
        stored,
        scratch,
        3,
      );
      expect(blocked.rowBlock).toBe(3);
      for (const [r0, r1] of [
        [3, 6],
        [9, 10],
      ]) {
        let block: Tensor | null = null;
        const blockSent = uploadsDuring(() => {
          block = blocked.expandRows(gpu, r0, r1);
        });
        expect(blockSent.map((t) => [t.dtype, t.byteLength])).toEqual([
          [kind, 2 * (r1 - r0) * cols],
        ]);
        const gotBlock = block as unknown as Tensor;
        await gpu.download(gotBlock);
        expect(bits(gotBlock)).toEqual(wantBits.subarray(r0 * cols, r1 * cols));
      }
      scratch.dispose();
    });
  },
);
