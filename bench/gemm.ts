// GEMM benchmark: GFLOP/s of ref and wasm (1 thread, all threads; relaxed and plain SIMD) on
// square shapes (NN; NT and TN at 1024), skinny shapes, and the "model" group: the products of a
// Llama training step (hidden 512, vocab 32000, 1024 tokens) that dominate its time, in the form
// (transposes, accumulation) the model code calls them. numpy (OpenBLAS) is measured in the same
// run as the ceiling; every record carries its ratio to numpy's plain a @ b of the same M, N, K
// (ceiling.py times one NN product only: for NT/TN rows the ratio is against the NN rate of that
// size, for batched rows against one entry's).
// PyTorch's matmul on f32, on bf16 tensors and under bf16 autocast is timed on the same sizes
// (bench/torch_matmul.py, when torch is installed) and every record carries vs_torch_bf16, its
// ratio to PyTorch's bf16 matmul, so the gap to a bf16 path stays visible.
// The "bf16" group: products against a bf16 frozen weight (1024^3 and the base layers of
// Qwen2.5-0.5B, 2 x 256 tokens), run by the native engine with the weight in bf16 (its AVX512-BF16
// kernel, impl "native", b_dtype "bf16", where the CPU has it) and in f32, beside PyTorch's.
// `gemm-bf16` runs that group alone. `gemm-skinny` runs the LoRA-shaped products (the skinny group
// and the model products with M, N or K at most 64) and 1024^3 NN for reference, on the native
// engine only (1 thread and all cores) beside numpy: a short run to compare builds back to back.
// FLOPs = 2*M*N*K per product.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Kernels, MatmulOptions } from "../src/kernels/kernels.js";
import { createNativeKernels, nativeAvailability } from "../src/kernels/native/index.js";
import { createRefKernels } from "../src/kernels/ref/index.js";
import { relaxedSimdSupported } from "../src/kernels/wasm/asm.js";
import { createWasmKernels } from "../src/kernels/wasm/index.js";
import { cpuCount } from "../src/platform/threads.js";
import { Heap } from "../src/tensor/heap.js";
import { measureCeiling } from "./ceiling.js";
import { type Reporter, timeIt } from "./report.js";

type Form = "NN" | "NT" | "TN";
interface Shape {
  m: number;
  n: number;
  k: number;
  form: Form;
  /** out += product (the backward passes' gradient accumulation) */
  accumulate?: boolean;
  group?: "square" | "skinny" | "model" | "bf16";
  /** what the product is in a training step */
  name?: string;
  /** leading batch dim of a, b and out (attention: batch * heads); FLOPs count every entry */
  batch?: number;
}

function formOptions(s: Shape): MatmulOptions {
  return { transA: s.form === "TN", transB: s.form === "NT", accumulate: s.accumulate === true };
}

/** Products of one Llama training step: hidden 512, vocab 32000, 1024 tokens, LoRA rank 8. */
const MODEL_SHAPES: Shape[] = [
  { m: 1024, n: 32000, k: 512, form: "NT", name: "lm_head forward: x W^T" },
  {
    m: 1024,
    n: 512,
    k: 32000,
    form: "NN",
    accumulate: true,
    name: "lm_head input grad: dX += dLogits W",
  },
  {
    m: 32000,
    n: 512,
    k: 1024,
    form: "TN",
    accumulate: true,
    name: "lm_head weight grad: dW += dLogits^T x",
  },
  { m: 1024, n: 512, k: 512, form: "NT", name: "attention projection forward: x W^T" },
  {
    m: 512,
    n: 512,
    k: 1024,
    form: "TN",
    accumulate: true,
    name: "projection weight grad: dW += dY^T x",
  },
  { m: 1024, n: 8, k: 512, form: "NT", name: "LoRA down: x A^T" },
  { m: 1024, n: 512, k: 8, form: "NT", accumulate: true, name: "LoRA up: out += s (x A^T) B^T" },
  { m: 1024, n: 512, k: 8, form: "NN", accumulate: true, name: "LoRA input grad: dX += dH A" },
  { m: 8, n: 512, k: 1024, form: "TN", accumulate: true, name: "LoRA A grad: dA += dH^T x" },
  // attention, 8 heads of 64 over 1024 positions (one sequence): batched over heads
  { m: 1024, n: 1024, k: 64, form: "NT", batch: 8, name: "attention scores: q k^T" },
  { m: 1024, n: 64, k: 1024, form: "NN", batch: 8, name: "attention output: P v" },
  { m: 1024, n: 64, k: 1024, form: "TN", batch: 8, name: "attention dV (and dK): P^T dO" },
];

