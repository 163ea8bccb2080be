// The native engine's small non-GEMM kernels (native/src/rowops.c via src/kernels/native/rowops.ts)
// against the reference kernels: add, permute0213, and swiglu, attentionSoftmax, rmsnorm and rope
// with their backwards, on random data with awkward sizes (odd lengths, SIMD tails, one element),
// in place where the contract allows it, accumulate true and false, causal masks with a KV offset
// and key lengths (clamped, 0: an all-zero row). One case per op is above ROWOP_MAX_ELEMS, where
// the wasm kernels take over: same results either side of the threshold within the tolerance.
// Tolerances: f32 arithmetic against the reference's f64 (the C exp is a polynomial within about
// 2e-7 relative of exp): 2e-6 relative plus an absolute term of the output's scale; permute exact.
// Skipped when the addon is not built (test/kernels/native-gemm.test.ts fails CI then).

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels } from "../../src/kernels/kernels.js";
import { createNativeKernels } from "../../src/kernels/native/index.js";
import { ROWOP_MAX_ELEMS } from "../../src/kernels/native/rowops.js";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { expectAllclose } from "../helpers/allclose.js";
import { NATIVE_ENGINES } from "../helpers/native.js";
import { randomUniform as random } from "../helpers/random.js";

const SIZES = [1, 7, 16, 33, 1000, ROWOP_MAX_ELEMS + 5];

