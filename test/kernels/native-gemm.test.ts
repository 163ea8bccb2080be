// The native engine's GEMM (native/src/, kernels/native/) against the reference matmul: random
// operands on awkward shapes (M, N or K = 1, tails of the 12 x 32, 6 x 16 and 4 x 16 register
// tiles, K past the kc block, M past the mc block, N past the nc block, narrow outputs that run
// transposed or as dot products (N <= 16, K >= 32, rows in groups of 3 and a tail), small inner
// dims (K = 1..32, N >= 16: rows in groups of 8 and a tail, 32-wide column chunks and a masked
// tail, op(B) read in place or staged), every MatmulOptions case but plus and causal (matmul-plus / matmul-causal test
// those on every engine) (transposes, accumulate, alpha, batched b, shared b with transA), on
// every micro-kernel this CPU runs, with 1 and 2 threads; results equal bit for bit across
// thread counts; the zero-copy base address survives heap growth; out-of-heap operands throw.
// When CI is set the addon must be built: a CI run never silently tests only wasm.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createKernels } from "../../src/kernels/index.js";
import type { MatmulOptions } from "../../src/kernels/kernels.js";
import { loadNativeAddon } from "../../src/kernels/native/addon.js";
import { createNativeKernels, type NativeKernels } from "../../src/kernels/native/index.js";
import { GEMM_PARAMS } from "../../src/kernels/native/params.js";
import { matmul as refMatmul } from "../../src/kernels/ref/matmul.js";
import { Heap } from "../../src/tensor/heap.js";
import { randomUniform } from "../helpers/random.js";

const loaded = loadNativeAddon();
const addon = "addon" in loaded ? loaded.addon : undefined;

test.runIf(process.env.CI !== undefined)("CI: the native addon is built and loads", () => {
  expect("error" in loaded ? loaded.error : "loaded").toBe("loaded");
});

interface Case {
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  accumulate?: boolean;
  alpha?: number;
  /** leading batch dim of a and out */
  batch?: number;
  /** b batched too (else one 2-D b shared by every batch entry) */
  bBatched?: boolean;
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 37, 5],
  [37, 1, 5],
  [5, 7, 1],
  [13, 33, 17],
  [12, 32, 64],
  [25, 65, 300],
  [97, 40, 520],
  [70, 9, 200],
  [100, 16, 77],
  [100, 12, 3000], // dot products in bands of 15 rows (DOT_BAND_BYTES), K with a tail
  [50, 8, 40],
  [31, 3, 1000],
  [1000, 70, 20],
  [3, 8300, 5],
];

// the small-K path (K <= 32, N >= 16): K across its range, M with a tail of the 8-row group and of
// the 16-row task, N with a tail of the 32-wide chunk (1, 16 or 17 columns) or none; 517 x 300 x 16
// is big enough (5 MFLOP) to run on 2 threads
const SMALL_K_SHAPES: [number, number, number][] = [
  [1, 16, 1],
  [37, 16, 2],
  [203, 33, 3],
  [9, 100, 7],
  [64, 512, 8],
  [21, 47, 9],
  [130, 64, 16],
  [517, 300, 16],
  [16, 17, 17],
  [75, 96, 31],
  [40, 49, 32],
];

function cases(): Case[] {
  const out: Case[] = [];
  for (const [m, n, k] of [...SHAPES, ...SMALL_K_SHAPES]) {
    for (const form of [0, 1, 2, 3]) {
      out.push({
        m,
        n,
        k,
        transA: (form & 1) === 1,
        transB: (form & 2) === 2,
        accumulate: form === 1 || form === 2,
        alpha: form === 3 ? -0.75 : 1,
      });
    }
  }
  out.push({ m: 19, n: 23, k: 31, batch: 3, bBatched: true, transB: true });
  out.push({ m: 19, n: 23, k: 31, batch: 3, bBatched: true, transA: true, accumulate: true });
  out.push({ m: 19, n: 23, k: 31, batch: 2, transA: true, alpha: 2 });
  out.push({ m: 19, n: 40, k: 31, batch: 4, transB: true });
  out.push({ m: 19, n: 5, k: 33, batch: 3, bBatched: true, transB: true });
  out.push({ m: 20, n: 12, k: 48, batch: 2, alpha: 0.5, accumulate: true });
  // small K, batched: op(B) staged per batch entry (transB), shared or batched, read in place (NN)
  out.push({ m: 27, n: 40, k: 8, batch: 3, bBatched: true, transB: true, alpha: 0.5 });
  out.push({ m: 27, n: 40, k: 8, batch: 3, transB: true, accumulate: true });
  out.push({ m: 27, n: 40, k: 8, batch: 2, transA: true, bBatched: true });
  out.push({ m: 27, n: 40, k: 8, batch: 2, accumulate: true, alpha: -2 });
  // alpha folded into the transposing pack of A (rows of A contiguous)
  out.push({ m: 37, n: 70, k: 45, alpha: -0.75 });
  out.push({ m: 37, n: 70, k: 45, transB: true, alpha: 1.5, accumulate: true });
  return out;
}

