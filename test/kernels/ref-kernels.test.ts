// createRefKernels through the Tensor interface: every method runs on heap tensors and agrees
// with a direct float64 computation (plumbing: right views, right dims, outputs overwritten or
// accumulated as the interface says), and bad arguments are rejected with errors naming the
// kernel, the argument and the shapes. Also createKernels' registry behaviour.

import { afterAll, describe, expect, test } from "vitest";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels } from "../../src/kernels/kernels.js";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { expectAllclose } from "../helpers/allclose.js";
import { makeRng, randn } from "../helpers/gradcheck.js";

const heap = new Heap({ initialBytes: 2 ** 20, maxBytes: 2 ** 26 });
const k: Kernels = createRefKernels(heap);
const rng = makeRng(2024);
const live: Tensor[] = [];

function rand(shape: number[], scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const t = heap.fromArray(Float32Array.from(randn(rng, n, scale)), shape);
  live.push(t);
  return t;
}
function zeros(shape: number[], dtype: "f32" | "i32" | "f16" | "bf16" = "f32"): Tensor {
  const t = heap.zeros(shape, dtype);
  live.push(t);
  return t;
}
function ints(values: number[]): Tensor {
  const t = heap.fromArray(Int32Array.from(values));
  live.push(t);
  return t;
}
const arr = (t: Tensor) => Array.from(t.f32());

afterAll(() => {
  for (const t of live) t.dispose();
});