/** Products against a frozen weight: 1024^3, and Qwen2.5-0.5B's (hidden 896, intermediate 4864,
 * 2 key/value heads of 64) on 512 tokens: forward x W^T (NT) and input gradient dX += dY W (NN). */
const BF16_SHAPES: Shape[] = [
  { m: 1024, n: 1024, k: 1024, form: "NT", name: "1024^3 x W^T" },
  { m: 1024, n: 1024, k: 1024, form: "NN", accumulate: true, name: "1024^3 dY W" },
  { m: 512, n: 896, k: 896, form: "NT", name: "qwen0.5b q/o_proj forward" },
  { m: 512, n: 128, k: 896, form: "NT", name: "qwen0.5b k/v_proj forward" },
  { m: 512, n: 4864, k: 896, form: "NT", name: "qwen0.5b gate/up_proj forward" },
  { m: 512, n: 896, k: 4864, form: "NT", name: "qwen0.5b down_proj forward" },
  { m: 512, n: 896, k: 4864, form: "NN", accumulate: true, name: "qwen0.5b gate/up input grad" },
  { m: 512, n: 4864, k: 896, form: "NN", accumulate: true, name: "qwen0.5b down input grad" },
];

/** A LoRA-shaped product: M, N or K at most 64 (the rank, a head's width). */
function loraShaped(s: Shape): boolean {
  return Math.min(s.m, s.n, s.k) <= 64;
}

/** bench/torch_matmul.py's rows for `sizes` ([m, n, k]); [] when python3 with torch is missing. */
function measureTorch(sizes: number[][], threads: number): Record<string, string | number>[] {
  const here = dirname(fileURLToPath(import.meta.url));
  // works from bench/ (sources) and build/bench/ (compiled)
  const script = [join(here, "torch_matmul.py"), join(here, "..", "..", "bench", "torch_matmul.py")]
    .filter((p) => existsSync(p))
    .at(0);
  if (script === undefined) return [];
  const out = spawnSync("python3", [script, JSON.stringify({ gemm: sizes, threads })], {
    encoding: "utf8",
    timeout: 900_000,
  });
  if (out.status !== 0) return [];
  return out.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, string | number>);
}

/**
 * `gemm`: every engine. `gemm-native` (gemmNativeSuite): only the fast configurations (native and
 * relaxed-SIMD wasm on all cores, native on one core) against numpy, for a shorter run.
 */
