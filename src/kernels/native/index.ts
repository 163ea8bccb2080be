// The `native` Kernels: matmul runs in a C addon (native/src/: BLIS-style SGEMM with AVX-512,
// AVX2+FMA or portable micro-kernels chosen for the CPU at run time, on its own pthread pool),
// working in place on the Heap's shared WebAssembly.Memory through its base address. So do add,
// permute0213, and swiglu, attentionSoftmax, rmsnorm and rope with their backwards on small
// tensors, on the calling thread (rowops.ts); every other op, and those on larger tensors, is the
// `wasm` Kernels' on the same heap (delegated below, one line each). Every matmul case
// of MatmulOptions (transposes, batching, shared b, accumulate, alpha, plus, causal kinds) is
// native. On a CPU with AVX512-BF16 matmul also takes a bf16 b (bf16Matmul, Kernels). Node only;
// createKernels("native") loads it lazily.
//
// Contract: one native Kernels per Heap at a time (it owns that heap's wasm Kernels);
// dispose() stops both thread pools. Results are the same for any thread count (see
// native/src/gemm.h).

import { cpuCount } from "../../platform/threads.js";
import type { Heap } from "../../tensor/heap.js";
import type { Tensor } from "../../tensor/tensor.js";
import type { Kernels, MatmulOptions } from "../kernels.js";
import { checkMatmul } from "../validate.js";
import { createWasmKernels } from "../wasm/index.js";
import { loadNativeAddon, type NativeEngineInfo } from "./addon.js";
import { fillGemmParams, GEMM_PARAMS } from "./params.js";
import { createRowOps } from "./rowops.js";

export interface NativeKernelsOptions {
  /** Threads per kernel call, the caller included (both pools). Default: every core. */
  threads?: number;
  /** Micro-kernel ("avx512", "avx2", "generic"). Default: the best this CPU runs. */
  kernel?: string;
  /** How long an idle native worker spins before it parks (ms). Default 0.2: a parked pthread
   * wakes in microseconds, and a spinning one would take a core from the wasm ops between GEMMs. */
  spinMs?: number;
  /** The same for the wasm Kernels' workers (WasmKernelsOptions.spinMs). Default 0.2, as the
   * native workers': a wasm worker spinning through a GEMM takes a core from the native pool
   * (docs/engine-notes.md, "The demo on the native engine"). */
  wasmSpinMs?: number;
  /** false: no bf16 b (bf16Matmul false), so bf16 weights are expanded to f32 as on the other
   * engines. Default: the bf16 kernels wherever the CPU has AVX512-BF16. */
  bf16?: boolean;
}

export interface NativeKernels extends Kernels {
  /** The GEMM's micro-kernel, register tile and cache blocks. */
  readonly gemmInfo: NativeEngineInfo;
  readonly bf16Matmul: boolean;
}

/** Whether the addon is built and loads; else the reason, for messages. */
export function nativeAvailability(): { ok: true } | { ok: false; reason: string } {
  const loaded = loadNativeAddon();
  return "addon" in loaded ? { ok: true } : { ok: false, reason: loaded.error };
}

export async function createNativeKernels(
  heap: Heap,
  options: NativeKernelsOptions = {},
): Promise<NativeKernels> {
  const loaded = loadNativeAddon();
  if (!("addon" in loaded)) throw new Error(`native kernels unavailable: ${loaded.error}`);
  const addon = loaded.addon;
  const threads = options.threads ?? (await cpuCount());
  const available = addon.kernels();
  if (options.kernel !== undefined && !available.includes(options.kernel)) {
    throw new Error(
      `native kernels: this CPU cannot run the "${options.kernel}" micro-kernel; it runs ${available.join(", ")}`,
    );
  }
  const wasm = await createWasmKernels(heap, {
    threads,
    spinMs: options.wasmSpinMs ?? 0.2,
  });
  // A view of the memory's first byte: the addon reads the base address from it.
  const engine = addon.createEngine(
    new Uint8Array(heap.memory.buffer, 0, 1),
    threads,
    options.kernel,
    (options.spinMs ?? 0.2) * 1000,
  );
  const gemmInfo = addon.engineInfo(engine);
  const bf16Matmul = gemmInfo.bf16 && options.bf16 !== false;
  const params = new Float64Array(GEMM_PARAMS);
  const rowOps = createRowOps(addon, engine, heap, wasm);

  function matmul(out: Tensor, a: Tensor, b: Tensor, options: MatmulOptions = {}): void {
    const shape = checkMatmul(out, a, b, options, bf16Matmul);
    fillGemmParams(params, out, a, b, options, shape);
    addon.gemm(engine, params, heap.byteLength);
  }

  return {
    name: "native",
    threads,
    heap,
    gemmInfo,
    bf16Matmul,
    matmul,
    add: rowOps.add,
    mul: wasm.mul.bind(wasm),
    scale: wasm.scale.bind(wasm),
    axpy: wasm.axpy.bind(wasm),
    addBias: wasm.addBias.bind(wasm),
    biasBackward: wasm.biasBackward.bind(wasm),
    silu: wasm.silu.bind(wasm),
    siluBackward: wasm.siluBackward.bind(wasm),
    swiglu: rowOps.swiglu,
    swigluBackward: rowOps.swigluBackward,
    gelu: wasm.gelu.bind(wasm),
    geluBackward: wasm.geluBackward.bind(wasm),
    rmsnorm: rowOps.rmsnorm,
    rmsnormBackward: rowOps.rmsnormBackward,
    layernorm: wasm.layernorm.bind(wasm),
    layernormBackward: wasm.layernormBackward.bind(wasm),
    attentionSoftmax: rowOps.attentionSoftmax,
    attentionSoftmaxBackward: rowOps.attentionSoftmaxBackward,
    rope: rowOps.rope,
    ropeBackward: rowOps.ropeBackward,
    permute0213: rowOps.permute0213,
    copyColumns: wasm.copyColumns.bind(wasm),
    maskOutsideWindow: wasm.maskOutsideWindow.bind(wasm),
    embedding: wasm.embedding.bind(wasm),
    embeddingBackward: wasm.embeddingBackward.bind(wasm),
    crossEntropy: wasm.crossEntropy.bind(wasm),
    sum: wasm.sum.bind(wasm),
    max: wasm.max.bind(wasm),
    sumSquares: wasm.sumSquares.bind(wasm),
    sumInto: wasm.sumInto.bind(wasm),
    sumSquaresInto: wasm.sumSquaresInto.bind(wasm),
    adamw: wasm.adamw.bind(wasm),
    sgd: wasm.sgd.bind(wasm),
    convert: wasm.convert.bind(wasm),
    copy: wasm.copy.bind(wasm),
    fill: wasm.fill.bind(wasm),
    deferred: false,
    upload: wasm.upload.bind(wasm),
    download: wasm.download.bind(wasm),
    async dispose(): Promise<void> {
      addon.destroyEngine(engine);
      await wasm.dispose();
    },
  };
}
