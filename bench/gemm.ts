// GEMM benchmark: GFLOP/s of ref and wasm (1 thread, all threads; relaxed and plain SIMD) on
// square shapes (NN; NT and TN at 1024) and the skinny LoRA shapes, with numpy (OpenBLAS) measured
// in the same run as the ceiling. One record per measurement, with its ratio to numpy.
// FLOPs = 2*M*N*K per product.

import { createRefKernels } from "../src/kernels/ref/index.js";
import { createWasmKernels } from "../src/kernels/wasm/index.js";
import type { Kernels, MatmulOptions } from "../src/kernels/kernels.js";
import { relaxedSimdSupported } from "../src/kernels/wasm/asm.js";
import { cpuCount } from "../src/platform/threads.js";
import { Heap } from "../src/tensor/heap.js";
import { measureCeiling } from "./ceiling.js";
import { timeIt, type Reporter } from "./report.js";

type Form = "NN" | "NT" | "TN";
interface Shape {
  m: number;
  n: number;
  k: number;
  form: Form;
}

function formOptions(form: Form): MatmulOptions {
  return { transA: form === "TN", transB: form === "NT" };
}

export async function gemmSuite(reporter: Reporter, { quick }: { quick: boolean }): Promise<void> {
  const squares = quick ? [256, 512, 1024] : [256, 512, 1024, 2048];
  const shapes: Shape[] = squares.map((s) => ({ m: s, n: s, k: s, form: "NN" }));
  shapes.push({ m: 1024, n: 1024, k: 1024, form: "NT" }, { m: 1024, n: 1024, k: 1024, form: "TN" });
  const skinny: Shape[] = [
    { m: 4096, n: 16, k: 1024, form: "NN" },
    { m: 4096, n: 1024, k: 16, form: "NN" },
    { m: 16, n: 1024, k: 4096, form: "NN" },
  ];
  shapes.push(...skinny);
  const cores = await cpuCount();

  const numpy = new Map<string, number>();
  const ceiling = measureCeiling({ gemm: shapes.filter((s) => s.form === "NN").map((s) => [s.m, s.n, s.k]), threads: cores });
  if (ceiling === null) reporter.note("numpy ceiling unavailable (python3 + numpy missing)");
  for (const row of ceiling ?? []) {
    numpy.set(`${row.m}x${row.n}x${row.k}`, Number(row.gflops));
    reporter.record({ ...row, threads: cores });
  }

  const heap = new Heap({ initialBytes: 256 * 2 ** 20 });
  const relaxedOk = relaxedSimdSupported();
  const configs: { impl: string; threads: number; simd: string; make: () => Promise<Kernels> }[] = [
    { impl: "ref", threads: 1, simd: "none", make: async () => createRefKernels(heap) },
  ];
  for (const relaxed of relaxedOk ? [true, false] : [false]) {
    for (const threads of cores > 1 ? [1, cores] : [1]) {
      configs.push({
        impl: "wasm",
        threads,
        simd: relaxed ? "relaxed" : "plain",
        make: () => createWasmKernels(heap, { threads, relaxedSimd: relaxed, spinMs: 200 }),
      });
    }
  }
  if (!relaxedOk) reporter.note("relaxed SIMD unavailable: run node with --experimental-wasm-relaxed-simd");

  for (const cfg of configs) {
    const kernels = await cfg.make();
    for (const s of shapes) {
      if (cfg.impl === "ref" && s.m * s.n * s.k > 2 ** 27) continue;
      const aShape = s.form === "TN" ? [s.k, s.m] : [s.m, s.k];
      const bShape = s.form === "NT" ? [s.n, s.k] : [s.k, s.n];
      const a = heap.tensor(aShape);
      const b = heap.tensor(bShape);
      const out = heap.tensor([s.m, s.n]);
      a.f32().forEach((_, i, arr) => {
        arr[i] = Math.sin(i);
      });
      b.f32().forEach((_, i, arr) => {
        arr[i] = Math.cos(i);
      });
      const opts = formOptions(s.form);
      const flop = 2 * s.m * s.n * s.k;
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
      reporter.record({
        kernel: "gemm",
        m: s.m,
        n: s.n,
        k: s.k,
        form: s.form,
        impl: cfg.impl,
        threads: cfg.threads,
        simd: cfg.simd,
        ms,
        gflops,
        gflops_best: flop / fastest / 1e6,
        vs_numpy: np === undefined ? null : gflops / np,
      });
      out.dispose();
      b.dispose();
      a.dispose();
    }
    await kernels.dispose();
  }
}
