// Every WebGPU kernel but matmul (webgpu-gemm.test.ts) against the reference kernels on the same
// inputs: elementwise ops and activations (both BackwardOptions modes), norms with their
// parameter gradients, attention softmax (causal, KV-cache shaped, right padding), RoPE,
// permute0213, embeddings with repeated ids, cross-entropy (ignored rows, in-place gradient),
// the device reductions, AdamW over two steps, conversions between f32, f16 and bf16 (odd
// lengths, infinities, subnormals, ties), copy, fill, copyColumns and maskOutsideWindow. Sizes
// are small (software adapter); columns past the 256-invocation workgroup and rows past one
// workgroup are included. Also: what the engine refuses (synchronous reductions, ids it cannot
// check, out-of-range ids), and the mirror's contract with the host (upload, resident tensors,
// freed blocks).

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels } from "../../src/kernels/kernels.js";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { createWebGpuKernels, type WebGpuKernels } from "../../src/kernels/webgpu/index.js";
import { f32ToBf16, f32ToF16 } from "../../src/tensor/dtype.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { expectAllclose } from "../helpers/allclose.js";
import { expectNormTwins, type TwinEngines, twinKit } from "../helpers/engine-twins.js";
import { GPU_CONTEXT } from "../helpers/webgpu.js";