function label(c: Case): string {
  const form = `${c.transA === true ? "T" : "N"}${c.transB === true ? "T" : "N"}`;
  const extra = [
    c.accumulate === true ? "accumulate" : "",
    c.alpha !== undefined && c.alpha !== 1 ? `alpha ${c.alpha}` : "",
    c.batch !== undefined ? `batch ${c.batch}${c.bBatched === true ? " (b batched)" : ""}` : "",
  ].filter((s) => s !== "");
  return `${c.m}x${c.n}x${c.k} ${form} ${extra.join(", ")}`;
}

describe.skipIf(addon === undefined)("native GEMM", () => {
  const kernelNames = addon?.kernels() ?? [];
  const engines: { kernel: string; threads: number }[] = kernelNames.flatMap((kernel) => [
    { kernel, threads: 1 },
    { kernel, threads: 2 },
  ]);

  describe.each(engines)("$kernel micro-kernel, $threads thread(s)", ({ kernel, threads }) => {
    let heap: Heap;
    let kernels: NativeKernels;
    beforeAll(async () => {
      heap = new Heap();
      kernels = await createNativeKernels(heap, { kernel, threads });
    });
    afterAll(async () => {
      await kernels.dispose();
    });

    test("reports its micro-kernel", () => {
      expect(kernels.name).toBe("native");
      expect(kernels.gemmInfo.kernel).toBe(kernel);
      expect(kernels.gemmInfo.threads).toBe(threads);
    });

    test.each(cases().map((c) => [label(c), c] as const))("%s", (_, c) => {
      const batch = c.batch ?? 1;
      const lead = c.batch === undefined ? [] : [batch];
      const a = heap.fromArray(
        randomUniform(batch * c.m * c.k, 7 + c.m, 1),
        c.transA === true ? [...lead, c.k, c.m] : [...lead, c.m, c.k],
      );
      const bLead = c.bBatched === true ? lead : [];
      const bSize = (c.bBatched === true ? batch : 1) * c.k * c.n;
      const b = heap.fromArray(
        randomUniform(bSize, 11 + c.n, 1),
        c.transB === true ? [...bLead, c.n, c.k] : [...bLead, c.k, c.n],
      );
      const out = heap.fromArray(randomUniform(batch * c.m * c.n, 5, 1), [...lead, c.m, c.n]);
      const want = out.toArray();
      if (c.accumulate !== true) out.f32().fill(Number.NaN); // every output must be written
      const options: MatmulOptions = {
        transA: c.transA === true,
        transB: c.transB === true,
        accumulate: c.accumulate === true,
        alpha: c.alpha ?? 1,
      };
      kernels.matmul(out, a, b, options);
      refMatmul(want, a.f32(), b.f32(), {
        batch,
        m: c.m,
        n: c.n,
        k: c.k,
        bBatched: c.bBatched === true,
        transA: c.transA === true,
        transB: c.transB === true,
        accumulate: c.accumulate === true,
        alpha: c.alpha ?? 1,
      });
      const got = out.f32();
      let bad = 0;
      let first = -1;
      for (let i = 0; i < want.length; i++) {
        const tol = 1e-5 * Math.sqrt(c.k + 1) * Math.max(1, Math.abs(want[i]));
        if (!(Math.abs(got[i] - want[i]) <= tol)) {
          bad++;
          if (first < 0) first = i;
        }
      }
      expect(bad, `first bad at ${first}: got ${got[first]}, want ${want[first]}`).toBe(0);
      for (const t of [a, b, out]) t.dispose();
    });
  });

  // 301 x 190 x 257 runs on register tiles, 2000 x 10 x 257 as dot products, 2000 x 300 x 8 on the
  // small-K path; all are big enough for 2 threads
  const bitCases = kernelNames.flatMap((kernel): [string, number, number, number][] => [
    [kernel, 301, 190, 257],
    [kernel, 2000, 10, 257],
    [kernel, 2000, 300, 8],
  ]);
  test.each(bitCases)(
    "%s, %i x %i x %i: 1 and 2 threads give the same bits",
    async (kernel, m, n, k) => {
      const heap = new Heap();
      const one = await createNativeKernels(heap, { kernel: kernel, threads: 1 });
      const a = heap.fromArray(randomUniform(m * k, 3, 1), [m, k]);
      const b = heap.fromArray(randomUniform(k * n, 4, 1), [n, k]);
      const out1 = heap.tensor([m, n]);
      const out2 = heap.tensor([m, n]);
      one.matmul(out1, a, b, { transB: true });
      await one.dispose();
      const two = await createNativeKernels(heap, { kernel: kernel, threads: 2 });
      two.matmul(out2, a, b, { transB: true });
      await two.dispose();
      expect(Buffer.compare(Buffer.from(out1.u8()), Buffer.from(out2.u8()))).toBe(0);
    },
  );

  test('createKernels: "native" by name, and "auto" picks it when the addon loads', async () => {
    const heap = new Heap();
    for (const name of ["native", "auto"] as const) {
      let fellBack = "";
      const kernels = await createKernels(name, {
        heap,
        threads: 1,
        onFallback: (reason) => {
          fellBack = reason;
        },
      });
      expect(kernels.name).toBe("native");
      expect(fellBack).toBe("");
      await kernels.dispose();
    }
  });

  test("the heap's base address does not move when the memory grows", () => {
    if (addon === undefined) throw new Error("unreachable: skipped without the addon");
    const heap = new Heap({ initialBytes: 2 ** 20 });
    const before = addon.baseAddress(new Uint8Array(heap.memory.buffer, 0, 1));
    const big = heap.alloc(256 * 2 ** 20);
    expect(heap.byteLength).toBeGreaterThan(256 * 2 ** 20);
    const after = addon.baseAddress(new Uint8Array(heap.memory.buffer, 0, 1));
    expect(after).toBe(before);
    heap.free(big);
  });

  test("an operand outside the heap throws instead of touching memory", async () => {
    if (addon === undefined) throw new Error("unreachable: skipped without the addon");
    const heap = new Heap();
    const engine = addon.createEngine(new Uint8Array(heap.memory.buffer, 0, 1), 1);
    const params = new Float64Array(GEMM_PARAMS);
    // out at the last element of the heap, 2 x 2: past the end
    params.set([0, 1, 1, 0, 0, 1, 1, 0, 1, 1], 0); // term: a, b at 0, K = 1, alpha 1
    params.set([heap.byteLength / 4 - 1, 2, 1, 0, 2, 2, 1, 1, 0, 0, 0], 22); // the call fields, after two terms of 11
    expect(() => addon.gemm(engine, params, heap.byteLength)).toThrow(/outside the heap/);
    addon.destroyEngine(engine);
  });

  test("a non-finite parameter or a dead engine throws before any parameter is used", async () => {
    if (addon === undefined) throw new Error("unreachable: skipped without the addon");
    const heap = new Heap();
    const engine = addon.createEngine(new Uint8Array(heap.memory.buffer, 0, 1), 1);
    const gemm = new Float64Array(GEMM_PARAMS);
    gemm[22 + 4] = Number.NaN; // M
    expect(() => addon.gemm(engine, gemm, heap.byteLength)).toThrow(/^gemm: non-finite parameter$/);
    gemm[22 + 4] = Number.POSITIVE_INFINITY;
    expect(() => addon.gemm(engine, gemm, heap.byteLength)).toThrow(/^gemm: non-finite parameter$/);
    const rowop = new Float64Array(10); // addon.c ROWOP_PARAMS
    rowop.set([1, 0, 0, 0, Number.NaN]); // add of NaN elements
    expect(() => addon.rowop(engine, rowop, heap.byteLength)).toThrow(
      /^rowop: non-finite parameter$/,
    );
    expect(() => addon.gemm(engine, new Float64Array(3), heap.byteLength)).toThrow(
      /^gemm\(engine, params: Float64Array, heapBytes\)$/,
    );
    addon.destroyEngine(engine);
    expect(() => addon.rowop(engine, rowop, heap.byteLength)).toThrow(/^rowop: not a live engine$/);
    expect(() => addon.gemm(engine, gemm, heap.byteLength)).toThrow(/^gemm: not a live engine$/);
  });
});
