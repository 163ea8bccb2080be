// The native engine's bf16 GEMM (native/src/bf16.c: a bf16 b, a frozen weight) against a
// reference that rounds op(a) times alpha and b to bf16 (tensor/dtype.ts, round to nearest even)
// and sums the products in f64. The kernel's products of two bf16 values are exact in f32 and it
// sums K of them in f32, so each element is within K * 2^-24 * sum_p |a_p b_p| of the reference
// (the recursive-summation bound, Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed.,
// section 3.1: gamma_K <= 1.01 K u for K u < 0.01). Not rounding a to bf16 would miss that
// bound by far for K up to a few hundred (an error of about 2^-9 sqrt(K) per unit term against a
// bound that grows as K^2), which those cases check the bound can see.
// Cases: every form the frozen-weight path uses (a weight (out, in) used transposed for y = x W^T,
// the same weight not transposed for dx = dy W, and GPT-2's (in, out) layout the other way round;
// overwrite and accumulate; a LoRA `plus` term in f32 beside it), tails of both register tiles, odd
// K, K past the bf16 K block, a weight at an address that is not 4-byte aligned, transA and a
// shared b under batched a, alpha; 1 and 2 threads give the same bits. Dispatch: bf16Matmul only
// where the CPU has AVX512-BF16, never on the avx2 micro-kernel, and a bf16 b throws elsewhere.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { MatmulOptions } from "../../src/kernels/kernels.js";
import { loadNativeAddon } from "../../src/kernels/native/addon.js";
import { createNativeKernels, type NativeKernels } from "../../src/kernels/native/index.js";
import { bf16ToF32, f32ToBf16 } from "../../src/tensor/dtype.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { randomUniform } from "../helpers/random.js";

const loaded = loadNativeAddon();
const addon = "addon" in loaded ? loaded.addon : undefined;
/** Whether this CPU runs the bf16 kernels (the addon says so from cpuid). */
const hasBf16 = (() => {
  if (addon === undefined || !addon.kernels().includes("avx512")) return false;
  const heap = new Heap({ initialBytes: 2 ** 20 });
  const engine = addon.createEngine(new Uint8Array(heap.memory.buffer, 0, 1), 1, "avx512");
  const bf16 = addon.engineInfo(engine).bf16;
  addon.destroyEngine(engine);
  return bf16;
})();

const round = (v: number): number => bf16ToF32(f32ToBf16(v));

interface Case {
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  /** b stored (n, k) (a weight (out, in) in y = x W^T) instead of (k, n) */
  transB?: boolean;
  accumulate?: boolean;
  alpha?: number;
  /** a LoRA term (f32) of rank r beside the bf16 product */
  plusRank?: number;
  /** leading batch dim of a and out (b shared) */
  batch?: number;
  /** b starts one bf16 element into its allocation (not 4-byte aligned) */
  misaligned?: boolean;
}

function cases(): Case[] {
  const out: Case[] = [];
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [5, 7, 3],
    [13, 33, 17],
    [12, 32, 64],
    [24, 16, 64],
    [25, 65, 301],
    [97, 40, 520],
    [30, 100, 1100], // K past one bf16 K block
    [50, 70, 2051],
  ];
  for (const [m, n, k] of shapes) {
    out.push({ m, n, k, transB: true }); // y = x W^T
    out.push({ m, n, k, accumulate: true }); // dx += dy W
    out.push({ m, n, k, transB: true, accumulate: true, plusRank: 8 }); // forward with LoRA
    out.push({ m, n, k, plusRank: 4 }); // dx = dy W + (s dy B) A
  }
  out.push({ m: 37, n: 70, k: 45, transB: true, alpha: -0.75 });
  out.push({ m: 19, n: 23, k: 31, transA: true, alpha: 2 });
  out.push({ m: 19, n: 40, k: 31, batch: 3, transB: true });
  out.push({ m: 19, n: 40, k: 31, batch: 2, transA: true, accumulate: true });
  out.push({ m: 20, n: 36, k: 64, transB: true, misaligned: true });
  out.push({ m: 20, n: 36, k: 64, misaligned: true });
  return out;
}

