// MatmulOptions.causal (kernels.ts) on every implementation against a naive oracle written here:
// the full float64 product with the masked outputs zeroed. op(a) is random except where lowerA /
// upperA promise zeros (it is zero there, as attention probabilities are); for maskOut both operands
// are random everywhere and out starts as NaN, so an unwritten or unmasked output fails. Shapes: sequence lengths not multiples of the
// 4 x 8 register tile, grouped-query stacking (M = g * T), batches, and the six products of causal
// attention (Q K^T, P V, dO V^T, P^T dO, dS K, dS^T Q).

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels, MatmulCausal, MatmulOptions } from "../../src/kernels/kernels.js";
import { createNativeKernels, nativeAvailability } from "../../src/kernels/native/index.js";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { createWasmKernels } from "../../src/kernels/wasm/index.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { Rng } from "../../src/util/random.js";

interface Case {
  name: string;
  batch: number;
  /** op(a) (M, K), op(b) (K, N) */
  m: number;
  k: number;
  n: number;
  transA?: boolean;
  transB?: boolean;
  causal: MatmulCausal;
}

/** T = sequence length, g = query heads per kv head, D = head dim. */
function attentionCases(T: number, g: number, D: number, batch: number): Case[] {
  const gT = g * T;
  return [
    {
      name: `scores = Q K^T (T ${T}, g ${g})`,
      batch,
      m: gT,
      k: D,
      n: T,
      transB: true,
      causal: { kind: "maskOut", period: T },
    },
    {
      name: `out = P V (T ${T}, g ${g})`,
      batch,
      m: gT,
      k: T,
      n: D,
      causal: { kind: "lowerA", period: T },
    },
    {
      name: `dP = dO V^T (T ${T}, g ${g})`,
      batch,
      m: gT,
      k: D,
      n: T,
      transB: true,
      causal: { kind: "maskOut", period: T },
    },
    {
      name: `dV = P^T dO (T ${T}, g ${g})`,
      batch,
      m: T,
      k: gT,
      n: D,
      transA: true,
      causal: { kind: "upperA", period: T },
    },
    {
      name: `dQ = dS K (T ${T}, g ${g})`,
      batch,
      m: gT,
      k: T,
      n: D,
      causal: { kind: "lowerA", period: T },
    },
    {
      name: `dK = dS^T Q (T ${T}, g ${g})`,
      batch,
      m: T,
      k: gT,
      n: D,
      transA: true,
      causal: { kind: "upperA", period: T },
    },
  ];
}

const cases: Case[] = [
  ...attentionCases(1, 1, 3, 2),
  ...attentionCases(7, 1, 5, 3),
  ...attentionCases(13, 2, 8, 2),
  ...attentionCases(37, 3, 16, 2),
  ...attentionCases(130, 1, 64, 2),
  // plain (non-transposed) forms of the masks too
  {
    name: "maskOut, a and b plain",
    batch: 2,
    m: 22,
    k: 9,
    n: 11,
    causal: { kind: "maskOut", period: 11 },
  },
  {
    name: "lowerA, transposed a",
    batch: 2,
    m: 20,
    k: 10,
    n: 6,
    transA: true,
    causal: { kind: "lowerA", period: 10 },
  },
  {
    name: "upperA, plain a, transposed b",
    batch: 1,
    m: 9,
    k: 27,
    n: 5,
    transB: true,
    causal: { kind: "upperA", period: 9 },
  },
];

/** Naive float64 oracle of the causal semantics, on row-major (batch, rows, cols) arrays. */
function oracle(c: Case, a: Float32Array, b: Float32Array): Float64Array {
  const { batch, m, k, n } = c;
  const P = c.causal.period;
  const out = new Float64Array(batch * m * n);
  for (let bi = 0; bi < batch; bi++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        if (c.causal.kind === "maskOut" && j > i % P) continue; // stays 0
        let s = 0;
        for (let p = 0; p < k; p++) {
          const av = c.transA === true ? a[bi * k * m + p * m + i] : a[bi * m * k + i * k + p];
          const bv = c.transB === true ? b[bi * n * k + j * k + p] : b[bi * k * n + p * n + j];
          s += av * bv;
        }
        out[bi * m * n + i * n + j] = s;
      }
    }
  }
  return out;
}

