// The `wasm` Kernels: WebAssembly SIMD128 code generated from TypeScript (asm.ts), run on a pool of
// worker threads that share the Heap's memory (pool.ts). This file is the composition table: it
// lists the kernel families (families/<name>/: emitter, argument layouts, worker jobs, host side
// with its fallback rules), emits their code into one module, gives the pool their jobs, allocates
// the scratch they need and assembles their methods. Every Kernels method no family provides
// delegates to the reference kernels until it gets a SIMD port.
//
// Contract: one wasm Kernels per Heap at a time (the pool's control block lives in the heap's
// reserved bytes); dispose() stops the workers and frees the scratch. Relaxed SIMD (FMA) is used
// when the runtime validates it (Node 20: --experimental-wasm-relaxed-simd), else plain SIMD128.

import { cpuCount } from "../../platform/threads.js";
import type { Heap } from "../../tensor/heap.js";
import type { Kernels } from "../kernels.js";
import { createRefKernels } from "../ref/index.js";
import { ModuleBuilder, relaxedSimdSupported, simdSupported } from "./asm.js";
import { elementwiseFamily } from "./families/elementwise/host.js";
import { embeddingFamily } from "./families/embedding/host.js";
import { gemmFamily, gemmThreadScratch } from "./families/gemm/host.js";
import { NORM_PARTIAL_FLOATS, normsFamily } from "./families/norms/host.js";
import { permuteFamily } from "./families/permute/host.js";
import { ropeFamily } from "./families/rope/host.js";
import { softmaxFamily } from "./families/softmax/host.js";
import type { AnyFamily, EngineConfig } from "./family.js";
import { ThreadPool } from "./pool.js";
import { allocScratch, type Scratch, THREAD_SCRATCH } from "./scratch.js";

export { GEMM_K_SLICE } from "./families/gemm/host.js";

/**
 * The kernel families, in the order their jobs are numbered. Each provides (see its `provides`):
 *   gemm         matmul (its plus and causal options included)
 *   elementwise  add, mul, scale, axpy, silu, swiglu and their backwards
 *   softmax      attentionSoftmax and its backward, crossEntropy
 *   norms        rmsnorm, layernorm and their backwards
 *   rope         rope and its backward
 *   permute      permute0213
 *   embedding    embedding and its backward (on the calling thread, with permute's and
 *                elementwise's generated functions)
 */
export const WASM_FAMILIES: readonly AnyFamily[] = [
  gemmFamily,
  elementwiseFamily,
  softmaxFamily,
  normsFamily,
  ropeFamily,
  permuteFamily,
  embeddingFamily,
];

export interface WasmKernelsOptions {
  /** Threads per kernel call, the caller included. Default: every core. */
  threads?: number;
  /** Use relaxed SIMD FMA. Default: when the runtime supports it. true on a runtime without it throws. */
  relaxedSimd?: boolean;
  /** How long an idle worker spins before it parks (ms). Default 20. */
  spinMs?: number;
}

export interface WasmKernels extends Kernels {
  /** Whether the GEMM micro-kernel uses relaxed-SIMD FMA. */
  readonly relaxedSimd: boolean;
}

export async function createWasmKernels(
  heap: Heap,
  options: WasmKernelsOptions = {},
): Promise<WasmKernels> {
  if (!simdSupported())
    throw new Error("wasm kernels: this runtime does not support WebAssembly SIMD128");
  const relaxedAvailable = relaxedSimdSupported();
  if (options.relaxedSimd === true && !relaxedAvailable) {
    throw new Error(
      "wasm kernels: relaxedSimd: true, but this runtime does not validate relaxed SIMD " +
        "(Node 20 needs --experimental-wasm-relaxed-simd)",
    );
  }
  const relaxed = options.relaxedSimd ?? relaxedAvailable;
  const threads = options.threads ?? (await cpuCount());
  // GEMM register tiles MR x 8: 6 x 8 with FMA, 5 x 8 without (families/gemm/emit.ts, register
  // budget), and 4 x 8 for products with few rows (families/gemm/host.ts, pickTileRows)
  const config: EngineConfig = { threads, relaxed, mrs: [relaxed ? 6 : 5, 4] };

  const builder = new ModuleBuilder({
    minimumPages: 1,
    maximumPages: heap.maxBytes / 65536,
    shared: true,
  });
  for (const family of WASM_FAMILIES) family.emit?.(builder, config);
  const module = await WebAssembly.compile(builder.encode());
  const pool = await ThreadPool.create({
    memory: heap.memory,
    module,
    jobs: WASM_FAMILIES.flatMap((family) => family.jobs),
    threadScratch: THREAD_SCRATCH,
    threads,
    spinMs: options.spinMs ?? 20,
  });

  let scratch: Scratch<"normPartials">;
  try {
    scratch = allocScratch(heap, pool, {
      perThread: gemmThreadScratch(config.mrs),
      shared: { normPartials: NORM_PARTIAL_FLOATS * 4 },
    });
  } catch (err) {
    await pool.dispose();
    throw err;
  }
  const ref = createRefKernels(heap);
  const context = { config, pool, ref, scratch: scratch.shared };
  const methods: Partial<Kernels> = {};
  for (const family of WASM_FAMILIES) {
    const provided = family.create(context);
    for (const name of family.provides) {
      if (name in methods || typeof provided[name] !== "function")
        throw new Error(`wasm kernels: family ${family.name}: ${name} missing or provided twice`);
      Object.assign(methods, { [name]: provided[name] });
    }
  }

  let disposed = false;
  return {
    ...delegate(ref),
    ...methods,
    name: "wasm",
    threads,
    heap,
    deferred: false,
    relaxedSimd: relaxed,
    async dispose() {
      if (disposed) return;
      disposed = true;
      await pool.dispose();
      scratch.free();
      await ref.dispose();
    },
  };
}

/** The methods of `ref` bound to it (through its prototype chain), for delegation. */
function delegate(ref: Kernels): Omit<Kernels, "name" | "threads" | "heap" | "deferred"> {
  const out: { [key: string]: unknown } = {};
  for (
    let o: object | null = ref;
    o !== null && o !== Object.prototype;
    o = Object.getPrototypeOf(o)
  ) {
    for (const key of Object.getOwnPropertyNames(o)) {
      const v = (ref as unknown as { [key: string]: unknown })[key];
      if (key !== "constructor" && typeof v === "function" && !(key in out)) {
        out[key] = (v as (...args: unknown[]) => unknown).bind(ref);
      }
    }
  }
  return out as unknown as Omit<Kernels, "name" | "threads" | "heap" | "deferred">;
}
