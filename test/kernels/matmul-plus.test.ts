// MatmulOptions.plus (kernels.ts) on every implementation against a naive float64 oracle written
// here: out = alpha op(a) op(b) + plus.alpha op(plus.a) op(plus.b) (+ out). Cases cover both LoRA
// uses (x W^T + s (x A^T) B^T, dy W + (s dy B) A), GPT-2's Conv1D layout (term and main with
// different transposes), a transposed term a, ranks around the wasm fusion limit (K2 <= 128 runs as
// one more K slice, longer terms as a GEMM of their own), a main inner dim past the wasm K slice
// (the term rides on the last slice), K = 0, accumulate on and off, rows not multiples of the
// register tile, N too narrow to pack A, 3-D a (rows flattened), and one thread (small products).
// Also the shape rules: each error names the operands.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels, MatmulOptions } from "../../src/kernels/kernels.js";
import { createNativeKernels, nativeAvailability } from "../../src/kernels/native/index.js";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { createWasmKernels } from "../../src/kernels/wasm/index.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { randomUniform } from "../helpers/random.js";

interface Case {
  name: string;
  /** op(a) (M, K), op(b) (K, N); a stored with `lead` leading dims folded into M */
  m: number;
  k: number;
  n: number;
  k2: number;
  transB?: boolean;
  termTransA?: boolean;
  termTransB?: boolean;
  alpha?: number;
  alpha2?: number;
  accumulate?: boolean;
  /** a stored (lead, M / lead, K) */
  lead?: number;
}

const cases: Case[] = [
  {
    name: "LoRA forward x W^T + s (x A^T) B^T",
    m: 70,
    k: 96,
    n: 72,
    k2: 8,
    transB: true,
    termTransB: true,
    alpha2: 2,
  },
  { name: "LoRA input grad dy W + (s dy B) A", m: 70, k: 72, n: 96, k2: 8, accumulate: true },
  {
    name: "Conv1D forward: plain W, transposed B",
    m: 45,
    k: 40,
    n: 88,
    k2: 4,
    termTransB: true,
    alpha2: 0.5,
  },
  {
    name: "transposed term a",
    m: 33,
    k: 50,
    n: 40,
    k2: 16,
    transB: true,
    termTransA: true,
    alpha: 0.25,
    alpha2: -1.5,
  },
  {
    name: "rank 128 (fused at the limit)",
    m: 40,
    k: 64,
    n: 72,
    k2: 128,
    transB: true,
    termTransB: true,
  },
  {
    name: "rank 136 (past the limit: its own GEMM)",
    m: 40,
    k: 64,
    n: 72,
    k2: 136,
    accumulate: true,
  },
  {
    name: "main K past the wasm K slice (4096)",
    m: 30,
    k: 4100,
    n: 72,
    k2: 8,
    accumulate: true,
    alpha: 0.5,
  },
  { name: "main K = 0: the term alone", m: 30, k: 0, n: 40, k2: 8, termTransB: true },
  { name: "main K = 0, accumulate", m: 30, k: 0, n: 40, k2: 8, accumulate: true, alpha2: 3 },
  { name: "N = 24: A read in place", m: 50, k: 128, n: 24, k2: 8, transB: true, termTransB: true },
  {
    name: "3-D a (batch x time rows)",
    m: 2 * 37,
    k: 48,
    n: 80,
    k2: 8,
    transB: true,
    termTransB: true,
    lead: 2,
  },
  { name: "small: one thread", m: 5, k: 9, n: 11, k2: 3, accumulate: true, alpha2: 0.7 },
  {
    name: "large: both threads, full tiles",
    m: 600,
    k: 512,
    n: 512,
    k2: 8,
    transB: true,
    termTransB: true,
    alpha2: 2,
  },
];

/** Row-major (rows, cols) element of a stored matrix read as op(x)[i, p]. */
function at(
  x: Float32Array,
  trans: boolean,
  rows: number,
  cols: number,
  i: number,
  p: number,
): number {
  return trans ? x[p * rows + i] : x[i * cols + p];
}

function oracle(
  c: Case,
  a: Float32Array,
  b: Float32Array,
  a2: Float32Array,
  b2: Float32Array,
  out0: Float32Array,
): Float64Array {
  const { m, k, n, k2 } = c;
  const want = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * at(b, c.transB === true, k, n, p, j);
      let t = 0;
      for (let p = 0; p < k2; p++)
        t +=
          at(a2, c.termTransA === true, m, k2, i, p) * at(b2, c.termTransB === true, k2, n, p, j);
      want[i * n + j] =
        (c.alpha ?? 1) * s + (c.alpha2 ?? 1) * t + (c.accumulate === true ? out0[i * n + j] : 0);
    }
  }
  return want;
}

