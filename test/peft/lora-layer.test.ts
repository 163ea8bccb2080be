// The LoRA layer (src/peft/lora.ts) against a plain float64 reference of y += s B A x:
// forward, backward (dA, dB, dInp, accumulation; one entry also by central differences),
// dropout consistency, and merge / unmerge into the base weight in both layouts.

import { describe, expect, test } from "vitest";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import type { LinearInfo } from "../../src/models/linear.js";
import { LoraLinear } from "../../src/peft/lora.js";
import { Heap } from "../../src/tensor/heap.js";
import { Rng } from "../../src/util/random.js";
import { maxAbs, maxAbsDiff, mm, transpose } from "./peft-fixtures.js";

const R = 5;
const n = 7; // in
const m = 6; // out
const r = 3;
const s = 1.7;

function setup(fanInFanOut = false, dropout = 0) {
  const heap = new Heap({ initialBytes: 8 * 2 ** 20 });
  const kernels = createRefKernels(heap);
  const rng = new Rng(42);
  const rand = (len: number) => {
    const a = new Float32Array(len);
    rng.fillNormal(a, 0, 1);
    return a;
  };
  const info: LinearInfo = {
    path: "blk.proj",
    inFeatures: n,
    outFeatures: m,
    weightName: "blk.proj.weight",
    biasName: null,
    fanInFanOut,
  };
  const A = rand(r * n);
  const B = rand(m * r);
  const lora = new LoraLinear(kernels, info, { r, scaling: s, A, B, dropout, rng: new Rng(7) });
  return { heap, kernels, rand, info, A, B, lora };
}

/** y (R, m) = s * x A^T B^T in float64. */
function reference(x: ArrayLike<number>, A: ArrayLike<number>, B: ArrayLike<number>): Float64Array {
  const xa = mm(x, transpose(A, r, n), R, n, r);
  return mm(xa, transpose(B, m, r), R, r, m).map((v) => s * v);
}

describe("LoraLinear", () => {
  test("forward adds s B A x; backward gives dB, dA and dX of sum(dY * y), accumulating", () => {
    const { heap, rand, A, B, lora } = setup();
    const x = rand(R * n);
    const base = rand(R * m);
    const out = heap.fromArray(base, [R, m]);
    const xt = heap.fromArray(x, [R, n]);
    lora.forward(out, xt);
    const ref = reference(x, A, B);
    expect(
      maxAbsDiff(
        out.toArray(),
        base.map((v, i) => v + ref[i]),
      ),
    ).toBeLessThan(1e-5);
    const dY = rand(R * m);
    const dYt = heap.fromArray(dY, [R, m]);
    const dX0 = rand(R * n);
    const dX = heap.fromArray(dX0, [R, n]);
    lora.backward(dX, dYt, xt);
    // reference gradients of L = sum(dY * y)
    const xa = mm(x, transpose(A, r, n), R, n, r); // (R, r)
    const dB = mm(transpose(dY, R, m), xa, m, R, r).map((v) => s * v);
    const dxa = mm(dY, B, R, m, r).map((v) => s * v); // (R, r)
    const dA = mm(transpose(dxa, R, r), x, r, R, n);
    const dXref = mm(dxa, A, R, r, n);
    expect(maxAbsDiff(lora.dB?.toArray() ?? [], dB)).toBeLessThan(1e-4);
    expect(maxAbsDiff(lora.dA?.toArray() ?? [], dA)).toBeLessThan(1e-4);
    expect(
      maxAbsDiff(
        dX.toArray(),
        dX0.map((v, i) => v + dXref[i]),
      ),
    ).toBeLessThan(1e-4);
    // central differences on A[1, 2] (float64 reference loss)
    const loss = (a: ArrayLike<number>) =>
      reference(x, a, B).reduce((acc, v, i) => acc + v * dY[i], 0);
    const h = 1e-4;
    const ap = Float64Array.from(A);
    const am = Float64Array.from(A);
    ap[1 * n + 2] += h;
    am[1 * n + 2] -= h;
    expect((lora.dA as NonNullable<typeof lora.dA>).f32()[1 * n + 2]).toBeCloseTo(
      (loss(ap) - loss(am)) / (2 * h),
      3,
    );
    // a second backward accumulates
    lora.forward(out, xt);
    lora.backward(null, dYt, xt);
    expect(
      maxAbsDiff(
        lora.dA?.toArray() ?? [],
        dA.map((v) => 2 * v),
      ),
    ).toBeLessThan(2e-4);
    lora.zeroGrad();
    expect(maxAbs(lora.dB?.toArray() ?? [1])).toBe(0);
  });

  test("dropout: backward is the transpose of the forward map of the same call; eval mode is dropout-free", () => {
    const { heap, rand, A, B, lora } = setup(false, 0.5);
    const x = rand(R * n);
    const xt = heap.fromArray(x, [R, n]);
    const out = heap.zeros([R, m]);
    lora.forward(out, xt);
    const delta = out.toArray();
    expect(maxAbsDiff(delta, reference(x, A, B))).toBeGreaterThan(1e-3); // something was dropped
    const dY = rand(R * m);
    const dX = heap.zeros([R, n]);
    lora.backward(dX, heap.fromArray(dY, [R, m]), xt);
    // delta is linear in x for a fixed mask: <dX, x> == <dY, delta>
    let lhs = 0;
    let rhs = 0;
    const dXv = dX.toArray();
    for (let i = 0; i < x.length; i++) lhs += dXv[i] * x[i];
    for (let i = 0; i < dY.length; i++) rhs += dY[i] * delta[i];
    expect(lhs).toBeCloseTo(rhs, 3);
    lora.training = false;
    const out2 = heap.zeros([R, m]);
    lora.forward(out2, xt);
    expect(maxAbsDiff(out2.toArray(), reference(x, A, B))).toBeLessThan(1e-5);
  });

  test.each([false, true])("merge / unmerge with fan_in_fan_out=%s", (fan) => {
    const { heap, kernels, rand, A, B, lora } = setup(fan);
    const Wstored = rand(m * n); // (out, in) or (in, out)
    const W = heap.fromArray(Wstored, fan ? [n, m] : [m, n]);
    lora.merge(W);
    const ba = mm(B, A, m, r, n).map((v) => s * v); // (out, in)
    const expected = fan
      ? Float64Array.from(Wstored).map((v, i) => v + transpose(ba, m, n)[i])
      : Float64Array.from(Wstored).map((v, i) => v + ba[i]);
    expect(maxAbsDiff(W.toArray(), expected)).toBeLessThan(1e-5);
    // merged base alone == base + adapter
    const x = rand(R * n);
    const xt = heap.fromArray(x, [R, n]);
    const merged = heap.zeros([R, m]);
    kernels.matmul(merged, xt, W, { transB: !fan });
    const unmergedOut = heap.zeros([R, m]);
    lora.unmerge(W);
    expect(maxAbsDiff(W.toArray(), Wstored)).toBeLessThan(1e-5);
    kernels.matmul(unmergedOut, xt, W, { transB: !fan });
    lora.forward(unmergedOut, xt);
    expect(maxAbsDiff(merged.toArray(), unmergedOut.toArray())).toBeLessThan(1e-4);
  });

  test("shape errors name the module", () => {
    const { kernels, info } = setup();
    expect(
      () =>
        new LoraLinear(kernels, info, {
          r,
          scaling: 1,
          A: new Float32Array(3),
          B: new Float32Array(m * r),
        }),
    ).toThrow(/LoRA blk\.proj: lora_A has 3 values, expected \(r, in\) = \(3, 7\)/);
  });
});
