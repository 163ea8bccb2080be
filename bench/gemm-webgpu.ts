// `npm run bench -- gemm-webgpu`: GFLOP/s of the WebGPU GEMM (src/kernels/webgpu/gemm.ts) on
// whatever adapter opens, against the native (or wasm) engine in the same run. On a software
// adapter (lavapipe, SwiftShader) the numbers are printed for completeness only: they measure a
// CPU emulating a GPU. The GPU-side comparison with cuBLAS is bench/webgpu_torch_cuda.py.
// Timing: `reps` products recorded back to back, then one sync (the device runs them in order),
// so launch and read-back overheads are amortised as in a training step; the first call of a
// shape compiles nothing new (one GEMM pipeline), but it is excluded as warm-up anyway.
// In Node on Linux with no VK_ICD_FILENAMES, Mesa's lavapipe ICD is used when installed (as the
// tests do, test/helpers/webgpu.ts); XDG_RUNTIME_DIR must be writable (Dawn).
// FLOPs = 2*M*N*K per product (plus 2*M*N*K2 for the fused LoRA term).
// Where the device has subgroups, the WebGPU rows come twice: impl "webgpu subgroups" (the
// default kernels) and "webgpu" (WebGpuOptions.subgroups false: the workgroup-memory kernels),
// each on its own device. After the GEMMs, the row kernels with a reduction (rmsnorm, causal
// attention softmax, cross-entropy with its gradient; kernel "rows") are timed the same way, for
// both variants; bench/webgpu_torch_cuda.py times PyTorch on the same shapes.

import { existsSync } from "node:fs";
import { createKernels } from "../src/kernels/index.js";
import type { Kernels, MatmulOptions } from "../src/kernels/kernels.js";
import { createWebGpuKernels, WebGpuKernels } from "../src/kernels/webgpu/index.js";
import { Heap } from "../src/tensor/heap.js";
import type { Tensor } from "../src/tensor/tensor.js";
import type { Reporter } from "./report.js";

const LAVAPIPE_ICD = "/usr/share/vulkan/icd.d/lvp_icd.json";

interface Shape {
  m: number;
  n: number;
  k: number;
  form: "NN" | "NT" | "TN";
  /** rank of a fused LoRA term (MatmulOptions.plus), 0 for none */
  k2?: number;
}

function shapes(quick: boolean): Shape[] {
  const sizes = quick ? [256, 512] : [256, 512, 1024];
  const out: Shape[] = [];
  for (const s of sizes)
    for (const form of ["NN", "NT", "TN"] as const) out.push({ m: s, n: s, k: s, form });
  out.push({ m: 512, n: 896, k: 896, form: "NT", k2: 16 }); // a LoRA projection of a 0.5B model
  return quick ? out.filter((s) => s.m <= 512) : out;
}

function operands(
  heap: Heap,
  s: Shape,
): { out: Tensor; a: Tensor; b: Tensor; options: MatmulOptions } {
  const fill = (shape: number[]): Tensor => {
    const t = heap.tensor(shape);
    const v = t.f32();
    for (let i = 0; i < v.length; i++) v[i] = ((i * 7919) % 1000) / 1000 - 0.5;
    return t;
  };
  const a = fill(s.form === "TN" ? [s.k, s.m] : [s.m, s.k]);
  const b = fill(s.form === "NT" ? [s.n, s.k] : [s.k, s.n]);
  const options: MatmulOptions = { transA: s.form === "TN", transB: s.form === "NT" };
  if ((s.k2 ?? 0) > 0) {
    const k2 = s.k2 ?? 0;
    options.plus = { a: fill([s.m, k2]), b: fill([s.n, k2]), transB: true, alpha: 2 };
  }
  return { out: heap.tensor([s.m, s.n]), a, b, options };
}

/** Row-kernel shapes: (rows, cols) of rmsnorm, attention softmax and cross-entropy. */
const ROW_SHAPES = {
  rmsnorm: [2048, 896],
  softmax: [14 * 512, 512], // 14 heads x 512 queries, 512 keys, causal
  crossEntropy: [256, 32000],
} as const;

