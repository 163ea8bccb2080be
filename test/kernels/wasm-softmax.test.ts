// wasm attention softmax (forward and backward) vs the reference: causal with a KV offset
// (Tq < Tk), key lengths (including out-of-range values, which clamp, and 0: an all-zero row),
// row lengths that are not multiples of 4, probs written over scores, 1 and 2 threads.
// Tolerance (f32 vs the reference's f64 sums): probs p within p * (1e-6 + 5e-7 * |scale| * max|s|)
// (the exp argument scale*s - max carries f32 rounding of that size), masked entries exactly 0;
// backward within 1e-6 |dS0| + |scale| p (1e-6 |dp| + 1.2e-7 * Tk * sum_k p_k |dp_k|).
// Backward with BackwardOptions: accumulate: false over NaN equals accumulate: true over zeros and
// the default still adds (test/helpers/accumulate-modes.ts), wasm and ref, in place (dScores =
// dProbs) and through the reference fallback (a partial overlap).

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels } from "../../src/kernels/kernels.js";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { createWasmKernels, type WasmKernels } from "../../src/kernels/wasm/index.js";
import { Heap } from "../../src/tensor/heap.js";
import {
  expectAccumulateModes,
  expectSameNumbers,
  runAccumulateModes,
} from "../helpers/accumulate-modes.js";
import { randomUniform as random } from "../helpers/random.js";

interface Case {
  shape: [number, number, number, number];
  causal: boolean;
  keyLengths?: number[];
  scale: number;
}

const cases: Case[] = [
  { shape: [1, 1, 1, 1], causal: false, scale: 1 },
  { shape: [2, 3, 5, 7], causal: true, scale: 0.5 },
  { shape: [2, 3, 5, 7], causal: false, keyLengths: [3, 0], scale: 0.5 },
  { shape: [3, 2, 4, 9], causal: true, keyLengths: [-2, 100, 6], scale: 2 },
  { shape: [1, 2, 3, 11], causal: true, scale: 0.125 }, // Tq < Tk: cached keys
  { shape: [2, 4, 96, 131], causal: true, keyLengths: [131, 77], scale: 0.09 }, // parallel
  { shape: [1, 2, 64, 600], causal: false, scale: 1.5 }, // parallel, long rows
];

