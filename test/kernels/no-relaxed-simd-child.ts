// Child process of wasm-gemm.test.ts, started with --no-experimental-wasm-relaxed-simd: asks the
// wasm kernels for relaxed SIMD in a runtime without it and prints the outcome as one JSON line,
// {"created": boolean, "error": string | null}.

import { createWasmKernels } from "../../src/kernels/wasm/index.js";
import { Heap } from "../../src/tensor/heap.js";

const heap = new Heap({ initialBytes: 16 * 2 ** 20 });
try {
  const kernels = await createWasmKernels(heap, { relaxedSimd: true, threads: 1 });
  await kernels.dispose();
  process.stdout.write(`${JSON.stringify({ created: true, error: null })}\n`);
} catch (error) {
  process.stdout.write(`${JSON.stringify({ created: false, error: String(error) })}\n`);
}