function label(c: Case): string {
  const form = `${c.transA === true ? "T" : "N"}${c.transB === true ? "T" : "N"}`;
  const extra = [
    c.accumulate === true ? "accumulate" : "",
    c.alpha !== undefined ? `alpha ${c.alpha}` : "",
    c.plusRank !== undefined ? `plus r ${c.plusRank}` : "",
    c.batch !== undefined ? `batch ${c.batch}` : "",
    c.misaligned === true ? "misaligned b" : "",
  ].filter((s) => s !== "");
  return `${c.m}x${c.n}x${c.k} ${form} ${extra.join(", ")}`;
}

/** A bf16 (rows, cols) tensor of `values` rounded; at an odd element offset when misaligned. */
function bf16Tensor(
  heap: Heap,
  values: Float32Array,
  shape: [number, number],
  misaligned: boolean,
) {
  const whole = heap.tensor([values.length + 1], "bf16");
  const t = whole.view(shape, misaligned ? 1 : 0);
  const bits = t.u16();
  for (let i = 0; i < values.length; i++) bits[i] = f32ToBf16(values[i]);
  return { whole, t };
}

/**
 * The reference and its bound per output element: out0 + sum_p bf16(alpha a_ip) bf16(b_pj) (+ the
 * plus term in f64 on the f32 values, which the kernel runs in f32), and sum_p of |each product|.
 */
function reference(
  c: Case,
  a: Float32Array,
  b: Float32Array,
  out0: Float32Array,
  plus: { a: Float32Array; b: Float32Array; alpha: number; r: number } | null,
  roundA: boolean,
): { want: Float64Array; mag: Float64Array } {
  const batch = c.batch ?? 1;
  const { m, n, k } = c;
  const alpha = c.alpha ?? 1;
  const want = new Float64Array(batch * m * n);
  const mag = new Float64Array(batch * m * n);
  const aUsed = a.map((v) => (roundA ? round(alpha * v) : alpha * v)); // f32 products, as the kernel
  const bUsed = b.map(round);
  for (let bi = 0; bi < batch; bi++)
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        let s2 = 0;
        for (let p = 0; p < k; p++) {
          const av = c.transA ? aUsed[bi * m * k + p * m + i] : aUsed[bi * m * k + i * k + p];
          const prod = av * (c.transB ? bUsed[j * k + p] : bUsed[p * n + j]);
          s += prod;
          s2 += Math.abs(prod);
        }
        if (plus !== null) {
          for (let q = 0; q < plus.r; q++) {
            const prod = plus.alpha * plus.a[i * plus.r + q] * plus.b[q * n + j];
            s += prod;
            s2 += Math.abs(prod);
          }
        }
        const o = bi * m * n + i * n + j;
        want[o] = (c.accumulate ? out0[o] : 0) + s;
        mag[o] = s2 + (c.accumulate ? Math.abs(out0[o]) : 0);
      }
  return { want, mag };
}

function runCase(kernels: NativeKernels, heap: Heap, c: Case): void {
  const batch = c.batch ?? 1;
  const lead = c.batch === undefined ? [] : [batch];
  const aValues = randomUniform(batch * c.m * c.k, 7 + c.m, 1);
  const a = heap.fromArray(aValues, c.transA === true ? [...lead, c.k, c.m] : [...lead, c.m, c.k]);
  const bValues = randomUniform(c.k * c.n, 11 + c.n, 1);
  const { whole, t: b } = bf16Tensor(
    heap,
    bValues,
    c.transB === true ? [c.n, c.k] : [c.k, c.n],
    c.misaligned === true,
  );
  const out = heap.fromArray(randomUniform(batch * c.m * c.n, 5, 1), [...lead, c.m, c.n]);
  const out0 = out.toArray();
  if (c.accumulate !== true) out.f32().fill(Number.NaN); // every output must be written
  const options: MatmulOptions = {
    transA: c.transA === true,
    transB: c.transB === true,
    accumulate: c.accumulate === true,
    ...(c.alpha === undefined ? {} : { alpha: c.alpha }),
  };
  let plus = null;
  const extra: Tensor[] = [];
  if (c.plusRank !== undefined) {
    const r = c.plusRank;
    plus = { a: randomUniform(c.m * r, 13, 1), b: randomUniform(r * c.n, 17, 1), alpha: 0.5, r };
    const pa = heap.fromArray(plus.a, [c.m, r]);
    const pb = heap.fromArray(plus.b, [r, c.n]);
    extra.push(pa, pb);
    options.plus = { a: pa, b: pb, alpha: plus.alpha };
  }
  kernels.matmul(out, a, b, options);
  const got = out.f32();
  const { want, mag } = reference(c, aValues, bValues, out0, plus, true);
  const u = 2 ** -24;
  let bad = 0;
  let first = -1;
  for (let i = 0; i < want.length; i++) {
    const tol = 1.01 * (c.k + (c.plusRank ?? 0) + 2) * u * mag[i];
    if (!(Math.abs(got[i] - want[i]) <= tol)) {
      bad++;
      if (first < 0) first = i;
    }
  }
  expect(bad, `first bad at ${first}: got ${got[first]}, want ${want[first]}`).toBe(0);
  if (c.k >= 64 && c.k <= 600) {
    // the bound tells the bf16 rounding of a from its absence (for K up to a few hundred: the
    // bound grows as K^2, the missing rounding's error as sqrt(K))
    const unrounded = reference(c, aValues, bValues, out0, plus, false).want;
    let seen = 0;
    for (let i = 0; i < want.length; i++) {
      const tol = 1.01 * (c.k + (c.plusRank ?? 0) + 2) * u * mag[i];
      if (Math.abs(unrounded[i] - want[i]) > tol) seen++;
    }
    expect(seen).toBeGreaterThan(want.length / 2);
  }
  for (const t of [a, whole, out, ...extra]) t.dispose();
}