describe("createRefKernels through tensors", () => {
  test("identity fields", async () => {
    expect(k.name).toBe("ref");
    expect(k.threads).toBe(1);
    expect(k.heap).toBe(heap);
    await expect(k.dispose()).resolves.toBeUndefined();
  });

  test("matmul: linear layer y = x W^T with a shared 2-D weight, then accumulate", () => {
    const x = rand([2, 3, 4]);
    const w = rand([5, 4]);
    const y = zeros([2, 3, 5]);
    k.matmul(y, x, w, { transB: true });
    const xs = arr(x);
    const ws = arr(w);
    const expected: number[] = [];
    for (let r = 0; r < 6; r++)
      for (let o = 0; o < 5; o++) {
        let s = 0;
        for (let c = 0; c < 4; c++) s += xs[r * 4 + c] * ws[o * 4 + c];
        expected.push(s);
      }
    expectAllclose(y.f32(), expected, { rtol: 1e-6, atol: 1e-6, label: "y" });
    k.matmul(y, x, w, { transB: true, accumulate: true, alpha: -2 });
    expectAllclose(
      y.f32(),
      expected.map((v) => -v),
      { rtol: 1e-5, atol: 1e-5, label: "y - 2y" },
    );
  });

  test("elementwise, bias, activations", () => {
    const a = rand([3, 4]);
    const b = rand([12]);
    const out = zeros([3, 4]);
    k.add(out, a, b);
    expectAllclose(
      out.f32(),
      arr(a).map((v, i) => v + arr(b)[i]),
      { label: "add" },
    );
    k.mul(out, a, b);
    expectAllclose(
      out.f32(),
      arr(a).map((v, i) => v * arr(b)[i]),
      { label: "mul" },
    );
    k.scale(out, a, 3);
    k.axpy(out, a, -3);
    expectAllclose(out.f32(), new Array(12).fill(0), { atol: 1e-6, label: "scale+axpy" });
    const bias = rand([4]);
    k.addBias(out, bias);
    expectAllclose(
      out.f32(),
      Array.from({ length: 12 }, (_, i) => arr(bias)[i % 4]),
      { atol: 1e-6, label: "addBias" },
    );
    const dBias = zeros([4]).fill(1);
    k.biasBackward(dBias, out);
    expectAllclose(
      dBias.f32(),
      arr(bias).map((v) => 1 + 3 * v),
      { atol: 1e-5, label: "biasBackward" },
    );
    k.silu(out, a);
    expectAllclose(
      out.f32(),
      arr(a).map((v) => v / (1 + Math.exp(-v))),
      { label: "silu" },
    );
    k.swiglu(out, a, b);
    expectAllclose(
      out.f32(),
      arr(a).map((v, i) => (v / (1 + Math.exp(-v))) * arr(b)[i]),
      { label: "swiglu" },
    );
    k.gelu(out, a, "tanh");
    const t = arr(out);
    k.gelu(out, a, "none");
    expectAllclose(out.f32(), t, { rtol: 1e-3, atol: 1e-3, label: "gelu erf ~ tanh" });
    const dA = zeros([3, 4]);
    const ones = zeros([12]).fill(1);
    k.siluBackward(dA, a, ones);
    k.geluBackward(dA, a, ones, "none");
    const dGate = zeros([12]);
    const dUp = zeros([12]);
    k.swigluBackward(dGate, dUp, a, b, ones);
    expectAllclose(
      dUp.f32(),
      arr(a).map((v) => v / (1 + Math.exp(-v))),
      { label: "dUp" },
    );
    expect(dA.f32().every(Number.isFinite)).toBe(true);
  });

  test("norms write statistics; backwards accept null weight grads", () => {
    const x = rand([2, 3, 5]);
    const w = rand([5]);
    const bias = rand([5]);
    const out = zeros([2, 3, 5]);
    const mean = zeros([6]);
    const rstd = zeros([2, 3]);
    k.layernorm(out, mean, rstd, x, w, bias, 1e-5);
    const xs = arr(x);
    expect(mean.f32()[4]).toBeCloseTo(xs.slice(20, 25).reduce((s, v) => s + v, 0) / 5, 6);
    const dx = zeros([2, 3, 5]);
    k.layernormBackward(dx, null, null, out, x, w, mean, rstd);
    k.rmsnorm(out, rstd, x, w, 1e-6);
    const ms = xs.slice(0, 5).reduce((s, v) => s + v * v, 0) / 5;
    expect(rstd.f32()[0]).toBeCloseTo(1 / Math.sqrt(ms + 1e-6), 4);
    const dw = zeros([5]);
    k.rmsnormBackward(dx, dw, out, x, w, rstd);
    expect(dx.f32().every(Number.isFinite)).toBe(true);
  });

  test("attention softmax with keyLengths, rope, permute", () => {
    const scores = rand([2, 1, 2, 3]);
    const probs = zeros([2, 1, 2, 3]);
    k.attentionSoftmax(probs, scores, { scale: 1, causal: true, keyLengths: ints([3, 1]) });
    const p = arr(probs);
    // batch 0: Tk - Tq = 1 so row 0 sees keys 0..1, row 1 all three; batch 1: only key 0
    expect(p[2]).toBe(0);
    expect(p[0] + p[1]).toBeCloseTo(1, 6);
    expect(p.slice(6)).toEqual([1, 0, 0, 1, 0, 0]);
    const dScores = zeros([2, 1, 2, 3]);
    k.attentionSoftmaxBackward(dScores, probs, scores, 0.5);
    const x = rand([1, 2, 1, 4]);
    const cos = heap.fromArray([1, 1, 0, 0], [2, 2]);
    const sin = heap.fromArray([0, 0, 1, 1], [2, 2]);
    live.push(cos, sin);
    const out = zeros([1, 2, 1, 4]);
    k.rope(out, x, cos, sin);
    const xs = arr(x);
    // t = 0: identity; t = 1: rotation by 90 degrees, (x1, x2) -> (-x2, x1)
    expectAllclose(out.f32(), [...xs.slice(0, 4), -xs[6], -xs[7], xs[4], xs[5]], {
      atol: 0,
      rtol: 0,
      label: "rope",
    });
    const back = zeros([1, 2, 1, 4]);
    k.ropeBackward(back, out, cos, sin);
    expectAllclose(back.f32(), xs, { atol: 0, rtol: 0, label: "ropeBackward" });
    const perm = zeros([1, 1, 2, 4]);
    k.permute0213(perm, x);
    expectAllclose(perm.f32(), xs, { atol: 0, rtol: 0, label: "permute with a size-1 axis" });
  });

  test("backward options: accumulate false writes over garbage, the default adds", () => {
    // rope by 0 and 90 degrees (cos, sin exactly 0 / 1): the backward is exact, so the result is
    // known without rounding: dInp = R(-theta) dOut
    const dOut = rand([1, 2, 1, 4]);
    const cos = heap.fromArray([1, 1, 0, 0], [2, 2]);
    const sin = heap.fromArray([0, 0, 1, 1], [2, 2]);
    live.push(cos, sin);
    const d = arr(dOut);
    const want = [...d.slice(0, 4), d[6], d[7], -d[4], -d[5]];
    const back = zeros([1, 2, 1, 4]).fill(Number.NaN);
    k.ropeBackward(back, dOut, cos, sin, { accumulate: false });
    expectAllclose(back.f32(), want, { atol: 0, rtol: 0, label: "ropeBackward accumulate false" });
    k.ropeBackward(back, dOut, cos, sin);
    expectAllclose(
      back.f32(),
      want.map((v) => 2 * v),
      { atol: 0, rtol: 0, label: "ropeBackward default" },
    );
    // dUp = dOut * silu(gate) with dOut = 1: silu itself
    const gate = rand([12]);
    const up = rand([12]);
    const ones = zeros([12]).fill(1);
    const [dGate, dUp] = [zeros([12]).fill(Number.NaN), zeros([12]).fill(Number.NaN)];
    k.swigluBackward(dGate, dUp, gate, up, ones, { accumulate: false });
    expectAllclose(
      dUp.f32(),
      arr(gate).map((v) => v / (1 + Math.exp(-v))),
      { label: "dUp accumulate false" },
    );
    expect(dGate.f32().every(Number.isFinite)).toBe(true);
  });

  test("embedding, cross-entropy count and gradScale, reductions, adamw, convert, copy", () => {
    const table = rand([4, 3]);
    const ids = ints([2, 2, 0]);
    const out = zeros([3, 3]);
    k.embedding(out, table, ids);
    expect(arr(out).slice(0, 3)).toEqual(arr(table).slice(6, 9));
    const dTable = zeros([4, 3]);
    k.embeddingBackward(dTable, out, ids);
    expectAllclose(
      dTable.f32().subarray(6, 9),
      arr(table)
        .slice(6, 9)
        .map((v) => 2 * v),
      { label: "scatter-add" },
    );
    const logits = rand([3, 4]);
    const losses = zeros([3]);
    const dLogits = zeros([3, 4]);
    const count = k.crossEntropy(losses, dLogits, logits, ints([1, -100, 3]), { gradScale: 0.5 });
    expect(count).toBe(2);
    expect(losses.f32()[1]).toBe(0);
    expect(k.sum(dLogits)).toBeCloseTo(0, 6); // softmax rows minus one-hot sum to zero
    expect(k.crossEntropy(losses, null, logits, ints([5, 5, 5]), { ignoreIndex: 5 })).toBe(0);
    expect(k.max(logits)).toBe(Math.max(...arr(logits)));
    expect(k.sumSquares(table)).toBeCloseTo(
      arr(table).reduce((s, v) => s + v * v, 0),
      5,
    );
    const param = rand([6]);
    const before = arr(param);
    const grad = rand([6]);
    const m = zeros([6]);
    const v = zeros([6]);
    k.adamw(param, grad, m, v, {
      lr: 0.1,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
      step: 1,
    });
    expectAllclose(
      param.f32(),
      before.map((p, i) => p - 0.1 * Math.sign(arr(grad)[i])),
      { rtol: 1e-5, atol: 1e-6, label: "adamw" },
    );
    const half = zeros([6], "f16");
    k.convert(half, param);
    const bf = zeros([6], "bf16");
    k.convert(bf, half);
    const back = zeros([6]);
    k.convert(back, bf);
    expectAllclose(back.f32(), arr(param), {
      rtol: 1e-2,
      atol: 0,
      label: "f32 -> f16 -> bf16 -> f32",
    });
    const copy = zeros([6], "bf16");
    k.copy(copy, bf);
    expect(Array.from(copy.u16())).toEqual(Array.from(bf.u16()));
  });
});