/** The row kernels' calls on `kernels` over fresh tensors of ROW_SHAPES, and those tensors. */
function rowCalls(
  kernels: Kernels,
  heap: Heap,
  quick: boolean,
): { calls: [string, () => void][]; tensors: Tensor[] } {
  const div = quick ? 4 : 1; // fewer rows when quick
  const fill = (shape: number[]): Tensor => {
    const t = heap.tensor(shape);
    const v = t.f32();
    for (let i = 0; i < v.length; i++) v[i] = ((i * 7919) % 1000) / 1000 - 0.5;
    return t;
  };
  const [nr, nc] = ROW_SHAPES.rmsnorm;
  const x = fill([nr / div, nc]);
  const y = heap.tensor([nr / div, nc]);
  const rstd = heap.tensor([nr / div]);
  const weight = fill([nc]);
  const [sr, sc] = ROW_SHAPES.softmax;
  const scores = fill([1, 14, sr / 14 / div, sc]);
  const probs = heap.tensor([1, 14, sr / 14 / div, sc]);
  const [cr, cc] = ROW_SHAPES.crossEntropy;
  const logits = fill([cr / div, cc]);
  const dLogits = heap.tensor([cr / div, cc]);
  const losses = heap.tensor([cr / div]);
  const targets = heap.fromArray(Int32Array.from({ length: cr / div }, (_, i) => (i * 31) % cc));
  const tensors = [x, y, rstd, weight, scores, probs, logits, dLogits, losses, targets];
  const calls: [string, () => void][] = [
    [`rmsnorm ${nr / div}x${nc}`, () => kernels.rmsnorm(y, rstd, x, weight, 1e-6)],
    [
      `attentionSoftmax causal ${sr / div}x${sc}`,
      () => kernels.attentionSoftmax(probs, scores, { scale: 0.125, causal: true }),
    ],
    [
      `crossEntropy+grad ${cr / div}x${cc}`,
      () => kernels.crossEntropy(losses, dLogits, logits, targets),
    ],
  ];
  return { calls, tensors };
}

/** Median milliseconds per product over `rounds` of `reps` products and one completion wait. */
async function timeProducts(
  wait: () => Promise<void>,
  run: () => void,
  reps: number,
  rounds: number,
): Promise<number> {
  run();
  await wait();
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) run();
    await wait();
    times.push((performance.now() - t0) / reps);
  }
  times.sort((x, y) => x - y);
  return times[Math.floor(times.length / 2)];
}

export async function gemmWebGpuSuite(
  reporter: Reporter,
  options: { quick: boolean },
): Promise<void> {
  if (process.env.VK_ICD_FILENAMES === undefined && existsSync(LAVAPIPE_ICD)) {
    process.env.VK_ICD_FILENAMES = LAVAPIPE_ICD;
  }
  const heap = new Heap({ initialBytes: 64 * 2 ** 20 });
  let gpus: WebGpuKernels[];
  try {
    const gpu = await createWebGpuKernels(heap);
    gpus = gpu.subgroups ? [gpu, await createWebGpuKernels(heap, { subgroups: false })] : [gpu];
  } catch (error) {
    reporter.note(`webgpu unavailable: ${error instanceof Error ? error.message : String(error)}`);
    return;
  }
  const { gpu } = gpus[0];
  reporter.note(
    `adapter: ${gpu.adapterName} (f16 ${gpu.f16}, subgroups ${gpu.subgroups}, sizes ${gpu.subgroupSizes.min}..${gpu.subgroupSizes.max})`,
  );
  const cpu = await createKernels("auto", { heap });
  const implName = (k: Kernels): string =>
    k instanceof WebGpuKernels && k.subgroups ? "webgpu subgroups" : k.name;
  const wait = (k: Kernels) => async () => {
    if (k instanceof WebGpuKernels) await k.sync();
  };
  for (const s of shapes(options.quick)) {
    const { out, a, b, options: mm } = operands(heap, s);
    const flop = 2 * s.m * s.n * (s.k + (s.k2 ?? 0));
    for (const kernels of [...gpus, cpu]) {
      const reps = kernels === cpu ? 2 : 4;
      const ms = await timeProducts(wait(kernels), () => kernels.matmul(out, a, b, mm), reps, 3);
      reporter.record({
        kernel: "gemm",
        impl: implName(kernels),
        m: s.m,
        n: s.n,
        k: s.k,
        form: s.form,
        lora_rank: s.k2 ?? 0,
        ms,
        gflops: flop / ms / 1e6,
      });
    }
    for (const t of [out, a, b]) t.dispose();
  }
  for (const kernels of gpus) {
    const { calls, tensors } = rowCalls(kernels, heap, options.quick);
    for (const [what, run] of calls) {
      const ms = await timeProducts(wait(kernels), run, 4, 3);
      reporter.record({ kernel: "rows", impl: implName(kernels), what, ms });
    }
    for (const t of tensors) t.dispose();
  }
  for (const k of gpus) await k.dispose();
  await cpu.dispose();
}
