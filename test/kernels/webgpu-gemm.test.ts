// The WebGPU GEMM (kernels/webgpu/gemm.ts) against the reference matmul: awkward shapes (1s, tails
// of the 64 x 64 tile and the 16-deep K step, a 256^3 product), every MatmulOptions case
// (transposes, accumulate, alpha, batched and shared b, transA with a shared b), the fused LoRA
// term (both LoRA layouts, a transposed term a, 3-D a), each causal kind on attention-shaped
// operands (with grouped heads: M a multiple of the period), operands that are views at odd
// element offsets, and heap growth between calls (the mirror grows with it). Outputs start as
// NaN where they are overwritten, so every element must be written.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createKernels } from "../../src/kernels/index.js";
import type { MatmulCausal, MatmulOptions } from "../../src/kernels/kernels.js";
import { matmul as refMatmul } from "../../src/kernels/ref/matmul.js";
import type { WebGpuKernels } from "../../src/kernels/webgpu/index.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { expectGemmClose } from "../helpers/allclose.js";
import { randomUniform } from "../helpers/random.js";
import { GPU_CONTEXT, WEBGPU_UNAVAILABLE } from "../helpers/webgpu.js";

interface Case {
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  accumulate?: boolean;
  alpha?: number;
  batch?: number;
  bBatched?: boolean;
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 37, 5],
  [37, 1, 5],
  [5, 7, 1],
  [13, 33, 17],
  [64, 64, 16],
  [65, 63, 33],
  [97, 130, 200],
  [256, 256, 256],
];