describe.each(NATIVE_ENGINES)("%s row ops vs ref", () => {
  let heap: Heap;
  let native: Kernels;
  let ref: Kernels;
  beforeAll(async () => {
    heap = new Heap({ initialBytes: 64 * 2 ** 20 });
    native = await createNativeKernels(heap, { threads: 2 });
    ref = createRefKernels(heap);
  });
  afterAll(async () => {
    await native?.dispose();
  });

  const copyOf = (t: Tensor) => heap.fromArray(t.f32().slice(), t.shape);

  test.each(SIZES)("add, %i elements, out separate and in place", (n) => {
    const a = heap.fromArray(random(n, 1, 3));
    const b = heap.fromArray(random(n, 2, 3));
    const out = heap.tensor([n]);
    const want = heap.tensor([n]);
    native.add(out, a, b);
    ref.add(want, a, b);
    expectAllclose(out.f32(), want.f32(), { rtol: 0, atol: 0, label: "add" });
    native.add(a, a, b); // out is a
    expectAllclose(a.f32(), want.f32(), { rtol: 0, atol: 0, label: "add in place" });
  });

  test.each(SIZES)("swiglu, %i elements, out separate and over gate", (n) => {
    const gate = heap.fromArray(random(n, 3, 12)); // past |x| = 8: the sigmoid's flat tails
    const up = heap.fromArray(random(n, 4, 2));
    const out = heap.tensor([n]);
    const want = heap.tensor([n]);
    native.swiglu(out, gate, up);
    ref.swiglu(want, gate, up);
    expectAllclose(out.f32(), want.f32(), { rtol: 2e-6, atol: 1e-7, label: "swiglu" });
    native.swiglu(gate, gate, up);
    expectAllclose(gate.f32(), want.f32(), { rtol: 2e-6, atol: 1e-7, label: "swiglu in place" });
  });

  test.each(SIZES.flatMap((n) => [true, false].map((accumulate) => ({ n, accumulate }))))(
    "swigluBackward, $n elements, accumulate $accumulate",
    ({ n, accumulate }) => {
      const gate = heap.fromArray(random(n, 5, 12));
      const up = heap.fromArray(random(n, 6, 2));
      const dOut = heap.fromArray(random(n, 7, 1));
      const dGate0 = heap.fromArray(accumulate ? random(n, 8, 1) : new Float32Array(n).fill(NaN));
      const dUp0 = heap.fromArray(accumulate ? random(n, 9, 1) : new Float32Array(n).fill(NaN));
      const [dGate, dUp, wantGate, wantUp] = [dGate0, dUp0, dGate0, dUp0].map(copyOf);
      native.swigluBackward(dGate, dUp, gate, up, dOut, { accumulate });
      ref.swigluBackward(wantGate, wantUp, gate, up, dOut, { accumulate });
      // atol: f32 rounding of the accumulated sums (|start| < 1), as the wasm kernels need too
      const atol = accumulate ? 2e-6 : 2e-7;
      expectAllclose(dGate.f32(), wantGate.f32(), { rtol: 2e-6, atol, label: "dGate" });
      expectAllclose(dUp.f32(), wantUp.f32(), { rtol: 2e-6, atol, label: "dUp" });
    },
  );

  const softmaxCases: {
    shape: [number, number, number, number];
    causal: boolean;
    keyLengths?: number[];
    scale: number;
  }[] = [
    { shape: [1, 1, 1, 1], causal: false, scale: 1 },
    { shape: [2, 3, 5, 7], causal: true, scale: 0.5 },
    { shape: [2, 3, 5, 7], causal: false, keyLengths: [3, 0], scale: 0.5 },
    { shape: [3, 2, 4, 9], causal: true, keyLengths: [-2, 100, 6], scale: 2 },
    { shape: [1, 2, 3, 11], causal: true, scale: 0.125 }, // Tq < Tk: cached keys
    { shape: [16, 4, 42, 42], causal: true, keyLengths: [42, 30, 17, 41], scale: 0.144 },
    { shape: [4, 8, 128, 129], causal: true, scale: 0.1 }, // above the threshold: wasm
  ];

  test.each(softmaxCases.flatMap((c) => [false, true].map((inPlace) => ({ ...c, inPlace }))))(
    "attentionSoftmax $shape causal $causal keyLengths $keyLengths in place $inPlace",
    ({ shape, causal, keyLengths, scale, inPlace }) => {
      const n = shape.reduce((x, y) => x * y, 1);
      // keyLengths has one entry per batch row: repeat the listed ones
      const kl =
        keyLengths === undefined
          ? undefined
          : heap.fromArray(
              Int32Array.from({ length: shape[0] }, (_, b) => keyLengths[b % keyLengths.length]),
            );
      const options = { scale, causal, ...(kl === undefined ? {} : { keyLengths: kl }) };
      const scores = heap.fromArray(random(n, shape[3] + 11, 6), shape);
      const want = heap.tensor(shape);
      ref.attentionSoftmax(want, scores, options);
      const probs = inPlace ? scores : heap.tensor(shape);
      native.attentionSoftmax(probs, scores, options);
      const w = want.f32();
      expectAllclose(probs.f32(), w, { rtol: 1e-5, atol: 1e-7, label: "probs" });
      const p = probs.f32();
      let maskedNonZero = 0; // masked entries (0 in the reference) must be exactly 0
      for (let i = 0; i < n; i++) if (w[i] === 0 && p[i] !== 0) maskedNonZero++;
      expect(maskedNonZero).toBe(0);
    },
  );

  test("attentionSoftmax over scores of -1e30 (sliding-window masks): finite, as the reference", () => {
    const shape = [2, 2, 6, 9];
    const s = random(216, 61, 6);
    for (let row = 0; row < 24; row++) s.fill(-1e30, row * 9, row * 9 + (row % 10)); // 9+: all
    const scores = heap.fromArray(s, shape);
    const probs = heap.tensor(shape);
    const want = heap.tensor(shape);
    for (const scale of [0.0625, 1, 3]) {
      ref.attentionSoftmax(want, scores, { scale, causal: false });
      native.attentionSoftmax(probs, scores, { scale, causal: false });
      expectAllclose(probs.f32(), want.f32(), { rtol: 1e-5, atol: 1e-7, label: `scale ${scale}` });
    }
  });

  test.each(
    [
      [1, 1],
      [7, 13],
      [64 * 4, 42],
      [4096, 129], // above the threshold: wasm
    ].flatMap(([rows, cols]) => [true, false].map((accumulate) => ({ rows, cols, accumulate }))),
  )(
    "attentionSoftmaxBackward $rows x $cols accumulate $accumulate",
    ({ rows, cols, accumulate }) => {
      const n = rows * cols;
      const logits = heap.fromArray(random(n, 21, 4), [1, 1, rows, cols]);
      const probs = heap.tensor([1, 1, rows, cols]);
      ref.attentionSoftmax(probs, logits, { scale: 1, causal: false });
      const dProbs = heap.fromArray(random(n, 22, 1), [rows, cols]);
      const start = accumulate ? random(n, 23, 1) : new Float32Array(n).fill(NaN);
      const dScores = heap.fromArray(start, [rows, cols]);
      const want = heap.fromArray(start, [rows, cols]);
      const p2 = heap.fromArray(probs.f32().slice(), [rows, cols]);
      native.attentionSoftmaxBackward(dScores, p2, dProbs, 0.7, { accumulate });
      ref.attentionSoftmaxBackward(want, p2, dProbs, 0.7, { accumulate });
      expectAllclose(dScores.f32(), want.f32(), { rtol: 1e-5, atol: 1e-6, label: "dScores" });
      // in place: dScores is dProbs
      const inPlace = heap.fromArray(dProbs.f32().slice(), [rows, cols]);
      const wantInPlace = heap.fromArray(dProbs.f32().slice(), [rows, cols]);
      native.attentionSoftmaxBackward(inPlace, p2, inPlace, 0.7, { accumulate: false });
      ref.attentionSoftmaxBackward(wantInPlace, p2, wantInPlace, 0.7, { accumulate: false });
      expectAllclose(inPlace.f32(), wantInPlace.f32(), {
        rtol: 1e-5,
        atol: 1e-6,
        label: "in place",
      });
    },
  );

  test.each([
    [1, 1],
    [3, 5],
    [672, 192],
    [17, 33],
    [4096, 192], // above the threshold: wasm
  ])("rmsnorm %i x %i, out separate and over inp", (rows, cols) => {
    const inp = heap.fromArray(random(rows * cols, 31, 3), [rows, cols]);
    const weight = heap.fromArray(random(cols, 32, 2));
    const out = heap.tensor([rows, cols]);
    const rstd = heap.tensor([rows]);
    const want = heap.tensor([rows, cols]);
    const wantRstd = heap.tensor([rows]);
    ref.rmsnorm(want, wantRstd, inp, weight, 1e-5);
    native.rmsnorm(out, rstd, inp, weight, 1e-5);
    expectAllclose(out.f32(), want.f32(), { rtol: 1e-6, atol: 1e-7, label: "out" });
    expectAllclose(rstd.f32(), wantRstd.f32(), { rtol: 1e-6, atol: 0, label: "rstd" });
    native.rmsnorm(inp, rstd, inp, weight, 1e-5);
    expectAllclose(inp.f32(), want.f32(), { rtol: 1e-6, atol: 1e-7, label: "in place" });
  });

  test.each(
    [
      [1, 1],
      [3, 5],
      [672, 192],
      [4096, 192], // above the threshold: wasm
    ].flatMap(([rows, cols]) =>
      [true, false].flatMap((accumulate) =>
        [true, false].map((frozen) => ({ rows, cols, accumulate, frozen })),
      ),
    ),
  )(
    "rmsnormBackward $rows x $cols accumulate $accumulate frozen weight $frozen",
    ({ rows, cols, accumulate, frozen }) => {
      const n = rows * cols;
      const inp = heap.fromArray(random(n, 71, 3), [rows, cols]);
      const weight = heap.fromArray(random(cols, 72, 2));
      const dOut = heap.fromArray(random(n, 73, 1), [rows, cols]);
      const rstd = heap.tensor([rows]);
      ref.rmsnorm(heap.tensor([rows, cols]), rstd, inp, weight, 1e-5);
      const start = accumulate ? random(n, 74, 1) : new Float32Array(n).fill(NaN);
      const dInp = heap.fromArray(start, [rows, cols]);
      const want = heap.fromArray(start, [rows, cols]);
      const w0 = random(cols, 75, 1);
      const dWeight = frozen ? null : heap.fromArray(w0);
      const wantWeight = frozen ? null : heap.fromArray(w0);
      native.rmsnormBackward(dInp, dWeight, dOut, inp, weight, rstd, { accumulate });
      ref.rmsnormBackward(want, wantWeight, dOut, inp, weight, rstd, { accumulate });
      expectAllclose(dInp.f32(), want.f32(), { rtol: 1e-5, atol: 2e-6, label: "dInp" });
      if (dWeight !== null && wantWeight !== null)
        // a sum over rows in f32: its rounding grows with the rows
        expectAllclose(dWeight.f32(), wantWeight.f32(), {
          rtol: 1e-5,
          atol: 1e-6 * rows,
          label: "dWeight",
        });
    },
  );

  test.each(
    [
      [1, 1, 1, 2],
      [2, 5, 3, 6],
      [16, 42, 4, 48],
      [4, 256, 8, 64], // above the threshold: wasm
    ].flatMap(([b, t, h, d]) => [true, false].map((accumulate) => ({ b, t, h, d, accumulate }))),
  )(
    "rope and ropeBackward ($b, $t, $h, $d) accumulate $accumulate",
    ({ b, t, h, d, accumulate }) => {
      const n = b * t * h * d;
      const shape = [b, t, h, d];
      const inp = heap.fromArray(random(n, 81, 2), shape);
      const cos = heap.fromArray(random((t * d) / 2, 82, 1), [t, d / 2]);
      const sin = heap.fromArray(random((t * d) / 2, 83, 1), [t, d / 2]);
      const out = heap.tensor(shape);
      const want = heap.tensor(shape);
      native.rope(out, inp, cos, sin);
      ref.rope(want, inp, cos, sin);
      expectAllclose(out.f32(), want.f32(), { rtol: 1e-6, atol: 1e-6, label: "rope" });
      native.rope(inp, inp, cos, sin); // in place
      expectAllclose(inp.f32(), want.f32(), { rtol: 1e-6, atol: 1e-6, label: "rope in place" });
      const start = accumulate ? random(n, 84, 1) : new Float32Array(n).fill(NaN);
      const dInp = heap.fromArray(start, shape);
      const wantD = heap.fromArray(start, shape);
      native.ropeBackward(dInp, out, cos, sin, { accumulate });
      ref.ropeBackward(wantD, out, cos, sin, { accumulate });
      expectAllclose(dInp.f32(), wantD.f32(), { rtol: 1e-6, atol: 2e-6, label: "ropeBackward" });
    },
  );

  test.each([
    [1, 1, 1, 1],
    [2, 3, 5, 7],
    [16, 42, 4, 48],
    [8, 256, 8, 64], // above the threshold: wasm
  ])("permute0213 %i x %i x %i x %i (exact)", (a, b, c, d) => {
    const inp = heap.fromArray(random(a * b * c * d, 41, 1), [a, b, c, d]);
    const out = heap.tensor([a, c, b, d]);
    const want = heap.tensor([a, c, b, d]);
    native.permute0213(out, inp);
    ref.permute0213(want, inp);
    expectAllclose(out.f32(), want.f32(), { rtol: 0, atol: 0, label: "permute0213" }); // exact
  });

  test("a partial overlap goes to the fallback, which gives the reference result", () => {
    const values = random(40, 51, 2);
    const b = heap.fromArray(random(32, 52, 2));
    const buf = heap.fromArray(values);
    const wantBuf = heap.fromArray(values);
    // out overlaps a, shifted by 4 elements: the same overlap on both sides
    native.add(buf.view([32], 4), buf.view([32], 0), b);
    ref.add(wantBuf.view([32], 4), wantBuf.view([32], 0), b);
    expect(buf.f32()).toEqual(wantBuf.f32());
  });
});