describe.each([1, 2])("wasm attention softmax, %i thread(s)", (threads) => {
  let heap: Heap;
  let kernels: WasmKernels;
  let ref: Kernels;
  beforeAll(async () => {
    heap = new Heap({ initialBytes: 32 * 2 ** 20 });
    kernels = await createWasmKernels(heap, { threads, spinMs: 5 });
    ref = createRefKernels(heap);
  });
  afterAll(async () => {
    await kernels?.dispose();
  });

  test.each(cases.flatMap((c) => [false, true].map((inPlace) => ({ ...c, inPlace }))))(
    "forward $shape causal=$causal keyLengths=$keyLengths in place=$inPlace",
    ({ shape, causal, keyLengths, scale, inPlace }) => {
      const n = shape.reduce((x, y) => x * y, 1);
      const s = random(n, shape[3] * 7 + 1, 6);
      const scores = heap.fromArray(s, shape);
      const kl = keyLengths === undefined ? undefined : heap.fromArray(Int32Array.from(keyLengths));
      const options = { scale, causal, ...(kl === undefined ? {} : { keyLengths: kl }) };
      const want = heap.tensor(shape);
      ref.attentionSoftmax(want, scores, options);
      const probs = inPlace ? scores : heap.tensor(shape).fill(Number.NaN);
      kernels.attentionSoftmax(probs, scores, options);
      const got = probs.f32();
      const w = want.f32();
      const tk = shape[3];
      for (let r = 0; r < n / tk; r++) {
        let absMax = 0;
        for (let j = 0; j < tk; j++) absMax = Math.max(absMax, Math.abs(s[r * tk + j]));
        for (let j = 0; j < tk; j++) {
          const i = r * tk + j;
          const tol = w[i] === 0 ? 0 : w[i] * (1e-6 + 5e-7 * Math.abs(scale) * absMax) + 1e-12;
          if (!(Math.abs(got[i] - w[i]) <= tol))
            expect.fail(`row ${r} col ${j}: got ${got[i]}, want ${w[i]}`);
        }
      }
    },
  );

  test.each(cases)("backward $shape", ({ shape, causal, scale }) => {
    const n = shape.reduce((x, y) => x * y, 1);
    const tk = shape[3];
    const probs = heap.tensor(shape);
    ref.attentionSoftmax(probs, heap.fromArray(random(n, 3, 4), shape), { scale: 1, causal });
    const dp = random(n, 5, 2);
    const d0 = random(n, 9, 1);
    const dProbs = heap.fromArray(dp, shape);
    const got = heap.fromArray(d0, shape);
    const want = heap.fromArray(d0, shape);
    kernels.attentionSoftmaxBackward(got, probs, dProbs, scale);
    ref.attentionSoftmaxBackward(want, probs, dProbs, scale);
    const p = probs.f32();
    const g = got.f32();
    const w = want.f32();
    for (let r = 0; r < n / tk; r++) {
      let sumAbs = 0;
      for (let j = 0; j < tk; j++) sumAbs += p[r * tk + j] * Math.abs(dp[r * tk + j]);
      for (let j = 0; j < tk; j++) {
        const i = r * tk + j;
        const tol =
          1e-6 * Math.abs(d0[i]) +
          Math.abs(scale) * p[i] * (1e-6 * Math.abs(dp[i]) + 1.2e-7 * tk * sumAbs) +
          1e-12;
        if (!(Math.abs(g[i] - w[i]) <= tol))
          expect.fail(`row ${r} col ${j}: got ${g[i]}, want ${w[i]}`);
      }
    }
  });

  test.each(cases)(
    "backward with accumulate false overwrites dScores: $shape",
    ({ shape, causal, scale }) => {
      const n = shape.reduce((x, y) => x * y, 1);
      const tk = shape[3];
      const probs = heap.tensor(shape);
      ref.attentionSoftmax(probs, heap.fromArray(random(n, 13, 4), shape), { scale: 1, causal });
      const dp = random(n, 15, 2);
      const dProbs = heap.fromArray(dp, shape);
      const [got, want] = [kernels, ref].map((k) => {
        const r = runAccumulateModes(heap, [shape], 17, (outs, options) =>
          k.attentionSoftmaxBackward(outs[0], probs, dProbs, scale, options),
        );
        expectAccumulateModes(`${k.name} attentionSoftmaxBackward ${shape}`, r);
        // in place: dScores written over dProbs
        const inPlace = heap.fromArray(dp, shape);
        k.attentionSoftmaxBackward(inPlace, probs, inPlace, scale, { accumulate: false });
        expectSameNumbers(
          `${k.name} attentionSoftmaxBackward ${shape} in place`,
          inPlace.f32(),
          r.zeroed[0],
        );
        inPlace.dispose();
        return r.overwritten[0];
      });
      const p = probs.f32();
      for (let r = 0; r < n / tk; r++) {
        let sumAbs = 0;
        for (let j = 0; j < tk; j++) sumAbs += p[r * tk + j] * Math.abs(dp[r * tk + j]);
        for (let j = 0; j < tk; j++) {
          const i = r * tk + j;
          const tol =
            Math.abs(scale) * p[i] * (1e-6 * Math.abs(dp[i]) + 1.2e-7 * tk * sumAbs) + 1e-12;
          if (!(Math.abs(got[i] - want[i]) <= tol))
            expect.fail(`row ${r} col ${j}: wasm ${got[i]}, ref ${want[i]}`);
        }
      }
    },
  );

  test("backward with accumulate false on a partial overlap: the reference's result", () => {
    const shape = [1, 2, 8, 9];
    const n = 2 * 8 * 9;
    const probs = heap.tensor(shape);
    ref.attentionSoftmax(probs, heap.fromArray(random(n, 21, 3), shape), {
      scale: 1,
      causal: true,
    });
    const base = random(n + 1, 23, 2);
    const [got, want] = [kernels, ref].map((k) => {
      const buf = heap.fromArray(base);
      k.attentionSoftmaxBackward(buf.view(shape, 1), probs, buf.view(shape, 0), 0.7, {
        accumulate: false,
      });
      const r = buf.toArray();
      buf.dispose();
      return r;
    });
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  test("partially overlapping probs fall back to the reference", () => {
    const shape = [1, 1, 8, 9];
    const base = random(8 * 9 + 1, 11, 3);
    const t1 = heap.fromArray(base);
    const t2 = heap.fromArray(base);
    kernels.attentionSoftmax(t1.view(shape, 1), t1.view(shape, 0), { scale: 1, causal: true });
    ref.attentionSoftmax(t2.view(shape, 1), t2.view(shape, 0), { scale: 1, causal: true });
    expect(Array.from(t1.f32())).toEqual(Array.from(t2.f32()));
  });
});

// Cross-entropy: the loss and dLogits of each row against the reference, with ignored rows,
// dLogits absent or present, a row with a huge spread (exp underflow), and 2 threads on a wide
// vocabulary. Tolerance: f32 exp and f32 block sums (1024 terms, then f64): relative ~1e-5, so
// losses within 2e-5 (1 + |loss|), dLogits within 2e-5 (|want| + 1e-7 |gradScale|).
describe.each([1, 2])("wasm crossEntropy, %i thread(s)", (threads) => {
  let heap: Heap;
  let kernels: WasmKernels;
  let ref: Kernels;
  beforeAll(async () => {
    heap = new Heap({ initialBytes: 64 * 2 ** 20 });
    kernels = await createWasmKernels(heap, { threads, spinMs: 5 });
    ref = createRefKernels(heap);
  });
  afterAll(async () => {
    await kernels?.dispose();
  });

  const ceCases = [
    { rows: 1, vocab: 1, ignore: -100 },
    { rows: 5, vocab: 7, ignore: -100 },
    { rows: 37, vocab: 1001, ignore: 3 },
    { rows: 8, vocab: 50003, ignore: -100 }, // parallel
  ];
  test.each(ceCases.flatMap((c) => [true, false].map((withGrad) => ({ ...c, withGrad }))))(
    "rows=$rows vocab=$vocab ignore=$ignore dLogits=$withGrad",
    ({ rows, vocab, ignore, withGrad }) => {
      const x = random(rows * vocab, vocab + rows, 8);
      if (rows > 1) for (let v = 0; v < vocab; v++) x[vocab + v] *= 500; // row 1: a huge spread
      const t = new Int32Array(rows);
      for (let n = 0; n < rows; n++) t[n] = n % 4 === 2 ? ignore : (n * 7919) % vocab;
      const logits = heap.fromArray(x, [rows, vocab]);
      const targets = heap.fromArray(t);
      const gradScale = 1 / 3;
      const lossGot = heap.tensor([rows]).fill(Number.NaN);
      const lossWant = heap.tensor([rows]);
      const dGot = withGrad ? heap.tensor([rows, vocab]).fill(Number.NaN) : null;
      const dWant = withGrad ? heap.tensor([rows, vocab]) : null;
      const nGot = kernels.crossEntropy(lossGot, dGot, logits, targets, {
        ignoreIndex: ignore,
        gradScale,
      });
      const nWant = ref.crossEntropy(lossWant, dWant, logits, targets, {
        ignoreIndex: ignore,
        gradScale,
      });
      expect(nGot).toBe(nWant);
      const lg = lossGot.f32();
      const lw = lossWant.f32();
      for (let n = 0; n < rows; n++) {
        if (!(Math.abs(lg[n] - lw[n]) <= 2e-5 * (1 + Math.abs(lw[n]))))
          expect.fail(`loss[${n}]: got ${lg[n]}, want ${lw[n]}`);
      }
      if (dGot !== null && dWant !== null) {
        const g = dGot.f32();
        const w = dWant.f32();
        for (let i = 0; i < g.length; i++) {
          const tol = 2e-5 * (Math.abs(w[i]) + 1e-7 * gradScale);
          if (!(Math.abs(g[i] - w[i]) <= tol))
            expect.fail(`dLogits[${i}]: got ${g[i]}, want ${w[i]}`);
        }
      }
    },
  );

  test.each(ceCases)(
    "in place (dLogits = logits) equals the separate output: rows=$rows vocab=$vocab",
    ({ rows, vocab, ignore }) => {
      const x = random(rows * vocab, vocab + rows, 8);
      const t = new Int32Array(rows);
      for (let n = 0; n < rows; n++) t[n] = n % 4 === 2 ? ignore : (n * 7919) % vocab;
      const targets = heap.fromArray(t);
      for (const impl of [kernels, ref]) {
        const logits = heap.fromArray(x, [rows, vocab]);
        const inPlace = heap.fromArray(x, [rows, vocab]);
        const d = heap.tensor([rows, vocab]);
        const losses = heap.tensor([rows]);
        const lossesInPlace = heap.tensor([rows]);
        impl.crossEntropy(losses, d, logits, targets, { ignoreIndex: ignore, gradScale: 0.25 });
        impl.crossEntropy(lossesInPlace, inPlace, inPlace, targets, {
          ignoreIndex: ignore,
          gradScale: 0.25,
        });
        expect(Array.from(lossesInPlace.f32())).toEqual(Array.from(losses.f32()));
        expect(Array.from(inPlace.f32())).toEqual(Array.from(d.f32()));
      }
    },
  );

  test("dLogits partly overlapping logits is refused", () => {
    const buf = heap.tensor([2, 8]);
    const losses = heap.tensor([1]);
    const targets = heap.fromArray(Int32Array.of(0));
    expect(() =>
      kernels.crossEntropy(losses, buf.view([1, 8], 4), buf.view([1, 8]), targets),
    ).toThrow(/overlaps/);
  });

  test("a target out of range throws before anything is written", () => {
    const logits = heap.fromArray(random(12, 1, 1), [3, 4]);
    const targets = heap.fromArray(Int32Array.from([1, 4, 0]));
    const losses = heap.tensor([3]).fill(7);
    expect(() => kernels.crossEntropy(losses, null, logits, targets)).toThrow(/targets\[1\] = 4/);
    expect(Array.from(losses.f32())).toEqual([7, 7, 7]);
  });
});