function cases(): Case[] {
  const out: Case[] = [];
  for (const [m, n, k] of SHAPES) {
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

describe.skipIf(GPU_CONTEXT === null)(`webgpu GEMM ${WEBGPU_UNAVAILABLE ?? ""}`, () => {
  let heap: Heap;
  let kernels: WebGpuKernels;
  beforeAll(async () => {
    heap = new Heap({ initialBytes: 2 ** 20 });
    kernels = (await createKernels("webgpu", { heap })) as WebGpuKernels;
  });
  afterAll(async () => {
    await kernels?.dispose();
  });

  test("createKernels names it", () => {
    expect(kernels.name).toBe("webgpu");
  });

  test.each(cases().map((c) => [label(c), c] as const))("%s", async (_, c) => {
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
    if (c.accumulate !== true) out.f32().fill(Number.NaN);
    const options: MatmulOptions = {
      transA: c.transA === true,
      transB: c.transB === true,
      accumulate: c.accumulate === true,
      alpha: c.alpha ?? 1,
    };
    kernels.matmul(out, a, b, options);
    await kernels.download(out);
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
    expectGemmClose(out.f32(), want, c.k);
    for (const t of [a, b, out]) t.dispose();
  });

  test.each([
    { name: "LoRA forward x W^T + s (x A^T) B^T", m: 70, k: 96, n: 72, k2: 8, tB: true, pB: true },
    { name: "LoRA input grad dy W + (s dy B) A", m: 70, k: 72, n: 96, k2: 8, acc: true },
    { name: "transposed term a", m: 33, k: 50, n: 21, k2: 5, pA: true, tB: true },
    { name: "3-D a, rank 16", m: 2 * 37, k: 40, n: 70, k2: 16, lead: 2, pB: true },
  ])("plus: $name", async (c) => {
    const lead = c.lead ?? 1;
    const rows = c.m;
    const aShape = lead > 1 ? [lead, rows / lead, c.k] : [rows, c.k];
    const a = heap.fromArray(randomUniform(rows * c.k, 21, 1), aShape);
    const b = heap.fromArray(randomUniform(c.k * c.n, 22, 1), c.tB ? [c.n, c.k] : [c.k, c.n]);
    const pa = heap.fromArray(
      randomUniform(rows * c.k2, 23, 1),
      c.pA ? [c.k2, rows] : [rows, c.k2],
    );
    const pb = heap.fromArray(randomUniform(c.k2 * c.n, 24, 1), c.pB ? [c.n, c.k2] : [c.k2, c.n]);
    const outShape = lead > 1 ? [lead, rows / lead, c.n] : [rows, c.n];
    const out = heap.fromArray(randomUniform(rows * c.n, 25, 1), outShape);
    const want = out.toArray();
    if (c.acc !== true) out.f32().fill(Number.NaN);
    kernels.matmul(out, a, b, {
      transB: c.tB === true,
      accumulate: c.acc === true,
      alpha: 0.5,
      plus: { a: pa, b: pb, transA: c.pA === true, transB: c.pB === true, alpha: 2 },
    });
    await kernels.download(out);
    const dims = { batch: 1, m: rows, n: c.n, bBatched: false, transA: false };
    refMatmul(want, a.f32(), b.f32(), {
      ...dims,
      k: c.k,
      transB: c.tB === true,
      accumulate: c.acc === true,
      alpha: 0.5,
    });
    refMatmul(want, pa.f32(), pb.f32(), {
      ...dims,
      k: c.k2,
      transA: c.pA === true,
      transB: c.pB === true,
      accumulate: true,
      alpha: 2,
    });
    expectGemmClose(out.f32(), want, c.k + c.k2);
    for (const t of [a, b, pa, pb, out]) t.dispose();
  });

  // attention shapes: T = 70 (a 64-row tile crosses the period), 2 grouped query heads
  const T = 70;
  const G = 2;
  const D = 24;
  test.each([
    { kind: "maskOut", what: "scores = Q K^T", m: G * T, n: T, k: D, transB: true },
    { kind: "lowerA", what: "P V", m: G * T, n: D, k: T },
    { kind: "upperA", what: "P^T dO", m: T, n: D, k: G * T, transA: true },
  ] as const)("causal $kind: $what", async (c) => {
    const causal: MatmulCausal = { kind: c.kind, period: T };
    const aShape = "transA" in c ? [c.k, c.m] : [c.m, c.k];
    const aValues = randomUniform(c.m * c.k, 31, 1);
    // the guarantee of lowerA / upperA: op(a)[i, k] is zero on the masked side
    for (let i = 0; i < c.m; i++) {
      for (let k = 0; k < c.k; k++) {
        const zero = (c.kind === "lowerA" && k > i % T) || (c.kind === "upperA" && k % T < i);
        const at = "transA" in c ? k * c.m + i : i * c.k + k;
        if (zero) aValues[at] = 0;
      }
    }
    const a = heap.fromArray(aValues, aShape);
    const b = heap.fromArray(
      randomUniform(c.k * c.n, 32, 1),
      "transB" in c ? [c.n, c.k] : [c.k, c.n],
    );
    const out = heap.tensor([c.m, c.n]).fill(Number.NaN);
    const want = new Float32Array(c.m * c.n);
    const options = {
      transA: "transA" in c,
      transB: "transB" in c,
      causal,
    };
    kernels.matmul(out, a, b, options);
    await kernels.download(out);
    refMatmul(want, a.f32(), b.f32(), {
      batch: 1,
      m: c.m,
      n: c.n,
      k: c.k,
      bBatched: false,
      accumulate: false,
      alpha: 1,
      ...options,
    });
    expectGemmClose(out.f32(), want, c.k);
    for (const t of [a, b, out]) t.dispose();
  });

  test("views at odd element offsets, and a heap that grows between calls", async () => {
    const base = heap.fromArray(randomUniform(3 + 40 * 30 + 30 * 20, 41, 1));
    const a: Tensor = base.view([40, 30], 3);
    const b: Tensor = base.view([30, 20], 3 + 40 * 30);
    const outBase = heap.tensor([1 + 40 * 20]).fill(7);
    const out = outBase.view([40, 20], 1);
    kernels.matmul(out, a, b);
    const big = heap.tensor([8 * 2 ** 20]); // 32 MiB: the heap grows past its 1 MiB start
    kernels.matmul(out, a, b, { accumulate: true, alpha: -1 }); // out = 0 after this
    await kernels.sync();
    const want = new Float32Array(40 * 20);
    expectGemmClose(out.f32(), want, 30);
    expect(outBase.f32()[0]).toBe(7); // the element before the view is untouched
    for (const t of [base, outBase, big]) t.dispose();
  });
});