describe.skipIf(!hasBf16)("native bf16 GEMM (AVX512-BF16)", () => {
  describe.each([1, 2])("%i thread(s)", (threads) => {
    let heap: Heap;
    let kernels: NativeKernels;
    beforeAll(async () => {
      heap = new Heap();
      kernels = await createNativeKernels(heap, { threads });
    });
    afterAll(async () => {
      await kernels.dispose();
    });

    test("takes a bf16 b", () => {
      expect(kernels.bf16Matmul).toBe(true);
    });

    test.each(cases().map((c) => [label(c), c] as const))("%s", (_, c) => {
      runCase(kernels, heap, c);
    });
  });

  test("1 and 2 threads give the same bits (301 x 190 x 1100, with a LoRA term)", async () => {
    const heap = new Heap();
    const [m, n, k, r] = [301, 190, 1100, 8];
    const a = heap.fromArray(randomUniform(m * k, 3, 1), [m, k]);
    const { t: b } = bf16Tensor(heap, randomUniform(n * k, 4, 1), [n, k], false);
    const pa = heap.fromArray(randomUniform(m * r, 5, 1), [m, r]);
    const pb = heap.fromArray(randomUniform(r * n, 6, 1), [r, n]);
    const outs = [heap.tensor([m, n]), heap.tensor([m, n])];
    for (const [i, threads] of [1, 2].entries()) {
      const kernels = await createNativeKernels(heap, { threads });
      kernels.matmul(outs[i], a, b, { transB: true, plus: { a: pa, b: pb } });
      await kernels.dispose();
    }
    expect(Buffer.compare(Buffer.from(outs[0].u8()), Buffer.from(outs[1].u8()))).toBe(0);
  });
});

describe.skipIf(addon === undefined)("native bf16 dispatch", () => {
  test("bf16Matmul follows cpuid, and bf16: false turns it off", async () => {
    const heap = new Heap({ initialBytes: 2 ** 20 });
    const on = await createNativeKernels(heap, { threads: 1 });
    expect(on.bf16Matmul).toBe(hasBf16 && on.gemmInfo.kernel === "avx512");
    await on.dispose();
    const off = await createNativeKernels(heap, { threads: 1, bf16: false });
    expect(off.bf16Matmul).toBe(false);
    await off.dispose();
  });

  test.runIf(addon?.kernels().includes("avx2") === true)(
    "the avx2 micro-kernel has no bf16 path: a bf16 b throws",
    async () => {
      const heap = new Heap({ initialBytes: 2 ** 20 });
      const kernels = await createNativeKernels(heap, { threads: 1, kernel: "avx2" });
      expect(kernels.bf16Matmul).toBe(false);
      const a = heap.tensor([4, 8]);
      const b = heap.tensor([8, 4], "bf16");
      expect(() => kernels.matmul(heap.tensor([4, 4]), a, b)).toThrow(/dtype bf16/);
      await kernels.dispose();
    },
  );
});