const NATIVE_THREADS = [1, 2];
const impls: { label: string; make: (heap: Heap) => Promise<Kernels> }[] = [
  { label: "ref", make: async (heap) => createRefKernels(heap) },
  { label: "wasm, 1 thread", make: (heap) => createWasmKernels(heap, { threads: 1 }) },
  { label: "wasm, 2 threads", make: (heap) => createWasmKernels(heap, { threads: 2 }) },
  ...(nativeAvailability().ok
    ? NATIVE_THREADS.map((threads) => ({
        label: `native, ${threads} thread(s)`,
        make: (heap: Heap) => createNativeKernels(heap, { threads }),
      }))
    : []),
  {
    label: "wasm, 2 threads, plain SIMD",
    make: (heap) => createWasmKernels(heap, { threads: 2, relaxedSimd: false }),
  },
];

for (const impl of impls) {
  describe(`matmul plus term: ${impl.label}`, () => {
    let heap: Heap;
    let kernels: Kernels;
    const live: Tensor[] = [];
    const tensor = (shape: number[], seed: number): Tensor => {
      const t = heap.fromArray(
        randomUniform(
          shape.reduce((x, y) => x * y, 1),
          seed,
          1,
        ),
        shape,
      );
      live.push(t);
      return t;
    };
    beforeAll(async () => {
      heap = new Heap();
      kernels = await impl.make(heap);
    });
    afterAll(async () => {
      for (const t of live) if (!t.disposed) t.dispose();
      await kernels.dispose();
    });

    test.each(cases)("$name", (c) => {
      const lead = c.lead ?? 1;
      const a = tensor(lead === 1 ? [c.m, c.k] : [lead, c.m / lead, c.k], 1 + c.m);
      const b = tensor(c.transB === true ? [c.n, c.k] : [c.k, c.n], 2 + c.n);
      const a2 = tensor(c.termTransA === true ? [c.k2, c.m] : [c.m, c.k2], 3 + c.k2);
      const b2 = tensor(c.termTransB === true ? [c.n, c.k2] : [c.k2, c.n], 4 + c.k);
      const out = tensor(lead === 1 ? [c.m, c.n] : [lead, c.m / lead, c.n], 5);
      const out0 = out.f32().slice();
      if (c.accumulate !== true) out.f32().fill(Number.NaN); // every output must be written
      const options: MatmulOptions = {
        ...(c.transB === true && { transB: true }),
        ...(c.accumulate === true && { accumulate: true }),
        ...(c.alpha !== undefined && { alpha: c.alpha }),
        plus: {
          a: a2,
          b: b2,
          ...(c.termTransA === true && { transA: true }),
          ...(c.termTransB === true && { transB: true }),
          ...(c.alpha2 !== undefined && { alpha: c.alpha2 }),
        },
      };
      kernels.matmul(out, a, b, options);
      const want = oracle(c, a.f32(), b.f32(), a2.f32(), b2.f32(), out0);
      const got = out.f32();
      let bad = 0;
      for (let i = 0; i < want.length; i++) {
        const tol = 1e-5 * Math.sqrt(c.k + c.k2 + 1) * Math.max(1, Math.abs(want[i]));
        if (!(Math.abs(got[i] - want[i]) <= tol)) bad++;
      }
      expect(bad).toBe(0);
    });

    test("shape rules name the operands", () => {
      const a = tensor([6, 4], 11);
      const w = tensor([5, 4], 12);
      const out = tensor([6, 5], 13);
      const xa = tensor([6, 2], 14);
      const bUp = tensor([5, 2], 15);
      expect(() => kernels.matmul(out, a, w, { transB: true, plus: { a: xa, b: bUp } })).toThrow(
        /plus\.a \[6, 2\] and plus\.b \[5, 2\] have different inner dims 2 vs 5/,
      );
      const short = tensor([4, 2], 16);
      expect(() =>
        kernels.matmul(out, a, w, { transB: true, plus: { a: short, b: bUp, transB: true } }),
      ).toThrow(
        /plus\.a \[4, 2\] x plus\.b \(transposed\) \[5, 2\] is \(4, 5\), the main product is \(6, 5\)/,
      );
      expect(() =>
        kernels.matmul(out, a, w, {
          transB: true,
          plus: { a: out.view([6, 2]), b: bUp, transB: true },
        }),
      ).toThrow(/out \[6, 5\] overlaps plus\.a \[6, 2\] in memory/);
      const batchedB = tensor([1, 5, 4], 17);
      const a3 = tensor([1, 6, 4], 18);
      const out3 = tensor([1, 6, 5], 19);
      expect(() =>
        kernels.matmul(out3, a3, batchedB, { transB: true, plus: { a: xa, b: bUp, transB: true } }),
      ).toThrow(/plus needs one non-batched product/);
      expect(() =>
        kernels.matmul(out, a, w, {
          transB: true,
          plus: { a: xa, b: bUp, transB: true, alpha: Number.NaN },
        }),
      ).toThrow(/plus\.alpha must be a finite number/);
    });
  });
}