describe.skipIf(GPU_CONTEXT === null)("webgpu kernels against the reference", () => {
  let heap: Heap;
  let ref: Kernels;
  let gpu: WebGpuKernels;
  const engines: Partial<TwinEngines> = {};
  beforeAll(async () => {
    heap = new Heap({ initialBytes: 8 * 2 ** 20 });
    ref = createRefKernels(heap);
    gpu = await createWebGpuKernels(heap);
    Object.assign(engines, { heap, ref, other: gpu });
  });
  afterAll(async () => {
    await gpu?.dispose();
  });

  const kit = twinKit(engines);
  const { rand, twins, expectSame } = kit;
  const MODES = [true, false];

  test("add, mul, scale, axpy, addBias, biasBackward", async () => {
    const a = rand([37, 300]);
    const b = rand([37, 300]);
    const bias = rand([300]);
    const outs = [twins([37, 300]), twins([37, 300]), twins([37, 300]), twins([37, 300])];
    const dBias = twins([300]);
    const biased = twins([37, 300]);
    for (const k of [ref, gpu]) {
      const i = k === ref ? 0 : 1;
      k.add(outs[0][i], a, b);
      k.mul(outs[1][i], a, b);
      k.scale(outs[2][i], a, -1.5);
      k.axpy(outs[3][i], a, 0.25);
      k.addBias(biased[i], bias);
      k.biasBackward(dBias[i], b);
    }
    await expectSame("elementwise", [...outs, biased, dBias]);
  });

  test("activations and their backwards, both accumulate modes", async () => {
    const x = rand([5000], 6);
    const up = rand([5000], 2);
    const dy = rand([5000]);
    const pairs: [Tensor, Tensor][] = [];
    const fwd = [twins([5000]), twins([5000]), twins([5000]), twins([5000])];
    for (const [i, k] of [ref, gpu].entries()) {
      k.silu(fwd[0][i], x);
      k.swiglu(fwd[1][i], x, up);
      k.gelu(fwd[2][i], x, "none");
      k.gelu(fwd[3][i], x, "tanh");
    }
    pairs.push(...fwd);
    for (const accumulate of MODES) {
      const bwd = [twins([5000]), twins([5000]), twins([5000]), twins([5000]), twins([5000])];
      for (const [i, k] of [ref, gpu].entries()) {
        k.siluBackward(bwd[0][i], x, dy, { accumulate });
        k.swigluBackward(bwd[1][i], bwd[2][i], x, up, dy, { accumulate });
        k.geluBackward(bwd[3][i], x, dy, "none", { accumulate });
        k.geluBackward(bwd[4][i], x, dy, "tanh", { accumulate });
      }
      pairs.push(...bwd);
    }
    await expectSame("activations", pairs);
  });

  test("rmsnorm and layernorm, forward and backward with parameter gradients", async () => {
    await expectNormTwins(kit, 70, 700);
  });

  test.each([
    { name: "causal", b: 2, h: 3, tq: 40, tk: 40, causal: true, lengths: null },
    { name: "full, 300 keys", b: 1, h: 2, tq: 5, tk: 300, causal: false, lengths: null },
    { name: "KV cache: 3 new queries", b: 2, h: 2, tq: 3, tk: 30, causal: true, lengths: null },
    { name: "right padding", b: 3, h: 2, tq: 12, tk: 12, causal: true, lengths: [12, 5, 0] },
  ])("attention softmax: $name", async (c) => {
    const shape = [c.b, c.h, c.tq, c.tk];
    const scores = rand(shape, 4);
    const probs = twins(shape);
    const keyLengths = c.lengths === null ? undefined : heap.fromArray(new Int32Array(c.lengths));
    const options = {
      scale: 0.3,
      causal: c.causal,
      ...(keyLengths !== undefined && { keyLengths }),
    };
    ref.attentionSoftmax(probs[0], scores, options);
    gpu.attentionSoftmax(probs[1], scores, options);
    const dProbs = rand(shape);
    const pairs: [Tensor, Tensor][] = [probs];
    for (const accumulate of MODES) {
      const dScores = twins(shape);
      ref.attentionSoftmaxBackward(dScores[0], probs[0], dProbs, 0.3, { accumulate });
      gpu.attentionSoftmaxBackward(dScores[1], probs[0], dProbs, 0.3, { accumulate });
      pairs.push(dScores);
    }
    await expectSame("softmax", pairs);
  });

  test("rope, ropeBackward, permute0213", async () => {
    const [B, T, H, D] = [2, 9, 3, 16];
    const x = rand([B, T, H, D]);
    const cos = rand([T, D / 2]);
    const sin = rand([T, D / 2]);
    const out = twins([B, T, H, D]);
    const perm = twins([B, H, T, D]);
    for (const [i, k] of [ref, gpu].entries()) {
      k.rope(out[i], x, cos, sin);
      k.permute0213(perm[i], x);
    }
    const pairs: [Tensor, Tensor][] = [out, perm];
    for (const accumulate of MODES) {
      const dx = twins([B, T, H, D]);
      ref.ropeBackward(dx[0], x, cos, sin, { accumulate });
      gpu.ropeBackward(dx[1], x, cos, sin, { accumulate });
      pairs.push(dx);
    }
    await expectSame("rope", pairs);
  });

  test("embedding and embeddingBackward with repeated ids; bad ids throw", async () => {
    const table = rand([50, 300]);
    const ids = heap.fromArray(new Int32Array([3, 49, 0, 3, 3, 17, 49]));
    const out = twins([7, 300]);
    const dTable = twins([50, 300]);
    const dy = rand([7, 300]);
    for (const [i, k] of [ref, gpu].entries()) {
      k.embedding(out[i], table, ids);
      k.embeddingBackward(dTable[i], dy, ids);
    }
    await expectSame("embedding", [out, dTable]);
    const bad = heap.fromArray(new Int32Array([1, 50]));
    expect(() => gpu.embedding(heap.tensor([2, 300]), table, bad)).toThrow(/outside/);
  });

  test("crossEntropy: ignored rows, gradient into a buffer and in place, the count", async () => {
    const [N, V] = [9, 700];
    const logits = rand([N, V], 5);
    const targets = heap.fromArray(new Int32Array([0, 699, -100, 5, 5, 300, -100, 1, 2]));
    const losses = twins([N]);
    const dLogits = twins([N, V]);
    const options = { gradScale: 1 / 7 };
    const counts = [
      ref.crossEntropy(losses[0], dLogits[0], logits, targets, options),
      gpu.crossEntropy(losses[1], dLogits[1], logits, targets, options),
    ];
    expect(counts).toEqual([7, 7]);
    const inPlace = twins([N, V]);
    inPlace[1].f32().set(logits.f32());
    inPlace[0].f32().set(logits.f32());
    const inPlaceLosses = twins([N]);
    ref.crossEntropy(inPlaceLosses[0], inPlace[0], inPlace[0], targets, options);
    gpu.crossEntropy(inPlaceLosses[1], inPlace[1], inPlace[1], targets, options);
    const noGrad = twins([N]);
    ref.crossEntropy(noGrad[0], null, logits, targets);
    gpu.crossEntropy(noGrad[1], null, logits, targets);
    await expectSame("crossEntropy", [losses, dLogits, inPlace, inPlaceLosses, noGrad]);
    const badTargets = heap.fromArray(new Int32Array([0, 700, 0, 0, 0, 0, 0, 0, 0]));
    expect(() => gpu.crossEntropy(heap.tensor([N]), null, logits, badTargets)).toThrow(/outside/);
  });

  test("sumInto, sumSquaresInto, maxInto; the synchronous reductions throw", async () => {
    const a = rand([10007], 3);
    const outs = [heap.tensor([1]), heap.tensor([1]), heap.tensor([1])];
    gpu.sumInto(outs[0], a);
    gpu.sumSquaresInto(outs[1], a);
    gpu.maxInto(outs[2], a);
    await gpu.download(...outs);
    const want = [ref.sum(a), ref.sumSquares(a), ref.max(a)];
    expectAllclose(
      outs.map((t) => t.f32()[0]),
      want,
      { rtol: 1e-5, atol: 1e-4, label: "reductions" },
    );
    expect(() => gpu.sum(a)).toThrow(/sumInto/);
    expect(() => gpu.sumSquares(a)).toThrow(/sumSquaresInto/);
  });

  test("adamw over two steps, with weight decay", async () => {
    const param = twins([3000]);
    const m = twins([3000]);
    const v = twins([3000]);
    for (const t of [m, v]) {
      t[0].fill(0);
      t[1].fill(0);
    }
    const g1 = rand([3000]);
    const g2 = rand([3000]);
    for (const [step, g] of [g1, g2].entries()) {
      const options = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
      ref.adamw(param[0], g, m[0], v[0], { ...options, step: step + 1 });
      gpu.adamw(param[1], g, m[1], v[1], { ...options, step: step + 1 });
    }
    await expectSame("adamw", [param, m, v], { rtol: 1e-5, atol: 1e-6 });
  });

  test.each([7, 8])("convert between f32, f16 and bf16, and copy (%i elements)", async (n) => {
    // an f16 tie rounding up to even (1 + 3 2^-11), an f16 subnormal rounding up (5.75 2^-24),
    // f16 overflow, infinities, a bf16 tie rounding up to even (1 + 3 2^-8)
    const special = [
      1 + 3 * 2 ** -11,
      5.75 * 2 ** -24,
      70000,
      -Infinity,
      Infinity,
      1 + 3 * 2 ** -8,
      -0.1,
      0.5,
    ];
    const values = new Float32Array(special.slice(0, n));
    const src32 = heap.fromArray(values);
    const pairs: [Tensor, Tensor][] = [];
    const half: Record<string, Tensor> = {};
    for (const dtype of ["f16", "bf16"] as const) {
      const want = heap.tensor([n], dtype);
      const got = heap.tensor([n], dtype);
      got.u16().fill(0xabcd);
      ref.convert(want, src32);
      gpu.convert(got, src32);
      await gpu.download(got);
      const bits = Array.from(values, dtype === "f16" ? f32ToF16 : f32ToBf16);
      expect(Array.from(want.u16())).toEqual(bits);
      expect(Array.from(got.u16()), dtype).toEqual(bits);
      half[dtype] = want;
      const back = twins([n]);
      ref.convert(back[0], want);
      gpu.convert(back[1], want);
      pairs.push(back);
    }
    for (const [from, to] of [
      ["f16", "bf16"],
      ["bf16", "f16"],
    ] as const) {
      const want = heap.tensor([n], to);
      const got = heap.tensor([n], to);
      ref.convert(want, half[from]);
      gpu.convert(got, half[from]);
      gpu.copy(half[from], half[from]); // a copy onto itself changes nothing
      await gpu.download(got);
      expect(Array.from(got.u16()), `${from} -> ${to}`).toEqual(Array.from(want.u16()));
    }
    const copied = twins([n]);
    ref.copy(copied[0], src32);
    gpu.copy(copied[1], src32);
    pairs.push(copied);
    await expectSame("convert", pairs, { rtol: 0, atol: 0 });
  });

  test("host writes after a device write are sent with upload()", async () => {
    const a = rand([100]);
    const out = heap.tensor([100]);
    gpu.scale(out, a, 2);
    await gpu.download(out);
    out.f32().fill(1); // the host overwrites a result the device wrote
    gpu.upload(out);
    gpu.axpy(out, a, 1);
    await gpu.download(out);
    expectAllclose(
      out.f32(),
      a.f32().map((x) => 1 + x),
      { label: "after upload" },
    );
  });

  test("fill (f32, i32, zero on an odd bf16), copyColumns, maskOutsideWindow", async () => {
    const filled = [twins([301]), twins([64])];
    const ints = [heap.fromArray(new Int32Array(33).fill(5)), heap.fromArray(new Int32Array(33))];
    const half = [heap.tensor([7], "bf16"), heap.tensor([7], "bf16")];
    for (const t of half) t.u16().set([1, 2, 3, 4, 5, 6, 7]);
    const inp = rand([9, 12]);
    const cols = [twins([9, 20]), twins([9, 20])];
    const scores = [twins([3, 4, 6]), twins([3, 6, 6])];
    for (const [i, k] of [ref, gpu].entries()) {
      k.fill(filled[0][i], -2.5);
      k.fill(filled[1][i], 0);
      k.fill(ints[i], -7);
      k.fill(half[i].view([5], 0), 0); // the last word keeps element 5
      k.copyColumns(cols[0][i], 3, inp, 5, 7);
      k.copyColumns(cols[1][i].view([9, 4], 0), 0, inp.view([9, 4], 0), 0, 4);
      k.maskOutsideWindow(scores[0][i], 3); // 4 new queries after 2 cached keys
      k.maskOutsideWindow(scores[1][i], 2);
    }
    await expectSame("fill, copyColumns, maskOutsideWindow", [...filled, ...cols, ...scores], {
      rtol: 0,
      atol: 0,
    });
    await gpu.download(ints[1], half[1]);
    expect([...ints[1].i32()]).toEqual([...ints[0].i32()]);
    expect([...half[1].u16()]).toEqual([0, 0, 0, 0, 0, 6, 7]);
    expect([...half[0].u16()]).toEqual([0, 0, 0, 0, 0, 6, 7]);
  });

  test("sumInto and sumSquaresInto on the reference equal its sum and sumSquares", () => {
    const a = rand([1001], 3);
    const out = heap.tensor([1]);
    ref.sumInto(out, a);
    expect(out.f32()[0]).toBe(Math.fround(ref.sum(a)));
    ref.sumSquaresInto(out, a);
    expect(out.f32()[0]).toBe(Math.fround(ref.sumSquares(a)));
  });

  test("a tensor kernels read is sent once: a host write is seen after upload(t) or upload()", async () => {
    const w = heap.fromArray(new Float32Array(64).fill(1));
    const out = heap.tensor([64]);
    const result = async (): Promise<number> => {
      gpu.scale(out, w, 1);
      await gpu.download(out);
      return out.f32()[0];
    };
    expect(await result()).toBe(1);
    w.f32().fill(2); // not announced: the device keeps the copy it was sent
    expect(await result()).toBe(1);
    gpu.upload(w);
    expect(await result()).toBe(2);
    w.f32().fill(3);
    gpu.upload(); // everything may have changed
    expect(await result()).toBe(3);
  });

  test("a freed block's device results are dropped: a new tensor there is the host's", async () => {
    const a = rand([256]);
    const out = heap.tensor([256]);
    const at = out.ptr;
    gpu.scale(out, a, 2); // device-newer, never downloaded
    out.dispose();
    const fresh = heap.fromArray(new Float32Array(256).fill(4));
    expect(fresh.ptr).toBe(at); // the heap reuses the block (first fit)
    await gpu.download(); // must not copy the stale device result over it
    expect(fresh.f32()[0]).toBe(4);
    const twice = heap.tensor([256]);
    gpu.scale(twice, fresh, 2); // the kernel sees the host's values
    await gpu.download(twice);
    expect(twice.f32()[255]).toBe(8);
  });
});