export async function gemmSuite(
  reporter: Reporter,
  {
    quick,
    fastOnly = false,
    bf16Only = false,
    skinnyOnly = false,
  }: { quick: boolean; fastOnly?: boolean; bf16Only?: boolean; skinnyOnly?: boolean },
): Promise<void> {
  const squares = skinnyOnly ? [1024] : quick ? [256, 512, 1024] : [256, 512, 1024, 2048];
  const shapes: Shape[] = [];
  if (!bf16Only) {
    shapes.push(...squares.map((s): Shape => ({ m: s, n: s, k: s, form: "NN", group: "square" })));
    if (!skinnyOnly)
      shapes.push(
        { m: 1024, n: 1024, k: 1024, form: "NT", group: "square" },
        { m: 1024, n: 1024, k: 1024, form: "TN", group: "square" },
      );
    const skinny: Shape[] = [
      // LoRA's up product with rank 8 inside, overwriting (the model group's LoRA rows add into
      // their output)
      { m: 1024, n: 512, k: 8, form: "NN", group: "skinny" },
      { m: 4096, n: 16, k: 1024, form: "NN", group: "skinny" },
      { m: 4096, n: 1024, k: 16, form: "NN", group: "skinny" },
      { m: 16, n: 1024, k: 4096, form: "NN", group: "skinny" },
    ];
    shapes.push(...skinny);
    shapes.push(
      ...MODEL_SHAPES.filter((s) => !skinnyOnly || loraShaped(s)).map(
        (s): Shape => ({ ...s, group: "model" }),
      ),
    );
  }
  if (fastOnly || bf16Only)
    shapes.push(...BF16_SHAPES.map((s): Shape => ({ ...s, group: "bf16" })));
  const cores = await cpuCount();

  const numpy = new Map<string, number>();
  const sizes = new Map(shapes.map((s) => [`${s.m}x${s.n}x${s.k}`, [s.m, s.n, s.k]]));
  const ceiling = measureCeiling({ gemm: [...sizes.values()], threads: cores });
  if (ceiling === null) reporter.note("numpy ceiling unavailable (python3 + numpy missing)");
  for (const row of ceiling ?? []) {
    numpy.set(`${row.m}x${row.n}x${row.k}`, Number(row.gflops));
    reporter.record({ ...row, threads: cores });
  }

  const torchBf16 = new Map<string, number>();
  const torchRows = skinnyOnly ? [] : measureTorch([...sizes.values()], cores);
  if (torchRows.length === 0 && !skinnyOnly)
    reporter.note("PyTorch matmul rows unavailable (python3 + torch missing)");
  for (const row of torchRows) {
    if (row.dtype === "bf16") torchBf16.set(`${row.m}x${row.n}x${row.k}`, Number(row.gflops));
    reporter.record({ ...row, threads: cores });
  }

  const heap = new Heap({ initialBytes: 256 * 2 ** 20 });
  const relaxedOk = relaxedSimdSupported();
  const configs: {
    impl: string;
    threads: number;
    simd: string;
    make: () => Promise<Kernels>;
    /** the weight (b) in bf16: only the bf16 group */
    bf16B?: boolean;
  }[] =
    fastOnly || bf16Only || skinnyOnly
      ? []
      : [{ impl: "ref", threads: 1, simd: "none", make: async () => createRefKernels(heap) }];
  for (const relaxed of relaxedOk ? [true, false] : [false]) {
    if ((fastOnly && !relaxed) || bf16Only || skinnyOnly) continue;
    for (const threads of cores > 1 ? [1, cores] : [1]) {
      if (fastOnly && threads !== cores) continue;
      configs.push({
        impl: "wasm",
        threads,
        simd: relaxed ? "relaxed" : "plain",
        make: () => createWasmKernels(heap, { threads, relaxedSimd: relaxed, spinMs: 200 }),
      });
    }
  }
  if (!relaxedOk)
    reporter.note("relaxed SIMD unavailable: run node with --experimental-wasm-relaxed-simd");
  const native = nativeAvailability();
  if (native.ok) {
    for (const threads of cores > 1 ? [1, cores] : [1]) {
      if (bf16Only && threads !== cores) continue;
      configs.push({
        impl: "native",
        threads,
        simd: "native",
        make: () => createNativeKernels(heap, { threads }),
      });
    }
    if (!skinnyOnly)
      configs.push({
        impl: "native",
        threads: cores,
        simd: "native",
        make: () => createNativeKernels(heap, { threads: cores }),
        bf16B: true,
      });
  } else reporter.note(`native engine unavailable: ${native.reason}`);

  for (const cfg of configs) {
    const kernels = await cfg.make();
    if (cfg.bf16B === true && kernels.bf16Matmul !== true) {
      reporter.note("native bf16 GEMM unavailable: this CPU lacks AVX512-BF16");
      await kernels.dispose();
      continue;
    }
    for (const s of shapes) {
      if (cfg.impl === "ref" && (s.batch ?? 1) * s.m * s.n * s.k > 2 ** 27) continue;
      if (cfg.bf16B === true && s.group !== "bf16") continue;
      const lead = s.batch === undefined ? [] : [s.batch];
      const aShape = [...lead, ...(s.form === "TN" ? [s.k, s.m] : [s.m, s.k])];
      const bShape = [...lead, ...(s.form === "NT" ? [s.n, s.k] : [s.k, s.n])];
      const a = heap.tensor(aShape);
      const b = heap.tensor(bShape, cfg.bf16B === true ? "bf16" : "f32");
      const out = heap.tensor([...lead, s.m, s.n]);
      a.f32().forEach((_, i, arr) => {
        arr[i] = Math.sin(i);
      });
      if (cfg.bf16B === true) {
        const wide = heap.fromArray(cosines(b.size), bShape);
        kernels.convert(b, wide);
        wide.dispose();
      } else b.f32().set(cosines(b.size));
      const opts = formOptions(s);
      const flop = 2 * (s.batch ?? 1) * s.m * s.n * s.k;
      // enough repetitions for ~0.3 s of work at ~50 GFLOP/s, at least 3
      const reps = Math.max(3, Math.min(50, Math.round(1.5e10 / flop)));
      // median (the harness's measure) and the fastest run (robust on a machine shared with
      // other work, where the median mostly measures the neighbours)
      let fastest = Number.POSITIVE_INFINITY;
      const ms = await timeIt(
        () => {
          const t0 = performance.now();
          kernels.matmul(out, a, b, opts);
          fastest = Math.min(fastest, performance.now() - t0);
        },
        cfg.impl === "ref" ? 1 : reps,
        2,
      );
      const gflops = flop / ms / 1e6;
      const np = numpy.get(`${s.m}x${s.n}x${s.k}`);
      const bf16 = torchBf16.get(`${s.m}x${s.n}x${s.k}`);
      reporter.record({
        kernel: "gemm",
        group: s.group ?? "",
        ...(s.name === undefined ? {} : { what: s.name }),
        ...(s.batch === undefined ? {} : { batch: s.batch }),
        m: s.m,
        n: s.n,
        k: s.k,
        form: s.form,
        acc: s.accumulate === true,
        impl: cfg.impl,
        threads: cfg.threads,
        simd: cfg.simd,
        b_dtype: cfg.bf16B === true ? "bf16" : "f32",
        ms,
        gflops,
        gflops_best: flop / fastest / 1e6,
        vs_numpy: np === undefined ? null : gflops / np,
        vs_torch_bf16: bf16 === undefined ? null : gflops / bf16,
      });
      out.dispose();
      b.dispose();
      a.dispose();
    }
    await kernels.dispose();
  }
}

/** cos(i) for i < n (the bench's b). */
function cosines(n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.cos(i));
}

/** The bf16 group alone: native with a bf16 and an f32 weight, numpy and PyTorch. */
export function gemmBf16Suite(reporter: Reporter, { quick }: { quick: boolean }): Promise<void> {
  return gemmSuite(reporter, { quick, bf16Only: true });
}

/** The LoRA-shaped products and 1024^3 on the native engine beside numpy. */
export function gemmSkinnySuite(reporter: Reporter, { quick }: { quick: boolean }): Promise<void> {
  return gemmSuite(reporter, { quick, skinnyOnly: true });
}

export function gemmNativeSuite(reporter: Reporter, { quick }: { quick: boolean }): Promise<void> {
  return gemmSuite(reporter, { quick, fastOnly: true });
}