function fill(t: Tensor, rng: Rng): void {
  const v = t.f32();
  for (let i = 0; i < v.length; i++) v[i] = rng.uniform() * 2 - 1;
}

/** Zeroes op(a)[i, p] where the causal kind promises a zero (a stored (K, M) when transposed). */
function zeroExcluded(c: Case, a: Float32Array): void {
  const { batch, m, k } = c;
  const P = c.causal.period;
  if (c.causal.kind === "maskOut") return;
  for (let bi = 0; bi < batch; bi++) {
    for (let i = 0; i < m; i++) {
      for (let p = 0; p < k; p++) {
        const excluded = c.causal.kind === "lowerA" ? p > i % P : p % P < i;
        if (!excluded) continue;
        if (c.transA === true) a[bi * k * m + p * m + i] = 0;
        else a[bi * m * k + i * k + p] = 0;
      }
    }
  }
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
];

for (const impl of impls) {
  describe(`matmul causal: ${impl.label}`, () => {
    let heap: Heap;
    let kernels: Kernels;
    beforeAll(async () => {
      heap = new Heap();
      kernels = await impl.make(heap);
    });
    afterAll(async () => {
      await kernels.dispose();
    });

    test.each(cases)("$name", (c) => {
      const rng = new Rng(c.m * 1000 + c.k * 10 + c.n);
      const a = heap.tensor(c.transA === true ? [c.batch, c.k, c.m] : [c.batch, c.m, c.k]);
      const b = heap.tensor(c.transB === true ? [c.batch, c.n, c.k] : [c.batch, c.k, c.n]);
      const out = heap.tensor([c.batch, c.m, c.n]);
      fill(a, rng);
      fill(b, rng);
      zeroExcluded(c, a.f32());
      out.f32().fill(Number.NaN); // every output must be written
      const options: MatmulOptions = {
        causal: c.causal,
        ...(c.transA === true && { transA: true }),
        ...(c.transB === true && { transB: true }),
      };
      kernels.matmul(out, a, b, options);
      const want = oracle(c, a.f32(), b.f32());
      const got = out.f32();
      let worst = 0;
      for (let i = 0; i < want.length; i++) {
        const err = Math.abs(got[i] - want[i]);
        if (!(err <= 1e-5 * Math.max(1, Math.abs(want[i])) * Math.sqrt(c.k)))
          worst = Math.max(worst, Number.isNaN(err) ? Infinity : err);
      }
      expect(worst).toBe(0);
      for (const t of [a, b, out]) t.dispose();
    });

    test("shape rules name the kind, the period and the dims", () => {
      const a = heap.tensor([6, 4]);
      const b = heap.tensor([5, 4]);
      const out = heap.tensor([6, 5]);
      expect(() =>
        kernels.matmul(out, a, b, { transB: true, causal: { kind: "maskOut", period: 4 } }),
      ).toThrow(/causal maskOut with period 4 and \(M, K, N\) = \(6, 4, 5\): needs N == period/);
      const a2 = heap.tensor([10, 4]);
      const out2 = heap.tensor([10, 5]);
      expect(() =>
        kernels.matmul(out2, a2, b, {
          transB: true,
          accumulate: true,
          causal: { kind: "maskOut", period: 5 },
        }),
      ).toThrow(/cannot accumulate/);
      a2.dispose();
      out2.dispose();
      expect(() =>
        kernels.matmul(out, a, b, { transB: true, causal: { kind: "lowerA", period: 5 } }),
      ).toThrow(/needs K == period/);
      expect(() =>
        kernels.matmul(out, a, b, { transB: true, causal: { kind: "upperA", period: 0 } }),
      ).toThrow(/positive integer/);
      for (const t of [a, b, out]) t.dispose();
    });
  });
}