describe("argument validation", () => {
  test("matmul names shapes", () => {
    const a = rand([2, 3]);
    const b = rand([4, 5]);
    expect(() => k.matmul(zeros([2, 5]), a, b)).toThrow(
      "matmul: a [2, 3] and b [4, 5] have different inner dims 3 vs 4",
    );
    expect(() => k.matmul(zeros([2, 4]), a, rand([3, 5]))).toThrow(
      "matmul: out [2, 4] does not match a [2, 3] x b [3, 5]: expected [2, 5]",
    );
    expect(() => k.matmul(zeros([2, 2, 4]), rand([2, 2, 3]), rand([3, 3, 4]))).toThrow(
      /b \[3, 3, 4\] batch dims \[3\] differ/,
    );
    expect(() => k.matmul(zeros([3, 5]), a, rand([3, 5]), { transA: true })).toThrow(
      /a \(transposed\) \[2, 3\] and b \[3, 5\] have different inner dims 2 vs 3/,
    );
    expect(() => k.matmul(zeros([2]), a, rand([3, 5]))).toThrow(/out \[2\] must have rank >= 2/);
    const sq = rand([3, 3]);
    expect(() => k.matmul(sq, sq, rand([3, 3]))).toThrow(/out \[3, 3\] overlaps a \[3, 3\]/);
  });

  test("dtypes, disposed tensors and sizes", () => {
    const a = rand([3]);
    expect(() => k.add(zeros([3]), a, zeros([3], "i32"))).toThrow(
      "add: b [3] has dtype i32, expected f32",
    );
    expect(() => k.add(zeros([3]), a, rand([4]))).toThrow(
      "add: out [3] and b [4] have different sizes 3 vs 4",
    );
    const gone = rand([3]);
    gone.dispose();
    expect(() => k.silu(zeros([3]), gone)).toThrow("silu: inp [3] is disposed");
    expect(() => k.embedding(zeros([2, 2]), rand([5, 2]), rand([2]))).toThrow(
      "embedding: ids [2] has dtype f32, expected i32",
    );
    expect(() => k.embedding(zeros([3, 2]), rand([5, 2]), ints([0, 1]))).toThrow(
      /out \[3, 2\] must be \[2, 2\]/,
    );
    expect(() => k.embedding(zeros([1, 2]), rand([5, 2]), ints([5]))).toThrow(/ids\[0\] = 5/);
    expect(() => k.convert(zeros([3], "i32"), a)).toThrow(
      "convert: out [3] has dtype i32, expected f32 or f16 or bf16",
    );
    expect(() => k.copy(zeros([3], "f16"), a)).toThrow(
      /copy: out \[3\] is f16 but inp \[3\] is f32/,
    );
    expect(() => k.gelu(zeros([3]), a, "fast" as "tanh")).toThrow(/approximate/);
  });

  test("a non-boolean accumulate option is refused, naming the kernel", () => {
    const x = rand([4]);
    const bad = { accumulate: "no" } as unknown as { accumulate: boolean };
    expect(() => k.siluBackward(zeros([4]), x, x, bad)).toThrow(
      /siluBackward: options\.accumulate must be a boolean/,
    );
    const t = rand([1, 1, 1, 4]);
    const cs = rand([1, 2]);
    expect(() => k.ropeBackward(zeros([1, 1, 1, 4]), t, cs, cs, bad)).toThrow(
      /ropeBackward: options\.accumulate/,
    );
  });

  test("norms, attention, rope, permute, loss, adamw", () => {
    expect(() => k.rmsnorm(zeros([2, 4]), zeros([2]), rand([2, 4]), rand([5]), 1e-6)).toThrow(
      "rmsnorm: weight [5] does not match the last dim 4 of inp [2, 4]",
    );
    expect(() =>
      k.layernorm(zeros([2, 4]), zeros([3]), zeros([2]), rand([2, 4]), rand([4]), rand([4]), 1e-5),
    ).toThrow(/layernorm: mean \[3\] has 3 elements, expected 2/);
    expect(() => k.rmsnorm(zeros([2, 4]), zeros([2]), rand([2, 4]), rand([4]), -1)).toThrow(/eps/);
    expect(() =>
      k.attentionSoftmax(zeros([1, 1, 2, 3]), rand([1, 1, 2, 3]), {
        scale: 1,
        causal: false,
        keyLengths: rand([1]),
      }),
    ).toThrow("attentionSoftmax: keyLengths [1] has dtype f32, expected i32");
    expect(() =>
      k.attentionSoftmax(zeros([1, 1, 2, 3]), rand([1, 1, 3, 2]), { scale: 1, causal: false }),
    ).toThrow(/probs \[1, 1, 2, 3\] and scores \[1, 1, 3, 2\] must have the same shape/);
    expect(() =>
      k.rope(zeros([1, 2, 1, 4]), rand([1, 2, 1, 4]), rand([2, 4]), rand([2, 2])),
    ).toThrow("rope: cos [2, 4] must be [2, 2] (T, D/2) for inp [1, 2, 1, 4]");
    expect(() => k.permute0213(zeros([1, 2, 3, 4]), rand([1, 2, 3, 4]))).toThrow(
      /out \[1, 2, 3, 4\] must be \[1, 3, 2, 4\]/,
    );
    expect(() => k.crossEntropy(zeros([2]), null, rand([2, 3]), ints([0, 3]))).toThrow(
      /targets\[1\] = 3/,
    );
    expect(() => k.crossEntropy(zeros([3]), null, rand([2, 3]), ints([0, 1]))).toThrow(
      /losses \[3\] has 3 elements, expected 2/,
    );
    const p = rand([2]);
    const opts = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 0 };
    expect(() => k.adamw(p, rand([2]), zeros([2]), zeros([2]), opts)).toThrow(
      /step must be an integer >= 1/,
    );
    expect(() => k.adamw(p, rand([3]), zeros([2]), zeros([2]), { ...opts, step: 1 })).toThrow(
      /param \[2\] and grad \[3\]/,
    );
  });
});

describe("createKernels", () => {
  test("ref by name; unknown names list the supported ones", async () => {
    const ref = await createKernels("ref", { heap });
    expect(ref.name).toBe("ref");
    await expect(createKernels("cuda" as "ref", { heap })).rejects.toThrow(
      'unknown kernels "cuda"; supported: "ref", "wasm", "native", "webgpu", "auto"',
    );
  });
});
