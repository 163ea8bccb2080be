// wasm matmul vs the reference kernels on awkward shapes: 1, primes, non-multiples of the 4x8
// register tile, K longer than a cache block and than a K slice, every transA/transB/accumulate/
// alpha combination, batched with per-entry and shared 2-D b, unaligned views; on 1 and 2 threads,
// relaxed SIMD and plain SIMD. Relaxed SIMD is required (vitest.config.ts passes
// --experimental-wasm-relaxed-simd): without it those configurations fail, they are not skipped.
// A child process without relaxed SIMD checks that asking for it is an error.
// Tolerance: f32 sums of k products in a different order differ by O(k * eps) relative to the sum
// of |products|, so the bound is 4 * k * 2^-23 * sum_p |a_ip * b_pj| per element (plus a tiny floor).

import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels, MatmulOptions } from "../../src/kernels/kernels.js";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { relaxedSimdSupported } from "../../src/kernels/wasm/asm.js";
import { createWasmKernels, GEMM_K_SLICE, type WasmKernels } from "../../src/kernels/wasm/index.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { compileChild } from "../helpers/compile-child.js";

/** Deterministic uniform values in [-1, 1) (mulberry32). */
function fillRandom(t: Tensor, seed: number): void {
  let s = seed >>> 0;
  const v = t.f32();
  for (let i = 0; i < v.length; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    v[i] = (((x ^ (x >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
}

interface Case {
  batch: number[];
  m: number;
  n: number;
  k: number;
  sharedB?: boolean;
  opts: MatmulOptions;
}

const configs: { label: string; threads: number; relaxedSimd: boolean }[] = [
  { label: "1 thread, plain SIMD", threads: 1, relaxedSimd: false },
  { label: "2 threads, plain SIMD", threads: 2, relaxedSimd: false },
  { label: "1 thread, relaxed SIMD", threads: 1, relaxedSimd: true },
  { label: "2 threads, relaxed SIMD", threads: 2, relaxedSimd: true },
];

const forms: MatmulOptions[] = [];
for (const transA of [false, true]) {
  for (const transB of [false, true]) {
    forms.push({ transA, transB });
    forms.push({ transA, transB, accumulate: true, alpha: -0.75 });
  }
}

/** 2-D shapes: tile edges, in-place/packed operand paths, long K, and sizes that go parallel. */
const shapes2d: [number, number, number][] = [
  [1, 1, 1],
  [1, 17, 5],
  [13, 1, 7],
  [4, 8, 1],
  [5, 9, 3],
  [37, 29, 31],
  [3, 70, 300], // few rows: B read in place
  [70, 3, 300], // few columns: A read in place
  [64, 96, 600], // K spans several KC blocks
  [67, 131, 97], // > parallel threshold, primes
  [300, 41, 53],
  [2, 9, GEMM_K_SLICE + 13], // K longer than one K slice
  [45, 70, 258], // register-transposed packing of A (NN/NT) and B (NT): kc % 4 = 2 in the last KC block
  [36, 80, 39], // kc % 4 = 3
  [5, 300, GEMM_K_SLICE + 7], // wide N with a long K: several K slices, each with several NC blocks
  [96, 64, 256], // an A block that fills the packing scratch exactly (6-row panels store past it)
  [192, 64, 512],
];

function check(kernels: Kernels, ref: Kernels, heap: Heap, c: Case, seed: number): void {
  const { m, n, k, batch, opts } = c;
  const aShape = [...batch, ...(opts.transA ? [k, m] : [m, k])];
  const bCore = opts.transB ? [n, k] : [k, n];
  const bShape = c.sharedB ? bCore : [...batch, ...bCore];
  const outShape = [...batch, m, n];
  // operands live at odd float offsets inside bigger blocks: unaligned pointers
  const aBase = heap.tensor([aShape.reduce((x, y) => x * y, 1) + 3]);
  const bBase = heap.tensor([bShape.reduce((x, y) => x * y, 1) + 1]);
  const a = aBase.view(aShape, 3);
  const b = bBase.view(bShape, 1);
  fillRandom(aBase, seed);
  fillRandom(bBase, seed + 1);
  const out = heap.tensor(outShape);
  const expected = heap.tensor(outShape);
  if (opts.accumulate) {
    fillRandom(out, seed + 2);
    expected.f32().set(out.f32());
  } else {
    out.fill(Number.NaN); // an overwritten output must not read its old contents
    expected.fill(0);
  }
  kernels.matmul(out, a, b, opts);
  ref.matmul(expected, a, b, opts);
  // error bound from |a| |b|: the same product with absolute values
  const absA = heap.tensor(aShape);
  const absB = heap.tensor(bShape);
  const mag = heap.tensor(outShape);
  absA.f32().set(a.f32().map(Math.abs));
  absB.f32().set(b.f32().map(Math.abs));
  ref.matmul(mag, absA, absB, { transA: opts.transA === true, transB: opts.transB === true });
  const got = out.f32();
  const want = expected.f32();
  const bound = mag.f32();
  const scale = Math.abs(opts.alpha ?? 1);
  let worst = 0;
  let worstIndex = -1;
  for (let i = 0; i < got.length; i++) {
    const tol = 4 * k * 2 ** -23 * scale * bound[i] + 1e-6;
    const err = Math.abs(got[i] - want[i]) / tol;
    if (!(err <= worst)) {
      worst = err;
      worstIndex = i;
    }
  }
  const what = `batch [${batch}] m=${m} n=${n} k=${k} ${JSON.stringify(opts)}${c.sharedB ? " shared b" : ""}`;
  expect(
    worst,
    `${what}: element ${worstIndex} got ${got[worstIndex]}, want ${want[worstIndex]}`,
  ).toBeLessThanOrEqual(1);
  for (const t of [aBase, bBase, out, expected, absA, absB, mag]) t.dispose();
}

describe.each(configs)("wasm matmul, $label", ({ threads, relaxedSimd }) => {
  let heap: Heap;
  let kernels: WasmKernels;
  let ref: Kernels;
  beforeAll(async () => {
    heap = new Heap({ initialBytes: 32 * 2 ** 20 });
    kernels = await createWasmKernels(heap, { threads, relaxedSimd, spinMs: 5 });
    ref = createRefKernels(heap);
  });
  afterAll(async () => {
    await kernels?.dispose();
  });

  test("reports its configuration", () => {
    expect(kernels.name).toBe("wasm");
    expect(kernels.threads).toBe(threads);
    expect(kernels.relaxedSimd).toBe(relaxedSimd);
  });

  test("2-D shapes, every form", () => {
    let seed = 1;
    for (const [m, n, k] of shapes2d) {
      for (const opts of forms) check(kernels, ref, heap, { batch: [], m, n, k, opts }, seed++);
    }
  });

  test("batched, per-entry and shared 2-D b", () => {
    let seed = 100;
    const cases: Omit<Case, "opts">[] = [
      { batch: [3], m: 5, n: 7, k: 9 },
      { batch: [2, 3], m: 17, n: 12, k: 33 },
      { batch: [5], m: 40, n: 37, k: 61 }, // parallel over batch entries
      { batch: [2], m: 130, n: 24, k: 70 }, // parallel inside entries
      { batch: [3], m: 6, n: 11, k: 13, sharedB: true },
      { batch: [2, 2], m: 50, n: 70, k: 45, sharedB: true },
    ];
    for (const c of cases)
      for (const opts of forms) check(kernels, ref, heap, { ...c, opts }, seed++);
  });

  test("k = 0 gives zeros, or leaves out unchanged when accumulating", () => {
    const a = heap.zeros([3, 0]);
    const b = heap.zeros([0, 4]);
    const out = heap.tensor([3, 4]).fill(7);
    kernels.matmul(out, a, b, { accumulate: true });
    expect(Array.from(out.f32())).toEqual(new Array(12).fill(7));
    kernels.matmul(out, a, b);
    expect(Array.from(out.f32())).toEqual(new Array(12).fill(0));
  });

  test("shape mismatches throw naming the tensors", () => {
    const a = heap.zeros([3, 5]);
    const b = heap.zeros([4, 2]);
    const out = heap.zeros([3, 2]);
    expect(() => kernels.matmul(out, a, b)).toThrow(/matmul/);
  });
});

describe("wasm kernels lifecycle", () => {
  test("one live instance per heap; dispose releases it and its scratch", async () => {
    const heap = new Heap({ initialBytes: 16 * 2 ** 20 });
    const before = heap.bytesInUse;
    const first = await createWasmKernels(heap, { threads: 2, relaxedSimd: false });
    await expect(createWasmKernels(heap, { threads: 1, relaxedSimd: false })).rejects.toThrow(
      /already has live/,
    );
    await first.dispose();
    expect(heap.bytesInUse).toBe(before);
    const second = await createWasmKernels(heap, { threads: 1, relaxedSimd: false });
    await second.dispose();
  });

  test("workers that parked after spinning wake up for the next job", async () => {
    const heap = new Heap({ initialBytes: 16 * 2 ** 20 });
    const kernels = await createWasmKernels(heap, { threads: 2, relaxedSimd: false, spinMs: 1 });
    const ref = createRefKernels(heap);
    for (let round = 0; round < 3; round++) {
      await new Promise((resolve) => setTimeout(resolve, 30)); // longer than spinMs: workers park
      check(kernels, ref, heap, { batch: [], m: 90, n: 77, k: 65, opts: {} }, 500 + round);
    }
    await kernels.dispose();
  });

  test("memory grown after start is visible to every thread", async () => {
    const heap = new Heap({ initialBytes: 8 * 2 ** 20 });
    const kernels = await createWasmKernels(heap, { threads: 2, relaxedSimd: false });
    const ref = createRefKernels(heap);
    const sizeBefore = heap.byteLength;
    const filler = heap.tensor([4 * 2 ** 20]); // 16 MiB: forces growth; the operands land above it
    expect(heap.byteLength).toBeGreaterThan(sizeBefore);
    check(kernels, ref, heap, { batch: [], m: 120, n: 65, k: 77, opts: { transB: true } }, 900);
    filler.dispose();
    await kernels.dispose();
  });

  test("delegates ops it does not implement to the reference kernels", async () => {
    const heap = new Heap({ initialBytes: 16 * 2 ** 20 });
    const kernels = await createWasmKernels(heap, { threads: 1 });
    const a = heap.fromArray([1, 2, 3]);
    const b = heap.fromArray([10, 20, 30]);
    const out = heap.tensor([3]);
    kernels.add(out, a, b);
    expect(Array.from(out.f32())).toEqual([11, 22, 33]);
    await kernels.dispose();
  });

  test("this runtime has relaxed SIMD (vitest.config.ts passes the flag)", () => {
    expect(relaxedSimdSupported()).toBe(true);
  });

  test("relaxedSimd: true without runtime support throws (child process without the flag)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "loraga-norelaxed-"));
    try {
      const js = compileChild(join(import.meta.dirname, "no-relaxed-simd-child.ts"), dir);
      const run = spawnSync(process.execPath, ["--no-experimental-wasm-relaxed-simd", js], {
        encoding: "utf8",
        timeout: 60_000,
      });
      expect(run.status, run.stderr).toBe(0);
      const result = JSON.parse(run.stdout) as { created: boolean; error: string | null };
      expect(result.created, "the child runtime validated relaxed SIMD despite the flag").toBe(
        false,
      );
      expect(result.error).toMatch(/relaxed SIMD/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
